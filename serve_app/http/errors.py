"""How typed errors become ComfyUI's JSON error bodies; the one place that shapes them.

Bodies differ by route family, as in ComfyUI: `/prompt` answers `{"error": {...},
"node_errors": {...}}`, jobs and every other route `{"error": "<message>"}`. Client mistakes
are always 4xx; a 500 means a bug here, never bad input.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from cluster.errors import InvalidRequestError, JobNotFoundError, PromptValidationError
from cluster.jobs import InvalidJobIdsError
from serve_app.http.responses import json_response

logger = logging.getLogger(__name__)


class NotFoundError(Exception):
    """A named thing (model folder, ...) does not exist; answered 404 `{"error": message}`."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BackendUnavailableError(Exception):
    """The app has no backend yet (a Serve replica still starting); answered 503."""


def describe_location(loc: tuple[Any, ...] | list[Any]) -> str:
    """`("body", "delete", 0)` -> `delete.0`: the field path a client can find in its JSON."""
    return ".".join(str(part) for part in loc) or "body"


def validation_message(errors: list[Any], where: str = "") -> tuple[str, str]:
    """(field, message) for the first pydantic/FastAPI error, naming the field."""
    first = errors[0] if errors else {}
    loc = list(first.get("loc", ()))
    if where == "" and loc and loc[0] in ("query", "path", "header", "cookie", "body"):
        where = "body field" if loc[0] == "body" else f"{loc[0]} parameter"
        loc = loc[1:]
    where = where or "field"
    field = describe_location(loc)
    if first.get("type") == "missing":
        return field, f"Missing required {where} '{field}'"
    return field, f"Invalid {where} '{field}': {first.get('msg', 'invalid value')}"


async def _prompt_rejected(request: Request, exc: PromptValidationError) -> Response:
    logger.info(
        "prompt rejected on %s: %s", request.url.path, exc.error.get("type", "unknown error")
    )
    return json_response({"error": exc.error, "node_errors": exc.node_errors}, 400)


async def _invalid_job_ids(request: Request, exc: InvalidJobIdsError) -> Response:
    return json_response({"error": exc.message, "invalid_ids": exc.invalid_ids}, 400)


async def _invalid_request(request: Request, exc: InvalidRequestError) -> Response:
    logger.info("bad request on %s: %s", request.url.path, exc.message)
    return json_response({"error": exc.message}, 400)


async def _request_validation(request: Request, exc: RequestValidationError) -> Response:
    _field, message = validation_message(list(exc.errors()))
    logger.info("bad request on %s: %s", request.url.path, message)
    return json_response({"error": message}, 400)


async def _job_not_found(request: Request, exc: JobNotFoundError) -> Response:
    return json_response({"error": "Job not found"}, 404)


async def _not_found(request: Request, exc: NotFoundError) -> Response:
    return json_response({"error": exc.message}, 404)


async def _backend_unavailable(request: Request, exc: Exception) -> Response:
    logger.warning("request to %s before a backend was attached", request.url.path)
    return json_response({"error": "Server is starting, try again shortly"}, 503)


async def _unexpected(request: Request, exc: Exception) -> Response:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return json_response({"error": "Internal server error"}, 500)


def install_error_handlers(app: FastAPI) -> None:
    """Register every handler; the most specific class wins (Starlette looks up the MRO)."""
    app.add_exception_handler(PromptValidationError, _prompt_rejected)
    app.add_exception_handler(InvalidJobIdsError, _invalid_job_ids)
    app.add_exception_handler(InvalidRequestError, _invalid_request)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(JobNotFoundError, _job_not_found)
    app.add_exception_handler(NotFoundError, _not_found)
    app.add_exception_handler(BackendUnavailableError, _backend_unavailable)
    app.add_exception_handler(Exception, _unexpected)
