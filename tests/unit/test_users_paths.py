"""Userdata client paths as confined store keys (serve_app/users/paths)."""

from __future__ import annotations

import pytest

from serve_app.users.errors import UserdataPathError
from serve_app.users.paths import (
    client_path,
    file_key,
    folder_key,
    relative_key,
    split_move_path,
)

ESCAPES = [
    "..",
    "../bob/secret.json",
    "a/../../bob/x",
    "/etc/passwd",
    "/bob/x",
    "%2e%2e/bob/x",
    "..%2fbob%2fx",
    "C:/x",
    "\\bob\\x",
]
MALFORMED = ["", ".", "./", "a\x00b", "a\\b", "a%00b", "x\n.json"]


def test_client_path_decodes_only_when_percent_is_present() -> None:
    assert client_path("workflows%2Fa.json") == "workflows/a.json"
    assert client_path("a b.json") == "a b.json"
    assert client_path("100%.json") == "100%.json"
    assert client_path("%252e%252e") == "%2e%2e"  # once; the key check decodes the rest


def test_file_key_is_under_the_user() -> None:
    assert file_key("ann", "workflows/a.json") == "ann/workflows/a.json"
    assert file_key("ann", "./workflows//a.json/") == "ann/workflows/a.json"


@pytest.mark.parametrize("path", ESCAPES)
def test_escapes_are_forbidden(path: str) -> None:
    for build in (file_key, folder_key):
        with pytest.raises(UserdataPathError) as caught:
            build("ann", path)
        assert caught.value.forbidden, path


@pytest.mark.parametrize("path", MALFORMED)
def test_malformed_file_paths_are_bad_requests(path: str) -> None:
    with pytest.raises(UserdataPathError) as caught:
        file_key("ann", path)
    assert not caught.value.forbidden


def test_folder_key_of_nothing_is_the_users_folder() -> None:
    assert folder_key("ann", "") == "ann"
    assert folder_key("ann", ".") == "ann"
    assert folder_key("ann", "workflows/") == "ann/workflows"


def test_as_bad_request_keeps_the_message() -> None:
    with pytest.raises(UserdataPathError) as caught:
        file_key("ann", "../x")
    plain = caught.value.as_bad_request()
    assert not plain.forbidden and plain.message == caught.value.message


def test_relative_key() -> None:
    assert relative_key("ann/workflows/a.json", "ann") == "workflows/a.json"
    assert relative_key("ann/workflows/a.json", "ann/workflows") == "a.json"
    with pytest.raises(ValueError):
        relative_key("annie/a.json", "ann")


@pytest.mark.parametrize(
    ("raw", "file", "dest", "expected"),
    [
        # The frontend encodes both paths: the raw path's one "/move/" is the split.
        (
            "/api/userdata/w%2Fa.json/move/w%2Fmove%2Fb.json",
            "w/a.json/move/w",
            "b.json",
            ("w/a.json", "w/move/b.json"),
        ),
        ("/userdata/a.json/move/b.json", "a.json", "b.json", ("a.json", "b.json")),
        # Plain slashes and a second "/move/": ambiguous, the router's split stands.
        ("/userdata/a/move/b/move/c", "a/move/b", "c", ("a/move/b", "c")),
        # No raw path, or one that disagrees with the decoded path: the router's split.
        (None, "a", "b", ("a", "b")),
        ("/elsewhere/x/move/y", "a", "b", ("a", "b")),
        ("/userdata/x/move/y", "a", "b", ("a", "b")),
    ],
)
def test_split_move_path(raw: str | None, file: str, dest: str, expected: tuple[str, str]) -> None:
    assert split_move_path(raw, file, dest) == expected
