"""The OpenAPI description this server publishes, kept comparable with ComfyUI's spec.

FastAPI generates most of it from the routes; this module adds what FastAPI cannot see:
parameters and bodies that routes read by hand (so their errors keep ComfyUI's shapes), the
WebSocket operation, and the list of the spec's local operations not served yet.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from serve_app.http.models import REQUEST_MODELS

logger = logging.getLogger(__name__)

NOT_YET_SERVED_KEY = "x-comfyray-not-yet-served"
COMPONENT_REF = "#/components/schemas/{model}"

# Every operation of ComfyUI's spec without `x-runtime: [cloud]`, i.e. the local server API.
LOCAL_SPEC_OPERATIONS: tuple[str, ...] = (
    "connectWebSocket", "getPromptInfo", "executePrompt", "getQueue", "manageQueue",
    "interruptExecution", "freeMemory", "listJobs", "getJob", "getHistory", "manageHistory",
    "getHistoryByPromptId", "uploadImage", "uploadMask", "viewFile", "viewMetadata",
    "getSystemStats", "getFeatures", "getObjectInfo", "getObjectInfoByClass", "getEmbeddings",
    "getModelTypes", "getModelsByFolder", "getExperimentModels", "getExperimentModelsByFolder",
    "getModelPreview", "getUsers", "createUser", "listUserdata", "listUserdataV2",
    "getUserdataFile", "writeUserdataFile", "deleteUserdataFile", "moveUserdataFile",
    "getSettings", "updateSettings", "getSetting", "updateSetting", "getExtensions",
    "getWorkflowTemplates", "getI18n", "getGlobalSubgraphs", "getGlobalSubgraph",
    "getNodeReplacements", "getInternalLogs", "getInternalLogsRaw", "subscribeToLogs",
    "getInternalFolderPaths", "getInternalFiles", "checkAssetByHash", "listAssets",
    "createAsset", "createAssetFromHash", "getAsset", "updateAsset", "deleteAsset",
    "getAssetContent", "addAssetTags", "removeAssetTags", "listTags", "refineAssetTags",
    "seedAssets", "getAssetSeedStatus", "cancelAssetSeed", "pruneAssets",
)  # fmt: skip

# FastAPI leaves websockets out of its schema; the socket itself is added by the ingress.
WEBSOCKET_PATH = "/ws"
WEBSOCKET_OPERATION: dict[str, Any] = {
    "operationId": "connectWebSocket",
    "tags": ["system"],
    "summary": "WebSocket connection for real-time updates",
    "description": (
        "Upgrades to a WebSocket that streams `status`, `executing`, `progress`, `executed`, "
        "`execution_*` JSON messages and binary preview frames. Served at `/ws` only."
    ),
    "parameters": [
        {
            "name": "clientId",
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": "Client identifier; the server assigns one when omitted.",
        }
    ],
    "responses": {"101": {"description": "WebSocket upgrade successful"}},
}

COMFY_USER_HEADER: dict[str, Any] = {
    "name": "Comfy-User",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "The active user in multi-user mode (not an authentication mechanism).",
}


def query_param(
    name: str, schema: dict[str, Any], description: str, *, required: bool = False
) -> dict[str, Any]:
    """An OpenAPI query parameter that a route reads from `request.query_params` itself."""
    return {
        "name": name,
        "in": "query",
        "required": required,
        "schema": schema,
        "description": description,
    }


def documented(
    *,
    params: Iterable[dict[str, Any]] = (),
    body: type[BaseModel] | None = None,
    body_required: bool = True,
) -> dict[str, Any]:
    """`openapi_extra` for a route that parses its own parameters and JSON body."""
    extra: dict[str, Any] = {}
    params = list(params)
    if params:
        extra["parameters"] = params
    if body is not None:
        ref = {"$ref": COMPONENT_REF.format(model=body.__name__)}
        extra["requestBody"] = {
            "required": body_required,
            "content": {"application/json": {"schema": ref}},
        }
    return extra


def _request_model_schemas() -> dict[str, Any]:
    pairs = [(model, "validation") for model in REQUEST_MODELS]
    _keys, top = models_json_schema(pairs, ref_template=COMPONENT_REF)
    return dict(top.get("$defs", {}))


def _drop_unused_422(schema: dict[str, Any]) -> None:
    """FastAPI documents a 422 for every route with parameters; we answer 400 instead."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            operation.get("responses", {}).pop("422", None)
    schemas = schema.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)


def served_operation_ids(schema: dict[str, Any]) -> set[str]:
    return {
        operation["operationId"]
        for operations in schema.get("paths", {}).values()
        for operation in operations.values()
        if isinstance(operation, dict) and "operationId" in operation
    }


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """The full schema: FastAPI's, plus request bodies, /ws and the not-yet-served list."""
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        separate_input_output_schemas=False,
    )
    _drop_unused_422(schema)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name, model_schema in _request_model_schemas().items():
        components.setdefault(name, model_schema)
    paths = schema.setdefault("paths", {})
    paths.setdefault(WEBSOCKET_PATH, {}).setdefault("get", copy.deepcopy(WEBSOCKET_OPERATION))
    served = served_operation_ids(schema)
    schema[NOT_YET_SERVED_KEY] = sorted(set(LOCAL_SPEC_OPERATIONS) - served)
    # A JSON round trip leaves only plain types, so the YAML export loads back equal.
    return json.loads(json.dumps(schema))


def install_openapi(app: FastAPI) -> None:
    """Make `app.openapi()` return `build_openapi(app)`, rebuilt when the routes change."""
    cache: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        version = tuple(id(route) for route in app.routes)
        if cache.get("version") != version:
            cache["schema"] = build_openapi(app)
            cache["version"] = version
            app.openapi_schema = cache["schema"]
            logger.debug("openapi schema rebuilt for %d routes", len(version))
        return cache["schema"]

    app.openapi = openapi  # type: ignore[method-assign]
