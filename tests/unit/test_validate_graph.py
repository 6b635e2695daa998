"""Prompt validation: links, type matching, cycles, memoization and VALIDATE_INPUTS."""

from __future__ import annotations

import pytest
from test_validate_helpers import (
    DEFS,
    FakeValidator,
    definition,
    node,
    reject,
    run,
    strip_tracebacks,
)

from cluster.errors import PromptValidationError
from cluster.types_match import types_match


def failed_nodes(prompt: dict, validator: FakeValidator | None = None) -> tuple[dict, dict]:
    exc = reject(prompt, validator=validator)
    assert exc.error["type"] == "prompt_outputs_failed_validation"
    return exc.error, exc.node_errors


# --- type matching ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("received", "declared", "expected"),
    [
        ("IMAGE", "IMAGE", True),
        ("IMAGE", "MASK", False),
        ("IMAGE", "*", True),
        ("*", "MASK", True),
        ("FLOAT,INT", "INT", True),
        ("FLOAT, INT", "STRING,INT ", True),
        ("FLOAT,INT", "STRING", False),
        ("IMAGE,*", "MASK", True),
        ("COMFY_MATCHTYPE_V3", "MASK", True),
        (["a", "b"], "COMBO", True),
        (["a", "b"], ["a", "b"], True),
        (["a", "b"], ["a"], False),
        (["a", "b"], "STRING", False),
        ("STRING", ["a"], False),
    ],
)
def test_types_match_rules(received: object, declared: object, expected: bool) -> None:
    assert types_match(received, declared) is expected


def test_links_match_star_comma_ne_override_and_combo_outputs() -> None:
    prompt = {
        "1": node("LoadImage", image="a.png"),
        "2": node("Blend", x=["1", 1]),  # MASK into "IMAGE,MASK"
        "3": node("ShowNumber", v=["2", 0]),  # "FLOAT,INT" into INT
        "4": node("Wild", value=["1", 0]),  # IMAGE into a __ne__-overriding declared type
        "5": node("AnyOut"),
        "6": node("SaveImage", images=["5", 0], filename_prefix="p"),  # overriding received type
        "7": node("ComboOut"),
        "8": node("Options", sampler=["7", 0], scheduler="simple"),
        "9": node("Sink", value=["8", 0]),
    }
    assert run(prompt).outputs == ["3", "4", "6", "9"]


# --- links to unknown nodes and bad slots (§9 item 5) ----------------------------------------


def test_link_to_missing_node_on_output_is_exception_during_validation() -> None:
    error, node_errors = failed_nodes(
        {"2": node("SaveImage", images=["99", 0], filename_prefix="x")}
    )
    [entry] = strip_tracebacks(node_errors["2"]["errors"])
    assert entry == {
        "type": "exception_during_validation",
        "message": "Exception when validating node",
        "details": "'99'",
        "extra_info": {"exception_type": "KeyError"},
    }
    assert error["details"] == "Exception when validating node: '99'"


def test_link_to_missing_node_on_intermediate_is_inner_exception() -> None:
    prompt = {
        "1": node("Pass", image=["99", 0]),
        "2": node("SaveImage", images=["1", 0], filename_prefix="x"),
    }
    error, node_errors = failed_nodes(prompt)
    assert list(node_errors) == ["1"]
    [entry] = strip_tracebacks(node_errors["1"]["errors"])
    assert entry == {
        "type": "exception_during_inner_validation",
        "message": "Exception when validating inner node",
        "details": "'99'",
        "extra_info": {
            "input_name": "images",
            "input_config": ["IMAGE", {"tooltip": "x"}],
            "exception_message": "'99'",
            "exception_type": "KeyError",
            "linked_node": ["1", 0],
        },
    }
    assert node_errors["1"]["dependent_outputs"] == ["2"]
    assert error["details"] == ""


