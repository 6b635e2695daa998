"""File naming rules of the upload and view routes (serve_app/files/names.py)."""

from __future__ import annotations

import pytest

from serve_app.files.names import is_overwrite, numbered_name, split_annotation


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("x.png [output]", ("x.png", "output")),
        ("x.png [input]", ("x.png", "input")),
        ("sub/x.png [temp]", ("sub/x.png", "temp")),
        ("x.png", ("x.png", None)),
        ("x.png [user]", ("x.png [user]", None)),
        ("x.png[output]", ("x.png[output]", None)),
        ("x [output].png", ("x [output].png", None)),
    ],
)
def test_split_annotation(name: str, expected: tuple[str, str | None]) -> None:
    assert split_annotation(name) == expected


@pytest.mark.parametrize(
    ("name", "number", "expected"),
    [
        ("a.png", 1, "a (1).png"),
        ("a.png", 12, "a (12).png"),
        ("x.tar.gz", 1, "x.tar (1).gz"),
        (".env", 1, ".env (1)"),
        ("noext", 2, "noext (2)"),
        ("sub/a.png", 1, "sub/a (1).png"),
    ],
)
def test_numbered_name(name: str, number: int, expected: str) -> None:
    assert numbered_name(name, number) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("1", True), ("True", False), ("yes", False), ("", False), (None, False)],
)
def test_is_overwrite_only_for_true_and_1(value: str | None, expected: bool) -> None:
    assert is_overwrite(value) is expected
