"""`/prompt`, `/queue`, `/interrupt` and `/free` (§1.2, §2.1-2.2)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from cluster.errors import InvalidRequestError, PromptValidationError, error_dict
from serve_app.http.backend import BackendDep
from serve_app.http.bodies import (
    BodyNotJSONError,
    BodyNotObjectError,
    check_body,
    parse_body,
    read_json_object,
)
from serve_app.http.models import (
    ErrorResponse,
    FreeRequest,
    InterruptRequest,
    PromptErrorResponse,
    PromptInfo,
    PromptRequest,
    PromptResponse,
    QueueInfo,
    QueueManageRequest,
)
from serve_app.http.openapi_contract import documented
from serve_app.http.responses import empty_ok, json_response

logger = logging.getLogger(__name__)

USAGE_SOURCE_HEADER = "Comfy-Usage-Source"
BAD_BODY = {400: {"model": ErrorResponse, "description": "Malformed body; names the field"}}


def _left_to_controller(error: dict[str, Any]) -> bool:
    """Errors the controller reports itself, in ComfyUI's words and after its hooks ran.

    A missing `prompt` is its `no_prompt` (an on_prompt hook may still add one, and the
    queue number advances first); any `prompt_id` problem is its `invalid_prompt_id`.
    """
    loc = tuple(error.get("loc", ()))
    if loc == ("prompt",) and error.get("type") == "missing":
        return True
    return bool(loc) and loc[0] == "prompt_id"


async def _read_prompt_body(request: Request) -> dict[str, Any]:
    """The body of POST /prompt; every mistake is answered in the prompt envelope."""
    try:
        body = await read_json_object(request)
    except BodyNotJSONError as exc:
        raise PromptValidationError(error_dict("invalid_json", exc.summary, exc.details)) from None
    except BodyNotObjectError as exc:
        raise PromptValidationError(error_dict("invalid_json", exc.message, exc.got)) from None
    try:
        check_body(PromptRequest, body, _left_to_controller)
    except InvalidRequestError as exc:
        raise PromptValidationError(error_dict("invalid_request", exc.message, exc.field)) from None
    return body


async def get_prompt(backend: BackendDep) -> Response:
    remaining = await backend.queue_remaining()
    return json_response({"exec_info": {"queue_remaining": remaining}})


async def post_prompt(request: Request, backend: BackendDep) -> Response:
    body = await _read_prompt_body(request)
    result = await backend.submit_prompt(body, request.headers.get(USAGE_SOURCE_HEADER))
    logger.info("prompt %s queued as number %s", result.get("prompt_id"), result.get("number"))
    return json_response(result)


async def get_queue(backend: BackendDep) -> Response:
    return json_response(await backend.get_queue())


async def post_queue(request: Request, backend: BackendDep) -> Response:
    request_body = parse_body(QueueManageRequest, await read_json_object(request))
    await backend.manage_queue(bool(request_body.clear), list(request_body.delete or []))
    return empty_ok()


async def post_interrupt(request: Request, backend: BackendDep) -> Response:
    try:
        body = await read_json_object(request, empty_is={})
    except BodyNotJSONError:
        body = {}  # ComfyUI treats an unreadable body as "interrupt everything"
    request_body = parse_body(InterruptRequest, body)
    logger.info("interrupt requested for %s", request_body.prompt_id or "all prompts")
    await backend.interrupt(request_body.prompt_id)
    return empty_ok()


async def post_free(request: Request, backend: BackendDep) -> Response:
    request_body = parse_body(FreeRequest, await read_json_object(request, empty_is={}))
    await backend.free(request_body.unload_models, request_body.free_memory)
    return empty_ok()


def build_prompt_router() -> APIRouter:
    """Routes declared at their bare paths; mount them with RouteFamily.COMFY."""
    router = APIRouter()
    router.add_api_route(
        "/prompt",
        get_prompt,
        methods=["GET"],
        operation_id="getPromptInfo",
        tags=["prompt"],
        summary="Get queue status",
        response_model=PromptInfo,
    )
    router.add_api_route(
        "/prompt",
        post_prompt,
        methods=["POST"],
        operation_id="executePrompt",
        tags=["prompt"],
        summary="Submit a workflow for execution",
        description="Validates the graph and queues it; progress arrives on `/ws`. The "
        "`Comfy-Usage-Source` header is recorded in `extra_data.comfy_usage_source`.",
        response_model=PromptResponse,
        responses={400: {"model": PromptErrorResponse, "description": "Rejected prompt"}},
        openapi_extra=documented(body=PromptRequest),
    )
    router.add_api_route(
        "/queue",
        get_queue,
        methods=["GET"],
        operation_id="getQueue",
        tags=["queue"],
        summary="Get running and pending queue items",
        response_model=QueueInfo,
    )
    router.add_api_route(
        "/queue",
        post_queue,
        methods=["POST"],
        operation_id="manageQueue",
        tags=["queue"],
        summary="Clear or delete items from the queue",
        response_class=Response,
        responses={200: {"description": "Queue updated (empty body)"}, **BAD_BODY},
        openapi_extra=documented(body=QueueManageRequest),
    )
    router.add_api_route(
        "/interrupt",
        post_interrupt,
        methods=["POST"],
        operation_id="interruptExecution",
        tags=["queue"],
        summary="Interrupt current execution",
        response_class=Response,
        responses={200: {"description": "Interrupt signal sent (empty body)"}, **BAD_BODY},
        openapi_extra=documented(body=InterruptRequest, body_required=False),
    )
    router.add_api_route(
        "/free",
        post_free,
        methods=["POST"],
        operation_id="freeMemory",
        tags=["queue"],
        summary="Free memory and/or unload models",
        response_class=Response,
        responses={200: {"description": "Memory freed (empty body)"}, **BAD_BODY},
        openapi_extra=documented(body=FreeRequest, body_required=False),
    )
    return router