@pytest.mark.parametrize(
    ("link", "exception_type", "details"),
    [
        (["1", 2], "IndexError", "tuple index out of range"),
        (["1", -1], "IndexError", "tuple index out of range"),
        (["1", 10**30], "IndexError", "tuple index out of range"),
        (["1", 0.5], "TypeError", "link slot must be an integer, got 0.5"),
        (["1", True], "TypeError", "link slot must be an integer, got boolean"),
        (["1", "0"], "TypeError", "link slot must be an integer, got string"),
        ([1, 0], "KeyError", "1"),
        ([None, 0], "KeyError", "None"),
    ],
)
def test_bad_link_shapes(link: list, exception_type: str, details: str) -> None:
    prompt = {
        "1": node("LoadImage", image="a.png"),
        "2": node("SaveImage", images=link, filename_prefix="x"),
    }
    _, node_errors = failed_nodes(prompt)
    [entry] = strip_tracebacks(node_errors["2"]["errors"])
    assert entry["type"] == "exception_during_validation"
    assert entry["details"] == details
    assert entry["extra_info"]["exception_type"] == exception_type


def test_undeclared_and_hidden_inputs_are_not_validated() -> None:
    prompt = {
        "1": node("LoadImage", image="a.png", extra=["99", 0], junk=[1, 2, 3]),
        "2": node("SaveImage", images=["1", 0], filename_prefix="x", prompt=["42", 0]),
    }
    result = run(prompt)
    assert result.outputs == ["2"]
    assert result.prompt["1"]["inputs"]["extra"] == ["99", 0]


# --- cycles ----------------------------------------------------------------------------------


def test_dependency_cycle_is_set_on_every_node_of_the_cycle() -> None:
    prompt = {
        "a": node("Pass", image=["b", 0]),
        "b": node("Pass", image=["a", 0]),
        "s": node("SaveImage", images=["a", 0], filename_prefix="x"),
    }
    error, node_errors = failed_nodes(prompt)
    assert list(node_errors) == ["a", "b"]
    for node_id in ("a", "b"):
        assert node_errors[node_id] == {
            "errors": [
                {
                    "type": "dependency_cycle",
                    "message": "Dependency cycle detected",
                    "details": "a (Pass) -> b (Pass) -> a (Pass)",
                    "extra_info": {"node_id": node_id, "cycle_nodes": ["a", "b"]},
                }
            ],
            "dependent_outputs": ["s"],
            "class_type": "Pass",
        }
    assert error["details"] == ""


def test_self_loop_and_long_chain() -> None:
    _, node_errors = failed_nodes(
        {"a": node("Pass", image=["a", 0]), "s": node("Sink", value=["a", 0])}
    )
    assert node_errors["a"]["errors"][0]["details"] == "a (Pass) -> a (Pass)"
    # Far deeper than Python's recursion limit.
    chain = {"0": node("LoadImage", image="a.png")}
    for i in range(1, 3000):
        chain[str(i)] = node("Pass", image=[str(i - 1), 0])
    chain["out"] = node("Sink", value=["2999", 0])
    assert run(chain).outputs == ["out"]


# --- VALIDATE_INPUTS -------------------------------------------------------------------------


def test_validate_inputs_declared_params_skip_their_checks_only() -> None:
    validator = FakeValidator()
    prompt = {
        "1": node("SolidMask", value=0.5, width=8),
        "2": node("CheckFile", image="sub/x.png [output]", count=99, mask=["1", 0]),
        "3": node("Sink", value=["2", 0]),
    }
    _, node_errors = failed_nodes(prompt, validator)
    # `image` is VALIDATE_INPUTS's: no combo error; `count` is not: its max still applies.
    assert [e["type"] for e in node_errors["2"]["errors"]] == ["value_bigger_than_max"]
    assert validator.calls == [
        ("CheckFile", {"image": "sub/x.png [output]", "mask": None, "unique_id": "2"}, None)
    ]


