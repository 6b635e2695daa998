"""multipart/form-data (RFC 7578) fed chunk by chunk, as part events.

The byte-level parsing is python-multipart's (the parser Starlette uses). We drive it
ourselves instead of `request.form()` so a part's bytes come out as they arrive and the
caller can stop reading the moment the body goes over the size limit. The header rules that
keep file names checkable (backslashes kept, RFC 5987 names) are ours. Pure: no I/O.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from urllib.parse import unquote

import python_multipart
from python_multipart.exceptions import MultipartParseError

logger = logging.getLogger(__name__)

# RFC 2046: a boundary is 1 to 70 characters.
MAX_BOUNDARY = 70
MAX_HEADER_BYTES = 16 * 1024
MAX_PARTS = 64

_PARAM = re.compile(
    r';\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)',
)
# Only an escaped quote is unescaped: browsers and HTTP libraries send backslashes in file
# names as they are (C:\fakepath\a.png), so reading every backslash pair as an escape
# would hide them from the key checks.
_QUOTED_QUOTE = re.compile(r'\\"')


class MultipartError(ValueError):
    """The body is not well-formed multipart/form-data."""


@dataclass(frozen=True)
class PartBegin:
    """The headers of a part; its data events follow, then PartEnd."""

    name: str
    filename: str | None
    content_type: str | None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PartData:
    data: bytes


@dataclass(frozen=True)
class PartEnd:
    pass


Event = PartBegin | PartData | PartEnd


def parse_header_params(value: str) -> tuple[str, dict[str, str]]:
    """`'form-data; name="a"; filename="b.png"'` -> `("form-data", {"name": "a", ...})`.

    Parameter names are lowercased; quoted values lose their quotes (an escaped quote its
    backslash), and an RFC 5987 `name*=UTF-8''...` value is decoded and replaces `name`.
    """
    main, _sep, rest = value.partition(";")
    params: dict[str, str] = {}
    extended: dict[str, str] = {}
    for match in _PARAM.finditer(";" + rest):
        key = match.group(1).lower()
        raw = match.group(2).strip()
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            raw = _QUOTED_QUOTE.sub('"', raw[1:-1])
        if key.endswith("*"):
            decoded = _decode_extended(raw)
            if decoded is not None:
                extended[key[:-1]] = decoded
            continue
        params.setdefault(key, raw)
    params.update(extended)
    return main.strip().lower(), params


def _decode_extended(value: str) -> str | None:
    """RFC 5987 `charset'lang'percent-encoded`; None when malformed."""
    parts = value.split("'", 2)
    if len(parts) != 3:
        return None
    charset = parts[0] or "utf-8"
    try:
        return unquote(parts[2], encoding=charset, errors="strict")
    except (LookupError, UnicodeDecodeError):
        return None


def boundary_of(content_type: str | None) -> bytes:
    """The boundary of a `multipart/form-data` Content-Type, or MultipartError."""
    if not content_type:
        raise MultipartError("Content-Type must be multipart/form-data")
    kind, params = parse_header_params(content_type)
    if kind != "multipart/form-data":
        raise MultipartError(f"Content-Type must be multipart/form-data, not {kind!r}")
    boundary = params.get("boundary", "")
    if not 1 <= len(boundary) <= MAX_BOUNDARY:
        raise MultipartError("Content-Type has no valid multipart boundary")
    try:
        return boundary.encode("ascii")
    except UnicodeEncodeError:
        raise MultipartError("multipart boundary must be ASCII") from None


def _decode_header_text(raw: bytes) -> str:
    # Browsers send non-ASCII file names as raw UTF-8 in the header; latin-1 never fails.
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _part_begin(block: bytes) -> PartBegin:
    headers: dict[str, str] = {}
    for line in block.split(b"\r\n"):
        if not line:
            continue
        name, sep, value = line.partition(b":")
        if not sep or not name.strip():
            raise MultipartError("malformed part header line")
        headers.setdefault(
            _decode_header_text(name).strip().lower(), _decode_header_text(value).strip()
        )
    disposition = headers.get("content-disposition")
    if disposition is None:
        raise MultipartError("a part has no Content-Disposition header")
    kind, params = parse_header_params(disposition)
    if kind != "form-data" or "name" not in params:
        raise MultipartError("a part's Content-Disposition is not form-data with a name")
    return PartBegin(
        name=params["name"],
        filename=params.get("filename"),
        content_type=headers.get("content-type"),
        headers=headers,
    )


class MultipartParser:
    """`feed(chunk)` -> the events completed by that chunk; `finish()` checks the ending."""

    def __init__(
        self,
        boundary: bytes,
        max_header_bytes: int = MAX_HEADER_BYTES,
        max_parts: int = MAX_PARTS,
    ) -> None:
        self._max_header_bytes = max_header_bytes
        self._max_parts = max_parts
        self._events: list[Event] = []
        self._header_block = bytearray()
        self._field = bytearray()
        self._value = bytearray()
        self._parts = 0
        self._ended = False
        callbacks = {
            "on_part_begin": self._on_part_begin,
            "on_header_field": self._on_header_field,
            "on_header_value": self._on_header_value,
            "on_header_end": self._on_header_end,
            "on_headers_finished": self._on_headers_finished,
            "on_part_data": self._on_part_data,
            "on_part_end": self._on_part_end,
            "on_end": self._on_end,
        }
        self._parser = python_multipart.MultipartParser(boundary, callbacks)  # type: ignore[arg-type]

    @property
    def done(self) -> bool:
        return self._ended

    def feed(self, chunk: bytes) -> list[Event]:
        try:
            self._parser.write(chunk)
        except MultipartParseError as exc:
            raise MultipartError(str(exc)) from None
        events, self._events = self._events, []
        return events

    def finish(self) -> None:
        try:
            self._parser.finalize()
        except MultipartParseError as exc:
            raise MultipartError(str(exc)) from None
        if not self._ended:
            raise MultipartError("the body ends before the closing boundary")

    # python-multipart callbacks: (data, start, end) slices of the chunk being written.
    def _on_part_begin(self) -> None:
        self._parts += 1
        if self._parts > self._max_parts:
            raise MultipartError(f"more than {self._max_parts} parts")
        self._header_block.clear()

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]
        self._check_header_size()

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]
        self._check_header_size()

    def _on_header_end(self) -> None:
        self._header_block += bytes(self._field) + b":" + bytes(self._value) + b"\r\n"
        self._field.clear()
        self._value.clear()

    def _on_headers_finished(self) -> None:
        self._events.append(_part_begin(bytes(self._header_block)))

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if end > start:
            self._events.append(PartData(bytes(data[start:end])))

    def _on_part_end(self) -> None:
        self._events.append(PartEnd())

    def _on_end(self) -> None:
        self._ended = True

    def _check_header_size(self) -> None:
        if len(self._header_block) + len(self._field) + len(self._value) > self._max_header_bytes:
            raise MultipartError(f"part headers longer than {self._max_header_bytes} bytes")
