"""`/history` and `/history/{prompt_id}` (§1.2)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import Response

from cluster.jobs import parse_int_param
from serve_app.http.backend import BackendDep
from serve_app.http.bodies import parse_body, read_json_object
from serve_app.http.models import ErrorResponse, HistoryEntry, HistoryManageRequest
from serve_app.http.openapi_contract import COMFY_USER_HEADER, documented, query_param
from serve_app.http.responses import empty_ok, json_response

logger = logging.getLogger(__name__)

# ComfyUI's default: with max_items and no offset, the last max_items entries.
DEFAULT_OFFSET = -1
BAD_REQUEST = {400: {"model": ErrorResponse, "description": "Names the malformed parameter"}}


async def get_history(request: Request, backend: BackendDep) -> Response:
    max_items = parse_int_param(request.query_params, "max_items")
    offset = parse_int_param(request.query_params, "offset")
    history = await backend.get_history(max_items, DEFAULT_OFFSET if offset is None else offset)
    return json_response(history)


async def get_history_item(prompt_id: str, backend: BackendDep) -> Response:
    entry = await backend.get_history_item(prompt_id)
    # ComfyUI answers an unknown id with 200 and {} (clients poll this while a prompt runs).
    return json_response({} if entry is None else {prompt_id: entry})


async def post_history(request: Request, backend: BackendDep) -> Response:
    request_body = parse_body(HistoryManageRequest, await read_json_object(request))
    await backend.manage_history(bool(request_body.clear), list(request_body.delete or []))
    return empty_ok()


def build_history_router() -> APIRouter:
    """Routes declared at their bare paths; mount them with RouteFamily.COMFY."""
    router = APIRouter()
    router.add_api_route(
        "/history",
        get_history,
        methods=["GET"],
        operation_id="getHistory",
        tags=["history"],
        summary="Get execution history",
        description="`{prompt_id: entry}`, oldest first. With `max_items` and no `offset`, "
        "the newest `max_items` entries.",
        deprecated=True,
        response_model=dict[str, HistoryEntry],
        responses=BAD_REQUEST,
        openapi_extra=documented(
            params=[
                COMFY_USER_HEADER,
                query_param("max_items", {"type": "integer"}, "Most entries to return"),
                query_param("offset", {"type": "integer"}, "Index of the first entry"),
            ]
        ),
    )
    router.add_api_route(
        "/history",
        post_history,
        methods=["POST"],
        operation_id="manageHistory",
        tags=["history"],
        summary="Clear or delete history entries",
        deprecated=True,
        response_class=Response,
        responses={200: {"description": "History updated (empty body)"}, **BAD_REQUEST},
        openapi_extra=documented(params=[COMFY_USER_HEADER], body=HistoryManageRequest),
    )
    router.add_api_route(
        "/history/{prompt_id}",
        get_history_item,
        methods=["GET"],
        operation_id="getHistoryByPromptId",
        tags=["history"],
        summary="Get history for a specific prompt",
        description="`{prompt_id: entry}`, or `{}` when the id is unknown.",
        deprecated=True,
        response_model=dict[str, HistoryEntry],
        openapi_extra=documented(params=[COMFY_USER_HEADER]),
    )
    return router
