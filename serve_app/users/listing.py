"""The bodies of GET /userdata and GET /v2/userdata, from store listings (pure).

The store knows objects, not folders: a folder is listed when some object lies under it,
so an empty folder (possible on the file backend only) does not appear in /v2/userdata.
ComfyUI's file info has a creation time; stores keep only the modification time, which is
what `created` carries (Linux ctime, ComfyUI's source for it, is a change time anyway).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from serve_app.users.paths import relative_key
from storage.content_store import ObjectInfo

logger = logging.getLogger(__name__)


def millis(seconds: float) -> int:
    return int(seconds * 1000)


def file_info(info: ObjectInfo, folder: str) -> dict[str, Any]:
    """ComfyUI's file-info object, `path` relative to the folder key `folder`."""
    modified = millis(info.modified)
    return {
        "path": relative_key(info.key, folder),
        "size": info.size,
        "modified": modified,
        "created": modified,
    }


def _is_hidden(relative: str) -> bool:
    # ComfyUI lists with glob, which skips names (and folders) that start with a dot.
    return any(segment.startswith(".") for segment in relative.split("/"))


def userdata_listing(
    infos: Iterable[ObjectInfo],
    folder: str,
    *,
    recurse: bool,
    full_info: bool,
    split: bool,
) -> list[Any]:
    """GET /userdata's body for the objects under the folder key `folder`.

    Each file as its path relative to the folder; with `full_info` a file-info object
    (which wins over `split`); with `split` `[path, *path segments]`.
    """
    listed: list[Any] = []
    for info in sorted(infos, key=lambda item: item.key):
        relative = relative_key(info.key, folder)
        if (not recurse and "/" in relative) or _is_hidden(relative):
            continue
        if full_info:
            listed.append(file_info(info, folder))
        elif split:
            listed.append([relative, *relative.split("/")])
        else:
            listed.append(relative)
    return listed


def _sort_key(entry: dict[str, Any]) -> tuple[bool, str, str]:
    return (entry["type"] != "directory", entry["name"].lower(), entry["path"])


def tree_listing(infos: Iterable[ObjectInfo], user_root: str, folder: str) -> list[dict[str, Any]]:
    """GET /v2/userdata's body: every folder and file under `folder`, recursively.

    Paths are relative to the user's folder `user_root`; folders come first, then files,
    each group by name without regard to case. Files carry size and mtime in seconds.
    """
    entries: list[dict[str, Any]] = []
    folders: set[str] = set()
    for info in infos:
        below = relative_key(info.key, folder).split("/")
        for depth in range(1, len(below)):
            folders.add("/".join([folder, *below[:depth]]))
        entries.append(
            {
                "name": below[-1],
                "path": relative_key(info.key, user_root),
                "type": "file",
                "size": info.size,
                "modified": info.modified,
            }
        )
    for key in folders:
        entries.append(
            {
                "name": key.rsplit("/", 1)[-1],
                "path": relative_key(key, user_root),
                "type": "directory",
            }
        )
    entries.sort(key=_sort_key)
    return entries
