"""Settings file format, merge rules and download types (serve_app/users settings, types)."""

from __future__ import annotations

import json

import pytest

from serve_app.users.content_types import OCTET_STREAM, download_type, is_active_type
from serve_app.users.settings import merge_settings, parse_settings, render_settings


def test_settings_round_trip_with_indent_4() -> None:
    settings = {"Comfy.A": 1, "Comfy.B": {"x": [1, 2]}}
    data = render_settings(settings)
    assert data.decode() == json.dumps(settings, indent=4)
    assert data.startswith(b'{\n    "Comfy.A": 1')
    assert parse_settings(data) == settings


@pytest.mark.parametrize("data", [None, b"", b"{", b"[1]", b"null", b'"x"'])
def test_missing_corrupt_or_non_object_settings_read_as_empty(data: bytes | None) -> None:
    assert parse_settings(data) == {}


def test_merge_is_shallow() -> None:
    current = {"a": {"x": 1, "y": 2}, "b": 1}
    merged = merge_settings(current, {"a": {"x": 3}, "c": None})
    assert merged == {"a": {"x": 3}, "b": 1, "c": None}
    assert current == {"a": {"x": 1, "y": 2}, "b": 1}


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("a.json", "application/json"),
        ("a.png", "image/png"),
        ("a.html", OCTET_STREAM),
        ("a.htm", OCTET_STREAM),
        ("a.js", OCTET_STREAM),
        ("a.mjs", OCTET_STREAM),
        ("a.css", OCTET_STREAM),
        ("a.svg", OCTET_STREAM),
        ("a.xml", OCTET_STREAM),
        ("a.xhtml", OCTET_STREAM),
        ("a.eml", OCTET_STREAM),
        ("no_extension", OCTET_STREAM),
    ],
)
def test_downloads_are_attachments_and_active_types_octet_stream(
    name: str, media_type: str
) -> None:
    got, headers = download_type(name, user_css=False)
    assert got == media_type
    assert headers == {"X-Content-Type-Options": "nosniff", "Content-Disposition": "attachment"}


def test_user_css_is_inline_css() -> None:
    assert download_type("user.css", user_css=True) == (
        "text/css",
        {"X-Content-Type-Options": "nosniff", "Content-Disposition": "inline"},
    )


@pytest.mark.parametrize(
    "media_type",
    ["text/html; charset=utf-8", "application/atom+xml", "text/xml", "application/ecmascript"],
)
def test_active_types(media_type: str) -> None:
    assert is_active_type(media_type)
    assert not is_active_type("application/json")
