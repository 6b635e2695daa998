"""The settings file's format and its merge rules (pure).

ComfyUI keeps a user's settings in `comfy.settings.json`, indented by 4. A file that is
missing, unreadable JSON or not an object reads as no settings, so one bad write can never
lock a user out of the web frontend.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger(__name__)

SETTINGS_FILE = "comfy.settings.json"


def parse_settings(data: bytes | None) -> dict[str, Any]:
    if data is None:
        return {}
    try:
        settings = json.loads(data)
    except ValueError as exc:
        logger.warning("%s is not valid JSON (%s); reading it as empty", SETTINGS_FILE, exc)
        return {}
    if not isinstance(settings, dict):
        logger.warning("%s is not a JSON object; reading it as empty", SETTINGS_FILE)
        return {}
    return settings


def render_settings(settings: Mapping[str, Any]) -> bytes:
    return json.dumps(dict(settings), indent=4).encode("utf-8")


def merge_settings(current: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """Shallow: each top-level key of `changes` replaces the stored value as a whole."""
    return {**current, **changes}
