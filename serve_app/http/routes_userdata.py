"""Routes for users, userdata and settings (the user area, §1.7).

`build_userdata_router` gathers the /users (routes_users.py) and /settings
(routes_settings.py) routes with the /userdata ones here. File paths are `{file:path}`
because the web frontend sends some with plain slashes and some with `%2F`; the move route
is declared before the plain POST so that `/userdata/a/move/b` reaches it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio.from_thread
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from serve_app.http.models import ErrorResponse
from serve_app.http.openapi_contract import COMFY_USER_HEADER, query_param
from serve_app.http.responses import json_response
from serve_app.http.routes_settings import add_settings_routes
from serve_app.http.routes_users import (
    RequestUserDep,
    UserAreaDep,
    UserdataRoute,
    add_user_routes,
    check_declared_length,
)
from serve_app.users.errors import UserdataPathError
from serve_app.users.listing import file_info
from serve_app.users.paths import client_path, split_move_path
from storage.content_store import ObjectInfo

logger = logging.getLogger(__name__)


class UserdataFileInfo(BaseModel):
    """A file of a userdata listing; times in milliseconds (`created` = `modified`)."""

    path: str
    size: int
    modified: int
    created: float


class UserdataEntry(BaseModel):
    """One entry of /v2/userdata; files carry `size` and `modified` (seconds)."""

    name: str
    path: str
    type: str
    size: int | None = None
    modified: float | None = None


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "").lower() == "true"


def _overwrite(request: Request) -> bool:
    # ComfyUI overwrites unless told `overwrite=false`, for writes and moves alike.
    return request.query_params.get("overwrite", "true").lower() != "false"


def _written(info: ObjectInfo, user: str, full_info: bool) -> Response:
    body = file_info(info, user)
    return json_response(body if full_info else body["path"])


async def _next_chunk(stream: AsyncIterator[bytes]) -> bytes | None:
    try:
        return await stream.__anext__()
    except StopAsyncIteration:
        return None


def _body_chunks(stream: AsyncIterator[bytes]) -> Iterator[bytes]:
    """The request body as a blocking iterator, for a store write in a worker thread.

    Each chunk is fetched from the event loop as the store asks for it, so the body
    streams into the store without ever being held whole.
    """
    while True:
        chunk = anyio.from_thread.run(_next_chunk, stream)
        if chunk is None:
            return
        if chunk:
            yield chunk


# -- routes ----------------------------------------------------------------------------


async def list_userdata(request: Request, user: RequestUserDep, area: UserAreaDep) -> Response:
    directory = request.query_params.get("dir", "")
    if not directory:
        return json_response({"error": "Directory not provided"}, 400)
    listing = await run_in_threadpool(
        lambda: area.files.list_files(
            user,
            directory,
            recurse=_flag(request, "recurse"),
            full_info=_flag(request, "full_info"),
            split=_flag(request, "split"),
        )
    )
    return json_response(listing)


async def list_userdata_v2(request: Request, user: RequestUserDep, area: UserAreaDep) -> Response:
    path = client_path(request.query_params.get("path", ""))
    try:
        listing = await run_in_threadpool(area.files.list_tree, user, path)
    except UserdataPathError as exc:
        raise exc.as_bad_request() from None  # v2 answers every bad path with 400
    return json_response(listing)


async def get_userdata_file(file: str, user: RequestUserDep, area: UserAreaDep) -> Response:
    download = await run_in_threadpool(area.files.open, user, client_path(file))
    return StreamingResponse(
        download.chunks, media_type=download.media_type, headers=download.headers
    )


async def write_userdata_file(
    file: str, request: Request, user: RequestUserDep, area: UserAreaDep
) -> Response:
    path = client_path(file)
    check_declared_length(request, area.max_upload_bytes)
    chunks = _body_chunks(request.stream())
    info = await run_in_threadpool(
        lambda: area.files.write(user, path, chunks, overwrite=_overwrite(request))
    )
    return _written(info, user, _flag(request, "full_info"))


async def delete_userdata_file(file: str, user: RequestUserDep, area: UserAreaDep) -> Response:
    await run_in_threadpool(area.files.delete, user, client_path(file))
    return Response(status_code=204)


async def move_userdata_file(
    file: str, dest: str, request: Request, user: RequestUserDep, area: UserAreaDep
) -> Response:
    raw_path = request.scope.get("raw_path", b"").decode("latin-1")
    file, dest = split_move_path(raw_path, file, dest)
    source, target = client_path(file), client_path(dest)
    info = await run_in_threadpool(
        lambda: area.files.move(user, source, target, overwrite=_overwrite(request))
    )
    return _written(info, user, _flag(request, "full_info"))


# -- OpenAPI ---------------------------------------------------------------------------

FORBIDDEN = {403: {"model": ErrorResponse, "description": "Unknown user, or path outside"}}
BAD_PATH = {400: {"model": ErrorResponse, "description": "Malformed path"}}
NOT_FOUND = {404: {"model": ErrorResponse, "description": "No such file"}}
EXISTS = {409: {"model": ErrorResponse, "description": "Exists and overwrite=false"}}
TOO_LARGE = {413: {"model": ErrorResponse, "description": "Over the upload size limit"}}
OVERWRITE = query_param("overwrite", {"type": "boolean"}, "Replace an existing file (default)")
FULL_INFO = query_param("full_info", {"type": "boolean"}, "Answer a file-info object")
FILE_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        "application/json": {"schema": {}},
    },
}
LIST_PARAMS = [
    COMFY_USER_HEADER,
    query_param("dir", {"type": "string"}, "Folder relative to the user's folder", required=True),
    query_param("recurse", {"type": "boolean"}, "Include files of subfolders"),
    query_param("full_info", {"type": "boolean"}, "File-info objects instead of paths"),
    query_param("split", {"type": "boolean"}, "`[path, *segments]` instead of paths"),
]


def _add_listing_routes(router: APIRouter) -> None:
    router.add_api_route(
        "/userdata",
        list_userdata,
        methods=["GET"],
        operation_id="listUserdata",
        tags=["userdata"],
        summary="List files in a userdata directory",
        description="Paths relative to `dir`, hidden files left out. 400 without `dir`, "
        "404 when it does not exist.",
        response_model=list[UserdataFileInfo] | list[list[str]] | list[str],
        responses={**BAD_PATH, **FORBIDDEN, **NOT_FOUND},
        route_class_override=UserdataRoute,
        openapi_extra={"parameters": LIST_PARAMS},
    )
    router.add_api_route(
        "/v2/userdata",
        list_userdata_v2,
        methods=["GET"],
        operation_id="listUserdataV2",
        tags=["userdata"],
        summary="List files in userdata (v2 format)",
        description="Every folder and file under `path`, recursively; folders first, then "
        "by name. Paths are relative to the user's folder.",
        response_model=list[UserdataEntry],
        responses={**BAD_PATH, **FORBIDDEN, **NOT_FOUND},
        route_class_override=UserdataRoute,
        openapi_extra={
            "parameters": [
                COMFY_USER_HEADER,
                query_param("path", {"type": "string"}, "Folder relative to the user's folder"),
            ]
        },
    )


def _add_file_routes(router: APIRouter) -> None:
    header = {"parameters": [COMFY_USER_HEADER]}
    router.add_api_route(
        "/userdata/{file:path}",
        get_userdata_file,
        methods=["GET"],
        operation_id="getUserdataFile",
        tags=["userdata"],
        summary="Read a userdata file",
        description="Sent as an attachment with `nosniff`; active types (HTML, scripts, "
        "SVG, XML) as octet-stream. The root `user.css` is sent inline as text/css.",
        response_class=Response,
        responses={
            200: {
                "description": "File content",
                "content": {
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
                },
            },
            **BAD_PATH,
            **FORBIDDEN,
            **NOT_FOUND,
        },
        route_class_override=UserdataRoute,
        openapi_extra=header,
    )
    # Before the plain POST: `{file:path}` alone would also match ".../move/...".
    router.add_api_route(
        "/userdata/{file:path}/move/{dest:path}",
        move_userdata_file,
        methods=["POST"],
        operation_id="moveUserdataFile",
        tags=["userdata"],
        summary="Move or rename a userdata file",
        description="Answers the new path relative to the user's folder (a JSON string), or "
        "its file-info object with `full_info=true`.",
        response_model=UserdataFileInfo | str,
        responses={**BAD_PATH, **FORBIDDEN, **NOT_FOUND, **EXISTS},
        route_class_override=UserdataRoute,
        openapi_extra={"parameters": [COMFY_USER_HEADER, OVERWRITE, FULL_INFO]},
    )
    router.add_api_route(
        "/userdata/{file:path}",
        write_userdata_file,
        methods=["POST"],
        operation_id="writeUserdataFile",
        tags=["userdata"],
        summary="Write or create a userdata file",
        description="The raw body becomes the file. Answers its path relative to the "
        "user's folder (a JSON string), or its file-info object with `full_info=true`.",
        response_model=UserdataFileInfo | str,
        responses={**BAD_PATH, **FORBIDDEN, **EXISTS, **TOO_LARGE},
        route_class_override=UserdataRoute,
        openapi_extra={
            "parameters": [COMFY_USER_HEADER, OVERWRITE, FULL_INFO],
            "requestBody": FILE_BODY,
        },
    )
    router.add_api_route(
        "/userdata/{file:path}",
        delete_userdata_file,
        methods=["DELETE"],
        operation_id="deleteUserdataFile",
        tags=["userdata"],
        summary="Delete a userdata file",
        status_code=204,
        response_class=Response,
        responses={204: {"description": "File deleted"}, **BAD_PATH, **FORBIDDEN, **NOT_FOUND},
        route_class_override=UserdataRoute,
        openapi_extra=header,
    )


def build_userdata_router() -> APIRouter:
    """/users, /userdata, /v2/userdata and /settings, declared bare (mounted bare + /api)."""
    router = APIRouter()
    add_user_routes(router)
    _add_listing_routes(router)
    _add_file_routes(router)
    add_settings_routes(router)
    return router
