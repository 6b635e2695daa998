"""The query of GET /view, checked and resolved to an area and a store key (§1.5).

Pure: the result names what to read and how to answer; serve_app/files/viewing.py does it.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass

from serve_app.files.errors import FileRequestError, bad_key
from serve_app.files.names import DEFAULT_VIEW_TYPE, split_annotation
from storage.areas import FILE_TYPES
from storage.store_keys import StoreKeyError, join_key, normalize_key

logger = logging.getLogger(__name__)

ASSET_PREFIX = "blake3:"
DEFAULT_PREVIEW_QUALITY = 90
MAX_QUALITY = 100


@dataclass(frozen=True)
class Preview:
    format: str  # "webp" or "jpeg"
    quality: int


@dataclass(frozen=True)
class ViewRequest:
    area: str
    key: str
    name: str  # the file's own name, for Content-Disposition
    preview: Preview | None
    channel: str  # "" when absent; "rgb" and "a" convert, anything else streams as is


def parse_preview(value: str, channel: str) -> Preview:
    """`"webp;90"`, `"jpeg;50"`: an unknown format is webp, a channel with `a` forces webp,
    and the quality is the last `;` part when it is all digits (default 90)."""
    parts = value.split(";")
    fmt = parts[0]
    if fmt not in ("webp", "jpeg") or "a" in channel:
        fmt = "webp"
    last = parts[-1]
    quality = DEFAULT_PREVIEW_QUALITY
    if last.isascii() and last.isdigit():
        # Long digit strings are just "a lot" (and int() refuses thousands of digits).
        quality = MAX_QUALITY if len(last.lstrip("0")) > 3 else int(last)
    return Preview(fmt, min(quality, MAX_QUALITY))


def _file_key(filename: str, subfolder: str | None) -> str:
    if subfolder is None:
        try:
            return normalize_key(filename)
        except StoreKeyError as exc:
            raise bad_key("filename", filename, exc) from None
    try:
        join_key(subfolder, "_")
    except StoreKeyError as exc:
        # ComfyUI answers a subfolder that leaves the folder with 403.
        raise bad_key("subfolder", subfolder, exc) from None
    # With a subfolder, only the last segment of the name counts (ComfyUI's basename).
    name = posixpath.basename(filename)
    try:
        return join_key(subfolder, name)
    except StoreKeyError as exc:
        raise bad_key("filename", filename, exc) from None


def parse_view_query(query: Mapping[str, str]) -> ViewRequest:
    """The checked request, or FileRequestError with ComfyUI's status (404, 400, 403)."""
    filename = query.get("filename")
    if filename is None:
        raise FileRequestError("Missing query parameter 'filename'", 404)
    if filename.startswith(ASSET_PREFIX):
        # Assets (content addressed by hash) are not served yet: unknown, as ComfyUI
        # answers an asset hash it does not have.
        raise FileRequestError(f"Unknown asset {filename!r}", 404)
    filename, annotated = split_annotation(filename)
    area = annotated or query.get("type", DEFAULT_VIEW_TYPE)
    if filename == "" or filename.startswith("/") or ".." in filename:
        raise FileRequestError(f"Invalid filename {filename!r}", 400)
    if area not in FILE_TYPES:
        raise FileRequestError(
            f"Invalid type {area!r}: expected one of {', '.join(FILE_TYPES)}", 400
        )
    key = _file_key(filename, query.get("subfolder"))
    channel = query.get("channel", "")
    preview_value = query.get("preview")
    return ViewRequest(
        area=area,
        key=key,
        name=posixpath.basename(key),
        preview=None if preview_value is None else parse_preview(preview_value, channel),
        channel=channel,
    )
