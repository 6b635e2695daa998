"""Read-only catalogue routes: system stats, features, node definitions, models (§1.1, §1.6)."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import Response

from serve_app.http.backend import BackendDep
from serve_app.http.errors import NotFoundError
from serve_app.http.models import (
    ErrorResponse,
    FeaturesResponse,
    ModelFile,
    ModelFolder,
    NodeInfo,
    SystemStatsResponse,
)
from serve_app.http.responses import json_response

logger = logging.getLogger(__name__)

UNKNOWN_FOLDER = {404: {"model": ErrorResponse, "description": "Unknown model folder"}}


async def get_system_stats(backend: BackendDep) -> Response:
    return json_response(await backend.system_stats())


async def get_features(backend: BackendDep) -> Response:
    return json_response(await backend.features())


async def get_object_info(backend: BackendDep) -> Response:
    return json_response(await backend.object_info())


async def get_object_info_for(node_class: str, backend: BackendDep) -> Response:
    info = await backend.object_info_for(node_class)
    # ComfyUI answers an unknown class with 200 and {}, not 404.
    return json_response({} if info is None else {node_class: info})


async def get_embeddings(backend: BackendDep) -> Response:
    return json_response(await backend.embeddings())


async def get_model_folders(backend: BackendDep) -> Response:
    return json_response(await backend.model_folders())


async def get_models_in(folder: str, backend: BackendDep) -> Response:
    names = await backend.models_in(folder)
    if names is None:
        raise NotFoundError(f"Unknown model folder: {folder}")
    return json_response(names)


async def get_experiment_models(backend: BackendDep) -> Response:
    return json_response(await backend.experiment_models())


async def get_experiment_models_in(folder: str, backend: BackendDep) -> Response:
    files = await backend.experiment_models_in(folder)
    if files is None:
        raise NotFoundError(f"Unknown model folder: {folder}")
    return json_response(files)


async def get_model_preview(
    folder: str, path_index: int, filename: str, backend: BackendDep
) -> Response:
    status, body = await backend.model_preview(folder, path_index, filename)
    if status == 200 and isinstance(body, bytes):
        return Response(body, media_type="image/webp")
    return json_response({"error": str(body)}, status)


def build_system_router() -> APIRouter:
    """Routes declared at their bare paths; mount them with RouteFamily.COMFY."""
    router = APIRouter()
    router.add_api_route(
        "/system_stats",
        get_system_stats,
        methods=["GET"],
        operation_id="getSystemStats",
        tags=["system"],
        summary="Get system statistics",
        response_model=SystemStatsResponse,
    )
    router.add_api_route(
        "/features",
        get_features,
        methods=["GET"],
        operation_id="getFeatures",
        tags=["system"],
        summary="Get server feature flags",
        response_model=FeaturesResponse,
    )
    router.add_api_route(
        "/object_info",
        get_object_info,
        methods=["GET"],
        operation_id="getObjectInfo",
        tags=["node"],
        summary="Get all node definitions",
        response_model=dict[str, NodeInfo],
    )
    router.add_api_route(
        "/object_info/{node_class}",
        get_object_info_for,
        methods=["GET"],
        operation_id="getObjectInfoByClass",
        tags=["node"],
        summary="Get a single node definition",
        description="`{node_class: info}`, or `{}` when the class is unknown.",
        response_model=dict[str, NodeInfo],
    )
    router.add_api_route(
        "/embeddings",
        get_embeddings,
        methods=["GET"],
        operation_id="getEmbeddings",
        tags=["node"],
        summary="List embedding names (without extension)",
        response_model=list[str],
    )
    router.add_api_route(
        "/models",
        get_model_folders,
        methods=["GET"],
        operation_id="getModelTypes",
        tags=["model"],
        summary="List model folder names",
        response_model=list[str],
    )
    router.add_api_route(
        "/models/{folder}",
        get_models_in,
        methods=["GET"],
        operation_id="getModelsByFolder",
        tags=["model"],
        summary="List model file names in a folder",
        response_model=list[str],
        responses=UNKNOWN_FOLDER,
    )
    router.add_api_route(
        "/experiment/models",
        get_experiment_models,
        methods=["GET"],
        operation_id="getExperimentModels",
        tags=["model"],
        summary="List model folders with their paths",
        response_model=list[ModelFolder],
    )
    router.add_api_route(
        "/experiment/models/preview/{folder}/{path_index}/{filename:path}",
        get_model_preview,
        methods=["GET"],
        operation_id="getModelPreview",
        tags=["model"],
        summary="Get model preview image",
        description="Returns the preview image associated with a model file, if one exists "
        "alongside the model on disk.",
        response_class=Response,
        responses={
            200: {"description": "Preview image (WebP)", "content": {"image/webp": {}}},
            404: {"description": "Preview not found"},
        },
    )
    router.add_api_route(
        "/experiment/models/{folder}",
        get_experiment_models_in,
        methods=["GET"],
        operation_id="getExperimentModelsByFolder",
        tags=["model"],
        summary="List model files with metadata",
        response_model=list[ModelFile],
        responses=UNKNOWN_FOLDER,
    )
    return router
