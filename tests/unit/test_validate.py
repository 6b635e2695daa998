"""Prompt validation: prompt-level errors, per-input errors and coercion (ComfyUI's shapes)."""

from __future__ import annotations

import copy

import pytest
from test_validate_helpers import MODELS, node, reject, run

from cluster.errors import PromptValidationError
from cluster.validate import check_prompt_id

SAVE_OK = {
    "1": node("LoadImage", image="a.png"),
    "2": node("SaveImage", images=["1", 0], filename_prefix="ComfyUI"),
}


def failed(prompt: dict, validator=None) -> tuple[dict, dict]:
    """(error, node_errors) of a prompt whose every output fails validation."""
    exc = reject(prompt, validator=validator)
    assert exc.error["type"] == "prompt_outputs_failed_validation"
    assert exc.error["message"] == "Prompt outputs failed validation"
    assert exc.error["extra_info"] == {}
    return exc.error, exc.node_errors


# --- prompt_id -------------------------------------------------------------------------------


def test_prompt_id_absent_or_canonical_is_accepted() -> None:
    assert check_prompt_id(None) is None
    canonical = "0b6e4c9e-8a4f-4c52-9d3e-2f6a1b7c8d90"
    assert check_prompt_id(canonical) == canonical


@pytest.mark.parametrize(
    "value",
    [
        "0B6E4C9E-8A4F-4C52-9D3E-2F6A1B7C8D90",
        "{0b6e4c9e-8a4f-4c52-9d3e-2f6a1b7c8d90}",
        "0b6e4c9e8a4f4c529d3e2f6a1b7c8d90",
        "urn:uuid:0b6e4c9e-8a4f-4c52-9d3e-2f6a1b7c8d90",
        "not-a-uuid",
        "",
        123,
        ["0b6e4c9e-8a4f-4c52-9d3e-2f6a1b7c8d90"],
        {"id": 1},
    ],
)
def test_prompt_id_not_canonical_is_400(value: object) -> None:
    with pytest.raises(PromptValidationError) as caught:
        check_prompt_id(value)
    assert caught.value.error == {
        "type": "invalid_prompt_id",
        "message": "prompt_id must be a valid UUID",
        "details": "prompt_id must be a UUID string in canonical lowercase hyphenated form; "
        "omit it to let the server generate one",
        "extra_info": {},
    }
    assert caught.value.node_errors == {}


# --- prompt-level errors ---------------------------------------------------------------------


def test_no_prompt() -> None:
    exc = reject(None)
    assert exc.error == {
        "type": "no_prompt",
        "message": "No prompt provided",
        "details": "No prompt provided",
        "extra_info": {},
    }
    assert exc.node_errors == {}


@pytest.mark.parametrize(
    ("prompt", "message", "details"),
    [
        (
            [1, 2],
            "Invalid prompt: 'prompt' must be a JSON object",
            "'prompt' must be an object mapping node ids to nodes, got array",
        ),
        (
            {"7": "SaveImage"},
            "Invalid prompt: node '7' must be a JSON object",
            "prompt['7'] must be an object with 'class_type' and 'inputs', got string",
        ),
        (
            {"7": {"class_type": "LoadImage"}},
            "Invalid prompt: node '7' has no 'inputs' object",
            "prompt['7']['inputs'] must be an object, got nothing",
        ),
        (
            {"7": {"class_type": "LoadImage", "inputs": ["a.png"]}},
            "Invalid prompt: node '7' has no 'inputs' object",
            "prompt['7']['inputs'] must be an object, got array",
        ),
    ],
)
def test_malformed_json_shapes_are_invalid_prompt(prompt: object, message: str, details: str):
    exc = reject(prompt)
    assert exc.error["type"] == "invalid_prompt"
    assert (exc.error["message"], exc.error["details"]) == (message, details)
    assert exc.node_errors == {}


def test_partial_targets_not_a_list_is_invalid_prompt() -> None:
    exc = reject(copy.deepcopy(SAVE_OK), targets="2")
    assert exc.error["type"] == "invalid_prompt"
    assert exc.error["extra_info"] == {"field": "partial_execution_targets"}


def test_node_without_class_type_uses_title_or_id() -> None:
    exc = reject({**SAVE_OK, "5": {"inputs": {}, "_meta": {"title": "My Node"}}})
    assert exc.error == {
        "type": "missing_node_type",
        "message": "Node 'My Node' has no class_type. The workflow may be corrupted or a "
        "custom node is missing.",
        "details": "Node ID '#5'",
        "extra_info": {"node_id": "5", "class_type": None, "node_title": "My Node"},
    }
    exc = reject({"5": {"inputs": {}}})
    assert exc.error["message"].startswith("Node 'ID #5' has no class_type.")
    assert exc.error["extra_info"] == {"node_id": "5", "class_type": None, "node_title": None}


