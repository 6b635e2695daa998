"""Content types and dispositions of streamed files (serve_app/files/media.py, §1.5 step 8)."""

from __future__ import annotations

import pytest

from serve_app.files.media import content_disposition, delivery_for, guess_type, is_dangerous


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.png", "image/png"),
        ("a.webp", "image/webp"),
        ("a.webm", "video/webm"),
        ("a.mp4", "video/mp4"),
        ("a.flac", "audio/flac"),
        ("a.PNG", "image/png"),
        ("model.glb", "model/gltf-binary"),
        ("noext", "application/octet-stream"),
        ("a.unknownext", "application/octet-stream"),
    ],
)
def test_guess_type(name: str, expected: str) -> None:
    assert guess_type(name) == expected


@pytest.mark.parametrize(
    ("media_type", "dangerous"),
    [
        ("text/html", True),
        ("text/javascript", True),
        ("application/javascript; charset=utf-8", True),
        ("text/css", True),
        ("image/svg+xml", True),
        ("application/xml", True),
        ("text/xml", True),
        ("application/xhtml+xml", True),
        ("message/rfc822", True),
        ("image/png", False),
        ("text/plain", False),
        ("application/json", False),
        ("video/mp4", False),
    ],
)
def test_is_dangerous(media_type: str, dangerous: bool) -> None:
    assert is_dangerous(media_type) is dangerous


def test_content_disposition_escapes_and_falls_back_for_non_ascii() -> None:
    assert content_disposition("a.png") == 'filename="a.png"'
    assert content_disposition('a"b\\c.png') == 'filename="a\\"b\\\\c.png"'
    assert content_disposition("x.html", attachment=True) == 'attachment; filename="x.html"'
    value = content_disposition("bild ä.png")
    assert value == "filename=\"bild _.png\"; filename*=UTF-8''bild%20%C3%A4.png"
    value.encode("latin-1")  # a valid header value


def test_safe_types_are_inline_with_nosniff() -> None:
    delivery = delivery_for("a.png", None)
    assert delivery.media_type == "image/png"
    assert delivery.headers == {
        "X-Content-Type-Options": "nosniff",
        "Content-Disposition": 'filename="a.png"',
    }


@pytest.mark.parametrize(
    "name", ["a.html", "a.js", "a.mjs", "a.css", "a.svg", "a.xml", "a.eml", "a.xhtml"]
)
def test_dangerous_types_download_as_octet_stream(name: str) -> None:
    delivery = delivery_for(name, "document")
    assert delivery.media_type == "application/octet-stream"
    assert delivery.headers["Content-Disposition"] == f'attachment; filename="{name}"'
    assert delivery.headers["Vary"] == "Sec-Fetch-Dest"
    assert delivery.headers["Cache-Control"] == "no-store"
    assert delivery.headers["X-Content-Type-Options"] == "nosniff"


def test_svg_as_image_destination_stays_svg() -> None:
    delivery = delivery_for("a.svg", "image")
    assert delivery.media_type == "image/svg+xml"
    assert delivery.headers["Content-Disposition"] == 'filename="a.svg"'
    assert delivery.headers["Vary"] == "Sec-Fetch-Dest"
    assert delivery.headers["Cache-Control"] == "no-store"
    # An HTML file requested as an image is still a download.
    assert delivery_for("a.html", "image").media_type == "application/octet-stream"
