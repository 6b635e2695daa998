"""openapi.yaml equals the app's schema, and the schema agrees with ComfyUI's spec."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from serve_app.http import build_app
from serve_app.http.export_openapi import DEFAULT_OUTPUT, render
from serve_app.http.openapi_contract import LOCAL_SPEC_OPERATIONS, NOT_YET_SERVED_KEY

SPEC_PATH = Path("/work/shared/openapi/comfyui-openapi.yaml")
# libyaml's loader when built in: the 8000-line spec loads in ~50 ms instead of ~600.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}

# Fields we document beyond the spec's object schemas because ComfyUI really sends them.
EXTRA_RESPONSE_FIELDS: dict[str, set[str]] = {
    "getFeatures": {
        "supports_preview_metadata",
        "supports_model_type_tags",
        "extension",
        "node_replacements",
        "assets",
    },
    "getJob": {"priority", "previewable_outputs_count", "workflow_id"},
}


@pytest.fixture(scope="module")
def ours() -> dict[str, Any]:
    return build_app().openapi()


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    if not SPEC_PATH.exists():
        pytest.skip(f"reference spec not available at {SPEC_PATH}")
    return yaml.load(SPEC_PATH.read_text(encoding="utf-8"), Loader=YAML_LOADER)


def resolve(doc: dict[str, Any], node: Any) -> Any:
    """Follow local `$ref`s until a concrete node."""
    while isinstance(node, dict) and "$ref" in node:
        target: Any = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def operations(doc: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """operationId -> (path, method, operation)."""
    found = {}
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                found[operation["operationId"]] = (path, method, operation)
    return found


def local_operations(spec: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    return {
        op_id: found
        for op_id, found in operations(spec).items()
        if "cloud" not in (found[2].get("x-runtime") or [])
    }


def parameter_keys(doc: dict[str, Any], operation: dict[str, Any]) -> set[tuple[str, str, bool]]:
    keys = set()
    for parameter in operation.get("parameters", []):
        parameter = resolve(doc, parameter)
        keys.add((parameter["name"], parameter["in"], bool(parameter.get("required", False))))
    return keys


def top_level_properties(doc: dict[str, Any], operation: dict[str, Any]) -> set[str] | None:
    """Property names of the 200 JSON body's object schema, None if it defines none."""
    response = resolve(doc, operation.get("responses", {}).get("200", {}))
    content = response.get("content", {}).get("application/json")
    if not content:
        return None
    schema = resolve(doc, content.get("schema", {}))
    properties = schema.get("properties")
    if not properties:
        return None
    return {
        name
        for name, prop in properties.items()
        if "cloud" not in (resolve(doc, prop).get("x-runtime") or [])
    }


def test_openapi_yaml_is_the_generated_schema(ours: dict[str, Any]) -> None:
    on_disk = DEFAULT_OUTPUT.read_text(encoding="utf-8")
    assert yaml.load(on_disk, Loader=YAML_LOADER) == ours, (
        "run: python -m serve_app.http.export_openapi"
    )
    assert on_disk == render(ours), "openapi.yaml is not in the exporter's stable format"


def test_local_operation_list_matches_the_spec(spec: dict[str, Any]) -> None:
    assert sorted(LOCAL_SPEC_OPERATIONS) == sorted(local_operations(spec))


def test_every_local_operation_is_served_exactly_or_listed(
    ours: dict[str, Any], spec: dict[str, Any]
) -> None:
    served = operations(ours)
    not_yet = set(ours[NOT_YET_SERVED_KEY])
    assert not_yet <= set(LOCAL_SPEC_OPERATIONS)
    assert not (not_yet & set(served)), "an operation is both served and listed as not served"
    for op_id, (path, method, operation) in local_operations(spec).items():
        if op_id in not_yet:
            continue
        assert op_id in served, f"{op_id} neither served nor in {NOT_YET_SERVED_KEY}"
        our_path, our_method, our_operation = served[op_id]
        assert (our_path, our_method) == (path, method), op_id
        assert parameter_keys(ours, our_operation) == parameter_keys(spec, operation), op_id


def test_served_core_operations(ours: dict[str, Any]) -> None:
    served = set(operations(ours))
    assert {
        "connectWebSocket",
        "executePrompt",
        "getQueue",
        "listJobs",
        "getJob",
        "cancelJob",
        "cancelJobs",
        "getHistoryByPromptId",
        "getExperimentModelsByFolder",
        "uploadImage",
        "uploadMask",
        "viewFile",
        "getUserdataFile",
        "getSettings",
        "getExtensions",
        "getInternalLogs",
    } <= served
    # Only the assets API (its own issue) is left.
    assert all("Asset" in op or "Tag" in op for op in ours[NOT_YET_SERVED_KEY])


def test_response_fields_match_the_spec(ours: dict[str, Any], spec: dict[str, Any]) -> None:
    served = operations(ours)
    checked = set()
    for op_id, (_path, _method, operation) in local_operations(spec).items():
        if op_id not in served:
            continue
        expected = top_level_properties(spec, operation)
        if expected is None:
            continue
        actual = top_level_properties(ours, served[op_id][2])
        assert actual is not None, f"{op_id}: no documented object body"
        assert expected <= actual, f"{op_id}: missing {expected - actual}"
        assert actual - expected <= EXTRA_RESPONSE_FIELDS.get(op_id, set()), op_id
        checked.add(op_id)
    assert checked == {
        "getPromptInfo",
        "executePrompt",
        "getQueue",
        "listJobs",
        "getJob",
        "getSystemStats",
        "getFeatures",
        "getGlobalSubgraph",
        "getInternalLogsRaw",
        "getUsers",
        "uploadImage",
        "uploadMask",
    }


def test_schema_has_no_422_and_only_api_copies(ours: dict[str, Any]) -> None:
    for path, item in ours["paths"].items():
        # /internal/* is served only bare, as in ComfyUI (its frontend calls it there).
        assert path.startswith(("/api/", "/internal/")) or path == "/ws", path
        assert not path.startswith("/api/api/"), path
        for method, operation in item.items():
            assert "422" not in operation["responses"], (path, method)
    assert "HTTPValidationError" not in ours["components"]["schemas"]
    body = ours["paths"]["/api/prompt"]["post"]["requestBody"]
    schema = resolve(ours, body["content"]["application/json"]["schema"])
    assert schema["required"] == ["prompt"]
