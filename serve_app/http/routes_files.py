"""Routes for uploads, /view, /view_metadata (files in the input, output and temp areas)."""

from __future__ import annotations

import logging

from fastapi import APIRouter

logger = logging.getLogger(__name__)


def build_files_router() -> APIRouter:
    return APIRouter()
