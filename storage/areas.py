"""The four areas of the content store ComfyUI users know: input, output, temp and user.

With no store URI each area is a file store on its own directory (ComfyUI's layout). With a
URI every area is a folder of that one store (`<uri>/input`, `s3://b?prefix=p/input`), so the
API replicas and the workers of a cluster all see the same bytes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from storage.content_store import ContentStore, StoreError, open_store, parse_uri_query

logger = logging.getLogger(__name__)

AREAS: tuple[str, ...] = ("input", "output", "temp", "user")
# The areas a client names with `type=` (or a " [output]" suffix) on /upload and /view.
FILE_TYPES: tuple[str, ...] = ("input", "output", "temp")


def area_uris(store_uri: str | None, directories: Mapping[str, Path | str]) -> dict[str, str]:
    """The URI of each area: its directory, or a folder of the shared store."""
    if not store_uri:
        return {area: Path(directories[area]).absolute().as_uri() for area in AREAS}
    return {area: _sub_uri(store_uri, area) for area in AREAS}


def _sub_uri(store_uri: str, area: str) -> str:
    parts = urlsplit(store_uri)
    scheme = parts.scheme.lower()
    if scheme == "file":
        root = unquote(parts.netloc + parts.path).rstrip("/")
        return Path(root, area).absolute().as_uri()
    if scheme == "s3":
        query = parse_uri_query(parts.query)
        prefix = query.pop("prefix", [""])[0].strip("/")
        items = [f"{name}={quote(values[0], safe='')}" for name, values in query.items()]
        items.append("prefix=" + quote(f"{prefix}/{area}" if prefix else area, safe="/"))
        return parts._replace(query="&".join(items)).geturl()
    raise StoreError(f"store URI {store_uri!r}: unknown scheme {parts.scheme!r} (file or s3)")


@dataclass(frozen=True)
class StoreAreas:
    input: ContentStore
    output: ContentStore
    temp: ContentStore
    user: ContentStore

    def area(self, name: str) -> ContentStore:
        """The store of `input`, `output`, `temp` or `user`; KeyError for any other name."""
        if name not in AREAS:
            raise KeyError(name)
        store: ContentStore = getattr(self, name)
        return store


def open_areas(uris: Mapping[str, str]) -> StoreAreas:
    stores = {area: open_store(uris[area]) for area in AREAS}
    logger.info("content store areas: %s", {a: repr(s) for a, s in stores.items()})
    return StoreAreas(**stores)
