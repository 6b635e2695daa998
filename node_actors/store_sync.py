"""The worker's side of the content store: node files go up, input files come down.

Nodes (ours and custom packs) read and write plain files in the worker's input, output and
temp directories, as they do in ComfyUI. The API replicas serve /view and /upload from the
content store areas instead, which may be a bucket on another machine. `StoreSync` bridges
the two:

- after a node runs, every file its UI output names ({"filename", "subfolder", "type"})
  is uploaded from the local directory to the matching area, so any replica can serve it;
- before a node reads a file of an area, the worker's local copy is fetched, or refreshed
  when its size or mtime differ from the store's object;
- LoadImage's options come from the input area's listing.

When an area's store keeps a key in the very file the worker uses (no store URI: the areas
ARE the local directories), there is nothing to copy and nothing is.

A local copy counts as current when its size equals the object's and its mtime equals the
object's `modified`: after each fetch or upload the local mtime is set to the object's, so
the next check costs one stat on each side and no bytes.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storage.areas import FILE_TYPES
from storage.content_store import (
    ContentStore,
    ObjectInfo,
    ObjectNotFoundError,
    StoreError,
    open_store,
)
from storage.store_keys import StoreKeyError, join_key, normalize_key

logger = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
# Float mtimes lose a little precision through os.utime and stat; closer than this is equal.
MTIME_TOLERANCE_S = 1e-3
# Fetches land in a hidden temp file next to the target and are renamed into place, so a
# node never reads a half-written input and a listing never shows one as an image.
_FETCH_SUFFIX = ".cr-fetch"


class StoreSyncError(RuntimeError):
    """A file could not be copied between the worker's directories and the content store."""


class UnsafeFileError(StoreSyncError):
    """A file name that would leave its area (`..`, an absolute subfolder, a link out)."""


@dataclass(frozen=True)
class UiFile:
    """One file a node's UI output names, as a key of one area."""

    area: str
    key: str


def ui_files(ui: Mapping[str, Any] | None) -> list[UiFile]:
    """The files a UI dict names: items of its lists that are dicts with a `filename` and a
    `type` of input, output or temp (other entries, e.g. text, are not files).

    Raises UnsafeFileError for a name that would leave its area.
    """
    found: list[UiFile] = []
    for name, value in (ui or {}).items():
        if not isinstance(value, list):
            continue
        for item in value:
            if not isinstance(item, Mapping):
                continue
            filename, area = item.get("filename"), item.get("type")
            if not isinstance(filename, str) or area not in FILE_TYPES:
                continue
            subfolder = item.get("subfolder") or ""
            if not isinstance(subfolder, str):
                raise UnsafeFileError(
                    f"ui output {name!r}: subfolder of {filename!r} is not a string"
                )
            try:
                key = join_key(subfolder, filename)
            except StoreKeyError as exc:
                raise UnsafeFileError(
                    f"ui output {name!r} names a file outside the {area} folder "
                    f"(subfolder {subfolder!r}, filename {filename!r}): {exc}"
                ) from exc
            entry = UiFile(area=str(area), key=key)
            if entry not in found:
                found.append(entry)
    return found


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            yield chunk


def _same_version(local: os.stat_result, remote: ObjectInfo) -> bool:
    return (
        local.st_size == remote.size and abs(local.st_mtime - remote.modified) <= MTIME_TOLERANCE_S
    )


