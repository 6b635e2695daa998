"""cluster.dynamic_prompt and cluster.execution_list against §3.1 / §3.2 of the reference."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import pytest

from cluster.dynamic_prompt import DynamicPrompt, is_link
from cluster.execution_list import ExecutionList


def node(class_type: str = "N", **inputs: Any) -> dict[str, Any]:
    return {"class_type": class_type, "inputs": inputs}


def make_list(
    prompt: dict[str, dict[str, Any]],
    available: Collection[str] = (),
    lazy: Collection[tuple[str, str]] = (),
) -> tuple[ExecutionList, DynamicPrompt]:
    dynprompt = DynamicPrompt(prompt)
    done = set(available)
    execution = ExecutionList(
        dynprompt, lambda n: n in done, lambda n, name: (n, name) in set(lazy)
    )
    return execution, dynprompt


def drain(execution: ExecutionList) -> list[str]:
    """Run to completion picking the first ready node each time; the order they ran in."""
    order: list[str] = []
    while not execution.is_empty():
        ready = execution.ready()
        assert ready, f"stuck with {list(execution.pending)}"
        order.append(ready[0])
        execution.complete(ready[0])
    return order


# --- is_link -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [["1", 0], ["node.0", 3], ["1", 1.0]],
)
def test_is_link_accepts_id_and_numeric_slot(value: Any) -> None:
    assert is_link(value)


@pytest.mark.parametrize(
    "value",
    [
        ("1", 0),  # a tuple is never a link (JSON has no tuples)
        ["1", True],  # bool is not a slot
        [1, 0],  # the id must be a string
        ["1", "0"],
        ["1", 0, 2],
        ["1"],
        "1",
        {"__value__": ["1", 0]},
    ],
)
def test_is_link_rejects_everything_else(value: Any) -> None:
    assert not is_link(value)


# --- DynamicPrompt -------------------------------------------------------------------------------


def test_dynamic_prompt_ephemeral_nodes_resolve_to_their_submitted_ancestor() -> None:
    dynprompt = DynamicPrompt({"x": node("Expand")})
    dynprompt.add_ephemeral_node("x.0.1", node("Inner"), parent_id="x", display_id="x")
    dynprompt.add_ephemeral_node("x.0.1.0.2", node("Deeper"), parent_id="x.0.1", display_id="x")

    assert dynprompt.get_node("x.0.1")["class_type"] == "Inner"
    assert dynprompt.has_node("x.0.1.0.2") and not dynprompt.has_node("y")
    assert dynprompt.is_ephemeral("x.0.1") and not dynprompt.is_ephemeral("x")
    assert dynprompt.parent_of("x.0.1.0.2") == "x.0.1"
    assert dynprompt.parent_of("x") is None
    assert dynprompt.real_node_id("x.0.1.0.2") == "x"
    assert dynprompt.real_node_id("x") == "x"
    assert dynprompt.display_node_id("x.0.1.0.2") == "x"
    assert dynprompt.display_node_id("x") == "x"
    assert list(dynprompt.all_node_ids()) == ["x", "x.0.1", "x.0.1.0.2"]
    snapshot = dynprompt.as_dict()
    assert snapshot["parents"] == {"x.0.1": "x", "x.0.1.0.2": "x.0.1"}
    assert set(snapshot["ephemeral"]) == {"x.0.1", "x.0.1.0.2"}
    with pytest.raises(KeyError):
        dynprompt.get_node("missing")


# --- ExecutionList -------------------------------------------------------------------------------


def test_chain_dissolves_upstream_first() -> None:
    execution, _ = make_list(
        {"1": node(), "2": node(x=["1", 0]), "3": node(x=["2", 0])},
    )
    execution.add_node("3")
    assert execution.ready() == ["1"]
    assert drain(execution) == ["1", "2", "3"]


def test_available_upstream_is_neither_added_nor_blocking() -> None:
    execution, _ = make_list(
        {"1": node(), "2": node(x=["1", 0]), "3": node(x=["2", 0])},
        available={"2"},
    )
    execution.add_node("3")
    assert list(execution.pending) == ["3"]
    assert execution.ready() == ["3"]


def test_a_node_waits_for_every_distinct_upstream() -> None:
    execution, _ = make_list(
        {
            "a": node(),
            "b": node(),
            "m": node(x=["a", 0], y=["b", 0], z=["a", 1]),
        }
    )
    execution.add_node("m")
    assert sorted(execution.ready()) == ["a", "b"]
    execution.complete("a")
    assert "m" not in execution.ready()
    execution.complete("b")
    assert execution.ready() == ["m"]


def test_shared_upstream_is_added_once_for_two_outputs() -> None:
    execution, _ = make_list(
        {"v": node(), "o1": node(x=["v", 0]), "o2": node(x=["v", 0])},
    )
    execution.add_node("o1")
    execution.add_node("o2")
    assert sorted(execution.pending) == ["o1", "o2", "v"]
    assert execution.ready() == ["v"]
    execution.complete("v")
    assert sorted(execution.ready()) == ["o1", "o2"]


def test_lazy_inputs_do_not_pull_their_upstream_until_asked() -> None:
    prompt = {
        "a": node(),
        "b": node(),
        "mix": node(image1=["a", 0], image2=["b", 0]),
    }
    execution, _ = make_list(prompt, lazy={("mix", "image1"), ("mix", "image2")})
    execution.add_node("mix")
    assert list(execution.pending) == ["mix"]
    assert execution.ready() == ["mix"]
    # The node asked for image2: that upstream now runs first, then the node again.
    execution.make_input_strong_link("mix", "image2")
    assert sorted(execution.pending) == ["b", "mix"]
    assert execution.ready() == ["b"]
    execution.complete("b")
    assert execution.ready() == ["mix"]
    assert "a" not in execution.pending


def test_include_lazy_adds_lazy_upstreams_too() -> None:
    prompt = {"a": node(), "mix": node(image1=["a", 0])}
    execution, _ = make_list(prompt, lazy={("mix", "image1")})
    execution.add_node("mix", include_lazy=True)
    assert execution.ready() == ["a"]


def test_strong_link_to_an_available_node_is_ignored() -> None:
    prompt = {"a": node(), "mix": node(image1=["a", 0], k=3)}
    execution, _ = make_list(prompt, available={"a"}, lazy={("mix", "image1")})
    execution.add_node("mix")
    execution.make_input_strong_link("mix", "image1")
    execution.make_input_strong_link("mix", "k")  # a constant: nothing to link
    assert list(execution.pending) == ["mix"] and execution.ready() == ["mix"]


def test_subgraph_limits_which_upstreams_are_followed() -> None:
    prompt = {
        "outside": node(),
        "in1": node(x=["outside", 0]),
        "in2": node(x=["in1", 0]),
    }
    execution, _ = make_list(prompt)
    execution.add_node("in2", subgraph={"in1", "in2"})
    assert sorted(execution.pending) == ["in1", "in2"]
    assert execution.ready() == ["in1"]


def test_dependency_cycle_leaves_nothing_ready() -> None:
    prompt = {"a": node(x=["b", 0]), "b": node(x=["a", 0]), "o": node(x=["b", 0])}
    execution, _ = make_list(prompt)
    execution.add_node("o")
    assert execution.ready() == []
    assert sorted(execution.cycle_nodes()) == ["a", "b", "o"]
    assert not execution.is_empty()


def test_ephemeral_nodes_are_followed_through_the_dynamic_prompt() -> None:
    execution, dynprompt = make_list({"i": node(), "x": node(image=["i", 0])}, available={"i"})
    dynprompt.add_ephemeral_node("x.0.1", node(image=["i", 0]), "x", "x")
    dynprompt.add_ephemeral_node("x.0.2", node(image=["x.0.1", 0]), "x", "x")
    execution.add_node("x")
    assert execution.ready() == ["x"]
    # x ran and expanded: it stays pending, now blocked by the node its result links to.
    execution.add_strong_link("x.0.2", 0, "x")
    assert execution.ready() == ["x.0.1"]
    assert drain(execution) == ["x.0.1", "x.0.2", "x"]


def test_complete_unknown_node_is_harmless() -> None:
    execution, _ = make_list({"a": node()})
    execution.complete("nope")
    assert execution.is_empty()
