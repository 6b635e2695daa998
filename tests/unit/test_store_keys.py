"""Store key validation: every escape form refused with the right status, clean keys kept."""

from __future__ import annotations

import pytest

from storage.store_keys import MAX_KEY_BYTES, StoreKeyError, join_key, normalize_key

ESCAPES = [
    "..",
    "../x",
    "a/../../x",
    "a/..",
    "output/../input/x.png",
    "%2e%2e",
    "%2E%2E/x",
    "a/%2e%2e/b",
    "..%2f",
    "..%2fetc%2fpasswd",
    "a/..%2F..%2Fb",
    "%2e%2e%2fx",
    "..\\x",
    "a\\..\\b",
    "%2e%2e%5cx",
    "/x",
    "/etc/passwd",
    "//server/share",
    "C:\\x",
    "C:/x",
    "c:x",
    "\\\\server\\share",
    "\\x",
    "%2fetc%2fpasswd",
    "%5c%5cserver",
]

MALFORMED = [
    "",
    ".",
    "./",
    "././/.",
    "a\\b",
    "a/b\\c.png",
    "a\x00b",
    "a%00b",
    "x\n.png",
    "a%5cb",
]


@pytest.mark.parametrize("key", ESCAPES)
def test_escapes_are_refused_with_403(key: str) -> None:
    with pytest.raises(StoreKeyError) as info:
        normalize_key(key)
    assert info.value.status == 403
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("key", MALFORMED)
def test_malformed_keys_are_refused_with_400(key: str) -> None:
    with pytest.raises(StoreKeyError) as info:
        normalize_key(key)
    assert info.value.status == 400


def test_messages_name_the_problem() -> None:
    cases = {
        "": "empty",
        "a\x00b": "NUL",
        "a\\b": "backslash",
        "../x": "'..'",
        "%2e%2e/x": "percent-decoding",
        "/x": "absolute",
    }
    for key, fragment in cases.items():
        with pytest.raises(StoreKeyError, match=fragment):
            normalize_key(key)


def test_non_string_is_refused() -> None:
    with pytest.raises(StoreKeyError):
        normalize_key(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("key", "clean"),
    [
        ("output/sub/ComfyUI_00001_.png", "output/sub/ComfyUI_00001_.png"),
        ("a//b", "a/b"),
        ("a///b//c", "a/b/c"),
        ("./a/./b/.", "a/b"),
        ("a/b/", "a/b"),
        ("x.png", "x.png"),
        ("..x", "..x"),
        ("x..", "x.."),
        ("a/...", "a/..."),
        (".hidden", ".hidden"),
        ("my pic (1).png", "my pic (1).png"),
        ("ünïcødé/画像 🎨.png", "ünïcødé/画像 🎨.png"),
        # Percent signs that do not decode to an escape stay as written.
        ("100%.png", "100%.png"),
        ("a%20b.png", "a%20b.png"),
        ("%2e/x", "%2e/x"),
    ],
)
def test_accepted_keys_normalize(key: str, clean: str) -> None:
    assert normalize_key(key) == clean
    assert normalize_key(clean) == clean  # idempotent


def test_length_limits() -> None:
    assert normalize_key("a" * 255) == "a" * 255
    with pytest.raises(StoreKeyError, match="segment"):
        normalize_key("a" * 256)
    with pytest.raises(StoreKeyError, match="segment"):
        normalize_key("é" * 128)  # 256 bytes in UTF-8
    long_key = "/".join(["a" * 200] * 6)
    assert len(long_key) > MAX_KEY_BYTES
    with pytest.raises(StoreKeyError, match="longer"):
        normalize_key(long_key)


def test_join_key_joins_and_normalizes() -> None:
    assert join_key("output", "sub", "x.png") == "output/sub/x.png"
    assert join_key("output", "", "x.png") == "output/x.png"
    assert join_key("output", ".", "x.png") == "output/x.png"
    assert join_key("output", "a/b/", "x.png") == "output/a/b/x.png"
    assert join_key("output/", "x.png") == "output/x.png"


@pytest.mark.parametrize(
    ("parts", "status"),
    [
        (("output", "/etc/passwd"), 403),
        (("output", "..", "x.png"), 403),
        (("output", "sub/../../x"), 403),
        (("output", "%2e%2e", "x"), 403),
        (("output", "C:\\x"), 403),
        (("output", "a\\b"), 400),
        (("output", "a\x00"), 400),
        (("", ""), 400),
        ((), 400),
    ],
)
def test_join_key_checks_each_part(parts: tuple[str, ...], status: int) -> None:
    with pytest.raises(StoreKeyError) as info:
        join_key(*parts)
    assert info.value.status == status
