"""`/users` (§1.7), and what every user-area route shares: the replica's UserArea, the
acting user, capped JSON bodies, and the translation of the area's typed errors.

The error translation is a route class rather than app-wide handlers because the same
"unknown user" answers 401 on the settings routes and 403 on the userdata routes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, ClassVar

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from serve_app.edge import EdgeDep
from serve_app.http.models import ErrorResponse
from serve_app.http.openapi_contract import COMFY_USER_HEADER
from serve_app.http.responses import json_response
from serve_app.users.area import UserArea, open_user_area
from serve_app.users.errors import (
    BodyTooLargeError,
    InvalidBodyError,
    RegistryCorruptError,
    UnknownUserError,
    UserAreaError,
    UserdataExistsError,
    UserdataNotFoundError,
    UserdataPathError,
)
from serve_app.users.registry import USER_HEADER
from storage.content_store import StoreTooLargeError
from storage.store_keys import StoreKeyError

logger = logging.getLogger(__name__)

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


# -- errors ----------------------------------------------------------------------------


def error_status(exc: Exception, unknown_user_status: int) -> tuple[int, str]:
    """(HTTP status, message) for a typed failure of the user area."""
    if isinstance(exc, UnknownUserError):
        return unknown_user_status, exc.message
    if isinstance(exc, UserdataPathError):
        return (403 if exc.forbidden else 400), exc.message
    if isinstance(exc, StoreKeyError):
        return exc.status, f"Invalid path: {exc}"
    if isinstance(exc, UserdataNotFoundError):
        return 404, exc.message
    if isinstance(exc, UserdataExistsError):
        return 409, exc.message
    if isinstance(exc, StoreTooLargeError):
        return 413, f"File is larger than the upload limit of {exc.max_bytes} bytes"
    if isinstance(exc, BodyTooLargeError):
        return 413, exc.message
    if isinstance(exc, RegistryCorruptError):
        # The registry's state, not the request, is at fault, and it is kept for the operator
        # to repair: a conflict with the stored state, not a crash.
        return 409, exc.message
    if isinstance(exc, UserAreaError):
        return 400, exc.message
    raise TypeError(f"not a user area error: {exc!r}")


class UserAreaRoute(APIRoute):
    """A route whose user-area errors become `{"error": message}` with their status."""

    unknown_user_status: ClassVar[int] = 403

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        unknown_user_status = self.unknown_user_status

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except (UserAreaError, StoreKeyError, StoreTooLargeError) as exc:
                status, message = error_status(exc, unknown_user_status)
                log = logger.error if status >= 500 else logger.info
                log("%s %s: %d %s", request.method, request.url.path, status, message)
                return json_response({"error": message}, status)

        return handle


class UserdataRoute(UserAreaRoute):
    unknown_user_status = 403


class SettingsRoute(UserAreaRoute):
    unknown_user_status = 401


# -- dependencies ----------------------------------------------------------------------


async def get_user_area(request: Request, edge: EdgeDep) -> UserArea:
    """The replica's UserArea, built on first use and kept with the app.

    Kept rather than rebuilt per request because its locks must be shared by all
    requests; `async` so that the check-and-set runs on the event loop, never in two
    threads at once.
    """
    area: UserArea | None = getattr(request.app.state, "user_area", None)
    if area is None or area.store is not edge.areas.user:
        area = open_user_area(
            edge.areas.user,
            multi_user=edge.config.multi_user,
            max_upload_bytes=edge.config.max_upload_bytes,
        )
        request.app.state.user_area = area
    return area


UserAreaDep = Annotated[UserArea, Depends(get_user_area)]


async def get_request_user(request: Request, area: UserAreaDep) -> str:
    """The user id the request acts as (UnknownUserError when there is none)."""
    header = request.headers.get(USER_HEADER)
    if not area.accounts.multi_user:
        return area.accounts.resolve(header)  # no store look-up: no thread needed
    return await run_in_threadpool(area.accounts.resolve, header)


RequestUserDep = Annotated[str, Depends(get_request_user)]


# -- bodies ----------------------------------------------------------------------------


def check_declared_length(request: Request, limit: int) -> None:
    """Refuse a body whose Content-Length is over `limit` before reading any of it."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLargeError(limit)


async def read_json_body(request: Request, limit: int) -> Any:
    """The JSON value of a small body, read up to `limit` bytes."""
    check_declared_length(request, limit)
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError(limit)
        parts.append(chunk)
    raw = b"".join(parts)
    if not raw.strip():
        raise InvalidBodyError("Request body is empty: a JSON value is required")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise InvalidBodyError(f"Request body is not valid JSON: {exc}") from None


async def read_json_object(request: Request, limit: int) -> dict[str, Any]:
    body = await read_json_body(request, limit)
    if not isinstance(body, dict):
        raise InvalidBodyError("Request body must be a JSON object")
    return body


# -- /users ----------------------------------------------------------------------------


class UsersInfo(BaseModel):
    """GET /users: `migrated` in single-user mode, `users` (id -> name) in multi-user mode."""

    storage: str
    migrated: bool | None = None
    users: dict[str, str] | None = None


async def get_users(area: UserAreaDep) -> Response:
    return json_response(await run_in_threadpool(area.accounts.info))


async def create_user(request: Request, area: UserAreaDep) -> Response:
    body = await read_json_object(request, area.max_upload_bytes)
    user_id = await run_in_threadpool(area.accounts.add, body.get("username"))
    return json_response(user_id)


CREATE_USER_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["username"],
                "properties": {"username": {"type": "string", "description": "The new name"}},
            }
        }
    },
}


def add_user_routes(router: APIRouter) -> None:
    """GET and POST /users (declared bare; the app mounts them bare and under /api)."""
    router.add_api_route(
        "/users",
        get_users,
        methods=["GET"],
        operation_id="getUsers",
        tags=["user"],
        summary="Get user storage info",
        description="Single-user: `{storage, migrated}`, migrated once the default user "
        "has stored anything. Multi-user: `{storage, users: {id: name}}`.",
        response_model=UsersInfo,
        route_class_override=UserdataRoute,
        openapi_extra={"parameters": [COMFY_USER_HEADER]},
    )
    router.add_api_route(
        "/users",
        create_user,
        methods=["POST"],
        operation_id="createUser",
        tags=["user"],
        summary="Create a new user",
        description="Answers the new id `<name with unsafe characters as ->_<uuid4>` "
        'as a JSON string; 400 `{"error": "Duplicate username."}` for a taken name.',
        response_model=str,
        responses={400: {"model": ErrorResponse, "description": "Duplicate or invalid name"}},
        route_class_override=UserdataRoute,
        openapi_extra={"parameters": [COMFY_USER_HEADER], "requestBody": CREATE_USER_BODY},
    )
