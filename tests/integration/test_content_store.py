"""The content store, the same tests over file:// and over s3:// against a real SeaweedFS.

Run inside /work/shared/tools/netns-run: the S3 server binds 127.0.0.1 only.
"""

from __future__ import annotations

import hashlib
import os
import random
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.content_store import (
    ContentStore,
    ObjectNotFoundError,
    StoreError,
    StoreTooLargeError,
    open_store,
)
from storage.s3_store import S3Store
from storage.store_keys import StoreKeyError
from tests.seaweed import SeaweedServer

pytestmark = pytest.mark.integration

BUCKET = "comfyray-store-test"
MiB = 1 << 20


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ContentStore:
    if request.param == "file":
        return open_store(f"file://{tmp_path / 'store'}")
    server: SeaweedServer = request.getfixturevalue("seaweed")
    # One bucket per module (a SeaweedFS bucket costs volumes), one prefix per test.
    return open_store(server.uri(BUCKET, prefix=f"t-{uuid.uuid4().hex[:12]}"))


def random_chunks(total: int, seed: int, sizes: tuple[int, ...]) -> Iterator[bytes]:
    """Deterministic pseudo-random bytes in uneven chunks, made as they are consumed."""
    rng = random.Random(seed)
    made = 0
    index = 0
    while made < total:
        size = min(sizes[index % len(sizes)], total - made)
        index += 1
        made += size
        yield rng.randbytes(size)


