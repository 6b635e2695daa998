"""GET /view query checks (serve_app/files/view_params.py, comfyui-behaviour.md §1.5)."""

from __future__ import annotations

import pytest

from serve_app.files.errors import FileRequestError
from serve_app.files.view_params import Preview, parse_preview, parse_view_query


def test_defaults_to_the_output_area() -> None:
    request = parse_view_query({"filename": "ComfyUI_00001_.png"})
    assert (request.area, request.key, request.name) == (
        "output",
        "ComfyUI_00001_.png",
        "ComfyUI_00001_.png",
    )
    assert request.preview is None and request.channel == ""


def test_annotation_suffix_overrides_type() -> None:
    request = parse_view_query({"filename": "a.png [temp]", "type": "input"})
    assert (request.area, request.key) == ("temp", "a.png")


def test_subfolder_joins_the_basename_of_the_filename() -> None:
    request = parse_view_query(
        {"filename": "ignored/dir/a.png", "subfolder": "s/t", "type": "input"}
    )
    assert (request.area, request.key, request.name) == ("input", "s/t/a.png", "a.png")
    assert parse_view_query({"filename": "a.png", "subfolder": ""}).key == "a.png"


def test_without_subfolder_a_nested_name_is_kept() -> None:
    request = parse_view_query({"filename": "s/a.png"})
    assert (request.key, request.name) == ("s/a.png", "a.png")


@pytest.mark.parametrize(
    ("query", "status", "words"),
    [
        ({}, 404, "filename"),
        ({"filename": "blake3:" + "0" * 64}, 404, "asset"),
        ({"filename": ""}, 400, "filename"),
        ({"filename": " [output]"}, 400, "filename"),
        ({"filename": "/etc/passwd"}, 400, "filename"),
        ({"filename": "a..b.png"}, 400, "filename"),
        ({"filename": "../x.png"}, 400, "filename"),
        ({"filename": "a.png", "type": "user"}, 400, "type"),
        ({"filename": "a.png", "type": ""}, 400, "type"),
        ({"filename": "a.png", "subfolder": ".."}, 403, "subfolder"),
        ({"filename": "a.png", "subfolder": "/etc"}, 403, "subfolder"),
        ({"filename": "a.png", "subfolder": "%2e%2e"}, 403, "subfolder"),
        ({"filename": "a.png", "subfolder": "a\x00b"}, 400, "subfolder"),
        ({"filename": "a\\b.png"}, 400, "filename"),
        ({"filename": "a\x00.png"}, 400, "filename"),
        ({"filename": "%2e%2e%2fx.png"}, 403, "filename"),
    ],
)
def test_refused_queries(query: dict[str, str], status: int, words: str) -> None:
    with pytest.raises(FileRequestError) as caught:
        parse_view_query(query)
    assert caught.value.status == status
    assert words in caught.value.message


@pytest.mark.parametrize(
    ("value", "channel", "expected"),
    [
        ("webp;90", "", Preview("webp", 90)),
        ("jpeg;50", "", Preview("jpeg", 50)),
        ("jpeg", "", Preview("jpeg", 90)),
        ("png;10", "", Preview("webp", 10)),
        ("jpeg;50", "rgba", Preview("webp", 50)),
        ("jpeg;50", "a", Preview("webp", 50)),
        ("jpeg;50", "rgb", Preview("jpeg", 50)),
        ("webp;x;75", "", Preview("webp", 75)),
        ("webp;high", "", Preview("webp", 90)),
        ("webp;500", "", Preview("webp", 100)),
        ("webp;0007", "", Preview("webp", 7)),
        ("webp;" + "9" * 5000, "", Preview("webp", 100)),
        ("webp;٣", "", Preview("webp", 90)),  # a non-ASCII digit is not a quality
        ("", "", Preview("webp", 90)),
    ],
)
def test_parse_preview(value: str, channel: str, expected: Preview) -> None:
    assert parse_preview(value, channel) == expected


def test_preview_and_channel_are_carried() -> None:
    request = parse_view_query({"filename": "a.png", "preview": "jpeg;40", "channel": "rgb"})
    assert request.preview == Preview("jpeg", 40)
    assert request.channel == "rgb"
