"""Static files served from local folders (pack WEB_DIRECTORYs, the frontend, workflows).

Client paths never become file paths here: they are checked as store keys (`..`, absolute,
NUL, backslash and percent-encoded forms refused) and read through a FileStore rooted at the
folder, which also refuses symlinks that lead outside it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from storage.content_store import ObjectNotFoundError, StoreError
from storage.file_store import FileStore
from storage.store_keys import join_key

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StaticFile:
    store: FileStore
    key: str
    size: int

    def chunks(self) -> Iterator[bytes]:
        """The bytes in chunks; opened now, so a file removed since the lookup fails here."""
        return self.store.read(self.key)


def open_folder(folder: Path | str) -> FileStore | None:
    """A read view of an existing folder; None when there is no such folder.

    Checked first because a FileStore creates its root, and serving must never create one.
    """
    path = Path(folder)
    if not path.is_dir():
        return None
    try:
        return FileStore(path, fsync=False)
    except StoreError as exc:
        logger.warning("cannot open %s: %s", path, exc)
        return None


def find_static(folders: Iterable[Path | str], *parts: str) -> StaticFile:
    """The file `parts` names in the first of `folders` that holds it.

    Raises StoreKeyError (its `.status` is 400 or 403) for a path that is malformed or leads
    out of a folder, and ObjectNotFoundError when no folder has the file.
    """
    key = join_key(*parts)  # refused before any folder is looked at
    for folder in folders:
        store = open_folder(folder)
        if store is None:
            continue
        try:
            info = store.stat(key)
        except ObjectNotFoundError:
            continue
        return StaticFile(store=store, key=info.key, size=info.size)
    raise ObjectNotFoundError(key)
