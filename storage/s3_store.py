"""A content store in an S3 bucket (MinIO in production), through the minio client.

The only module that imports minio. Uploads stream as multipart parts, reads use HTTP
Range requests, so neither side ever holds a whole large object. S3 cannot create an
object only if it is missing (minio-py sends no If-None-Match), so overwrite=False is a
check before the upload: two writers racing for one new key may both succeed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import urllib3
from minio import Minio
from minio.commonconfig import CopySource
from minio.datatypes import Object
from minio.error import MinioException, S3Error

from storage.content_store import (
    ObjectInfo,
    ObjectNotFoundError,
    StoreError,
    StoreTooLargeError,
    check_range,
    normalize_prefix,
    redact_uri,
)
from storage.store_keys import StoreKeyError, normalize_key

logger = logging.getLogger(__name__)

# minio-py needs a part size for streams of unknown length; 16 MiB keeps a 100 GiB object
# under S3's 10,000-part limit while one part stays a modest buffer.
DEFAULT_PART_SIZE = 16 << 20

_NOT_FOUND = frozenset({"NoSuchKey", "NoSuchObject", "ResourceNotFound"})
_BUCKET_EXISTS = frozenset({"BucketAlreadyOwnedByYou", "BucketAlreadyExists"})
# Network failures surface from urllib3 and the socket layer, not as MinioException.
_TRANSPORT_ERRORS = (MinioException, urllib3.exceptions.HTTPError, OSError, ValueError)


@contextmanager
def _s3_errors(action: str, key: str) -> Iterator[None]:
    try:
        yield
    except S3Error as exc:
        if exc.code in _NOT_FOUND:
            raise ObjectNotFoundError(key) from None
        raise StoreError(f"s3 {action} {key!r} failed: {exc.code}: {exc.message}") from exc
    except (StoreError, StoreKeyError, FileExistsError):
        raise
    except _TRANSPORT_ERRORS as exc:
        raise StoreError(f"s3 {action} {key!r} failed: {exc}") from exc


class _SourceFailure(Exception):
    """Carries an error of the caller's chunk iterator through minio, to be re-raised as is."""

    def __init__(self, original: Exception) -> None:
        super().__init__(str(original))
        self.original = original


class _ChunkReader:
    """A file-like view of an iterable of chunks, for put_object's read(n).

    It hands back exactly n bytes per call (fewer only at the end): minio appends what
    read() returns to a bytes object, so many small reads would copy each part many times.
    It also enforces max_bytes while the upload streams.
    """

    def __init__(self, chunks: Iterable[bytes], key: str, max_bytes: int | None) -> None:
        self._chunks = iter(chunks)
        self._key = key
        self._max_bytes = max_bytes
        self._pending = b""
        self.total = 0

    def read(self, size: int = -1) -> bytes:
        pieces = [self._pending] if self._pending else []
        held = len(self._pending)
        while size < 0 or held < size:
            try:
                chunk = next(self._chunks, None)
                if chunk is None:
                    break
                chunk = bytes(chunk)
            except Exception as exc:
                raise _SourceFailure(exc) from exc
            self.total += len(chunk)
            if self._max_bytes is not None and self.total > self._max_bytes:
                raise StoreTooLargeError(self._key, self._max_bytes)
            pieces.append(chunk)
            held += len(chunk)
        data = b"".join(pieces)
        if size < 0 or len(data) <= size:
            self._pending = b""
            return data
        self._pending = data[size:]
        return data[:size]


