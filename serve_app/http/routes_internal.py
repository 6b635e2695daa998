"""Routes for the /internal/* routes the frontend's panels use (logs, folder paths, files).

Served only at their bare paths (RouteFamily.INTERNAL), never under `/api`. The logs are
this ingress replica's (serve_app/log_buffer.py): node workers and the controller log to
Ray's log files instead.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, StrictBool, StrictStr
from starlette.concurrency import run_in_threadpool

from serve_app.edge import EdgeDep
from serve_app.http.backend import BackendDep
from serve_app.http.bodies import parse_body, read_json_object
from serve_app.http.models import ErrorResponse
from serve_app.http.responses import empty_ok, json_response
from serve_app.log_buffer import LogBuffer
from storage.areas import FILE_TYPES
from storage.content_store import ContentStore

logger = logging.getLogger(__name__)


class LogEntryModel(BaseModel):
    t: str
    m: str


class TerminalSize(BaseModel):
    cols: int
    rows: int


class RawLogsResponse(BaseModel):
    entries: list[LogEntryModel]
    size: TerminalSize


class LogsSubscribeRequest(BaseModel):
    clientId: StrictStr
    enabled: StrictBool


def get_log_buffer(request: Request) -> LogBuffer:
    """The replica's LogBuffer (ingress attaches it); an app built without one (tests, the
    in-memory server) gets an empty buffer of its own, so subscriptions still work."""
    buffer = getattr(request.app.state, "log_buffer", None)
    if buffer is None:
        buffer = LogBuffer()
        request.app.state.log_buffer = buffer
        logger.debug("app has no log buffer attached; using an empty one")
    return buffer


LogBufferDep = Annotated[LogBuffer, Depends(get_log_buffer)]


async def get_logs(logs: LogBufferDep) -> Response:
    return json_response(logs.text())


async def get_raw_logs(logs: LogBufferDep) -> Response:
    return json_response({"entries": logs.entries(), "size": logs.size()})


async def subscribe_to_logs(request: Request, logs: LogBufferDep) -> Response:
    body = parse_body(LogsSubscribeRequest, await read_json_object(request))
    if body.enabled:
        logs.subscribe(body.clientId)
    else:
        logs.unsubscribe(body.clientId)
    return empty_ok()


async def get_folder_paths(backend: BackendDep) -> Response:
    return json_response(await backend.folder_paths())


def visible_files_newest_first(store: ContentStore, directory_type: str) -> list[str]:
    """`"name [type]"` for each top-level, non-hidden file of the area, newest first."""
    found = [
        info
        for info in store.list(prefix="", recursive=False)
        if "/" not in info.key and not info.key.startswith(".")
    ]
    found.sort(key=lambda info: (-info.modified, info.key))
    return [f"{info.key} [{directory_type}]" for info in found]


async def get_files(directory_type: str, edge: EdgeDep) -> Response:
    if directory_type not in FILE_TYPES:
        return json_response({"error": "Invalid directory type"}, 400)
    store = edge.areas.area(directory_type)
    return json_response(await run_in_threadpool(visible_files_newest_first, store, directory_type))


def build_internal_router() -> APIRouter:
    """Routes declared at /internal/...; mount them with RouteFamily.INTERNAL."""
    router = APIRouter()
    router.add_api_route(
        "/internal/logs",
        get_logs,
        methods=["GET"],
        operation_id="getInternalLogs",
        tags=["internal"],
        summary="Get server logs as text",
        description="This replica's recent log lines as one JSON string, each line "
        "`<ISO time> - <text>`. Node workers log to Ray's log files, not here.",
        response_model=str,
        openapi_extra={"x-internal": True},
    )
    router.add_api_route(
        "/internal/logs/raw",
        get_raw_logs,
        methods=["GET"],
        operation_id="getInternalLogsRaw",
        tags=["internal"],
        summary="Get raw structured log entries",
        description="This replica's recent log entries (`t`: ISO time, `m`: text ending in "
        "a newline) and the terminal size to show them in.",
        response_model=RawLogsResponse,
        openapi_extra={"x-internal": True},
    )
    router.add_api_route(
        "/internal/logs/subscribe",
        subscribe_to_logs,
        methods=["PATCH"],
        operation_id="subscribeToLogs",
        tags=["internal"],
        summary="Subscribe or unsubscribe a WebSocket client to log streaming",
        description="A subscribed client gets each new log line in a `logs` WebSocket "
        "message; a client whose socket is gone is unsubscribed.",
        responses={
            200: {"description": "Subscription updated"},
            400: {"model": ErrorResponse, "description": "Malformed body"},
        },
        openapi_extra={
            "x-internal": True,
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": LogsSubscribeRequest.model_json_schema()}
                },
            },
        },
    )
    router.add_api_route(
        "/internal/folder_paths",
        get_folder_paths,
        methods=["GET"],
        operation_id="getInternalFolderPaths",
        tags=["internal"],
        summary="Get configured folder paths",
        description="Model folder name to the absolute folders the node workers search.",
        response_model=dict[str, list[str]],
        openapi_extra={"x-internal": True},
    )
    router.add_api_route(
        "/internal/files/{directory_type}",
        get_files,
        methods=["GET"],
        operation_id="getInternalFiles",
        tags=["internal"],
        summary="List files in a directory type",
        description='`["<name> [<type>]", ...]`: the top-level, non-hidden files of the '
        'input, output or temp area, newest first; 400 `{"error": "Invalid directory type"}` '
        "for any other type.",
        response_model=list[str],
        responses={400: {"model": ErrorResponse, "description": "Invalid directory type"}},
        openapi_extra={"x-internal": True},
    )
    return router