def test_unknown_class_is_reported_even_when_unconnected() -> None:
    exc = reject({**SAVE_OK, "9": node("Nope")})
    assert exc.error == {
        "type": "missing_node_type",
        "message": "Node 'Nope' not found. The custom node may not be installed.",
        "details": "Node ID '#9'",
        "extra_info": {"node_id": "9", "class_type": "Nope", "node_title": "Nope"},
    }
    exc = reject({"9": node("Nope", title="Fancy")})
    assert exc.error["message"] == "Node 'Fancy' not found. The custom node may not be installed."
    assert exc.error["extra_info"]["node_title"] == "Fancy"


def test_class_errors_win_over_inputs_shape_and_first_hit_aborts() -> None:
    prompt = {"1": {"class_type": "LoadImage"}, "2": node("Nope"), "3": node("Other")}
    exc = reject(prompt)
    assert exc.error["type"] == "missing_node_type"
    assert exc.error["extra_info"]["node_id"] == "2"


def test_no_outputs() -> None:
    exc = reject({"1": node("LoadImage", image="a.png")})
    assert exc.error == {
        "type": "prompt_no_outputs",
        "message": "Prompt has no outputs",
        "details": "",
        "extra_info": {},
    }


def test_partial_targets_empty_or_non_outputs_give_no_outputs() -> None:
    assert reject(copy.deepcopy(SAVE_OK), targets=[]).error["type"] == "prompt_no_outputs"
    assert reject(copy.deepcopy(SAVE_OK), targets=["1"]).error["type"] == "prompt_no_outputs"


def test_partial_targets_restrict_outputs_and_ignore_non_outputs() -> None:
    prompt = {
        **SAVE_OK,
        "3": node("SaveImage", images=["1", 0], filename_prefix="b"),
        "4": node("SaveImage", images=["1", 0]),  # invalid, but not targeted
    }
    result = run(prompt, targets=["3", "1", "missing"])
    assert result.outputs == ["3"]
    assert result.node_errors == {}
    assert run(prompt, targets=["3", "2"]).outputs == ["2", "3"]


# --- good prompts and coercion ---------------------------------------------------------------


def test_good_prompt_coerces_constants_without_mutating_input() -> None:
    prompt = {
        "1": node("SolidMask", value="0.5", width=5.7),
        "2": node("Sink", value=["1", 0]),
        "3": node("ShowNumber", v="5"),
        "4": node("ShowFlag", flag=0, text=12),
        "5": node("Options", sampler="euler", scheduler="simple", tags={"__value__": ["a", "c"]}),
        "6": node("Sink", value=["5", 0.0]),
    }
    before = copy.deepcopy(prompt)
    result = run(prompt)
    assert prompt == before
    assert result.outputs == ["2", "3", "4", "6"]
    assert result.node_errors == {}
    assert result.prompt["1"]["inputs"] == {"value": 0.5, "width": 5}
    assert result.prompt["3"]["inputs"] == {"v": 5}
    assert result.prompt["4"]["inputs"] == {"flag": False, "text": "12"}
    assert result.prompt["5"]["inputs"]["tags"] == ["a", "c"]
    slot = result.prompt["6"]["inputs"]["value"][1]
    assert slot == 0 and type(slot) is int


def test_required_input_missing_is_listed_in_details() -> None:
    error, node_errors = failed({**SAVE_OK, "2": node("SaveImage", images=["1", 0])})
    assert error["details"] == "Required input is missing: filename_prefix"
    assert node_errors == {
        "2": {
            "errors": [
                {
                    "type": "required_input_missing",
                    "message": "Required input is missing",
                    "details": "filename_prefix",
                    "extra_info": {"input_name": "filename_prefix"},
                }
            ],
            "dependent_outputs": ["2"],
            "class_type": "SaveImage",
        }
    }


def test_bad_linked_input() -> None:
    _, node_errors = failed({**SAVE_OK, "2": node("SaveImage", images=["1"], filename_prefix="x")})
    assert node_errors["2"]["errors"] == [
        {
            "type": "bad_linked_input",
            "message": "Bad linked input, must be a length-2 list of [node_id, slot_index]",
            "details": "images",
            "extra_info": {
                "input_name": "images",
                "input_config": ["IMAGE", {"tooltip": "x"}],
                "received_value": ["1"],
            },
        }
    ]


def test_return_type_mismatch() -> None:
    error, node_errors = failed(
        {**SAVE_OK, "2": node("SaveImage", images=["1", 1], filename_prefix="x")}
    )
    mismatch = {
        "type": "return_type_mismatch",
        "message": "Return type mismatch between linked nodes",
        "details": "images, received_type(MASK) mismatch input_type(IMAGE)",
        "extra_info": {
            "input_name": "images",
            "input_config": ["IMAGE", {"tooltip": "x"}],
            "received_type": "MASK",
            "linked_node": ["1", 1],
        },
    }
    assert node_errors["2"]["errors"] == [mismatch]
    assert error["details"] == (
        "Return type mismatch between linked nodes: "
        "images, received_type(MASK) mismatch input_type(IMAGE)"
    )


