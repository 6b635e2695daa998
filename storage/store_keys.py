"""Validation of content-store keys, shared by every store backend.

A key is a relative POSIX path such as ``output/sub/ComfyUI_00001_.png``. Keys arrive from
HTTP clients (upload subfolders, userdata paths, /view parameters), so everything that could
name a place outside the store is refused here, once, before any backend sees it. Pure: no
I/O, so the HTTP edge can validate without a store at hand.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

# S3 limits an object name to 1024 UTF-8 bytes and most file systems limit one path
# segment to 255 bytes; refusing both here keeps the two backends interchangeable.
MAX_KEY_BYTES = 1024
MAX_SEGMENT_BYTES = 255

_DRIVE = re.compile(r"^[A-Za-z]:")
# Control characters have no place in a file name and would corrupt headers such as
# Content-Disposition when the name is echoed back.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class StoreKeyError(ValueError):
    """A key that is malformed (status 400) or tries to escape the store (status 403)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _is_absolute(text: str) -> bool:
    return text.startswith(("/", "\\")) or _DRIVE.match(text) is not None


def _has_parent_segment(text: str) -> bool:
    return any(segment == ".." for segment in re.split(r"[/\\]", text))


def _check_form(key: str, shown: str, where: str) -> None:
    """Refuse the escape and malformed forms in `key` (the raw or the percent-decoded text)."""
    if "\x00" in key:
        raise StoreKeyError(f"key {shown!r} contains a NUL byte{where}", 400)
    if _is_absolute(key):
        raise StoreKeyError(f"key {shown!r} is an absolute path{where}", 403)
    if _has_parent_segment(key):
        raise StoreKeyError(f"key {shown!r} contains a '..' segment{where}", 403)
    if "\\" in key:
        raise StoreKeyError(f"key {shown!r} contains a backslash{where}", 400)
    if _CONTROL.search(key):
        raise StoreKeyError(f"key {shown!r} contains a control character{where}", 400)


def _segments(key: str) -> list[str]:
    """The checked segments of `key`; empty when it is only "." and "/" separators."""
    if not isinstance(key, str):
        raise StoreKeyError(f"key must be a string, not {type(key).__name__}", 400)
    _check_form(key, key, "")
    if "%" in key:
        _check_form(unquote(key), key, " after percent-decoding")
    segments = [segment for segment in key.split("/") if segment not in ("", ".")]
    for segment in segments:
        if len(segment.encode("utf-8", "surrogatepass")) > MAX_SEGMENT_BYTES:
            raise StoreKeyError(
                f"key {key!r} has a segment longer than {MAX_SEGMENT_BYTES} bytes", 400
            )
    return segments


def _assemble(segments: list[str], shown: str) -> str:
    if not segments:
        raise StoreKeyError(f"key {shown!r} names no object", 400)
    clean = "/".join(segments)
    if len(clean.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise StoreKeyError(f"key is longer than {MAX_KEY_BYTES} bytes", 400)
    return clean


def normalize_key(key: str) -> str:
    """The clean form of `key`, or StoreKeyError.

    "." segments and repeated or trailing "/" are dropped. The key itself is returned as
    written (not percent-decoded); the decoded form is only checked, because some routes
    decode once more before they build a path.
    """
    if key == "":
        raise StoreKeyError("key is empty", 400)
    return _assemble(_segments(key), key)


def join_key(*parts: str) -> str:
    """Join key parts with "/" into one normalized key.

    Each part is checked on its own, so a part can never climb out of the parts before it
    ("output", "/etc/passwd" is refused, not joined). Parts that name nothing ("", ".")
    are skipped because ComfyUI's empty subfolder is the normal case.
    """
    segments = [segment for part in parts for segment in _segments(part)]
    return _assemble(segments, "/".join(parts))
