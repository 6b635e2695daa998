"""A user's files in the user area store: list, read, write, delete, move (§1.7).

Every path a client sends becomes a key `<user_id>/<clean path>` through paths.py. On the
file backend one more check follows links: a link inside one user's folder that points
into another user's folder stays inside the store (so the store allows it) but not inside
the user's folder, and is refused here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from serve_app.users.content_types import USER_CSS, download_type
from serve_app.users.errors import (
    NotAFolderError,
    UserdataConflictError,
    UserdataExistsError,
    UserdataNotFoundError,
    UserdataPathError,
)
from serve_app.users.listing import tree_listing, userdata_listing
from serve_app.users.paths import file_key, folder_key, relative_key
from storage.content_store import ContentStore, ObjectInfo, ObjectNotFoundError
from storage.store_keys import StoreKeyError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Download:
    """An open userdata file: its bytes as chunks, ready to stream."""

    key: str
    chunks: Iterator[bytes]
    media_type: str
    headers: dict[str, str]


def confine(store: ContentStore, user_id: str, key: str) -> None:
    """Refuse a key whose file (through links) lies outside the user's folder.

    Only the file backend has links; for other stores the key checks are the whole story.
    """
    try:
        path = store.local_path(key)
        root = store.local_path(user_id)
    except StoreKeyError as exc:  # a link out of the whole store
        raise UserdataPathError(f"Invalid path: {exc}", forbidden=exc.status == 403) from None
    if path is None or root is None:
        return
    if not path.resolve().is_relative_to(root.resolve()):
        raise UserdataPathError(
            f"Invalid path: {key!r} leads outside the user's folder", forbidden=True
        )


class UserFiles:
    def __init__(self, store: ContentStore, *, max_upload_bytes: int) -> None:
        self.store = store
        self.max_upload_bytes = max_upload_bytes

    # -- keys --------------------------------------------------------------------------

    def _file(self, user_id: str, path: str) -> str:
        key = file_key(user_id, path)
        confine(self.store, user_id, key)
        return key

    def _folder(self, user_id: str, path: str) -> str:
        key = folder_key(user_id, path)
        confine(self.store, user_id, key)
        return key

    def _confined(self, user_id: str, infos: Iterable[ObjectInfo]) -> list[ObjectInfo]:
        kept = []
        for info in infos:
            try:
                confine(self.store, user_id, info.key)
            except UserdataPathError:
                logger.warning("not listing %r: a link out of the user's folder", info.key)
                continue
            kept.append(info)
        return kept

    def _is_folder(self, key: str) -> bool:
        """A folder the store cannot see objects in: an empty one on the file backend."""
        path = self.store.local_path(key)
        return path is not None and path.is_dir()

    def _list(self, user_id: str, folder: str, *, recursive: bool) -> list[ObjectInfo] | None:
        """The objects under `folder`; [] for a file or an empty folder; None if missing."""
        infos = self._confined(user_id, self.store.list(folder, recursive=recursive))
        if infos or self._is_folder(folder):
            return infos
        if not recursive and self.store.list(folder, recursive=True):
            return []  # only subfolders below (S3 lists no folders without recursion)
        return [] if self.store.exists(folder) else None

    # -- listing -----------------------------------------------------------------------

    def list_files(
        self, user_id: str, path: str, *, recurse: bool, full_info: bool, split: bool
    ) -> list[Any]:
        """GET /userdata: the files of the folder `path`; a file lists as empty."""
        folder = self._folder(user_id, path)
        infos = self._list(user_id, folder, recursive=recurse)
        if infos is None and folder == user_id:
            infos = []  # ComfyUI creates the user's folder on first use: never a 404
        if infos is None:
            raise UserdataNotFoundError(f"Directory not found: {path!r}")
        return userdata_listing(infos, folder, recurse=recurse, full_info=full_info, split=split)

    def list_tree(self, user_id: str, path: str) -> list[dict[str, Any]]:
        """GET /v2/userdata: everything under `path`, folders included."""
        folder = self._folder(user_id, path)
        if folder != user_id and self.store.exists(folder):
            raise NotAFolderError(f"Path is not a directory: {path!r}")
        infos = self._list(user_id, folder, recursive=True)
        if infos is None:
            if folder == user_id:
                return []  # a user who never saved anything
            raise UserdataNotFoundError(f"Path not found: {path!r}")
        return tree_listing(infos, user_id, folder)

    # -- one file ----------------------------------------------------------------------

    def open(self, user_id: str, path: str) -> Download:
        key = self._file(user_id, path)
        try:
            chunks = self.store.read(key)
        except ObjectNotFoundError:
            raise UserdataNotFoundError(f"File not found: {path!r}") from None
        name = key.rsplit("/", 1)[-1]
        media_type, headers = download_type(name, user_css=key == f"{user_id}/{USER_CSS}")
        return Download(key=key, chunks=chunks, media_type=media_type, headers=headers)

    def write(
        self, user_id: str, path: str, chunks: Iterable[bytes], *, overwrite: bool
    ) -> ObjectInfo:
        """Store the chunks at `path`, at most max_upload_bytes (StoreTooLargeError)."""
        key = self._file(user_id, path)
        self._check_room(user_id, key, path)
        try:
            info = self.store.write(
                key, chunks, max_bytes=self.max_upload_bytes, overwrite=overwrite
            )
        except FileExistsError:
            raise UserdataExistsError(f"File already exists: {path!r}") from None
        logger.info("user %s wrote %r (%d bytes)", user_id, info.key, info.size)
        return info

    def delete(self, user_id: str, path: str) -> None:
        key = self._file(user_id, path)
        try:
            self.store.delete(key)
        except ObjectNotFoundError:
            raise UserdataNotFoundError(f"File not found: {path!r}") from None
        logger.info("user %s deleted %r", user_id, key)

    def move(self, user_id: str, source: str, dest: str, *, overwrite: bool) -> ObjectInfo:
        src_key = self._file(user_id, source)
        dst_key = self._file(user_id, dest)
        if not self.store.exists(src_key):
            raise UserdataNotFoundError(f"File not found: {source!r}")
        if not overwrite and self.store.exists(dst_key):
            raise UserdataExistsError(f"File already exists: {dest!r}")
        self._check_room(user_id, dst_key, dest)
        try:
            info = self.store.move(src_key, dst_key, overwrite=overwrite)
        except ObjectNotFoundError:
            raise UserdataNotFoundError(f"File not found: {source!r}") from None
        except FileExistsError:
            raise UserdataExistsError(f"File already exists: {dest!r}") from None
        logger.info("user %s moved %r to %r", user_id, src_key, dst_key)
        return info

    def _check_room(self, user_id: str, key: str, path: str) -> None:
        """Refuse a file under another file, or in place of a folder, on either backend.

        The file backend cannot do either; S3 could, and would then hold names the file
        backend cannot, so both answer ComfyUI's 400 for an unusable filename instead.
        """
        parts = relative_key(key, user_id).split("/")
        for depth in range(1, len(parts)):
            above = "/".join([user_id, *parts[:depth]])
            if self.store.exists(above):
                raise UserdataConflictError(
                    f"Invalid filename {path!r}: {relative_key(above, user_id)!r} is a file"
                )
        if self._is_folder(key) or self.store.list(key, recursive=True):
            raise UserdataConflictError(f"Invalid filename {path!r}: it is a folder")
