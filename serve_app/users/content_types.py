"""How a userdata file is sent back: its media type and headers (pure).

Userdata is written by any client, so a file must never run as a page or script of this
origin: every file is an attachment with `nosniff`, and active types (HTML, scripts, CSS,
SVG, XML, messages) go out as octet-stream. The one exception is the user's `user.css` at
the folder root, which the web frontend links as a stylesheet.
"""

from __future__ import annotations

import logging

from serve_app.files.media import OCTET_STREAM, guess_type, is_dangerous

logger = logging.getLogger(__name__)

USER_CSS = "user.css"
# One rule for every file a client wrote, whether /view or /userdata sends it.
is_active_type = is_dangerous


def download_type(name: str, *, user_css: bool) -> tuple[str, dict[str, str]]:
    """(media type, headers) for sending the file `name` (its last path segment)."""
    headers = {"X-Content-Type-Options": "nosniff"}
    if user_css:
        headers["Content-Disposition"] = "inline"
        return "text/css", headers
    media_type = guess_type(name)
    if is_active_type(media_type):
        media_type = OCTET_STREAM
    headers["Content-Disposition"] = "attachment"
    return media_type, headers
