"""ComfyUI's local-server HTTP API as a FastAPI app; routes call only a `ComfyBackend`."""

from serve_app.http.app import RouteFamily, build_app, mount
from serve_app.http.backend import ComfyBackend

__all__ = ["ComfyBackend", "RouteFamily", "build_app", "mount"]
