"""The ComfyUI web frontend (comfyui-frontend-package) served at `/`."""

from __future__ import annotations

import logging

from fastapi import FastAPI

from serve_app.edge import EdgeServices

logger = logging.getLogger(__name__)


def install_frontend(app: FastAPI, edge: EdgeServices | None) -> None:
    """Serve the frontend's files under `/` after every API route."""
