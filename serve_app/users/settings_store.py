"""A user's settings in the user area store: `<user_id>/comfy.settings.json`.

Updates are read-modify-write under a lock, because the web frontend posts one setting
per request and often several at once; without it two concurrent posts on one replica
would lose one. Across replicas the same race remains (no compare-and-swap on S3).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from serve_app.users.files import confine
from serve_app.users.settings import (
    SETTINGS_FILE,
    merge_settings,
    parse_settings,
    render_settings,
)
from storage.content_store import ContentStore, ObjectNotFoundError

logger = logging.getLogger(__name__)


class UserSettings:
    def __init__(self, store: ContentStore) -> None:
        self.store = store
        self._lock = threading.Lock()

    def _key(self, user_id: str) -> str:
        key = f"{user_id}/{SETTINGS_FILE}"
        confine(self.store, user_id, key)
        return key

    def load(self, user_id: str) -> dict[str, Any]:
        """All settings; {} when the file is missing or corrupt."""
        try:
            data = self.store.read_bytes(self._key(user_id))
        except ObjectNotFoundError:
            return {}
        return parse_settings(data)

    def get(self, user_id: str, setting_id: str) -> Any:
        """One setting's value; None when it is not set."""
        return self.load(user_id).get(setting_id)

    def update(self, user_id: str, changes: Mapping[str, Any]) -> None:
        with self._lock:
            settings = merge_settings(self.load(user_id), changes)
            self.store.write_bytes(self._key(user_id), render_settings(settings))
        logger.debug("user %s updated settings %s", user_id, sorted(changes))

    def set(self, user_id: str, setting_id: str, value: Any) -> None:
        self.update(user_id, {setting_id: value})
