"""cluster.cache_keys against §3.4 of the reference (ComfyUI's input-signature rule)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pytest

from cluster.cache_keys import CacheKeyer
from cluster.dynamic_prompt import DynamicPrompt
from node_actors.protocol import NodeDefinition

DEFINITIONS = {
    "Load": NodeDefinition("Load", {"output": ["IMAGE"]}),
    "Invert": NodeDefinition("Invert", {"output": ["IMAGE"]}),
    "Mix": NodeDefinition("Mix", {"output": ["IMAGE"]}),
    "Save": NodeDefinition("Save", {"output": []}, output_node=True),
    "Random": NodeDefinition("Random", {"output": ["INT"]}, not_idempotent=True),
    "WithId": NodeDefinition("WithId", {"output": ["STRING"]}, hidden_inputs={"uid": "UNIQUE_ID"}),
}


def keyer(
    prompt: dict[str, dict[str, Any]],
    is_changed: Mapping[str, Any] | None = None,
    dynprompt: DynamicPrompt | None = None,
) -> CacheKeyer:
    return CacheKeyer(dynprompt or DynamicPrompt(prompt), DEFINITIONS.get, is_changed or {})


def chain(ids: tuple[str, str, str] = ("1", "2", "3"), width: int = 8) -> dict[str, Any]:
    a, b, c = ids
    return {
        a: {"class_type": "Load", "inputs": {"width": width, "name": "x.png"}},
        b: {"class_type": "Invert", "inputs": {"image": [a, 0]}},
        c: {"class_type": "Save", "inputs": {"images": [b, 0], "prefix": "p"}},
    }


def test_keys_are_stable_strings() -> None:
    k = keyer(chain())
    key = k.key("3")
    assert isinstance(key, str) and len(key) == 40
    assert k.key("3") == key
    assert keyer(chain()).key("3") == key


def test_identical_subgraphs_under_other_ids_share_keys() -> None:
    first = keyer(chain(("1", "2", "3")))
    second = keyer(chain(("a", "b", "c")))
    assert [first.key(n) for n in ("1", "2", "3")] == [second.key(n) for n in ("a", "b", "c")]


def test_a_changed_constant_changes_the_node_and_everything_downstream() -> None:
    base = keyer(chain(width=8))
    changed = keyer(chain(width=16))
    assert base.key("1") != changed.key("1")
    assert base.key("2") != changed.key("2")
    assert base.key("3") != changed.key("3")


def test_a_downstream_change_leaves_upstream_keys_alone() -> None:
    prompt = chain()
    base = keyer(prompt)
    prompt2 = chain()
    prompt2["3"]["inputs"]["prefix"] = "other"
    changed = keyer(prompt2)
    assert base.key("1") == changed.key("1") and base.key("2") == changed.key("2")
    assert base.key("3") != changed.key("3")


def test_class_type_is_part_of_the_key() -> None:
    prompt = chain()
    prompt["2"]["class_type"] = "Mix"
    assert keyer(chain()).key("2") != keyer(prompt).key("2")


def test_input_dict_order_does_not_matter() -> None:
    forward = {"1": {"class_type": "Load", "inputs": {"a": 1, "b": "x"}}}
    backward = {"1": {"class_type": "Load", "inputs": {"b": "x", "a": 1}}}
    assert keyer(forward).key("1") == keyer(backward).key("1")


def test_ancestors_are_numbered_by_sorted_input_names() -> None:
    def mix(first_in: str, second_in: str) -> dict[str, Any]:
        return {
            "p": {"class_type": "Load", "inputs": {"name": "p.png"}},
            "q": {"class_type": "Load", "inputs": {"name": "q.png"}},
            "m": {"class_type": "Mix", "inputs": {first_in: ["p", 0], second_in: ["q", 0]}},
        }

    # Same wiring, inputs declared in another order: same key.
    assert keyer(mix("a", "b")).key("m") == keyer(mix("a", "b")).key("m")
    swapped_decl = mix("a", "b")
    swapped_decl["m"]["inputs"] = dict(reversed(list(swapped_decl["m"]["inputs"].items())))
    assert keyer(swapped_decl).key("m") == keyer(mix("a", "b")).key("m")
    # Swapping which image feeds which input is a different computation.
    assert keyer(mix("a", "b")).key("m") != keyer(mix("b", "a")).key("m")


def test_slot_of_a_link_is_part_of_the_key() -> None:
    prompt = chain()
    prompt["2"]["inputs"]["image"] = ["1", 1]
    assert keyer(chain()).key("2") != keyer(prompt).key("2")


def test_diamond_counts_a_shared_ancestor_once() -> None:
    prompt = {
        "s": {"class_type": "Load", "inputs": {"name": "s"}},
        "l": {"class_type": "Invert", "inputs": {"image": ["s", 0]}},
        "r": {"class_type": "Invert", "inputs": {"image": ["s", 0]}},
        "m": {"class_type": "Mix", "inputs": {"a": ["l", 0], "b": ["r", 0]}},
    }
    renamed = {
        "S": prompt["s"],
        "L": {"class_type": "Invert", "inputs": {"image": ["S", 0]}},
        "R": {"class_type": "Invert", "inputs": {"image": ["S", 0]}},
        "M": {"class_type": "Mix", "inputs": {"a": ["L", 0], "b": ["R", 0]}},
    }
    assert keyer(prompt).key("m") == keyer(renamed).key("M")
    # Two independent sources are not the same graph as one shared source.
    split = dict(prompt)
    split["s2"] = {"class_type": "Load", "inputs": {"name": "s"}}
    split["r"] = {"class_type": "Invert", "inputs": {"image": ["s2", 0]}}
    assert keyer(prompt).key("m") != keyer(split).key("m")


def test_not_idempotent_and_unique_id_nodes_include_their_id() -> None:
    def graph(rid: str, wid: str) -> dict[str, Any]:
        return {
            rid: {"class_type": "Random", "inputs": {"seed": 1}},
            wid: {"class_type": "WithId", "inputs": {"x": 1}},
        }

    a, b = keyer(graph("r1", "w1")), keyer(graph("r2", "w2"))
    assert a.key("r1") != b.key("r2")
    assert a.key("w1") != b.key("w2")
    # Same id, same inputs: still cacheable.
    assert a.key("r1") == keyer(graph("r1", "w1")).key("r1")


def test_downstream_of_a_not_idempotent_node_includes_the_ancestor_id() -> None:
    def graph(rid: str) -> dict[str, Any]:
        return {
            rid: {"class_type": "Random", "inputs": {"seed": 1}},
            "o": {"class_type": "Save", "inputs": {"images": [rid, 0]}},
        }

    assert keyer(graph("r1")).key("o") != keyer(graph("r2")).key("o")


def test_is_changed_value_is_part_of_the_key() -> None:
    prompt = chain()
    plain = keyer(prompt)
    same = keyer(prompt, {"1": False})
    other = keyer(prompt, {"1": ["abc"]})
    assert plain.key("1") == same.key("1")  # no IS_CHANGED counts as False
    assert plain.key("1") != other.key("1")
    assert plain.key("3") != other.key("3")
    assert other.key("3") == keyer(prompt, {"1": ["abc"]}).key("3")


@pytest.mark.parametrize("value", [math.nan, [math.nan], object(), {"t": object()}])
def test_nan_or_unhashable_is_changed_is_never_equal(value: Any) -> None:
    prompt = chain()
    first = keyer(prompt, {"1": value})
    second = keyer(prompt, {"1": value})
    assert first.key("1") != second.key("1")
    assert first.key("3") != second.key("3")
    assert first.key("1").startswith("uncacheable:")
    # Memoized within one prompt: the node has one key while it runs.
    assert first.key("1") == first.key("1")


def test_unhashable_constant_makes_the_node_uncacheable() -> None:
    prompt = {"1": {"class_type": "Load", "inputs": {"tensor": object()}}}
    assert keyer(prompt).key("1").startswith("uncacheable:")


def test_float_and_nested_constants_are_canonical() -> None:
    one = {"1": {"class_type": "Load", "inputs": {"cfg": 1.5, "opts": {"b": [1, 2], "a": None}}}}
    two = {"1": {"class_type": "Load", "inputs": {"cfg": 1.5, "opts": {"a": None, "b": [1, 2]}}}}
    three = {"1": {"class_type": "Load", "inputs": {"cfg": 1.25, "opts": {"a": None, "b": [1, 2]}}}}
    assert keyer(one).key("1") == keyer(two).key("1")
    assert keyer(one).key("1") != keyer(three).key("1")


def test_ephemeral_nodes_key_under_their_parent() -> None:
    def expanded(parent_width: int) -> CacheKeyer:
        prompt = {"x": {"class_type": "Load", "inputs": {"width": parent_width}}}
        dynprompt = DynamicPrompt(prompt)
        dynprompt.add_ephemeral_node(
            "x.0.1", {"class_type": "Invert", "inputs": {"v": 1}}, "x", "x"
        )
        return keyer(prompt, dynprompt=dynprompt)

    assert expanded(1).key("x.0.1") == expanded(1).key("x.0.1")
    assert expanded(1).key("x.0.1") != expanded(2).key("x.0.1")
    free = keyer({"x.0.1": {"class_type": "Invert", "inputs": {"v": 1}}})
    assert free.key("x.0.1") != expanded(1).key("x.0.1")


def test_link_to_a_missing_node_still_gives_a_key() -> None:
    prompt = {"o": {"class_type": "Save", "inputs": {"images": ["gone", 0]}}}
    key = keyer(prompt).key("o")
    assert not key.startswith("uncacheable:")
    assert key == keyer(prompt).key("o")
