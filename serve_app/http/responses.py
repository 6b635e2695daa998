"""Response helpers shared by the route modules."""

from __future__ import annotations

import json
from typing import Any

from fastapi.responses import JSONResponse, Response


class ComfyJSONResponse(JSONResponse):
    """JSON as ComfyUI's `json.dumps` writes it: NaN and Infinity pass through.

    Starlette refuses them, which would turn a history entry holding a NaN into a 500.
    """

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def json_response(content: Any, status_code: int = 200) -> ComfyJSONResponse:
    return ComfyJSONResponse(content, status_code=status_code)


def empty_ok() -> Response:
    """ComfyUI's bare `200` with no body, the answer of its mutating queue routes."""
    return Response(status_code=200)
