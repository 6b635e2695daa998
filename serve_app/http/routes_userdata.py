"""Routes for users, userdata and settings (the user area)."""

from __future__ import annotations

import logging

from fastapi import APIRouter

logger = logging.getLogger(__name__)


def build_userdata_router() -> APIRouter:
    return APIRouter()
