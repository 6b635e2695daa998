"""Range and conditional-request rules of /view (serve_app/files/ranges.py)."""

from __future__ import annotations

import pytest

from serve_app.files.ranges import (
    ByteRange,
    RangeNotSatisfiableError,
    etag,
    http_date,
    not_modified,
    parse_range,
    range_applies,
)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-9", ByteRange(0, 10)),
        ("bytes=10-", ByteRange(10, 100)),
        ("bytes=-5", ByteRange(95, 100)),
        ("bytes=-500", ByteRange(0, 100)),
        ("bytes=90-500", ByteRange(90, 100)),
        ("bytes=99-99", ByteRange(99, 100)),
        ("BYTES = 1 - 2", ByteRange(1, 3)),
        (None, None),
        ("items=0-9", None),
        ("bytes=0-1,5-6", None),
        ("bytes=5-1", None),
        ("bytes=-", None),
        ("bytes=a-b", None),
        ("bytes=٣-", None),
        ("bytes=" + "9" * 5000 + "-", None),
    ],
)
def test_parse_range(header: str | None, expected: ByteRange | None) -> None:
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize(
    ("header", "size"),
    [
        ("bytes=100-", 100),
        ("bytes=500-600", 100),
        ("bytes=-0", 100),
        ("bytes=0-", 0),
        ("bytes=-3", 0),
    ],
)
def test_unsatisfiable_ranges(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiableError) as caught:
        parse_range(header, size)
    assert caught.value.size == size


def test_content_range_and_length() -> None:
    byte_range = ByteRange(10, 20)
    assert byte_range.length == 10
    assert byte_range.content_range(100) == "bytes 10-19/100"


def test_etag_changes_with_size_and_mtime() -> None:
    tag = etag(100, 1700000000.5)
    assert tag.startswith('"') and tag.endswith('"')
    assert tag != etag(101, 1700000000.5)
    assert tag != etag(100, 1700000000.6)


def test_not_modified() -> None:
    tag, mtime = etag(10, 1700000000.0), 1700000000.0
    assert not_modified(tag, None, tag, mtime)
    assert not_modified(f'"other", W/{tag}', None, tag, mtime)
    assert not_modified("*", None, tag, mtime)
    assert not not_modified('"other"', None, tag, mtime)
    # If-None-Match wins over If-Modified-Since.
    assert not not_modified('"other"', http_date(mtime), tag, mtime)
    assert not_modified(None, http_date(mtime), tag, mtime)
    assert not not_modified(None, http_date(mtime - 10), tag, mtime)
    assert not not_modified(None, "not a date", tag, mtime)
    assert not not_modified(None, None, tag, mtime)


def test_range_applies_only_while_the_validator_matches() -> None:
    tag, mtime = etag(10, 1700000000.0), 1700000000.0
    assert range_applies(None, tag, mtime)
    assert range_applies(tag, tag, mtime)
    assert not range_applies('"stale"', tag, mtime)
    assert range_applies(http_date(mtime), tag, mtime)
    assert not range_applies(http_date(mtime - 60), tag, mtime)
    assert not range_applies("garbage", tag, mtime)
