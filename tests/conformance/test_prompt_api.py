"""POST /prompt as a ComfyUI client sees it: the envelope, ids, numbers and 400 bodies
(comfyui-behaviour.md §2, §9.1, §10.6-10.7)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conformance.client import ComfyClient
from tests.conformance.graph import Graph, image, unique, unique_int
from tests.server_process import ServerProcess


@pytest.fixture
def comfy(server: ServerProcess) -> Iterator[ComfyClient]:
    client = ComfyClient(server.url, server.ws_url)
    yield client
    client.close()


def saved_image(prefix: str = "api") -> dict[str, Any]:
    g = Graph()
    g.node("SaveImage", images=image(g).out(0), filename_prefix=unique(prefix))
    return g.prompt()


def int_output(value: int | None = None) -> dict[str, Any]:
    g = Graph()
    v = g.node("StubInt", value=unique_int() if value is None else value)
    g.node("StubOutput", value=v.out(0))
    return g.prompt()


def rejected(comfy: ComfyClient, prompt: Any, **body: Any) -> dict[str, Any]:
    response = comfy.post_prompt(prompt, **body)
    assert response.status_code == 400, response.text
    result = response.json()
    assert set(result) == {"error", "node_errors"}
    assert set(result["error"]) == {"type", "message", "details", "extra_info"}
    return result


def node_error_types(result: dict[str, Any], node_id: str) -> list[str]:
    return [e["type"] for e in result["node_errors"][node_id]["errors"]]


# --- the accepted envelope -----------------------------------------------------------------


def test_post_prompt_answers_prompt_id_number_and_node_errors(comfy: ComfyClient) -> None:
    run = comfy.run(saved_image())
    assert isinstance(run.number, int)
    assert run.node_errors == {}
    assert str(uuid.UUID(run.prompt_id)) == run.prompt_id
    assert run.status["status_str"] == "success"


def test_client_prompt_id_is_kept(comfy: ComfyClient) -> None:
    prompt_id = str(uuid.uuid4())
    run = comfy.run(int_output(), prompt_id=prompt_id)
    assert run.prompt_id == prompt_id
    assert run.history["prompt"][1] == prompt_id


def test_prompt_id_may_equal_the_client_id(comfy: ComfyClient) -> None:
    shared = str(uuid.uuid4())
    run = comfy.run(int_output(), client_id=shared, prompt_id=shared)
    assert run.prompt_id == shared
    assert run.status["status_str"] == "success"
    assert run.history["prompt"][3]["client_id"] == shared


@pytest.mark.parametrize(
    "bad_id",
    [
        str(uuid.uuid4()).upper(),
        uuid.uuid4().hex,
        "{" + str(uuid.uuid4()) + "}",
        "not-a-uuid",
        "",
        42,
    ],
)
def test_non_canonical_prompt_id_is_rejected(comfy: ComfyClient, bad_id: Any) -> None:
    result = rejected(comfy, int_output(), prompt_id=bad_id)
    assert result["error"]["type"] == "invalid_prompt_id"
    assert result["node_errors"] == {}


def test_number_increments_also_after_a_rejected_prompt(comfy: ComfyClient) -> None:
    first = comfy.run(int_output()).number
    rejected(comfy, {"1": {"class_type": "NoSuchNode", "inputs": {}}})
    second = comfy.run(int_output()).number
    assert second == first + 2


def test_front_gives_a_negative_number(comfy: ComfyClient) -> None:
    before = comfy.run(int_output()).number
    run = comfy.run(int_output(), front=True)
    assert run.number == -(before + 1)
    assert run.number < 0
    assert run.status["status_str"] == "success"


def test_explicit_number_is_echoed_as_a_float(comfy: ComfyClient) -> None:
    before = comfy.run(int_output()).number
    response = comfy.post_prompt(int_output(), number=5)
    assert response.status_code == 200, response.text
    assert '"number":5.0' in response.text.replace(" ", "")
    assert response.json()["number"] == 5.0
    comfy.wait_history(response.json()["prompt_id"])
    # An explicit number does not advance the counter.
    assert comfy.run(int_output()).number == before + 1


def test_node_ids_are_arbitrary_strings_and_meta_is_ignored(comfy: ComfyClient) -> None:
    g = Graph()
    v = g.node("StubInt", node_id="KSampler.0", title="My sampler", value=unique_int())
    g.node("StubOutput", node_id="Save Image/7", title="Out", value=v.out(0))
    run = comfy.run(g.prompt())
    assert run.executing_nodes() == ["KSampler.0", "Save Image/7"]
    assert set(run.outputs) == {"Save Image/7"}
    assert run.history["prompt"][2]["KSampler.0"]["class_type"] == "StubInt"


def test_api_prefix_serves_prompt_too(comfy: ComfyClient) -> None:
    response = comfy.post_prompt(int_output(), path="/api/prompt")
    assert response.status_code == 200, response.text
    entry = comfy.wait_history(response.json()["prompt_id"])
    assert entry["status"]["status_str"] == "success"
    assert comfy.get_json("/api/prompt") == comfy.get_json("/prompt")


def test_get_prompt_reports_queue_remaining(comfy: ComfyClient) -> None:
    info = comfy.get_json("/prompt")
    assert info == {"exec_info": {"queue_remaining": 0}}


def test_partly_valid_prompt_runs_the_good_outputs_and_reports_the_bad(comfy: ComfyClient) -> None:
    g = Graph()
    v = g.node("StubInt", value=unique_int())
    g.node("StubOutput", node_id="good", value=v.out(0))
    g.node("SaveImage", node_id="bad", images=image(g).out(0))  # no filename_prefix
    run = comfy.run(g.prompt())
    assert set(run.node_errors) == {"bad"}
    assert node_error_types({"node_errors": run.node_errors}, "bad") == ["required_input_missing"]
    assert set(run.outputs) == {"good"}
    assert "bad" not in run.executing_nodes()


# --- 400 bodies ----------------------------------------------------------------------------


def test_missing_prompt_is_no_prompt(comfy: ComfyClient) -> None:
    response = comfy.post("/prompt", {"client_id": "x"})
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "type": "no_prompt",
            "message": "No prompt provided",
            "details": "No prompt provided",
            "extra_info": {},
        },
        "node_errors": {},
    }


def test_malformed_json_is_a_400_not_a_500(comfy: ComfyClient) -> None:
    response = comfy.http.post(
        "/prompt", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert set(response.json()) == {"error", "node_errors"}


def test_unknown_node_type(comfy: ComfyClient) -> None:
    g = Graph()
    g.node("NoSuchNodeAnywhere", node_id="7", title="Ghost")
    g.node("StubOutput", value=1)
    result = rejected(comfy, g.prompt())
    error = result["error"]
    assert error["type"] == "missing_node_type"
    assert error["message"] == "Node 'Ghost' not found. The custom node may not be installed."
    assert error["extra_info"]["node_id"] == "7"
    assert error["extra_info"]["class_type"] == "NoSuchNodeAnywhere"
    assert error["extra_info"]["node_title"] == "Ghost"
    assert result["node_errors"] == {}


def test_node_without_class_type(comfy: ComfyClient) -> None:
    prompt = int_output()
    prompt["9"] = {"inputs": {}}
    result = rejected(comfy, prompt)
    assert result["error"]["type"] == "missing_node_type"
    assert result["error"]["message"] == (
        "Node 'ID #9' has no class_type. The workflow may be corrupted or a custom node is missing."
    )
    assert result["error"]["details"] == "Node ID '#9'"
    assert result["error"]["extra_info"]["class_type"] is None


def test_required_input_missing(comfy: ComfyClient) -> None:
    g = Graph()
    save = g.node("SaveImage", images=image(g).out(0))
    result = rejected(comfy, g.prompt())
    assert result["error"]["type"] == "prompt_outputs_failed_validation"
    assert result["error"]["message"] == "Prompt outputs failed validation"
    assert result["error"]["details"] == "Required input is missing: filename_prefix"
    node = result["node_errors"][save.node_id]
    assert node["class_type"] == "SaveImage"
    assert node["dependent_outputs"] == [save.node_id]
    (error,) = node["errors"]
    assert error["type"] == "required_input_missing"
    assert error["message"] == "Required input is missing"
    assert error["details"] == "filename_prefix"
    assert error["extra_info"]["input_name"] == "filename_prefix"


def test_return_type_mismatch(comfy: ComfyClient) -> None:
    g = Graph()
    number = g.node("StubInt", value=1)
    invert = g.node("StubImageInvert", image=number.out(0))
    g.node("SaveImage", images=invert.out(0), filename_prefix=unique("mismatch"))
    result = rejected(comfy, g.prompt())
    (error,) = result["node_errors"][invert.node_id]["errors"]
    assert error["type"] == "return_type_mismatch"
    assert error["message"] == "Return type mismatch between linked nodes"
    assert error["details"] == "image, received_type(INT) mismatch input_type(IMAGE)"
    assert error["extra_info"]["received_type"] == "INT"
    assert error["extra_info"]["input_name"] == "image"
    assert error["extra_info"]["linked_node"] == [number.node_id, 0]


@pytest.mark.parametrize(
    ("inputs", "error_type", "input_name", "message"),
    [
        ({"height": 0}, "value_smaller_than_min", "height", "Value 0 smaller than min of 1"),
        ({"width": 5000}, "value_bigger_than_max", "width", "Value 5000 bigger than max of 4096"),
        ({"content": "PURPLE"}, "value_not_in_list", "content", "Value not in list"),
    ],
)
def test_widget_value_checks(
    comfy: ComfyClient, inputs: dict[str, Any], error_type: str, input_name: str, message: str
) -> None:
    g = Graph()
    values = {"content": "BLACK", "height": 8, "width": 8, "batch_size": 1, **inputs}
    img = g.node("StubImage", **values)
    g.node("SaveImage", images=img.out(0), filename_prefix=unique("bounds"))
    result = rejected(comfy, g.prompt())
    (error,) = result["node_errors"][img.node_id]["errors"]
    assert error["type"] == error_type
    assert error["message"] == message
    assert error["extra_info"]["input_name"] == input_name
    assert error["extra_info"]["received_value"] == inputs[input_name]


@pytest.mark.parametrize("class_type", ["StubCustomValidate", "StubCustomValidateKwargs"])
def test_custom_validate_inputs_failure(comfy: ComfyClient, class_type: str) -> None:
    g = Graph()
    node = g.node(class_type, value=3)
    g.node("StubOutput", value=node.out(0))
    result = rejected(comfy, g.prompt())
    (error,) = result["node_errors"][node.node_id]["errors"]
    assert error["type"] == "custom_validation_failed"
    assert error["details"] == "value - value must be even"


def test_custom_validate_inputs_success_runs(comfy: ComfyClient) -> None:
    g = Graph()
    value = 2 * unique_int()
    node = g.node("StubCustomValidate", value=value)
    out = g.node("StubOutput", value=node.out(0))
    run = comfy.run(g.prompt())
    assert run.outputs[out.node_id] == {"text": [str(value)]}


def test_dependency_cycle(comfy: ComfyClient) -> None:
    g = Graph()
    a = g.node("StubImageInvert", node_id="a")
    b = g.node("StubImageInvert", node_id="b", image=a.out(0))
    g.set_input(a, "image", b.out(0))
    g.node("SaveImage", images=b.out(0), filename_prefix=unique("cycle"))
    result = rejected(comfy, g.prompt())
    assert result["error"]["type"] == "prompt_outputs_failed_validation"
    for node_id in ("a", "b"):
        (error,) = result["node_errors"][node_id]["errors"]
        assert error["type"] == "dependency_cycle"
        assert error["message"] == "Dependency cycle detected"
        assert error["details"] in (
            "a (StubImageInvert) -> b (StubImageInvert) -> a (StubImageInvert)",
            "b (StubImageInvert) -> a (StubImageInvert) -> b (StubImageInvert)",
        )
        assert sorted(error["extra_info"]["cycle_nodes"]) == ["a", "b"]


def test_link_with_three_elements_is_a_bad_linked_input(comfy: ComfyClient) -> None:
    g = Graph()
    v = g.node("StubInt", value=1)
    out = g.node("StubOutput", value=[v.node_id, 0, 1])
    result = rejected(comfy, g.prompt())
    (error,) = result["node_errors"][out.node_id]["errors"]
    assert error["type"] == "bad_linked_input"
    assert error["extra_info"]["received_value"] == [v.node_id, 0, 1]


def test_link_to_a_missing_node_is_rejected(comfy: ComfyClient) -> None:
    g = Graph()
    out = g.node("StubOutput", value=["no-such-node", 0])
    result = rejected(comfy, g.prompt())
    assert result["error"]["type"] == "prompt_outputs_failed_validation"
    assert node_error_types(result, out.node_id) == ["exception_during_validation"]
    assert result["node_errors"][out.node_id]["errors"][0]["details"] == "'no-such-node'"


def test_unconvertible_constant_is_invalid_input_type(comfy: ComfyClient) -> None:
    g = Graph()
    v = g.node("StubInt", value="abc")
    g.node("StubOutput", value=v.out(0))
    result = rejected(comfy, g.prompt())
    (error,) = result["node_errors"][v.node_id]["errors"]
    assert error["type"] == "invalid_input_type"
    assert error["message"] == "Failed to convert an input value to a INT value"


def test_constants_are_coerced_and_unwrapped_in_the_stored_prompt(comfy: ComfyClient) -> None:
    value = unique_int()
    g = Graph()
    v = g.node("StubInt", value=str(value))
    as_int = g.node("StubOutput", value=v.out(0))
    wrapped = g.node("StubOutput", value={"__value__": [value, 2]})
    run = comfy.run(g.prompt())
    stored = run.history["prompt"][2]
    assert stored[v.node_id]["inputs"]["value"] == value
    assert stored[wrapped.node_id]["inputs"]["value"] == [value, 2]
    assert run.outputs[as_int.node_id] == {"text": [str(value)]}
    assert run.outputs[wrapped.node_id] == {"text": [str([value, 2])]}


def test_prompt_without_outputs(comfy: ComfyClient) -> None:
    g = Graph()
    image(g)
    result = rejected(comfy, g.prompt())
    assert result["error"]["type"] == "prompt_no_outputs"
    assert result["node_errors"] == {}


def test_empty_partial_execution_targets_is_no_outputs(comfy: ComfyClient) -> None:
    result = rejected(comfy, int_output(), partial_execution_targets=[])
    assert result["error"]["type"] == "prompt_no_outputs"


def test_v3_validate_inputs_rejects_bad_input(comfy: ComfyClient) -> None:
    g = Graph()
    add = g.node("StubV3Add", a=-1, b=2)
    g.node("StubOutput", value=add.out(0))
    result = rejected(comfy, g.prompt())
    errors = result["node_errors"][add.node_id]["errors"]
    assert errors and all(e["type"] == "custom_validation_failed" for e in errors)
    assert "a - a and b must be non-negative" in [e["details"] for e in errors]
