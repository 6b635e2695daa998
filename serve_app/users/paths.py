"""Client paths of userdata routes as store keys under one user's folder (pure).

Every check is the store's own (storage/store_keys.py): a path that is malformed answers
400, one that would climb out of the folder 403. Keys are `<user_id>/<clean path>`, and
since no clean path can hold `..` or start with `/`, no key of user A names user B's file.
"""

from __future__ import annotations

import logging
from urllib.parse import unquote

from serve_app.users.errors import UserdataPathError
from storage.store_keys import StoreKeyError, join_key, normalize_key

logger = logging.getLogger(__name__)

MOVE_MARK = "/move/"
USERDATA_MARK = "/userdata/"


def client_path(text: str) -> str:
    """A path as ComfyUI reads it: percent-decoded once more only if it still holds `%`.

    The web frontend encodes the whole path (`workflows%2Fa.json`), and some proxies leave
    that encoding in place after the server has decoded the URL once.
    """
    return unquote(text) if "%" in text else text


def _path_error(exc: StoreKeyError) -> UserdataPathError:
    return UserdataPathError(f"Invalid path: {exc}", forbidden=exc.status == 403)


def file_key(user_id: str, path: str) -> str:
    """The key of the file `path` in the user's folder; the path must name something."""
    try:
        return join_key(user_id, normalize_key(path))
    except StoreKeyError as exc:
        raise _path_error(exc) from None


def folder_key(user_id: str, path: str) -> str:
    """The key of the folder `path` ("" or "." is the user's folder itself)."""
    try:
        return join_key(user_id, path)
    except StoreKeyError as exc:
        raise _path_error(exc) from None


def relative_key(key: str, folder: str) -> str:
    """`key` relative to the folder key `folder` (which must contain it)."""
    if not key.startswith(folder + "/"):
        raise ValueError(f"{key!r} is not inside {folder!r}")
    return key[len(folder) + 1 :]


def split_move_path(raw_path: str | None, file: str, dest: str) -> tuple[str, str]:
    """Source and destination of a move, split where the client put its `/move/`.

    The router splits the decoded path at the last `/move/`, which is wrong when the
    destination itself contains a `move` folder. Clients encode both paths, so the raw
    (still encoded) path has exactly one literal `/move/`; when it does and agrees with the
    router's split after decoding, it wins. Otherwise the router's split stands.
    """
    if not raw_path:
        return file, dest
    _, found, tail = raw_path.partition(USERDATA_MARK)
    if not found or tail.count(MOVE_MARK) != 1:
        return file, dest
    raw_file, raw_dest = tail.split(MOVE_MARK)
    src, dst = unquote(raw_file), unquote(raw_dest)
    if f"{src}{MOVE_MARK}{dst}" != f"{file}{MOVE_MARK}{dest}":
        return file, dest
    return src, dst
