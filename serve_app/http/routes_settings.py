"""`/settings` and `/settings/{id}` (§1.7): the acting user's comfy.settings.json.

An unknown user answers 401 here (ComfyUI's settings routes do; the web frontend shows
its user picker on it), where the userdata routes answer 403.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from serve_app.http.models import ErrorResponse
from serve_app.http.openapi_contract import COMFY_USER_HEADER
from serve_app.http.responses import empty_ok, json_response
from serve_app.http.routes_users import (
    RequestUserDep,
    SettingsRoute,
    UserAreaDep,
    read_json_body,
    read_json_object,
)

logger = logging.getLogger(__name__)

UNKNOWN_USER = {401: {"model": ErrorResponse, "description": "Unknown or missing user"}}
BAD_BODY = {400: {"model": ErrorResponse, "description": "Body is not the JSON expected"}}
UPDATED = {200: {"description": "Settings updated (empty body)"}}


async def get_settings(user: RequestUserDep, area: UserAreaDep) -> Response:
    return json_response(await run_in_threadpool(area.settings.load, user))


async def post_settings(request: Request, user: RequestUserDep, area: UserAreaDep) -> Response:
    changes = await read_json_object(request, area.max_upload_bytes)
    await run_in_threadpool(area.settings.update, user, changes)
    return empty_ok()


async def get_setting(id: str, user: RequestUserDep, area: UserAreaDep) -> Response:
    return json_response(await run_in_threadpool(area.settings.get, user, id))


async def post_setting(
    id: str,
    request: Request,
    user: RequestUserDep,
    area: UserAreaDep,
) -> Response:
    value = await read_json_body(request, area.max_upload_bytes)
    await run_in_threadpool(area.settings.set, user, id, value)
    return empty_ok()


def _json_body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "required": True,
        "content": {"application/json": {"schema": {**schema, "description": description}}},
    }


def add_settings_routes(router: APIRouter) -> None:
    """The four settings routes (declared bare; mounted bare and under /api)."""
    params = {"parameters": [COMFY_USER_HEADER]}
    router.add_api_route(
        "/settings",
        get_settings,
        methods=["GET"],
        operation_id="getSettings",
        tags=["settings"],
        summary="Get all user settings",
        description="The stored settings object; `{}` when none are stored or the file is corrupt.",
        response_model=dict[str, Any],
        responses=UNKNOWN_USER,
        route_class_override=SettingsRoute,
        openapi_extra=params,
    )
    router.add_api_route(
        "/settings",
        post_settings,
        methods=["POST"],
        operation_id="updateSettings",
        tags=["settings"],
        summary="Update user settings (shallow merge)",
        description="Each top-level key of the body replaces the stored value.",
        response_class=Response,
        responses={**UPDATED, **BAD_BODY, **UNKNOWN_USER},
        route_class_override=SettingsRoute,
        openapi_extra={
            **params,
            "requestBody": _json_body(
                {"type": "object", "additionalProperties": True}, "Settings to merge"
            ),
        },
    )
    router.add_api_route(
        "/settings/{id}",
        get_setting,
        methods=["GET"],
        operation_id="getSetting",
        tags=["settings"],
        summary="Get a single setting by key",
        description="The value, or `null` when the setting is not stored.",
        response_model=Any,
        responses=UNKNOWN_USER,
        route_class_override=SettingsRoute,
        openapi_extra=params,
    )
    router.add_api_route(
        "/settings/{id}",
        post_setting,
        methods=["POST"],
        operation_id="updateSetting",
        tags=["settings"],
        summary="Set a single setting value",
        description="The body is the new value, any JSON.",
        response_class=Response,
        responses={**UPDATED, **BAD_BODY, **UNKNOWN_USER},
        route_class_override=SettingsRoute,
        openapi_extra={**params, "requestBody": _json_body({}, "The new value (any JSON)")},
    )
