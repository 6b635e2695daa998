"""The streaming multipart/form-data parser (serve_app/files/multipart.py)."""

from __future__ import annotations

import pytest

from serve_app.files.multipart import (
    MultipartError,
    MultipartParser,
    PartBegin,
    PartData,
    PartEnd,
    boundary_of,
    parse_header_params,
)

BOUNDARY = b"----formBoundaryX7"


def body(*parts: bytes, preamble: bytes = b"", epilogue: bytes = b"") -> bytes:
    out = preamble
    for part in parts:
        out += b"--" + BOUNDARY + b"\r\n" + part + b"\r\n"
    return out + b"--" + BOUNDARY + b"--\r\n" + epilogue


def field(name: str, value: bytes) -> bytes:
    return f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value


def file_part(name: str, filename: str, data: bytes, ctype: str = "image/png") -> bytes:
    head = f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
    return (head + f"Content-Type: {ctype}\r\n\r\n").encode() + data


def parse(data: bytes, step: int | None = None) -> list[tuple[PartBegin, bytes]]:
    """Feed `data` in chunks of `step` bytes (all at once when None); the parts collected."""
    parser = MultipartParser(BOUNDARY)
    events = []
    chunks = [data] if step is None else [data[i : i + step] for i in range(0, len(data), step)]
    for chunk in chunks:
        events += parser.feed(chunk)
    parser.finish()
    parts: list[tuple[PartBegin, bytes]] = []
    current: PartBegin | None = None
    data_so_far = b""
    for event in events:
        if isinstance(event, PartBegin):
            assert current is None
            current, data_so_far = event, b""
        elif isinstance(event, PartData):
            assert current is not None
            data_so_far += event.data
        else:
            assert isinstance(event, PartEnd) and current is not None
            parts.append((current, data_so_far))
            current = None
    assert current is None
    return parts


# Bytes that look like the start of a delimiter inside the data must stay data.
TRICKY = b"\x89PNG\r\n\x1a\n\r\n--\r\n------formBoundaryX\r\n--" + BOUNDARY[:-1] + b"\x00\xff" * 50


@pytest.mark.parametrize("step", [None, 1, 2, 3, 7, 64])
def test_fields_and_files_survive_any_chunking(step: int | None) -> None:
    data = body(field("type", b"input"), file_part("image", "a b.png", TRICKY), field("x", b""))
    parts = parse(data, step)
    assert [(p.name, p.filename, d) for p, d in parts] == [
        ("type", None, b"input"),
        ("image", "a b.png", TRICKY),
        ("x", None, b""),
    ]
    assert parts[1][0].content_type == "image/png"


def test_an_epilogue_is_ignored_and_a_preamble_refused_cleanly() -> None:
    data = body(field("a", b"1"), epilogue=b"trailing junk")
    assert [(p.name, d) for p, d in parse(data)] == [("a", b"1")]
    # No browser or HTTP library sends a preamble; python-multipart refuses one (a 400).
    with pytest.raises(MultipartError):
        parse(body(field("a", b"1"), preamble=b"ignore me\r\n"))


def test_data_is_emitted_before_the_part_ends() -> None:
    parser = MultipartParser(BOUNDARY)
    events = parser.feed(b"--" + BOUNDARY + b"\r\n" + file_part("image", "x.bin", b"A" * 1000))
    streamed = b"".join(e.data for e in events if isinstance(e, PartData))
    # All but what could still be the start of the next delimiter is out already.
    assert len(streamed) >= 1000 - len(BOUNDARY) - 4
    assert not any(isinstance(e, PartEnd) for e in events)


def test_utf8_and_rfc5987_file_names() -> None:
    raw = body(
        'Content-Disposition: form-data; name="image"; filename="bild-ä.png"\r\n\r\nx'.encode(),
        b'Content-Disposition: form-data; name="other"; filename="fallback.png"; '
        b"filename*=UTF-8''%E2%82%AC%20rates.png\r\n\r\ny",
    )
    names = [p.filename for p, _ in parse(raw)]
    assert names == ["bild-ä.png", "€ rates.png"]


def test_escaped_quotes_are_unescaped_and_backslashes_kept() -> None:
    _kind, params = parse_header_params(r'form-data; name="a\"b"; filename="C:\fake\d.png"')
    assert params == {"name": 'a"b', "filename": "C:\\fake\\d.png"}


def test_header_names_are_case_insensitive() -> None:
    raw = body(b'content-DISPOSITION: form-data; NAME="k"\r\nCONTENT-type: text/plain\r\n\r\nv')
    ((part, data),) = parse(raw)
    assert (part.name, part.content_type, data) == ("k", "text/plain", b"v")


@pytest.mark.parametrize(
    "raw",
    [
        body(field("a", b"1"))[:-4],  # no closing delimiter
        b"--" + BOUNDARY + b"\r\n" + field("a", b"1"),  # cut inside the part
        b"no boundary at all",
        b"",
    ],
)
def test_truncated_bodies_fail(raw: bytes) -> None:
    parser = MultipartParser(BOUNDARY)
    with pytest.raises(MultipartError):
        parser.feed(raw)
        parser.finish()


@pytest.mark.parametrize(
    "part",
    [
        b"Content-Type: text/plain\r\n\r\nv",  # no Content-Disposition
        b"\r\nv",  # no headers at all
        b'Content-Disposition: attachment; name="a"\r\n\r\nv',
        b"Content-Disposition: form-data\r\n\r\nv",  # no name
        b"not a header line\r\n\r\nv",
    ],
)
def test_malformed_part_headers_are_refused(part: bytes) -> None:
    with pytest.raises(MultipartError):
        parse(body(part))


def test_garbage_after_a_boundary_is_refused() -> None:
    with pytest.raises(MultipartError):
        parse(b"--" + BOUNDARY + b"xyz\r\n" + field("a", b"1") + b"\r\n--" + BOUNDARY + b"--")


def test_limits_on_headers_and_parts() -> None:
    long_header = b'Content-Disposition: form-data; name="a"\r\nX-Pad: ' + b"p" * 20000
    parser = MultipartParser(BOUNDARY, max_header_bytes=1024)
    with pytest.raises(MultipartError, match="[Hh]eader"):
        parser.feed(b"--" + BOUNDARY + b"\r\n" + long_header)
    parser = MultipartParser(BOUNDARY, max_parts=2)
    with pytest.raises(MultipartError, match="more than 2 parts"):
        parser.feed(body(field("a", b"1"), field("b", b"2"), field("c", b"3")))


@pytest.mark.parametrize(
    ("content_type", "boundary"),
    [
        ("multipart/form-data; boundary=abc", b"abc"),
        ('multipart/form-data; charset=utf-8; boundary="a b:c"', b"a b:c"),
        ("Multipart/Form-Data;boundary=Z", b"Z"),
    ],
)
def test_boundary_of(content_type: str, boundary: bytes) -> None:
    assert boundary_of(content_type) == boundary


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "",
        "application/json",
        "multipart/form-data",
        "multipart/mixed; boundary=abc",
        "multipart/form-data; boundary=" + "b" * 71,
        "multipart/form-data; boundary=ä",
    ],
)
def test_boundary_of_refuses(content_type: str | None) -> None:
    with pytest.raises(MultipartError):
        boundary_of(content_type)
