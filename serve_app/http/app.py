"""The FastAPI app and ComfyUI's dual-path route mounting (§1.0).

ComfyUI serves each core route at its bare path and again under `/api`; routes declared
with an `/api` path exist there and under `/api/api` (never bare); `/internal/*` exists only
bare. `mount` reproduces that, putting exactly one copy of each route into the schema.
"""

from __future__ import annotations

import enum
import logging

from fastapi import APIRouter, FastAPI

from serve_app.edge import EdgeServices
from serve_app.http.backend import ComfyBackend
from serve_app.http.errors import install_error_handlers
from serve_app.http.frontend import install_frontend
from serve_app.http.openapi_contract import install_openapi
from serve_app.http.routes_extensions import (
    build_extension_files_router,
    build_extensions_router,
)
from serve_app.http.routes_files import build_files_router
from serve_app.http.routes_history import build_history_router
from serve_app.http.routes_internal import build_internal_router
from serve_app.http.routes_jobs import build_jobs_router
from serve_app.http.routes_prompt import build_prompt_router
from serve_app.http.routes_system import build_system_router
from serve_app.http.routes_userdata import build_userdata_router

logger = logging.getLogger(__name__)

API_PREFIX = "/api"
APP_TITLE = "ComfyUI API (comfyray)"
APP_VERSION = "0.1.0"
APP_DESCRIPTION = (
    "ComfyUI's local-server API, served by a Ray cluster.\n\n"
    "Every core route is also served at its bare path (`/prompt` as well as `/api/prompt`); "
    "this description lists the `/api` copies. `/api/jobs` routes are also served under "
    "`/api/api/jobs`; `/internal/*` and `/ws` only bare."
)


class RouteFamily(enum.Enum):
    """Where a router's paths are served; the first path listed is the one documented."""

    COMFY = "bare path and /api copy"  # declared bare, e.g. "/prompt"
    API = "declared /api path and /api/api copy"  # declared with /api, e.g. "/api/jobs"
    INTERNAL = "bare path only"  # "/internal/..."


def mount(app: FastAPI, router: APIRouter, family: RouteFamily) -> None:
    """Include `router` at the paths its family is served at (§1.0)."""
    if family is RouteFamily.COMFY:
        app.include_router(router, prefix=API_PREFIX)
        app.include_router(router, include_in_schema=False)
    elif family is RouteFamily.API:
        app.include_router(router)
        app.include_router(router, prefix=API_PREFIX, include_in_schema=False)
    else:
        app.include_router(router)


def build_app(backend: ComfyBackend | None = None, edge: EdgeServices | None = None) -> FastAPI:
    """The app with every served route; `app.state.backend` and `.edge` may also be set later."""
    app = FastAPI(
        title=APP_TITLE,
        version=APP_VERSION,
        description=APP_DESCRIPTION,
        # ComfyUI serves its embedded docs under /docs/...; keep that space free.
        docs_url=None,
        redoc_url=None,
        separate_input_output_schemas=False,
    )
    app.state.backend = backend
    app.state.edge = edge
    install_error_handlers(app)
    mount(app, build_prompt_router(), RouteFamily.COMFY)
    mount(app, build_history_router(), RouteFamily.COMFY)
    mount(app, build_system_router(), RouteFamily.COMFY)
    mount(app, build_files_router(), RouteFamily.COMFY)
    mount(app, build_userdata_router(), RouteFamily.COMFY)
    mount(app, build_extensions_router(), RouteFamily.COMFY)
    mount(app, build_jobs_router(), RouteFamily.API)
    mount(app, build_internal_router(), RouteFamily.INTERNAL)
    mount(app, build_extension_files_router(), RouteFamily.INTERNAL)
    install_openapi(app)
    # Last: the frontend's static files answer only paths no API route claimed.
    install_frontend(app, edge)
    logger.debug("app built with %d routes", len(app.routes))
    return app
