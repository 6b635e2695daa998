"""Reading JSON request bodies into typed models, turning every mistake into a typed 4xx.

Routes parse bodies themselves rather than through FastAPI's body parameters, because
ComfyUI's routes disagree on what a bad body means (`/interrupt` shrugs it off, `/prompt`
answers in its own envelope) and FastAPI would answer 422 for all of them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from cluster.errors import InvalidRequestError
from cluster.prompt_format import json_type_name
from serve_app.http.errors import validation_message

ModelT = TypeVar("ModelT", bound=BaseModel)

# Which validation errors a route leaves to the backend, as a predicate on one error.
ErrorFilter = Callable[[dict[str, Any]], bool]


class BodyNotJSONError(InvalidRequestError):
    """The body is empty or not valid JSON."""

    summary = "Request body is not valid JSON"

    def __init__(self, details: str) -> None:
        super().__init__("body", f"{self.summary}: {details}")
        self.details = details


class BodyNotObjectError(InvalidRequestError):
    """The body is valid JSON but not an object."""

    def __init__(self, got: Any) -> None:
        super().__init__("body", f"Request body must be a JSON object, got {json_type_name(got)}")
        self.got = json_type_name(got)


async def read_json_object(request: Request, *, empty_is: dict[str, Any] | None = None) -> dict:
    """The body as a JSON object; `empty_is` is what an empty body means (None: an error)."""
    raw = await request.body()
    if not raw.strip():
        if empty_is is None:
            raise BodyNotJSONError("the body is empty")
        return dict(empty_is)
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise BodyNotJSONError(str(exc)) from None
    if not isinstance(body, dict):
        raise BodyNotObjectError(body)
    return body


def parse_body(model: type[ModelT], body: dict[str, Any]) -> ModelT:
    """The body as `model`; raise InvalidRequestError naming the first bad field."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        field, message = validation_message([dict(e) for e in exc.errors()], "body field")
        raise InvalidRequestError(field, message) from None


def check_body(model: type[BaseModel], body: dict[str, Any], leave_to_backend: ErrorFilter) -> None:
    """Like `parse_body` for a body passed on as sent, ignoring what the backend answers."""
    try:
        model.model_validate(body)
    except ValidationError as exc:
        errors = [dict(e) for e in exc.errors() if not leave_to_backend(dict(e))]
        if errors:
            field, message = validation_message(errors, "body field")
            raise InvalidRequestError(field, message) from None