class StoreSync:
    """Copies files between a worker's local area directories and the content store areas.

    `stores` and `directories` map area names (input, output, temp) to the area's store and
    to the worker's local directory for it. Blocking; call it from the node's thread.
    """

    def __init__(
        self, stores: Mapping[str, ContentStore], directories: Mapping[str, Path | str]
    ) -> None:
        missing = [area for area in FILE_TYPES if area not in stores or area not in directories]
        if missing:
            raise ValueError(f"store sync needs a store and a directory for {missing}")
        self._stores = {area: stores[area] for area in FILE_TYPES}
        self._dirs = {area: Path(directories[area]).absolute() for area in FILE_TYPES}
        self._local_area = {area: self._area_is_local(area) for area in FILE_TYPES}
        logger.info(
            "store sync: %s",
            {a: "local" if self._local_area[a] else repr(self._stores[a]) for a in FILE_TYPES},
        )

    @classmethod
    def open(cls, uris: Mapping[str, str], directories: Mapping[str, Path | str]) -> StoreSync:
        """Open the input, output and temp areas named by `uris` (EdgeConfig.area_uris)."""
        return cls({area: open_store(uris[area]) for area in FILE_TYPES}, directories)

    # -- where things are ----------------------------------------------------------------

    def _area_is_local(self, area: str) -> bool:
        """Whether the area's store keeps its objects in the worker's own directory."""
        local = self._stores[area].local_path(".comfyray-probe")
        if local is None:
            return False
        return os.path.realpath(local.parent) == os.path.realpath(self._dirs[area])

    def is_local(self, area: str) -> bool:
        return self._local_area[area]

    def _same_file(self, area: str, key: str, path: Path) -> bool:
        try:
            local = self._stores[area].local_path(key)
        except StoreKeyError as exc:
            raise UnsafeFileError(f"{area} file {key!r}: {exc}") from exc
        return local is not None and os.path.realpath(local) == os.path.realpath(path)

    def _local_file(self, area: str, key: str) -> Path:
        """The worker's file for a key; refused when a link takes it outside the directory."""
        directory = self._dirs[area]
        path = directory / key
        root = os.path.realpath(directory)
        if os.path.commonpath((root, os.path.realpath(path))) != root:
            raise UnsafeFileError(f"{area} file {key!r} leads outside {directory}")
        return path

    # -- node outputs go up --------------------------------------------------------------

    def upload_ui_files(self, ui: Mapping[str, Any] | None) -> list[UiFile]:
        """Upload every file `ui` names that the store does not hold yet; returns those sent.

        Raises UnsafeFileError for a name outside its area and StoreSyncError when an
        upload fails: a node whose files cannot be served must not look successful.
        """
        sent: list[UiFile] = []
        for entry in ui_files(ui):
            if self._upload(entry):
                sent.append(entry)
        return sent

    def _upload(self, entry: UiFile) -> bool:
        area, key = entry.area, entry.key
        path = self._local_file(area, key)
        if self._same_file(area, key, path):
            return False
        store = self._stores[area]
        try:
            local = path.stat()
        except FileNotFoundError:
            # ComfyUI would answer /view with 404 as well; nothing to send.
            logger.warning("ui output names %s file %r, but %s does not exist", area, key, path)
            return False
        try:
            try:
                if _same_version(local, store.stat(key)):
                    return False
            except ObjectNotFoundError:
                pass
            info = store.write(key, _file_chunks(path))
        except (StoreError, StoreKeyError, OSError) as exc:
            raise StoreSyncError(f"cannot upload {area} file {key!r} to {store!r}: {exc}") from exc
        try:
            os.utime(path, (info.modified, info.modified))
        except OSError as exc:
            # Only costs a second upload later (the versions then look different).
            logger.debug("cannot set the mtime of %s: %s", path, exc)
        logger.debug("uploaded %s file %r (%d bytes)", area, key, info.size)
        return True

    # -- input files come down -----------------------------------------------------------

    def ensure_local(self, area: str, key: str) -> bool:
        """Make the worker's copy of an area's file current; True when one was fetched.

        A key the store does not hold (or cannot name) leaves the local file as it is, so
        nodes that keep their own files in these folders still find them. Raises
        StoreSyncError when the store cannot be read.
        """
        if area not in self._stores or self._local_area[area]:
            return False
        try:
            clean = normalize_key(key)
        except StoreKeyError as exc:
            logger.debug("not fetching %s file %r: %s", area, key, exc)
            return False
        path = self._local_file(area, clean)
        if self._same_file(area, clean, path):
            return False
        store = self._stores[area]
        try:
            remote = store.stat(clean)
        except ObjectNotFoundError:
            return False
        except (StoreError, StoreKeyError) as exc:
            raise StoreSyncError(f"cannot stat {area} file {clean!r} in {store!r}: {exc}") from exc
        try:
            if _same_version(path.stat(), remote):
                return False
        except FileNotFoundError:
            pass
        self._download(area, clean, path, remote)
        return True

    def _download(self, area: str, key: str, path: Path, remote: ObjectInfo) -> None:
        store = self._stores[area]
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Checked again now that the folders exist: a link among them must not lead out.
            self._local_file(area, key)
            fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=_FETCH_SUFFIX)
        except OSError as exc:
            raise StoreSyncError(
                f"cannot create a local copy of {area} file {key!r}: {exc}"
            ) from exc
        temp = Path(temp_name)
        try:
            with os.fdopen(fd, "wb") as handle:
                for chunk in store.read(key, chunk_size=CHUNK_BYTES):
                    handle.write(chunk)
            os.utime(temp, (remote.modified, remote.modified))
            os.replace(temp, path)
        except ObjectNotFoundError:
            temp.unlink(missing_ok=True)
            logger.info("%s file %r vanished from the store while being fetched", area, key)
            return
        except (StoreError, OSError) as exc:
            temp.unlink(missing_ok=True)
            raise StoreSyncError(f"cannot fetch {area} file {key!r} from {store!r}: {exc}") from exc
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        logger.debug("fetched %s file %r (%d bytes) to %s", area, key, remote.size, path)

    # -- listings ------------------------------------------------------------------------

    def top_level_files(self, area: str) -> list[str] | None:
        """Names of the files directly in the area, from the store; None when the area is the
        local directory (the caller lists that itself)."""
        if self._local_area[area]:
            return None
        store = self._stores[area]
        try:
            return [info.key for info in store.list("", recursive=False)]
        except StoreError as exc:
            raise StoreSyncError(f"cannot list the {area} area of {store!r}: {exc}") from exc
