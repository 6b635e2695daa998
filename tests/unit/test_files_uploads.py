"""Upload field checks, original_ref resolution, collision naming (serve_app/files/uploads.py)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from serve_app.files.errors import FileRequestError
from serve_app.files.form import UploadedFile, UploadForm
from serve_app.files.uploads import (
    OriginalRef,
    UploadTarget,
    parse_original_ref,
    parse_upload_target,
    place_upload,
    resolve_original,
)
from storage.file_store import FileStore


def upload(data: bytes = b"bytes", filename: str = "a.png") -> UploadedFile:
    return UploadedFile("image", filename, "image/png", io.BytesIO(data), len(data))


def form(fields: dict[str, str] | None = None, file: UploadedFile | None = None) -> UploadForm:
    return UploadForm(fields=fields or {}, files={} if file is None else {"image": file})


def test_target_defaults() -> None:
    target, file = parse_upload_target(form(file=upload()))
    assert target == UploadTarget("input", "", "a.png", False)
    assert file.filename == "a.png"


def test_target_fields() -> None:
    fields = {"type": "output", "subfolder": "s/t", "overwrite": "1"}
    target, _ = parse_upload_target(form(fields, upload(filename="x y.webp")))
    assert target == UploadTarget("output", "s/t", "x y.webp", True)


@pytest.mark.parametrize(
    ("fields", "file", "status", "words"),
    [
        ({}, None, 400, "'image'"),
        ({"image": "text"}, None, 400, "file part"),
        ({}, upload(filename=""), 400, "empty filename"),
        ({}, upload(data=b""), 400, "empty"),
        ({"type": "user"}, upload(), 400, "type"),
        ({"type": ""}, upload(), 400, "type"),
        ({"subfolder": "../x"}, upload(), 403, "subfolder"),
        ({"subfolder": "/abs"}, upload(), 403, "subfolder"),
        ({"subfolder": "a\\b"}, upload(), 400, "subfolder"),
        ({"subfolder": "%2e%2e"}, upload(), 403, "subfolder"),
        ({}, upload(filename="../a.png"), 403, "filename"),
        ({}, upload(filename="/etc/passwd"), 403, "filename"),
        ({}, upload(filename="a\x00.png"), 400, "filename"),
        ({}, upload(filename="C:\\fakepath\\a.png"), 403, "filename"),
        ({}, upload(filename="x" * 300 + ".png"), 400, "filename"),
    ],
)
def test_target_refusals(
    fields: dict[str, str], file: UploadedFile | None, status: int, words: str
) -> None:
    with pytest.raises(FileRequestError) as caught:
        parse_upload_target(form(fields, file))
    assert caught.value.status == status
    assert words in caught.value.message


def test_original_ref_parsing() -> None:
    assert parse_original_ref('{"filename": "a.png", "x": 1}') == {"filename": "a.png", "x": 1}
    for text, words in [
        (None, "original_ref"),
        ("{", "not JSON"),
        ("[1]", "filename"),
        ('{"filename": 3}', "filename"),
        ('{"subfolder": "a"}', "filename"),
    ]:
        with pytest.raises(FileRequestError, match=words):
            parse_original_ref(text)


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ({"filename": "a.png"}, OriginalRef("output", "a.png")),
        ({"filename": "a.png", "type": "input", "subfolder": "s"}, OriginalRef("input", "s/a.png")),
        ({"filename": "a.png [temp]", "type": "input"}, OriginalRef("temp", "a.png")),
        ({"filename": "a.png", "type": "user"}, None),
        ({"filename": "/etc/passwd", "type": "input"}, None),
        ({"filename": "../a.png", "type": "input"}, None),
        ({"filename": "a.png", "subfolder": "../.."}, None),
        ({"filename": "a.png", "subfolder": 5}, None),
        ({"filename": "a\x00.png"}, None),
        ({"filename": ""}, None),
    ],
)
def test_resolve_original(ref: dict[str, Any], expected: OriginalRef | None) -> None:
    assert resolve_original(ref) == expected


# --- naming against a store ----------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "area", fsync=False)


def writer(store: FileStore, data: bytes, written: list[str]) -> Any:
    def write(key: str, overwrite: bool) -> None:
        store.write(key, (data,), overwrite=overwrite)
        written.append(key)

    return write


def test_same_bytes_keep_the_name_without_writing(store: FileStore) -> None:
    store.write_bytes("s/a.png", b"same")
    written: list[str] = []
    target = UploadTarget("input", "s", "a.png", False)
    assert place_upload(store, target, upload(b"same"), writer(store, b"same", written)) == "a.png"
    assert written == []


def test_other_bytes_get_the_next_free_number(store: FileStore) -> None:
    store.write_bytes("a.png", b"one")
    store.write_bytes("a (1).png", b"two")
    written: list[str] = []
    target = UploadTarget("input", "", "a.png", False)
    name = place_upload(store, target, upload(b"three"), writer(store, b"three", written))
    assert name == "a (2).png"
    assert written == ["a (2).png"]
    # Same bytes as "a (1).png": that name is found again rather than a new one made.
    assert place_upload(store, target, upload(b"two"), writer(store, b"two", [])) == "a (1).png"


def test_same_size_other_bytes_are_different(store: FileStore) -> None:
    store.write_bytes("a.png", b"abc")
    target = UploadTarget("input", "", "a.png", False)
    assert place_upload(store, target, upload(b"abd"), writer(store, b"abd", [])) == "a (1).png"


def test_overwrite_replaces(store: FileStore) -> None:
    store.write_bytes("a.png", b"old")
    target = UploadTarget("input", "", "a.png", True)
    assert place_upload(store, target, upload(b"new"), writer(store, b"new", [])) == "a.png"
    assert store.read_bytes("a.png") == b"new"


def test_a_name_taken_during_the_write_is_looked_at_again(store: FileStore) -> None:
    target = UploadTarget("input", "", "a.png", False)
    calls: list[str] = []

    def racing_write(key: str, overwrite: bool) -> None:
        calls.append(key)
        if len(calls) == 1:
            store.write_bytes(key, b"someone else's")  # another upload won the name
        store.write(key, (b"mine",), overwrite=overwrite)

    assert place_upload(store, target, upload(b"mine"), racing_write) == "a (1).png"
    assert calls == ["a.png", "a (1).png"]
    assert store.read_bytes("a.png") == b"someone else's"
    assert store.read_bytes("a (1).png") == b"mine"


def test_a_file_where_the_subfolder_should_be_is_a_conflict(store: FileStore) -> None:
    store.write_bytes("s", b"a file")
    target = UploadTarget("input", "s", "a.png", False)
    with pytest.raises(FileRequestError) as caught:
        place_upload(store, target, upload(b"x"), writer(store, b"x", []))
    assert caught.value.status == 409
