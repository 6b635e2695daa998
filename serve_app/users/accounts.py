"""The user registry in the user area store: who exists, who a request is, new users.

users.json is read on every request rather than cached, so a user created through one API
replica is known to all of them at once. Its update is read-modify-write: a lock makes it
safe within a replica; two replicas creating users in the same instant can lose one (S3
offers no compare-and-swap through the minio client), which users.json's tiny write rate
makes an accepted risk.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from serve_app.users.errors import RegistryCorruptError
from serve_app.users.registry import (
    DEFAULT_USER,
    USERS_FILE,
    check_username,
    new_user_id,
    parse_users,
    render_users,
    resolve_user,
)
from serve_app.users.settings import SETTINGS_FILE
from storage.content_store import ContentStore, ObjectNotFoundError

logger = logging.getLogger(__name__)

STORAGE_KIND = "server"


class Accounts:
    def __init__(self, store: ContentStore, *, multi_user: bool) -> None:
        self.store = store
        self.multi_user = multi_user
        self._lock = threading.Lock()

    def _read_registry(self) -> dict[str, str]:
        try:
            data = self.store.read_bytes(USERS_FILE)
        except ObjectNotFoundError:
            return {}
        return parse_users(data)

    def users(self) -> dict[str, str]:
        """The registry; a corrupt users.json reads as empty (every user unknown)."""
        try:
            return self._read_registry()
        except RegistryCorruptError as exc:
            logger.error("%s; no user can be resolved until it is fixed", exc.message)
            return {}

    def resolve(self, header: str | None) -> str:
        """The user id of a request with this Comfy-User header (UnknownUserError)."""
        users = self.users() if self.multi_user else {}
        return resolve_user(self.multi_user, header, users)

    def add(self, username: object) -> str:
        """Register a user named `username`; its new id. A corrupt registry is not replaced."""
        name = check_username(username)
        with self._lock:
            users = self._read_registry()
            user_id = new_user_id(name, users)
            users[user_id] = name
            self.store.write_bytes(USERS_FILE, render_users(users))
        logger.info("created user %s (%r)", user_id, name)
        return user_id

    def has_data(self, user_id: str) -> bool:
        """Whether the user's folder holds anything (settings first: one cheap look-up)."""
        if self.store.exists(f"{user_id}/{SETTINGS_FILE}"):
            return True
        return bool(self.store.list(user_id, recursive=True))

    def info(self) -> dict[str, Any]:
        """GET /users.

        Single-user: `migrated` tells the web frontend whether server storage is in use
        yet. It is true once the default user's folder holds anything; while false, the
        frontend copies the settings it kept in the browser to POST /settings on load.
        Multi-user: the registry, for the frontend's user picker.
        """
        if self.multi_user:
            return {"storage": STORAGE_KIND, "users": self.users()}
        return {"storage": STORAGE_KIND, "migrated": self.has_data(DEFAULT_USER)}
