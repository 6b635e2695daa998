"""Reading an upload's multipart body under the size limit (serve_app/files/form.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from serve_app.files import form as form_module
from serve_app.files.errors import FileRequestError, UploadTooLargeError
from serve_app.files.form import UploadForm, check_declared_length, read_upload_form

BOUNDARY = "b0undary"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def multipart(*parts: tuple[str, str | None, bytes]) -> bytes:
    out = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (
            f'; filename="{filename}"' if filename is not None else ""
        )
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        out += data + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


async def chunked(data: bytes, size: int, seen: list[int]) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        seen.append(start)
        yield data[start : start + size]


def read(
    data: bytes, max_bytes: int = 10**9, step: int = 7, seen: list[int] | None = None
) -> UploadForm:
    return asyncio.run(
        read_upload_form(
            chunked(data, step, seen if seen is not None else []), CONTENT_TYPE, max_bytes
        )
    )


def test_fields_and_files() -> None:
    payload = bytes(range(256)) * 20
    form = read(
        multipart(
            ("type", None, b"temp"),
            ("image", "a.png", payload),
            ("subfolder", None, "ünï".encode()),
            ("type", None, b"second value ignored"),
            ("image", "b.png", b"second file ignored"),
        )
    )
    try:
        assert form.fields == {"type": "temp", "subfolder": "ünï"}
        upload = form.files["image"]
        assert (upload.field, upload.filename, upload.size) == ("image", "a.png", len(payload))
        assert b"".join(upload.chunks(100)) == payload
        assert b"".join(upload.chunks()) == payload  # readable again from the start
    finally:
        form.close()
    assert upload.spool.closed


def test_large_files_spool_to_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(form_module, "SPOOL_MEMORY_BYTES", 1000)
    form = read(multipart(("image", "big.bin", b"z" * 5000)), step=512)
    try:
        assert form.files["image"].spool._rolled  # type: ignore[attr-defined]
        assert form.files["image"].size == 5000
    finally:
        form.close()


def test_reading_stops_as_soon_as_the_limit_is_passed() -> None:
    data = multipart(("image", "a.png", b"x" * 10_000))
    seen: list[int] = []
    with pytest.raises(UploadTooLargeError) as caught:
        read(data, max_bytes=1000, step=100, seen=seen)
    assert caught.value.status == 413
    assert max(seen) <= 1000  # the chunk that passed the limit was the last one pulled


def test_a_body_exactly_at_the_limit_is_read() -> None:
    data = multipart(("image", "a.png", b"x" * 100))
    read(data, max_bytes=len(data)).close()


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (multipart(("image", "a.png", b"x"))[:-10], "Malformed multipart"),
        (b"garbage", "Malformed multipart"),
        (multipart(("subfolder", None, b"s" * 70_000)), "subfolder"),
        (multipart(("subfolder", None, b"\xff\xfe")), "UTF-8"),
    ],
)
def test_bad_bodies_are_400(data: bytes, words: str) -> None:
    with pytest.raises(FileRequestError) as caught:
        read(data)
    assert caught.value.status == 400
    assert words in caught.value.message


@pytest.mark.parametrize("content_type", [None, "application/json", "multipart/form-data"])
def test_non_multipart_requests_are_400(content_type: str | None) -> None:
    with pytest.raises(FileRequestError) as caught:
        asyncio.run(read_upload_form(chunked(b"", 1, []), content_type, 100))
    assert caught.value.status == 400


def test_check_declared_length() -> None:
    check_declared_length(None, 10)
    check_declared_length("10", 10)
    with pytest.raises(UploadTooLargeError):
        check_declared_length("11", 10)
    with pytest.raises(FileRequestError) as caught:
        check_declared_length("ten", 10)
    assert caught.value.status == 400