def test_validate_inputs_failures_one_error_per_input_per_result() -> None:
    validator = FakeValidator({"CheckFile": ["File not found", True, False]})
    prompt = {
        "2": node("CheckFile", image="a.png", count=1),
        "3": node("Sink", value=["2", 0]),
    }
    _, node_errors = failed_nodes(prompt, validator)
    assert node_errors["2"]["errors"] == [
        {
            "type": "custom_validation_failed",
            "message": "Custom validation failed for node",
            "details": details,
            "extra_info": {"input_name": name},
        }
        for name, details in [
            ("image", "image - File not found"),
            ("image", "image"),
            ("unique_id", "unique_id - File not found"),
            ("unique_id", "unique_id"),
        ]
    ]


def test_validate_inputs_kwargs_gets_everything_and_skips_all_value_checks() -> None:
    validator = FakeValidator()
    prompt = {"2": node("CheckAll", image="zzz", count="0"), "3": node("Sink", value=["2", 0])}
    result = run(prompt, validator=validator)
    assert result.outputs == ["3"]
    assert result.prompt["2"]["inputs"]["count"] == 0  # still coerced
    assert validator.calls == [("CheckAll", {"image": "zzz", "count": 0}, None)]


def test_validate_inputs_with_input_types_skips_type_mismatch() -> None:
    validator = FakeValidator({"CheckTypes": ["bad mask"]})
    prompt = {
        "1": node("SolidMask", value=0.5, width=8),
        "2": node("CheckTypes", pixels=["1", 0], strength=-1),
        "3": node("Sink", value=["2", 0]),
    }
    _, node_errors = failed_nodes(prompt, validator)
    assert validator.calls == [("CheckTypes", {"strength": -1.0}, {"pixels": "MASK"})]
    assert [(e["type"], e["details"]) for e in node_errors["2"]["errors"]] == [
        ("custom_validation_failed", "strength - bad mask"),
        ("custom_validation_failed", "input_types - bad mask"),
    ]


def test_validate_inputs_exception_on_output_and_on_inner_node() -> None:
    validator = FakeValidator(raises={"CheckAll": ValueError("boom")})
    prompt = {
        "2": node("CheckAll", image="a.png", count=1),
        "3": node("SaveImage", images=["2", 0], filename_prefix="p"),
    }
    _, node_errors = failed_nodes(prompt, validator)
    [entry] = strip_tracebacks(node_errors["2"]["errors"])
    assert entry["type"] == "exception_during_inner_validation"
    assert entry["details"] == "boom"
    assert entry["extra_info"]["exception_type"] == "ValueError"
    assert entry["extra_info"]["input_name"] == "images"


def test_validator_exception_on_output_node() -> None:
    check_out = definition(
        "CheckOut",
        {"x": ["INT"]},
        output_node=True,
        has_validate_inputs=True,
        validate_takes_kwargs=True,
    )
    defs = {**DEFS, "CheckOut": check_out}
    validator = FakeValidator(raises={"CheckOut": RuntimeError("worker gone")})
    with pytest.raises(PromptValidationError) as caught:
        run({"1": node("CheckOut", x=1)}, validator=validator, defs=defs)
    assert caught.value.error["details"] == "Exception when validating node: worker gone"
    [entry] = strip_tracebacks(caught.value.node_errors["1"]["errors"])
    assert entry["type"] == "exception_during_validation"
    assert entry["extra_info"] == {"exception_type": "RuntimeError"}


def test_upstream_custom_failure_and_missing_prefix_details() -> None:
    validator = FakeValidator({"CheckAll": ["nope"]})
    prompt = {
        "2": node("CheckAll", image="a.png", count=1),
        "3": node("SaveImage", images=["2", 0]),
    }
    error, node_errors = failed_nodes(prompt, validator)
    assert error["details"] == "Required input is missing: filename_prefix"
    assert list(node_errors) == ["2", "3"]


def test_shared_nodes_are_validated_once() -> None:
    validator = FakeValidator()
    prompt = {
        "2": node("CheckAll", image="a.png", count=1),
        "3": node("Sink", value=["2", 0]),
        "4": node("SaveImage", images=["2", 0], filename_prefix="p"),
        "5": node("SaveImage", images=["4", 0], filename_prefix="q"),
    }
    assert run(prompt, validator=validator).outputs == ["3", "4", "5"]
    assert len(validator.calls) == 1
