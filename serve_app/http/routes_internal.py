"""Routes for the /internal/* routes the frontend's panels use (logs, folder paths, files)."""

from __future__ import annotations

import logging

from fastapi import APIRouter

logger = logging.getLogger(__name__)


def build_internal_router() -> APIRouter:
    return APIRouter()
