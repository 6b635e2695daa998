"""A content store in a local folder (`file://DIR`), the embedded default.

Writes go to a hidden temp file in the target folder and are renamed into place, so a
reader sees either the old object or the whole new one, never a partial file. Every key is
resolved and checked against the root, which also refuses symlinks that lead outside it.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from storage.content_store import (
    ObjectInfo,
    ObjectNotFoundError,
    StoreError,
    StoreTooLargeError,
    check_range,
    normalize_prefix,
)
from storage.store_keys import StoreKeyError, normalize_key

logger = logging.getLogger(__name__)

# Temp files share the target folder (so the rename is atomic) and are hidden from list().
_PARTIAL_SUFFIX = ".cr-partial"


def _is_partial(name: str) -> bool:
    return name.startswith(".") and name.endswith(_PARTIAL_SUFFIX)


class FileStore:
    def __init__(self, root: Path, *, uri: str | None = None, fsync: bool = True) -> None:
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create store folder {str(root)!r}: {exc}") from exc
        self.root = root.resolve()
        self.uri = uri if uri is not None else self.root.as_uri()
        # fsync before the rename so a crash never leaves a renamed but empty file.
        self._fsync = fsync

    def __repr__(self) -> str:
        return f"FileStore({str(self.root)!r})"

    # -- paths -------------------------------------------------------------------------

    def _path(self, key: str) -> tuple[str, Path]:
        """The clean key and its path; StoreKeyError(403) if it resolves outside the root."""
        clean = normalize_key(key)
        path = self.root / clean
        # resolve() follows every symlink that exists along the way, so a link inside the
        # store that points elsewhere is caught here, whatever the method.
        if not path.resolve().is_relative_to(self.root):
            raise StoreKeyError(f"key {key!r} leads outside the store", 403)
        return clean, path

    def local_path(self, key: str) -> Path | None:
        """The file for `key` (it need not exist yet), for nodes that must have a path."""
        return self._path(key)[1]

    # -- reading -----------------------------------------------------------------------

    def stat(self, key: str) -> ObjectInfo:
        clean, path = self._path(key)
        return self._info(clean, path)

    def _info(self, clean: str, path: Path) -> ObjectInfo:
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFoundError(clean) from None
        except OSError as exc:
            raise StoreError(f"cannot stat {clean!r}: {exc}") from exc
        if not path.is_file():
            raise ObjectNotFoundError(clean)
        return ObjectInfo(key=clean, size=st.st_size, modified=st.st_mtime)

    def exists(self, key: str) -> bool:
        _, path = self._path(key)
        return path.is_file()

    def read(
        self, key: str, start: int = 0, end: int | None = None, chunk_size: int = 1 << 20
    ) -> Iterator[bytes]:
        check_range(start, end)
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be > 0, got {chunk_size}")
        clean, path = self._path(key)
        try:
            handle = path.open("rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectNotFoundError(clean) from None
        except OSError as exc:
            raise StoreError(f"cannot read {clean!r}: {exc}") from exc
        # Opened here, not inside the generator, so a missing key fails at the call.
        return _stream(handle, start, end, chunk_size)

    def read_bytes(self, key: str) -> bytes:
        return b"".join(self.read(key))

    # -- writing -----------------------------------------------------------------------

    def write(
        self,
        key: str,
        chunks: Iterable[bytes],
        *,
        max_bytes: int | None = None,
        overwrite: bool = True,
    ) -> ObjectInfo:
        clean, path = self._path(key)
        if not overwrite and path.is_file():
            raise FileExistsError(f"object {clean!r} exists")
        created = self._make_parents(clean, path)
        try:
            # Errors of the caller's own stream pass through as they are; only our file
            # operations are translated (inside _write_temp and here).
            temp = self._write_temp(clean, path, chunks, max_bytes)
            try:
                with _os_errors("write", clean):
                    self._publish(temp, path, overwrite, clean)
            finally:
                temp.unlink(missing_ok=True)
        except BaseException:
            _remove_empty(created)
            raise
        logger.debug("wrote %r to %s", clean, self.root)
        return self._info(clean, path)

    def write_bytes(self, key: str, data: bytes, *, overwrite: bool = True) -> ObjectInfo:
        return self.write(key, (data,), overwrite=overwrite)

    def _make_parents(self, clean: str, path: Path) -> list[Path]:
        """Create the missing parent folders; returned deepest first, to undo a failed write."""
        missing: list[Path] = []
        parent = path.parent
        while parent != self.root and not parent.exists():
            missing.append(parent)
            parent = parent.parent
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:
            raise StoreError(f"cannot write {clean!r}: a file is in the way of its folder") from exc
        return missing

    def _write_temp(
        self, clean: str, path: Path, chunks: Iterable[bytes], max_bytes: int | None
    ) -> Path:
        # Not derived from the object's name, which may already be at the length limit.
        temp = path.with_name(f".{secrets.token_hex(8)}{_PARTIAL_SUFFIX}")
        # os.open with 0o666 lets the umask decide the mode, as for any new file.
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        with _os_errors("write", clean):
            try:
                fd = os.open(temp, flags, 0o666)
            except FileNotFoundError:
                # A concurrent failed write removed the folder it had just made: once more.
                path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(temp, flags, 0o666)
        try:
            with os.fdopen(fd, "wb") as handle:
                total = 0
                for chunk in chunks:
                    total += len(chunk)
                    if max_bytes is not None and total > max_bytes:
                        raise StoreTooLargeError(clean, max_bytes)
                    with _os_errors("write", clean):
                        handle.write(chunk)
                with _os_errors("write", clean):
                    handle.flush()
                    if self._fsync:
                        os.fsync(handle.fileno())
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return temp

    def _publish(self, temp: Path, path: Path, overwrite: bool, clean: str) -> None:
        if overwrite:
            os.replace(temp, path)
        else:
            _link_no_clobber(temp, path, clean)

    # -- changing ----------------------------------------------------------------------

    def delete(self, key: str) -> None:
        clean, path = self._path(key)
        if not path.is_file():
            raise ObjectNotFoundError(clean)
        try:
            path.unlink()
        except FileNotFoundError:
            raise ObjectNotFoundError(clean) from None
        except OSError as exc:
            raise StoreError(f"cannot delete {clean!r}: {exc}") from exc
        logger.debug("deleted %r from %s", clean, self.root)

    def move(self, src: str, dst: str, *, overwrite: bool = False) -> ObjectInfo:
        src_clean, src_path = self._path(src)
        dst_clean, dst_path = self._path(dst)
        self._info(src_clean, src_path)  # ObjectNotFoundError before anything changes
        if src_clean == dst_clean:
            if not overwrite:
                raise FileExistsError(f"object {dst_clean!r} exists")
            return self._info(dst_clean, dst_path)
        if not overwrite and dst_path.is_file():
            raise FileExistsError(f"object {dst_clean!r} exists")
        self._make_parents(dst_clean, dst_path)
        try:
            with _os_errors("move to", dst_clean):
                if overwrite:
                    os.replace(src_path, dst_path)
                else:
                    _link_no_clobber(src_path, dst_path, dst_clean)
                    src_path.unlink(missing_ok=True)
        except ObjectNotFoundError:
            raise ObjectNotFoundError(src_clean) from None
        logger.debug("moved %r to %r in %s", src_clean, dst_clean, self.root)
        return self._info(dst_clean, dst_path)

    # -- listing -----------------------------------------------------------------------

    def list(self, prefix: str = "", *, recursive: bool = True) -> list[ObjectInfo]:
        folder_key = normalize_prefix(prefix)
        if folder_key:
            folder_key, folder = self._path(folder_key)
        else:
            folder = self.root
        if not folder.is_dir():
            return []
        found: list[ObjectInfo] = []
        if recursive:
            # followlinks=False: a linked folder is not walked, so a link to "/" cannot
            # make list() enumerate the machine.
            for dirpath, _dirnames, filenames in os.walk(folder):
                self._collect(Path(dirpath), filenames, found)
        else:
            names = [entry.name for entry in os.scandir(folder)]
            self._collect(folder, names, found)
        found.sort(key=lambda info: info.key)
        return found

    def _collect(self, folder: Path, names: Iterable[str], found: list[ObjectInfo]) -> None:
        for name in names:
            if _is_partial(name):
                continue
            path = folder / name
            if not path.resolve().is_relative_to(self.root):
                continue
            try:
                st = path.stat()
            except OSError:
                continue  # deleted while listing, or a dangling link
            if not path.is_file():
                continue
            key = path.relative_to(self.root).as_posix()
            found.append(ObjectInfo(key=key, size=st.st_size, modified=st.st_mtime))


def _stream(handle: BinaryIO, start: int, end: int | None, chunk_size: int) -> Iterator[bytes]:
    with handle:
        handle.seek(start)
        remaining = None if end is None else max(0, end - start)
        while remaining is None or remaining > 0:
            size = chunk_size if remaining is None else min(chunk_size, remaining)
            chunk = handle.read(size)
            if not chunk:
                return
            if remaining is not None:
                remaining -= len(chunk)
            yield chunk


def _link_no_clobber(source: Path, target: Path, clean: str) -> None:
    """Give `source` the name `target` unless `target` exists, atomically.

    A hard link fails with EEXIST instead of replacing, which makes "create only" safe
    against a concurrent writer; the source name stays and the caller removes it.
    """
    try:
        os.link(source, target)
    except FileExistsError:
        if target.is_dir():
            raise IsADirectoryError(errno.EISDIR, "a folder is in the way", str(target)) from None
        raise FileExistsError(f"object {clean!r} exists") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        # Some file systems (FUSE, SMB) have no hard links: check, then rename (racy).
        if target.exists():
            raise FileExistsError(f"object {clean!r} exists") from None
        os.replace(source, target)
        logger.warning(
            "no hard links under %s; create-only write of %r is not atomic", target, clean
        )


@contextmanager
def _os_errors(action: str, clean: str) -> Iterator[None]:
    """OS errors as store errors; FileExistsError stays (it is the overwrite=False answer)."""
    try:
        yield
    except FileExistsError:
        raise
    except FileNotFoundError as exc:
        raise ObjectNotFoundError(clean) from exc
    except (IsADirectoryError, NotADirectoryError) as exc:
        raise StoreError(f"cannot {action} {clean!r}: a folder is in the way") from exc
    except OSError as exc:
        if exc.errno in (errno.EISDIR, errno.ENOTEMPTY, errno.ENOTDIR):
            raise StoreError(f"cannot {action} {clean!r}: a folder is in the way") from exc
        raise StoreError(f"cannot {action} {clean!r}: {exc}") from exc


def _remove_empty(folders: list[Path]) -> None:
    """Remove folders a failed write created, deepest first, if they are still empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return  # another writer put something there; leave it