def sha256_of(chunks: Iterator[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def everything_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# -- streaming -------------------------------------------------------------------------


def test_large_stream_round_trip(store: ContentStore, request: pytest.FixtureRequest) -> None:
    total = 40 * MiB
    sizes = (MiB + 123, 64 * 1024, 3 * MiB - 7)
    expected = sha256_of(random_chunks(total, 7, sizes))

    tracemalloc.start()
    try:
        info = store.write("output/big.bin", random_chunks(total, 7, sizes))
        _, write_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        chunk_size = 256 * 1024
        digest = hashlib.sha256()
        count = 0
        for chunk in store.read("output/big.bin", chunk_size=chunk_size):
            assert 0 < len(chunk) <= chunk_size
            digest.update(chunk)
            count += len(chunk)
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert info.key == "output/big.bin" and info.size == total
    assert count == total and digest.hexdigest() == expected
    assert store.stat("output/big.bin").size == total
    # Reads never hold the object; the file store never buffers a write either.
    assert read_peak < 8 * MiB, read_peak
    if isinstance(store, S3Store):
        # Streamed as multipart (16 MiB parts): S3's ETag of a 3-part upload ends in "-3".
        server: SeaweedServer = request.getfixturevalue("seaweed")
        etag = server.client().stat_object(store.bucket, f"{store.prefix}/output/big.bin").etag
        assert etag is not None and etag.endswith("-3"), etag
    else:
        assert write_peak < 8 * MiB, write_peak


def test_range_reads(store: ContentStore) -> None:
    data = bytes(range(256)) * 4
    store.write_bytes("r.bin", data)
    cases = [(0, 10), (10, 20), (0, None), (995, None), (990, 2000), (1000, None), (2000, 3000)]
    for start, end in cases + [(5, 5), (7, 3)]:
        got = b"".join(store.read("r.bin", start, end, chunk_size=7))
        assert got == data[start:end], (start, end)
    for chunk in store.read("r.bin", 3, 50, chunk_size=7):
        assert len(chunk) <= 7
    # A missing key fails at the call, before any iteration, so a route can answer 404.
    with pytest.raises(ObjectNotFoundError):
        store.read("missing.bin")
    with pytest.raises(ObjectNotFoundError):
        store.read("missing.bin", 5, 5)
    with pytest.raises(ValueError):
        store.read("r.bin", -1)


def test_stat_and_exists(store: ContentStore) -> None:
    before = time.time()
    written = store.write_bytes("a/b/c.json", b'{"x": 1}')
    after = time.time()
    info = store.stat("./a//b/c.json")
    assert info.key == "a/b/c.json" == written.key
    assert info.size == 8 == written.size
    # S3 keeps whole seconds; allow the clocks a little slack.
    assert before - 2 <= info.modified <= after + 2
    assert store.exists("a/b/c.json") and store.read_bytes("a/b/c.json") == b'{"x": 1}'
    assert not store.exists("a/b/none.json")
    assert not store.exists("a/b")  # a folder is not an object
    for missing in ("a/b/none.json", "a/b", "a"):
        with pytest.raises(ObjectNotFoundError):
            store.stat(missing)
    with pytest.raises(ObjectNotFoundError):
        store.read_bytes("a")


def test_overwrite(store: ContentStore) -> None:
    store.write_bytes("s/settings.json", b"one")
    with pytest.raises(FileExistsError):
        store.write_bytes("s/settings.json", b"two", overwrite=False)
    with pytest.raises(FileExistsError):
        store.write("s/settings.json", iter([b"t", b"wo"]), overwrite=False)
    assert store.read_bytes("s/settings.json") == b"one"
    assert store.write_bytes("s/settings.json", b"three").size == 5
    assert store.read_bytes("s/settings.json") == b"three"
    assert store.write_bytes("s/new.json", b"4", overwrite=False).size == 1
    assert [i.key for i in store.list("s")] == ["s/new.json", "s/settings.json"]


def test_max_bytes_leaves_nothing_behind(
    store: ContentStore, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    with pytest.raises(StoreTooLargeError):
        store.write("up/small.bin", iter([b"0123456789", b"x"]), max_bytes=10)
    # Large enough that the S3 upload is multipart when the limit trips mid-stream.
    with pytest.raises(StoreTooLargeError):
        store.write("up/deep/big.bin", random_chunks(24 * MiB, 1, (MiB,)), max_bytes=17 * MiB)
    assert store.list() == []
    assert not store.exists("up/small.bin") and not store.exists("up/deep/big.bin")
    if isinstance(store, S3Store):
        server: SeaweedServer = request.getfixturevalue("seaweed")
        raw = server.client().list_objects(store.bucket, f"{store.prefix}/", recursive=True)
        assert [o.object_name for o in raw] == []
    else:
        assert everything_under(tmp_path / "store") == []  # no temp file, no new folder

    # A failed overwrite keeps the old object whole.
    store.write_bytes("up/keep.bin", b"old")
    with pytest.raises(StoreTooLargeError):
        store.write("up/keep.bin", iter([b"n" * 6, b"n" * 6]), max_bytes=10)

    def broken() -> Iterator[bytes]:
        yield b"partial"
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        store.write("up/keep.bin", broken())
    assert store.read_bytes("up/keep.bin") == b"old"
    assert store.write("up/exact.bin", iter([b"12345", b"67890"]), max_bytes=10).size == 10
    assert [i.key for i in store.list()] == ["up/exact.bin", "up/keep.bin"]
    if not isinstance(store, S3Store):
        assert everything_under(tmp_path / "store") == ["up", "up/exact.bin", "up/keep.bin"]


def test_move(store: ContentStore) -> None:
    store.write_bytes("input/a.png", b"A")
    store.write_bytes("input/b.png", b"B")
    moved = store.move("input/a.png", "input/sub/dir/a2.png")
    assert moved.key == "input/sub/dir/a2.png" and moved.size == 1
    assert not store.exists("input/a.png")
    assert store.read_bytes("input/sub/dir/a2.png") == b"A"
    with pytest.raises(ObjectNotFoundError):
        store.move("input/a.png", "input/c.png")
    with pytest.raises(FileExistsError):
        store.move("input/sub/dir/a2.png", "input/b.png")
    assert store.read_bytes("input/b.png") == b"B" and store.exists("input/sub/dir/a2.png")
    with pytest.raises(FileExistsError):
        store.move("input/b.png", "input/b.png")
    assert store.move("input/sub/dir/a2.png", "input/b.png", overwrite=True).size == 1
    assert store.read_bytes("input/b.png") == b"A"
    assert [i.key for i in store.list("input")] == ["input/b.png"]


def test_delete(store: ContentStore) -> None:
    store.write_bytes("temp/x/t.png", b"t")
    store.write_bytes("temp/keep.png", b"k")
    store.delete("temp/x/t.png")
    assert not store.exists("temp/x/t.png")
    with pytest.raises(ObjectNotFoundError):
        store.delete("temp/x/t.png")
    with pytest.raises(ObjectNotFoundError):
        store.delete("temp")  # a folder is not an object
    assert [i.key for i in store.list()] == ["temp/keep.png"]


def test_list(store: ContentStore) -> None:
    keys = {
        "output/a.png": 1,
        "output/sub/b.png": 22,
        "output/sub/deeper/c.png": 333,
        "outputs/x.png": 4,
        "input/d.png": 5,
        "top.txt": 6,
    }
    for key, size in keys.items():
        store.write_bytes(key, b"z" * size)
    everything = store.list()
    assert [i.key for i in everything] == sorted(keys)
    assert {i.key: i.size for i in everything} == keys
    assert all(i.modified > 0 for i in everything)
    output = ["output/a.png", "output/sub/b.png", "output/sub/deeper/c.png"]
    assert [i.key for i in store.list("output")] == output
    assert [i.key for i in store.list("output/")] == output
    assert [i.key for i in store.list("output", recursive=False)] == ["output/a.png"]
    assert [i.key for i in store.list("output/sub", recursive=False)] == ["output/sub/b.png"]
    assert [i.key for i in store.list("", recursive=False)] == ["top.txt"]
    assert store.list("nothing") == []
    assert store.list("output/a.png") == []  # an object is not a folder


def test_keys_with_spaces_and_unicode(store: ContentStore) -> None:
    keys = ["output/my pic (1).png", "input/ünïcødé/画像 🎨.png", "a%20b.png", "100%.png"]
    for index, key in enumerate(keys):
        assert store.write_bytes(key, bytes([index]) * 3).key == key
    assert [i.key for i in store.list()] == sorted(keys)
    for index, key in enumerate(keys):
        assert store.read_bytes(key) == bytes([index]) * 3
        assert store.stat(key).size == 3
    store.move("input/ünïcødé/画像 🎨.png", "output/ñ 2.png")
    assert store.read_bytes("output/ñ 2.png") == b"\x01" * 3
    store.delete("a%20b.png")
    assert [i.key for i in store.list("output")] == ["output/my pic (1).png", "output/ñ 2.png"]


ESCAPES = ["../x", "%2e%2e/x", "..%2fx", "/etc/passwd", "a/../../x", "C:\\x"]


def test_escape_attempts_refused_on_every_method(store: ContentStore, tmp_path: Path) -> None:
    store.write_bytes("ok.txt", b"ok")
    calls = {
        "stat": lambda k: store.stat(k),
        "exists": lambda k: store.exists(k),
        "read": lambda k: store.read(k),
        "read_bytes": lambda k: store.read_bytes(k),
        "write": lambda k: store.write(k, iter([b"x"])),
        "write_bytes": lambda k: store.write_bytes(k, b"x"),
        "delete": lambda k: store.delete(k),
        "move_src": lambda k: store.move(k, "moved.txt"),
        "move_dst": lambda k: store.move("ok.txt", k, overwrite=True),
        "list": lambda k: store.list(k),
        "local_path": lambda k: store.local_path(k),
    }
    for bad in ESCAPES:
        for name, call in calls.items():
            with pytest.raises(StoreKeyError) as info:
                call(bad)
            assert info.value.status == 403, (name, bad)
    with pytest.raises(StoreKeyError) as info:
        store.write_bytes("a\\b.txt", b"x")
    assert info.value.status == 400
    assert [i.key for i in store.list()] == ["ok.txt"]
    assert not (tmp_path / "x").exists() and not (tmp_path / "moved.txt").exists()


def test_second_store_on_same_uri_sees_writes(store: ContentStore) -> None:
    other = open_store(store.uri)
    assert other is not store and type(other) is type(store)
    assert isinstance(other, ContentStore)
    store.write_bytes("output/from-first.png", b"1")
    assert other.read_bytes("output/from-first.png") == b"1"
    other.write("output/from-second.png", iter([b"2", b"2"]))
    assert [i.key for i in store.list("output")] == [
        "output/from-first.png",
        "output/from-second.png",
    ]
    other.delete("output/from-first.png")
    assert not store.exists("output/from-first.png")


def test_local_path(store: ContentStore) -> None:
    store.write_bytes("models/x.bin", b"weights")
    path = store.local_path("models/x.bin")
    if isinstance(store, S3Store):
        assert path is None
    else:
        assert path is not None and path.read_bytes() == b"weights"


# -- backend specifics -----------------------------------------------------------------


def test_file_store_refuses_symlinks_leading_outside(tmp_path: Path) -> None:
    store = open_store(f"file://{tmp_path / 'store'}")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"secret")
    root = tmp_path / "store"
    os.symlink(outside, root / "link")
    os.symlink(outside / "secret.txt", root / "file-link.txt")
    store.write_bytes("real/inner.txt", b"inner")
    os.symlink(root / "real", root / "inner-link")

    calls = {
        "read_bytes": lambda k: store.read_bytes(k),
        "stat": lambda k: store.stat(k),
        "exists": lambda k: store.exists(k),
        "write_bytes": lambda k: store.write_bytes(k, b"x"),
        "delete": lambda k: store.delete(k),
        "move": lambda k: store.move("real/inner.txt", k),
        "list": lambda k: store.list(k),
    }
    for key in ("link/secret.txt", "file-link.txt", "link/new.txt", "link"):
        for name, call in calls.items():
            with pytest.raises(StoreKeyError) as info:
                call(key)
            assert info.value.status == 403, (name, key)
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    # Links that stay inside the root are ordinary paths.
    assert store.read_bytes("inner-link/inner.txt") == b"inner"
    keys = [i.key for i in store.list()]
    assert "file-link.txt" not in keys and not any(k.startswith("link/") for k in keys)


def test_open_store_file_uris(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    relative = open_store("file://rel/dir")
    relative.write_bytes("k.txt", b"r")
    assert (tmp_path / "rel" / "dir" / "k.txt").read_bytes() == b"r"
    absolute = open_store(f"file://{tmp_path / 'with%20space'}")
    absolute.write_bytes("k.txt", b"a")
    assert (tmp_path / "with space" / "k.txt").read_bytes() == b"a"


@pytest.mark.parametrize(
    ("uri", "names"),
    [
        ("ftp://host/dir", "scheme"),
        ("file://", "directory"),
        ("s3://?endpoint=127.0.0.1:1", "bucket"),
        ("s3://bkt", "endpoint"),
        ("s3://bkt?endpoint=127.0.0.1:1&secure=maybe", "secure"),
        ("s3://bkt?endpoint=127.0.0.1:1&colour=red", "colour"),
        ("s3://bkt?endpoint=127.0.0.1:1&prefix=../up", "prefix"),
        ("s3://bkt?endpoint=127.0.0.1:1&access_key=a", "secret_key"),
        ("s3://bkt/path?endpoint=127.0.0.1:1", "prefix"),
    ],
)
def test_bad_uris_name_the_part(uri: str, names: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    with pytest.raises(StoreError, match=names):
        open_store(uri)


def test_s3_bucket_creation_credentials_and_env(
    seaweed: SeaweedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = f"fresh-{uuid.uuid4().hex[:8]}"
    store = open_store(seaweed.uri(fresh))
    assert seaweed.client().bucket_exists(fresh)
    store.write_bytes("k.txt", b"v")
    assert "secret_key=***" in repr(store) and seaweed.secret_key not in repr(store)

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", seaweed.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", seaweed.secret_key)
    from_env = open_store(f"s3://{fresh}?endpoint={seaweed.endpoint}&secure=false")
    assert from_env.read_bytes("k.txt") == b"v"

    # The server checks signatures: a wrong secret is refused, not silently accepted.
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    with pytest.raises(StoreError):
        open_store(f"s3://{fresh}?endpoint={seaweed.endpoint}&secure=false")
