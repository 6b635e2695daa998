"""Content-Type and Content-Disposition of files served by /view (§1.5 step 8).

A file a user uploaded must never run as a page of this origin: types a browser would
execute or render as a document (HTML, scripts, CSS, XML, SVG, saved mail) are sent as
downloads, except an SVG the browser asked for as an image (`Sec-Fetch-Dest: image`), which
cannot run scripts there.
"""

from __future__ import annotations

import logging
import mimetypes
from dataclasses import dataclass, field
from urllib.parse import quote

logger = logging.getLogger(__name__)

OCTET_STREAM = "application/octet-stream"
SVG = "image/svg+xml"

# Our own table, not the process-wide one: it would read /etc/mime.types, so answers would
# differ from machine to machine.
_TYPES = mimetypes.MimeTypes(filenames=())
for _type, _ext in (
    ("image/webp", ".webp"),
    ("video/webm", ".webm"),
    ("audio/flac", ".flac"),
    ("audio/ogg", ".opus"),
    ("model/gltf-binary", ".glb"),
    ("model/gltf+json", ".gltf"),
    ("application/xhtml+xml", ".xhtml"),
    ("text/javascript", ".mjs"),
):
    _TYPES.add_type(_type, _ext)

_DANGEROUS = frozenset(
    {
        "text/html",
        "text/javascript",
        "application/javascript",
        "application/ecmascript",
        "text/ecmascript",
        "text/css",
        "message/rfc822",
    }
)


@dataclass(frozen=True)
class Delivery:
    """How a streamed file is labelled: its media type and extra headers."""

    media_type: str
    headers: dict[str, str] = field(default_factory=dict)


def guess_type(name: str) -> str:
    return _TYPES.guess_type(name, strict=False)[0] or OCTET_STREAM


def is_dangerous(media_type: str) -> bool:
    """Types a browser could execute or render as an active document."""
    base = media_type.split(";", 1)[0].strip().lower()
    subtype = base.partition("/")[2]
    return (
        base in _DANGEROUS
        or "xml" in subtype
        or "html" in subtype
        or "javascript" in subtype
        or "ecmascript" in subtype
    )


def content_disposition(name: str, *, attachment: bool = False) -> str:
    """`filename="<name>"` (with `attachment; ` for downloads), safe for any name.

    Quotes and backslashes are escaped; a name that is not plain ASCII gets an ASCII
    fallback plus the RFC 6266 `filename*` form, since header values must be Latin-1.
    """
    prefix = "attachment; " if attachment else ""
    escaped = name.replace("\\", "\\\\").replace('"', '\\"')
    if escaped.isascii() and escaped.isprintable():
        return f'{prefix}filename="{escaped}"'
    fallback = "".join(c if c.isascii() and c.isprintable() else "_" for c in escaped)
    return f"{prefix}filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def delivery_for(name: str, sec_fetch_dest: str | None) -> Delivery:
    """The media type and headers /view streams `name` with."""
    media_type = guess_type(name)
    headers = {"X-Content-Type-Options": "nosniff"}
    if not is_dangerous(media_type):
        headers["Content-Disposition"] = content_disposition(name)
        return Delivery(media_type, headers)
    # The answer depends on Sec-Fetch-Dest, and a cached copy must not leak across it.
    headers["Vary"] = "Sec-Fetch-Dest"
    headers["Cache-Control"] = "no-store"
    if media_type == SVG and (sec_fetch_dest or "").lower() == "image":
        headers["Content-Disposition"] = content_disposition(name)
        return Delivery(media_type, headers)
    headers["Content-Disposition"] = content_disposition(name, attachment=True)
    return Delivery(OCTET_STREAM, headers)