class S3Store:
    def __init__(
        self,
        *,
        uri: str,
        bucket: str,
        endpoint: str,
        access_key: str | None,
        secret_key: str | None,
        secure: bool = True,
        region: str | None = None,
        prefix: str = "",
        part_size: int = DEFAULT_PART_SIZE,
        upload_threads: int = 3,
        create_bucket: bool = True,
    ) -> None:
        self.uri = uri
        self.bucket = bucket
        self.prefix = normalize_prefix(prefix)
        self._part_size = part_size
        self._upload_threads = upload_threads
        try:
            self._client = Minio(
                endpoint,
                access_key=access_key,
                secret_key=secret_key,
                secure=secure,
                region=region,
            )
        except ValueError as exc:
            raise StoreError(f"s3 store URI: bad endpoint {endpoint!r} ({exc})") from exc
        if create_bucket:
            self._ensure_bucket(region)

    def __repr__(self) -> str:
        return f"S3Store({redact_uri(self.uri)!r})"

    def _ensure_bucket(self, region: str | None) -> None:
        try:
            if self._client.bucket_exists(self.bucket):
                return
            self._client.make_bucket(self.bucket, location=region)
            logger.info("created bucket %r for %s", self.bucket, redact_uri(self.uri))
        except S3Error as exc:
            if exc.code in _BUCKET_EXISTS:
                return  # another replica created it first
            raise StoreError(
                f"s3 store: bucket {self.bucket!r}: {exc.code}: {exc.message}"
            ) from exc
        except ValueError as exc:
            raise StoreError(f"s3 store URI: bad bucket name {self.bucket!r} ({exc})") from exc
        except _TRANSPORT_ERRORS as exc:
            raise StoreError(f"s3 store: cannot reach {redact_uri(self.uri)}: {exc}") from exc

    # -- names -------------------------------------------------------------------------

    def _name(self, clean: str) -> str:
        return f"{self.prefix}/{clean}" if self.prefix else clean

    def _key_of(self, name: str) -> str:
        return name[len(self.prefix) + 1 :] if self.prefix else name

    def local_path(self, key: str) -> Path | None:
        normalize_key(key)
        return None

    # -- reading -----------------------------------------------------------------------

    def stat(self, key: str) -> ObjectInfo:
        return self._stat(normalize_key(key))

    def _stat(self, clean: str) -> ObjectInfo:
        with _s3_errors("stat", clean):
            found = self._client.stat_object(self.bucket, self._name(clean))
        if found.is_dir:
            raise ObjectNotFoundError(clean)
        return _info(clean, found)

    def exists(self, key: str) -> bool:
        try:
            self._stat(normalize_key(key))
        except ObjectNotFoundError:
            return False
        return True

    def read(
        self, key: str, start: int = 0, end: int | None = None, chunk_size: int = 1 << 20
    ) -> Iterator[bytes]:
        check_range(start, end)
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be > 0, got {chunk_size}")
        clean = normalize_key(key)
        if end is not None and end <= start:
            self._stat(clean)  # an empty range of a missing object is still a 404
            return iter(())
        try:
            with _s3_errors("read", clean):
                response = self._client.get_object(
                    self.bucket,
                    self._name(clean),
                    offset=start,
                    length=0 if end is None else end - start,
                )
        except StoreError as exc:
            # A range that starts past the end: S3 answers 416, the file store reads nothing.
            cause = exc.__cause__
            if isinstance(cause, S3Error) and cause.code == "InvalidRange":
                self._stat(clean)
                return iter(())
            raise
        return _ResponseChunks(response, clean, chunk_size)

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
        clean = normalize_key(key)
        if not overwrite and self.exists(clean):
            raise FileExistsError(f"object {clean!r} exists")
        reader = _ChunkReader(chunks, clean, max_bytes)
        # An exception from the reader (StoreTooLargeError, or the caller's own stream
        # failing) makes minio abort the multipart upload, so no object appears.
        try:
            with _s3_errors("write", clean):
                self._client.put_object(
                    self.bucket,
                    self._name(clean),
                    reader,  # type: ignore[arg-type]  # minio only calls read()
                    length=-1,
                    part_size=self._part_size,
                    num_parallel_uploads=self._upload_threads,
                )
        except _SourceFailure as failure:
            raise failure.original from None
        logger.debug("wrote %r (%d bytes) to bucket %r", clean, reader.total, self.bucket)
        return self._stat(clean)

    def write_bytes(self, key: str, data: bytes, *, overwrite: bool = True) -> ObjectInfo:
        return self.write(key, (data,), overwrite=overwrite)

    # -- changing ----------------------------------------------------------------------

    def delete(self, key: str) -> None:
        clean = normalize_key(key)
        self._stat(clean)  # S3 deletes of missing keys succeed silently; ours must not
        with _s3_errors("delete", clean):
            self._client.remove_object(self.bucket, self._name(clean))
        logger.debug("deleted %r from bucket %r", clean, self.bucket)

    def move(self, src: str, dst: str, *, overwrite: bool = False) -> ObjectInfo:
        src_clean = normalize_key(src)
        dst_clean = normalize_key(dst)
        self._stat(src_clean)
        if src_clean == dst_clean:
            if not overwrite:
                raise FileExistsError(f"object {dst_clean!r} exists")
            return self._stat(dst_clean)
        if not overwrite and self.exists(dst_clean):
            raise FileExistsError(f"object {dst_clean!r} exists")
        # S3 has no rename: a server-side copy (no bytes through us), then the delete.
        with _s3_errors("move", src_clean):
            self._client.copy_object(
                self.bucket, self._name(dst_clean), CopySource(self.bucket, self._name(src_clean))
            )
            self._client.remove_object(self.bucket, self._name(src_clean))
        logger.debug("moved %r to %r in bucket %r", src_clean, dst_clean, self.bucket)
        return self._stat(dst_clean)

    # -- listing -----------------------------------------------------------------------

    def list(self, prefix: str = "", *, recursive: bool = True) -> list[ObjectInfo]:
        folder = normalize_prefix(prefix)
        base = "/".join(part for part in (self.prefix, folder) if part)
        found: list[ObjectInfo] = []
        with _s3_errors("list", folder):
            for item in self._client.list_objects(
                self.bucket, prefix=f"{base}/" if base else None, recursive=recursive
            ):
                name = item.object_name or ""
                if item.is_dir or name.endswith("/"):
                    continue  # a folder (common prefix), not an object
                key = self._key_of(name)
                if not _is_clean(key):
                    logger.debug("skipping %r in bucket %r: not a valid key", name, self.bucket)
                    continue
                found.append(_info(key, item))
        found.sort(key=lambda info: info.key)
        return found


def _info(key: str, item: Object) -> ObjectInfo:
    modified = item.last_modified.timestamp() if item.last_modified is not None else 0.0
    return ObjectInfo(key=key, size=int(item.size or 0), modified=modified)


def _is_clean(key: str) -> bool:
    try:
        return normalize_key(key) == key
    except StoreKeyError:
        return False


class _ResponseChunks(Iterator[bytes]):
    """The body of a GET as chunks; close() frees the connection even if never iterated.

    A plain generator would not: closing one that never started skips its finally block.
    """

    def __init__(self, response: urllib3.BaseHTTPResponse, clean: str, chunk_size: int) -> None:
        self._response: urllib3.BaseHTTPResponse | None = response
        self._chunks = response.stream(chunk_size)
        self._clean = clean

    def __next__(self) -> bytes:
        if self._response is None:
            raise StopIteration
        try:
            with _s3_errors("read", self._clean):
                return next(self._chunks)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        response, self._response = self._response, None
        if response is not None:
            response.close()
            response.release_conn()

    def __del__(self) -> None:
        self.close()
