"""users.json parsing, new user ids and request user resolution (serve_app/users/registry)."""

from __future__ import annotations

import json
import uuid

import pytest

from serve_app.users.errors import (
    DuplicateUsernameError,
    InvalidUsernameError,
    RegistryCorruptError,
    UnknownUserError,
)
from serve_app.users.registry import (
    DEFAULT_USER,
    MAX_USERNAME_CHARS,
    check_username,
    is_usable_user_id,
    new_user_id,
    parse_users,
    render_users,
    resolve_user,
    user_id_stem,
)

FIXED = uuid.UUID("12345678-1234-4234-8234-123456789abc")
USERS = {f"bob_{FIXED}": "bob", "ann_1": "ann"}


def test_missing_registry_is_empty_and_round_trips() -> None:
    assert parse_users(None) == {}
    assert parse_users(render_users(USERS)) == USERS
    assert json.loads(render_users(USERS)) == USERS


@pytest.mark.parametrize("data", [b"{", b"[]", b'"x"', b'{"a": 1}', b'{"a": null}'])
def test_corrupt_registry_is_refused(data: bytes) -> None:
    with pytest.raises(RegistryCorruptError, match="users.json"):
        parse_users(data)


@pytest.mark.parametrize(
    ("name", "stem"),
    [
        ("bob", "bob"),
        ("Bob Smith", "Bob-Smith"),
        ("a  /../b", "a-b"),
        ("x.y", "x-y"),
        ("ünïcode", "-n-code"),
        ("ok_name-1", "ok_name-1"),
    ],
)
def test_user_id_stem_replaces_runs_of_unsafe_characters(name: str, stem: str) -> None:
    assert user_id_stem(name) == stem


def test_new_user_id_is_stem_and_uuid4() -> None:
    assert new_user_id("Bob Smith", {}, lambda: FIXED) == f"Bob-Smith_{FIXED}"
    stem, _, suffix = new_user_id("bob", {}).partition("_")
    assert stem == "bob" and uuid.UUID(suffix).version == 4
    assert is_usable_user_id(new_user_id("../../etc", {}))


def test_duplicate_username_has_comfyuis_message() -> None:
    with pytest.raises(DuplicateUsernameError) as caught:
        new_user_id("bob", USERS)
    assert caught.value.message == "Duplicate username."


def test_name_that_would_make_a_system_id_is_refused() -> None:
    with pytest.raises(InvalidUsernameError, match="__"):
        new_user_id("__admin", {})
    # Dots become one "-", so a dotted name never turns into a system id.
    assert new_user_id("..admin", {}, lambda: FIXED) == f"-admin_{FIXED}"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "Missing required body field 'username'"),
        (5, "must be a string"),
        (["bob"], "must be a string"),
        ("   ", "must not be empty"),
        ("x" * (MAX_USERNAME_CHARS + 1), "longer than"),
    ],
)
def test_bad_usernames_name_the_field(value: object, message: str) -> None:
    with pytest.raises(InvalidUsernameError, match="username") as caught:
        check_username(value)
    assert message in caught.value.message


def test_username_is_stripped() -> None:
    assert check_username("  bob ") == "bob"
    assert check_username("x" * MAX_USERNAME_CHARS) == "x" * MAX_USERNAME_CHARS


def test_single_user_mode_is_always_default() -> None:
    assert resolve_user(False, None, {}) == DEFAULT_USER
    assert resolve_user(False, "ann_1", USERS) == DEFAULT_USER
    assert resolve_user(False, "../x", {}) == DEFAULT_USER


def test_multi_user_takes_the_header_user() -> None:
    assert resolve_user(True, "ann_1", USERS) == "ann_1"


@pytest.mark.parametrize("header", [None, "", "nobody", "bob", "ANN_1", "__system"])
def test_multi_user_refuses_missing_unknown_and_system_users(header: str | None) -> None:
    with pytest.raises(UnknownUserError):
        resolve_user(True, header, {**USERS, "__system": "system"})


@pytest.mark.parametrize("user_id", ["..", ".", "a/b", "../b", "a%2fb", "a\\b", "users.json", ""])
def test_hand_edited_ids_that_are_not_one_segment_are_never_used(user_id: str) -> None:
    assert not is_usable_user_id(user_id)
    with pytest.raises(UnknownUserError):
        resolve_user(True, user_id, {user_id: "evil"})


def test_default_is_only_known_in_multi_user_mode_when_registered() -> None:
    with pytest.raises(UnknownUserError):
        resolve_user(True, DEFAULT_USER, USERS)
    assert resolve_user(True, DEFAULT_USER, {DEFAULT_USER: "d"}) == DEFAULT_USER
