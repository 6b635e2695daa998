"""The content store: one place for inputs, outputs, temp files and user data.

Every API replica and worker opens the same store by URI, so bytes written on one machine
are served from any other. Two backends implement the protocol: `file://DIR` (the embedded
default, storage/file_store.py) and `s3://BUCKET?...` (storage/s3_store.py, the only module
that imports minio). Keys are relative POSIX paths checked by storage/store_keys.py.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit

from storage.store_keys import StoreKeyError, join_key, normalize_key

logger = logging.getLogger(__name__)

__all__ = [
    "check_range",
    "normalize_prefix",
    "redact_uri",
    "ContentStore",
    "ObjectInfo",
    "ObjectNotFoundError",
    "StoreError",
    "StoreKeyError",
    "StoreTooLargeError",
    "join_key",
    "normalize_key",
    "open_store",
]


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    modified: float  # epoch seconds


class StoreError(Exception):
    """The store cannot do what was asked (bad URI, unreachable server, conflicting paths)."""


class ObjectNotFoundError(StoreError):
    """No object under the key."""

    def __init__(self, key: str) -> None:
        super().__init__(f"no object {key!r}")
        self.key = key


class StoreTooLargeError(StoreError):
    """A write went over its max_bytes; nothing of it was kept."""

    def __init__(self, key: str, max_bytes: int) -> None:
        super().__init__(f"object {key!r} is larger than {max_bytes} bytes")
        self.key = key
        self.max_bytes = max_bytes


@runtime_checkable
class ContentStore(Protocol):
    uri: str

    def stat(self, key: str) -> ObjectInfo: ...

    def exists(self, key: str) -> bool: ...

    def read(
        self, key: str, start: int = 0, end: int | None = None, chunk_size: int = 1 << 20
    ) -> Iterator[bytes]:
        """Bytes [start, end) in chunks of at most chunk_size.

        A missing key raises ObjectNotFoundError from the call itself, not from the first
        next(), so an HTTP route can answer 404 before it starts a response.
        """
        ...

    def read_bytes(self, key: str) -> bytes: ...

    def write(
        self,
        key: str,
        chunks: Iterable[bytes],
        *,
        max_bytes: int | None = None,
        overwrite: bool = True,
    ) -> ObjectInfo: ...

    def write_bytes(self, key: str, data: bytes, *, overwrite: bool = True) -> ObjectInfo: ...

    def delete(self, key: str) -> None: ...

    def move(self, src: str, dst: str, *, overwrite: bool = False) -> ObjectInfo: ...

    def list(self, prefix: str = "", *, recursive: bool = True) -> list[ObjectInfo]: ...

    def local_path(self, key: str) -> Path | None: ...


def check_range(start: int, end: int | None) -> None:
    """Shared argument check for read(); an empty or past-the-end range is not an error."""
    if start < 0:
        raise ValueError(f"read start must be >= 0, got {start}")
    if end is not None and end < 0:
        raise ValueError(f"read end must be >= 0, got {end}")


def normalize_prefix(prefix: str) -> str:
    """A list() prefix: "" for the whole store, otherwise a checked folder key."""
    if prefix.strip("/") == "":
        return ""
    return normalize_key(prefix)


def open_store(uri: str) -> ContentStore:
    """Open the store a URI names.

    file:///abs/dir or file://relative/dir opens a FileStore (the folder is created).
    s3://bucket?endpoint=host:port&access_key=..&secret_key=..&secure=false&region=..&prefix=..
    opens an S3Store (the bucket is created when missing); the credentials default to
    AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
    """
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.query or parts.fragment:
            raise StoreError(f"file store URI {uri!r}: query and fragment are not supported")
        root = unquote(parts.netloc + parts.path)
        if not root:
            raise StoreError(f"file store URI {uri!r} names no directory")
        from storage.file_store import FileStore

        return FileStore(Path(root), uri=uri)
    if scheme == "s3":
        from storage.s3_store import S3Store

        return S3Store(uri=uri, **_s3_options(uri))
    raise StoreError(f"store URI {uri!r}: unknown scheme {parts.scheme!r} (file or s3)")


_S3_PARAMS = ("endpoint", "access_key", "secret_key", "secure", "region", "prefix")


def _s3_options(uri: str) -> dict[str, object]:
    parts = urlsplit(uri)
    bucket = parts.netloc
    if not bucket or "@" in bucket or ":" in bucket:
        raise StoreError("s3 store URI: the bucket (s3://BUCKET?...) is missing or malformed")
    if parts.path not in ("", "/"):
        raise StoreError("s3 store URI: use ?prefix= for a folder, not a path after the bucket")
    query = parse_uri_query(parts.query)
    unknown = sorted(set(query) - set(_S3_PARAMS))
    if unknown:
        raise StoreError(f"s3 store URI: unknown parameter(s) {', '.join(unknown)}")
    repeated = sorted(name for name, values in query.items() if len(values) > 1)
    if repeated:
        raise StoreError(f"s3 store URI: parameter(s) given twice: {', '.join(repeated)}")
    params = {name: values[0] for name, values in query.items()}
    endpoint = params.get("endpoint", "")
    if not endpoint or "/" in endpoint:
        raise StoreError("s3 store URI: endpoint=HOST[:PORT] is required")
    secure_text = params.get("secure", "true").lower()
    if secure_text not in ("true", "false", "1", "0", "yes", "no"):
        raise StoreError(f"s3 store URI: secure must be true or false, not {secure_text!r}")
    access_key = params.get("access_key") or os.environ.get("AWS_ACCESS_KEY_ID") or None
    secret_key = params.get("secret_key") or os.environ.get("AWS_SECRET_ACCESS_KEY") or None
    if (access_key is None) != (secret_key is None):
        raise StoreError("s3 store URI: access_key and secret_key must be given together")
    try:
        prefix = normalize_prefix(params.get("prefix", ""))
    except StoreKeyError as exc:
        raise StoreError(f"s3 store URI: bad prefix ({exc})") from exc
    return {
        "bucket": bucket,
        "endpoint": endpoint,
        "access_key": access_key,
        "secret_key": secret_key,
        "secure": secure_text in ("true", "1", "yes"),
        "region": params.get("region") or None,
        "prefix": prefix,
    }


def parse_uri_query(text: str) -> dict[str, list[str]]:
    # Not parse_qs: it turns "+" into a space, and S3 secret keys often contain "+".
    query: dict[str, list[str]] = {}
    for item in text.split("&") if text else []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise StoreError(f"s3 store URI: malformed query item {unquote(name)!r}")
        query.setdefault(unquote(name), []).append(unquote(value))
    return query


def redact_uri(uri: str) -> str:
    """The URI with its secret_key hidden, for logs and reprs."""
    parts = urlsplit(uri)
    if "secret_key=" not in parts.query:
        return uri
    query = "&".join(
        "secret_key=***" if item.startswith("secret_key=") else item
        for item in parts.query.split("&")
    )
    return parts._replace(query=query).geturl()
