"""Typed errors of the control plane.

They carry ComfyUI's error *content* (type, message, details, extra_info) as plain data; the
HTTP edge (`serve_app/`) alone decides how they are shaped into a response body.
"""

from __future__ import annotations

from typing import Any


def error_dict(
    type_: str, message: str, details: str = "", extra_info: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One ComfyUI error object: {"type", "message", "details", "extra_info"}."""
    return {"type": type_, "message": message, "details": details, "extra_info": extra_info or {}}


class ClusterError(Exception):
    """Base of every error the control plane raises on purpose."""


class PromptValidationError(ClusterError):
    """A submitted prompt was rejected; becomes `400 {"error", "node_errors"}`."""

    def __init__(self, error: dict[str, Any], node_errors: dict[str, Any] | None = None) -> None:
        super().__init__(error.get("message", "invalid prompt"))
        self.error = error
        self.node_errors = node_errors or {}

    def __reduce__(self) -> tuple[Any, ...]:
        # Crosses Ray process boundaries: rebuild from the fields, not from str(self).
        return (type(self), (self.error, self.node_errors))


class JobNotFoundError(ClusterError):
    """No queued, running or finished job has this id."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"Job not found: {job_id}")
        self.job_id = job_id

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.job_id,))


class InvalidRequestError(ClusterError):
    """A request parameter is malformed; `field` names it for the 400 message."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.field, self.message))
