"""Routes for uploads, /view, /view_metadata (files in the input, output and temp areas, §1.4-1.5).

The logic lives in serve_app/files/; these functions read the request, run the blocking
store work in a thread and turn FileRequestError into `{"error": message}` with its status.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams

from serve_app.edge import EdgeDep, EdgeServices
from serve_app.files.errors import FileRequestError, bad_key
from serve_app.files.form import check_declared_length, read_upload_form
from serve_app.files.uploads import save_image, save_mask
from serve_app.files.viewing import view_file
from serve_app.http.backend import BackendDep
from serve_app.http.models import ErrorResponse
from serve_app.http.openapi_contract import documented, query_param
from serve_app.http.responses import json_response
from storage.store_keys import StoreKeyError, normalize_key

logger = logging.getLogger(__name__)


class UploadResult(BaseModel):
    """Response body returned by the image/mask upload endpoints, describing where the
    uploaded file now lives."""

    name: str = Field(description="Saved filename (may be renamed to avoid collisions)")
    subfolder: str = Field(description="Subfolder the file was saved to")
    type: str = Field(description="Directory type (input, temp, output)")


def _error(exc: FileRequestError) -> Response:
    return json_response({"error": exc.message}, exc.status)


def _first_values(query: QueryParams) -> dict[str, str]:
    """The first value of each parameter, as aiohttp's `query.get` gives ComfyUI."""
    values: dict[str, str] = {}
    for name, value in query.multi_items():
        values.setdefault(name, value)
    return values


async def _upload(request: Request, edge: EdgeServices, *, mask: bool) -> Response:
    limit = edge.config.max_upload_bytes
    try:
        check_declared_length(request.headers.get("content-length"), limit)
        form = await read_upload_form(request.stream(), request.headers.get("content-type"), limit)
        try:
            if mask:
                body = await run_in_threadpool(save_mask, edge.areas, form)
            else:
                body = await run_in_threadpool(save_image, edge.areas, form, limit)
        finally:
            await run_in_threadpool(form.close)
    except FileRequestError as exc:
        logger.info("upload refused on %s: %s", request.url.path, exc.message)
        return _error(exc)
    return json_response(body)


async def upload_image(request: Request, edge: EdgeDep) -> Response:
    return await _upload(request, edge, mask=False)


async def upload_mask(request: Request, edge: EdgeDep) -> Response:
    return await _upload(request, edge, mask=True)


def view(request: Request, edge: EdgeDep) -> Response:
    # A plain def: FastAPI runs it in a thread, where the store and codec calls may block.
    try:
        return view_file(
            edge.areas,
            _first_values(request.query_params),
            request.headers,
            head=request.method == "HEAD",
        )
    except FileRequestError as exc:
        logger.info("view refused: %s", exc.message)
        return _error(exc)


async def view_metadata(folder_name: str, request: Request, backend: BackendDep) -> Response:
    filename = _first_values(request.query_params).get("filename")
    if not filename:
        return _error(FileRequestError("Missing query parameter 'filename'", 404))
    try:
        normalize_key(filename)
    except StoreKeyError as exc:
        return _error(bad_key("filename", filename, exc))
    metadata = await backend.view_metadata(folder_name, filename)
    if metadata is None:
        return _error(FileRequestError(f"No metadata for {filename!r} in {folder_name!r}", 404))
    return json_response(metadata)


def _upload_body(*, mask: bool) -> dict[str, Any]:
    """The multipart body, documented by hand: FastAPI's Form parameters would read the
    whole form before the route runs, and our reader streams the parts under the size limit."""
    properties: dict[str, Any] = {
        "image": {
            "type": "string",
            "format": "binary",
            "description": "Mask image (alpha channel is used)" if mask else "Image file to upload",
        },
    }
    required = ["image"]
    if mask:
        properties["original_ref"] = {
            "type": "object",
            "description": "Reference to the original image file (JSON text)",
            "required": ["filename"],
            "properties": {
                "filename": {"type": "string", "description": "Filename of the original image"}
            },
            "additionalProperties": True,
        }
        required.append("original_ref")
    properties.update(
        {
            "type": {
                "type": "string",
                "enum": ["input", "temp", "output"],
                "default": "input",
                "description": "Target directory type",
            },
            "overwrite": {
                "type": "string",
                "description": 'Set to "true" to overwrite existing files',
            },
            "subfolder": {"type": "string", "description": "Subfolder within the target directory"},
        }
    )
    schema = {"type": "object", "required": required, "properties": properties}
    return {
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}
    }


UPLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "No file provided or invalid request"},
    403: {"model": ErrorResponse, "description": "The subfolder or filename leaves the folder"},
    413: {"model": ErrorResponse, "description": "The body is larger than the upload limit"},
}

BINARY = {"schema": {"type": "string", "format": "binary"}}
VIEW_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "File content",
        "content": {
            "image/*": BINARY,
            "video/*": BINARY,
            "audio/*": BINARY,
            "application/octet-stream": BINARY,
        },
    },
    206: {"description": "The requested byte range of the file"},
    400: {"model": ErrorResponse, "description": "Invalid filename, type or conversion"},
    403: {"model": ErrorResponse, "description": "The subfolder leaves the folder"},
    404: {"model": ErrorResponse, "description": "File not found"},
    416: {"description": "The requested range is past the end of the file"},
}

VIEW_PARAMS = [
    query_param("filename", {"type": "string"}, "Name of the file to view", required=True),
    query_param(
        "type",
        {"type": "string", "enum": ["input", "output", "temp"], "default": "output"},
        "Directory type",
    ),
    query_param("subfolder", {"type": "string"}, "Subfolder within the directory"),
    query_param("preview", {"type": "string"}, 'Preview format hint (e.g. "webp;90")'),
    query_param(
        "channel", {"type": "string", "enum": ["rgba", "rgb", "a"]}, "Channel extraction mode"
    ),
]


def build_files_router() -> APIRouter:
    """Routes declared at their bare paths; mount them with RouteFamily.COMFY."""
    router = APIRouter()
    router.add_api_route(
        "/upload/image",
        upload_image,
        methods=["POST"],
        operation_id="uploadImage",
        tags=["upload"],
        summary="Upload an image file",
        description="Uploads an image file into one of the input/output/temp directories so "
        "it can be referenced by workflow nodes. A name holding other bytes gets a "
        '" (n)" suffix unless `overwrite` is "true" or "1"; the same bytes keep the name.',
        response_model=UploadResult,
        response_description="Upload result",
        responses=UPLOAD_RESPONSES,
        openapi_extra=_upload_body(mask=False),
    )
    router.add_api_route(
        "/upload/mask",
        upload_mask,
        methods=["POST"],
        operation_id="uploadMask",
        tags=["upload"],
        summary="Upload a mask image",
        description="Uploads a mask image associated with a previously-uploaded reference "
        "image: its alpha is put on the original, saved as a PNG with the original's text "
        "chunks. An original that cannot be found is skipped (200, nothing written).",
        response_model=UploadResult,
        response_description="Upload result",
        responses=UPLOAD_RESPONSES,
        openapi_extra=_upload_body(mask=True),
    )
    router.add_api_route(
        "/view",
        view,
        methods=["GET"],
        operation_id="viewFile",
        tags=["view"],
        summary="View or download a file",
        description="Serves a file (image, audio, or video) from the input/output/temp "
        "directory identified by the query parameters. The original supports Range requests.",
        response_class=Response,
        responses=VIEW_RESPONSES,
        openapi_extra=documented(params=VIEW_PARAMS),
    )
    # aiohttp answers HEAD on every GET route; players and download tools use it on /view.
    router.add_api_route("/view", view, methods=["HEAD"], include_in_schema=False)
    router.add_api_route(
        "/view_metadata/{folder_name}",
        view_metadata,
        methods=["GET"],
        operation_id="viewMetadata",
        tags=["view"],
        summary="Get metadata for a file (e.g. safetensors header)",
        description="The `__metadata__` object of a .safetensors model file in the folder.",
        response_class=Response,
        responses={
            200: {
                "description": "File metadata",
                "content": {
                    "application/json": {"schema": {"type": "object", "additionalProperties": True}}
                },
            },
            400: {"model": ErrorResponse, "description": "Invalid filename"},
            404: {"model": ErrorResponse, "description": "File or metadata not found"},
        },
        openapi_extra=documented(
            params=[
                query_param(
                    "filename",
                    {"type": "string"},
                    "Filename to read metadata from",
                    required=True,
                )
            ]
        ),
    )
    return router
