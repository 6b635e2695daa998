"""Routes for custom-node web files, i18n, workflow templates, global subgraphs, node replacements."""

from __future__ import annotations

import logging

from fastapi import APIRouter

logger = logging.getLogger(__name__)


def build_extensions_router() -> APIRouter:
    return APIRouter()
