"""users.json and user ids: parsing, new ids, and who a request is (pure, no I/O).

The registry maps user id -> the name it was created with, as ComfyUI writes it. Ids are
also folder names in the user area, so an id is only ever accepted when it is one clean key
segment; a hand-edited users.json with a slash or `..` in an id cannot widen a user's reach.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable, Mapping

from serve_app.users.errors import (
    DuplicateUsernameError,
    InvalidUsernameError,
    RegistryCorruptError,
    UnknownUserError,
)
from storage.store_keys import StoreKeyError, normalize_key

logger = logging.getLogger(__name__)

USERS_FILE = "users.json"
DEFAULT_USER = "default"
# ComfyUI reserves ids with this prefix for internal users that clients may never act as.
SYSTEM_USER_PREFIX = "__"
USER_HEADER = "comfy-user"
# The id is "<sanitized>_<uuid4>" and one path segment may hold 255 bytes: keep room.
MAX_USERNAME_CHARS = 200

_NOT_ID_CHARS = re.compile(r"[^A-Za-z0-9_-]+")


def parse_users(data: bytes | None) -> dict[str, str]:
    """The registry in users.json's bytes; None (no file) is an empty registry."""
    if data is None:
        return {}
    try:
        users = json.loads(data)
    except ValueError as exc:
        raise RegistryCorruptError(f"{USERS_FILE} is not valid JSON: {exc}") from None
    if not isinstance(users, dict) or not all(isinstance(name, str) for name in users.values()):
        raise RegistryCorruptError(f"{USERS_FILE} must be a JSON object of user id -> name")
    return dict(users)


def render_users(users: Mapping[str, str]) -> bytes:
    return json.dumps(dict(users)).encode("utf-8")


def check_username(value: object) -> str:
    """The stripped username of a POST /users body value, or InvalidUsernameError."""
    if value is None:
        raise InvalidUsernameError("Missing required body field 'username'")
    if not isinstance(value, str):
        raise InvalidUsernameError("Invalid body field 'username': must be a string")
    name = value.strip()
    if not name:
        raise InvalidUsernameError("Invalid body field 'username': must not be empty")
    if len(name) > MAX_USERNAME_CHARS:
        raise InvalidUsernameError(
            f"Invalid body field 'username': longer than {MAX_USERNAME_CHARS} characters"
        )
    return name


def user_id_stem(name: str) -> str:
    """The name with every run of characters other than letters, digits, `_`, `-` as `-`."""
    return _NOT_ID_CHARS.sub("-", name)


def new_user_id(
    name: str, users: Mapping[str, str], make_uuid: Callable[[], uuid.UUID] = uuid.uuid4
) -> str:
    """A fresh id `<stem>_<uuid4>` for the checked `name`; refuses duplicates and system ids."""
    if name in users.values():
        raise DuplicateUsernameError()
    stem = user_id_stem(name)
    if stem.startswith(SYSTEM_USER_PREFIX):
        raise InvalidUsernameError(
            f"Invalid body field 'username': must not start with {SYSTEM_USER_PREFIX!r} "
            "(reserved for system users)"
        )
    return f"{stem}_{make_uuid()}"


def is_usable_user_id(user_id: str) -> bool:
    """A non-system id that is exactly one clean key segment (a folder of the area)."""
    if not user_id or user_id.startswith(SYSTEM_USER_PREFIX) or "/" in user_id:
        return False
    if user_id == USERS_FILE:
        return False
    try:
        return normalize_key(user_id) == user_id and "%" not in user_id
    except StoreKeyError:
        return False


def resolve_user(multi_user: bool, header: str | None, users: Mapping[str, str]) -> str:
    """The user id a request acts as: `default` in single-user mode, else its header's user.

    ComfyUI falls back to `default` when a multi-user request has no header; we refuse it,
    so a client that forgot the header can never read or write another user's files.
    """
    if not multi_user:
        return DEFAULT_USER
    if header is None or header == "":
        raise UnknownUserError(
            "No user given: send the Comfy-User header with a user id from GET /users"
        )
    if header.startswith(SYSTEM_USER_PREFIX):
        raise UnknownUserError(f"Unknown user: {header!r} (system users cannot be used)")
    if header not in users or not is_usable_user_id(header):
        raise UnknownUserError(f"Unknown user: {header!r}")
    return header