def test_invalid_input_type() -> None:
    _, node_errors = failed(
        {"1": node("SolidMask", value=1.0, width="wide"), "2": node("Sink", value=["1", 0])}
    )
    assert node_errors["1"]["errors"] == [
        {
            "type": "invalid_input_type",
            "message": "Failed to convert an input value to a INT value",
            "details": "width, wide, invalid literal for int() with base 10: 'wide'",
            "extra_info": {
                "input_name": "width",
                "input_config": ["INT", {"default": 512, "min": 1, "max": 16384}],
                "received_value": "wide",
                "exception_message": "invalid literal for int() with base 10: 'wide'",
            },
        }
    ]
    assert node_errors["1"]["dependent_outputs"] == ["2"]
    assert "2" not in node_errors  # invalid only because of its upstream


def test_min_and_max() -> None:
    _, node_errors = failed(
        {"1": node("SolidMask", value=1.5, width=0), "2": node("Sink", value=["1", 0])}
    )
    config_value = ["FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01}]
    config_width = ["INT", {"default": 512, "min": 1, "max": 16384}]
    assert node_errors["1"]["errors"] == [
        {
            "type": "value_bigger_than_max",
            "message": "Value 1.5 bigger than max of 1.0",
            "details": "value",
            "extra_info": {
                "input_name": "value",
                "input_config": config_value,
                "received_value": 1.5,
            },
        },
        {
            "type": "value_smaller_than_min",
            "message": "Value 0 smaller than min of 1",
            "details": "width",
            "extra_info": {
                "input_name": "width",
                "input_config": config_width,
                "received_value": 0,
            },
        },
    ]


def test_upstream_only_errors_leave_output_details_empty() -> None:
    error, node_errors = failed(
        {"1": node("SolidMask", value=1.5, width=1), "2": node("Sink", value=["1", 0])}
    )
    assert error["details"] == ""
    assert list(node_errors) == ["1"]


def options_errors(**inputs: object) -> list[dict]:
    base = {"sampler": "euler", "scheduler": "simple"}
    _, node_errors = failed(
        {"1": node("Options", **{**base, **inputs}), "2": node("Sink", value=["1", 0])}
    )
    return node_errors["1"]["errors"]


def test_value_not_in_legacy_list_combo() -> None:
    assert options_errors(sampler="heun") == [
        {
            "type": "value_not_in_list",
            "message": "Value not in list",
            "details": "sampler: 'heun' not in ['euler', 'ddim']",
            "extra_info": {
                "input_name": "sampler",
                "input_config": [["euler", "ddim"], {}],
                "received_value": "heun",
            },
        }
    ]


def test_value_not_in_new_combo_and_multiselect() -> None:
    [error] = options_errors(scheduler="beta")
    assert error["details"] == "scheduler: 'beta' not in ['simple', 'karras']"
    assert error["extra_info"]["input_config"] == ["COMBO", {"options": ["simple", "karras"]}]
    [error] = options_errors(tags={"__value__": ["a", "x", "y"]})
    assert error["details"] == "tags: 'x', 'y' not in ['a', 'b', 'c']"
    assert error["extra_info"]["received_value"] == ["a", "x", "y"]


def test_long_combo_is_not_echoed_back() -> None:
    assert run(
        {
            "1": node("Options", sampler="euler", scheduler="simple", model=MODELS[24]),
            "2": node("Sink", value=["1", 0]),
        }
    ).outputs == ["2"]
    [error] = options_errors(model="nope.safetensors")
    assert error["details"] == "model: 'nope.safetensors' not in (list of length 25)"
    assert error["extra_info"] == {
        "input_name": "model",
        "input_config": None,
        "received_value": "nope.safetensors",
    }


def test_mixed_outputs_return_good_ones_with_node_errors() -> None:
    prompt = {
        **SAVE_OK,
        "3": node("SaveImage", images=["1", 0]),
        "4": node("SaveImage", images=["1", 0], filename_prefix="b"),
    }
    result = run(prompt)
    assert result.outputs == ["2", "4"]
    assert list(result.node_errors) == ["3"]
    assert result.node_errors["3"]["dependent_outputs"] == ["3"]
    assert result.node_errors["3"]["class_type"] == "SaveImage"
    assert result.node_errors["3"]["errors"][0]["type"] == "required_input_missing"


def test_shared_failing_upstream_lists_each_dependent_output_only() -> None:
    prompt = {
        "1": node("SolidMask", value=9, width=1),
        "2": node("Sink", value=["1", 0]),
        "3": node("ShowNumber", v="x"),
        "4": node("Sink", value=["1", 0]),
    }
    error, node_errors = failed(prompt)
    assert node_errors["1"]["dependent_outputs"] == ["2", "4"]
    assert node_errors["3"]["dependent_outputs"] == ["3"]
    assert list(node_errors) == ["1", "3"]
    assert error["details"] == (
        "Failed to convert an input value to a INT value: v, x, "
        "invalid literal for int() with base 10: 'x'"
    )
