"""How a userdata file is sent back: its media type and headers (pure).

Userdata is written by any client, so a file must never run as a page or script of this
origin: every file is an attachment with `nosniff`, and active types (HTML, scripts, CSS,
SVG, XML, messages) go out as octet-stream. The one exception is the user's `user.css` at
the folder root, which the web frontend links as a stylesheet.
"""

from __future__ import annotations

import logging
import mimetypes

logger = logging.getLogger(__name__)

OCTET_STREAM = "application/octet-stream"
USER_CSS = "user.css"
_ACTIVE_TYPES = frozenset(
    {"text/html", "text/css", "image/svg+xml", "message/rfc822", "application/xml", "text/xml"}
)


def is_active_type(media_type: str) -> bool:
    """True for types a browser could render or run as part of the page's origin."""
    base = media_type.split(";", 1)[0].strip().lower()
    subtype = base.partition("/")[2]
    return (
        base in _ACTIVE_TYPES
        or "html" in subtype
        or "javascript" in subtype
        or "ecmascript" in subtype
        or subtype == "xml"
        or subtype.endswith("+xml")
    )


def download_type(name: str, *, user_css: bool) -> tuple[str, dict[str, str]]:
    """(media type, headers) for sending the file `name` (its last path segment)."""
    headers = {"X-Content-Type-Options": "nosniff"}
    if user_css:
        headers["Content-Disposition"] = "inline"
        return "text/css", headers
    guessed, _encoding = mimetypes.guess_type(name, strict=False)
    media_type = guessed or OCTET_STREAM
    if is_active_type(media_type):
        media_type = OCTET_STREAM
    headers["Content-Disposition"] = "attachment"
    return media_type, headers
