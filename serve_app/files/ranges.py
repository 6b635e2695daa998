"""HTTP Range and validators for streamed files (RFC 9110 §13, §14), as aiohttp's
FileResponse gives ComfyUI's /view: single byte ranges, ETag, Last-Modified, 304 and 416.

Pure: takes header values and the object's size and mtime, returns what to send.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime

logger = logging.getLogger(__name__)

# ASCII digits only, and few enough that int() is cheap: a longer number is past any size.
_SINGLE_RANGE = re.compile(r"^\s*bytes\s*=\s*([0-9]{0,19})\s*-\s*([0-9]{0,19})\s*$", re.IGNORECASE)


class RangeNotSatisfiableError(Exception):
    """The range starts past the end (or asks for an empty suffix): answer 416."""

    def __init__(self, size: int) -> None:
        super().__init__(f"range not satisfiable for {size} bytes")
        self.size = size


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # exclusive

    @property
    def length(self) -> int:
        return self.end - self.start

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end - 1}/{size}"


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one range of `bytes=a-b`, `bytes=a-` or `bytes=-n`, clipped to the size.

    None means "send the whole file": no header, another unit, several ranges, or a
    malformed one (a server may ignore what it does not support).
    """
    if header is None:
        return None
    match = _SINGLE_RANGE.match(header)
    if match is None:
        return None
    first, last = match.group(1), match.group(2)
    if first == "" and last == "":
        return None
    if first == "":
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiableError(size)
        return ByteRange(max(0, size - suffix), size)
    start = int(first)
    if last != "" and int(last) < start:
        return None
    if start >= size:
        raise RangeNotSatisfiableError(size)
    end = size if last == "" else min(int(last) + 1, size)
    return ByteRange(start, end)


def etag(size: int, modified: float) -> str:
    """A strong validator from size and mtime (what a file server has without hashing)."""
    return f'"{int(modified * 1_000_000):x}-{size:x}"'


def http_date(modified: float) -> str:
    return formatdate(modified, usegmt=True)


def _date(value: str) -> float | None:
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _etags(value: str) -> list[str]:
    return [tag.strip().removeprefix("W/") for tag in value.split(",") if tag.strip()]


def not_modified(
    if_none_match: str | None, if_modified_since: str | None, tag: str, modified: float
) -> bool:
    """True when the client's copy is current (answer 304 instead of the bytes)."""
    if if_none_match is not None:
        tags = _etags(if_none_match)
        return "*" in tags or tag in tags
    if if_modified_since is not None:
        since = _date(if_modified_since)
        return since is not None and int(modified) <= since
    return False


def range_applies(if_range: str | None, tag: str, modified: float) -> bool:
    """If-Range: the range is honoured only while the client's validator still matches."""
    if if_range is None:
        return True
    value = if_range.strip()
    if value.startswith('"'):
        return value == tag
    since = _date(value)
    return since is not None and int(modified) == int(since)
