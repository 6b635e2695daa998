"""StoreSync: a worker's local input/output/temp folders against the shared store areas.

Two FileStores in other tmp folders stand in for the remote store (an S3 bucket in a
cluster); the worker's own folders are a FolderPaths layout.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from node_actors.folders import FolderPaths
from node_actors.protocol import NodeTask
from node_actors.store_sync import (
    StoreSync,
    StoreSyncError,
    UiFile,
    UnsafeFileError,
    ui_files,
)
from node_actors.worker_core import NodeWorkerImpl
from storage.content_store import ContentStore, ObjectInfo, StoreError
from storage.file_store import FileStore

AREAS = ("input", "output", "temp")


@pytest.fixture
def worker(tmp_path: Path) -> FolderPaths:
    return FolderPaths(tmp_path / "worker")


@pytest.fixture
def remote(tmp_path: Path) -> dict[str, FileStore]:
    return {area: FileStore(tmp_path / "remote" / area, fsync=False) for area in AREAS}


def dirs(folders: FolderPaths) -> dict[str, Path]:
    return {"input": folders.input_dir, "output": folders.output_dir, "temp": folders.temp_dir}


@pytest.fixture
def sync(worker: FolderPaths, remote: dict[str, FileStore]) -> StoreSync:
    made = StoreSync(remote, dirs(worker))
    worker.sync = made
    return made


def image_ui(*entries: tuple[str, str, str]) -> dict[str, list[Any]]:
    return {"images": [{"filename": f, "subfolder": s, "type": t} for f, s, t in entries]}


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


# -- which files a UI dict names ----------------------------------------------------------


def test_ui_files_are_the_dicts_naming_an_area_file() -> None:
    ui = {
        "images": [
            {"filename": "a.png", "subfolder": "", "type": "output"},
            {"filename": "b.png", "subfolder": "sub/deeper", "type": "temp"},
            {"filename": "a.png", "subfolder": "", "type": "output"},  # named twice
        ],
        "gifs": [{"filename": "c.webp", "subfolder": "x", "type": "output", "format": "webp"}],
        "text": ["not a file"],
        "other": [{"filename": "d.png", "type": "path"}, {"type": "output"}],
        "scalar": 3,
    }
    assert ui_files(ui) == [
        UiFile("output", "a.png"),
        UiFile("temp", "sub/deeper/b.png"),
        UiFile("output", "x/c.webp"),
    ]
    assert ui_files(None) == [] and ui_files({}) == []


@pytest.mark.parametrize(
    ("subfolder", "filename"),
    [
        ("..", "a.png"),
        ("../../etc", "passwd"),
        ("/etc", "passwd"),
        ("", "../a.png"),
        ("", "/etc/passwd"),
        ("%2e%2e", "a.png"),
        ("sub\\..\\..", "a.png"),
        ("ok", "a\x00.png"),
    ],
)
def test_ui_file_names_leaving_their_area_are_refused(subfolder: str, filename: str) -> None:
    with pytest.raises(UnsafeFileError, match="outside the output folder"):
        ui_files(image_ui((filename, subfolder, "output")))


# -- node files go up -----------------------------------------------------------------------


def test_upload_sends_every_ui_file_to_its_area(
    sync: StoreSync, worker: FolderPaths, remote: dict[str, FileStore]
) -> None:
    (worker.output_dir / "ComfyUI_00001_.png").write_bytes(b"out-1")
    (worker.output_dir / "sub").mkdir()
    (worker.output_dir / "sub" / "x_00001_.png").write_bytes(b"out-2")
    (worker.temp_dir / "prev_00001_.png").write_bytes(b"tmp")
    ui = {
        **image_ui(("ComfyUI_00001_.png", "", "output"), ("x_00001_.png", "sub", "output")),
        "previews": [{"filename": "prev_00001_.png", "subfolder": "", "type": "temp"}],
        "text": ["hello"],
    }

    sent = sync.upload_ui_files(ui)

    assert sent == [
        UiFile("output", "ComfyUI_00001_.png"),
        UiFile("output", "sub/x_00001_.png"),
        UiFile("temp", "prev_00001_.png"),
    ]
    assert remote["output"].read_bytes("ComfyUI_00001_.png") == b"out-1"
    assert remote["output"].read_bytes("sub/x_00001_.png") == b"out-2"
    assert remote["temp"].read_bytes("prev_00001_.png") == b"tmp"
    assert files_under(remote["input"].root) == []
    # The local copy now carries the object's mtime: the same file is not sent twice.
    assert sync.upload_ui_files(ui) == []


def test_upload_sends_a_changed_file_again(
    sync: StoreSync, worker: FolderPaths, remote: dict[str, FileStore]
) -> None:
    path = worker.output_dir / "a.png"
    path.write_bytes(b"first")
    ui = image_ui(("a.png", "", "output"))
    assert sync.upload_ui_files(ui) == [UiFile("output", "a.png")]
    path.write_bytes(b"second, longer")
    assert sync.upload_ui_files(ui) == [UiFile("output", "a.png")]
    assert remote["output"].read_bytes("a.png") == b"second, longer"


def test_upload_skips_a_named_file_that_does_not_exist(
    sync: StoreSync, remote: dict[str, FileStore]
) -> None:
    assert sync.upload_ui_files(image_ui(("missing.png", "", "output"))) == []
    assert files_under(remote["output"].root) == []


@pytest.mark.parametrize("subfolder", ["..", "../input", "/tmp", "/"])
def test_upload_refuses_names_outside_the_area_and_sends_nothing(
    sync: StoreSync, worker: FolderPaths, remote: dict[str, FileStore], subfolder: str
) -> None:
    # Files a bad name could reach: the worker's base folder and its input folder.
    (worker.base_dir / "secret.png").write_bytes(b"secret")
    (worker.input_dir / "secret.png").write_bytes(b"secret")
    (worker.output_dir / "fine.png").write_bytes(b"fine")
    ui = image_ui(("fine.png", "", "output"), ("secret.png", subfolder, "output"))
    with pytest.raises(UnsafeFileError):
        sync.upload_ui_files(ui)
    assert all(files_under(store.root) == [] for store in remote.values())


def test_upload_refuses_a_link_out_of_the_local_folder(
    sync: StoreSync, worker: FolderPaths, remote: dict[str, FileStore], tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "secret.png").write_bytes(b"secret")
    (worker.output_dir / "linked").symlink_to(outside)
    with pytest.raises(UnsafeFileError, match="leads outside"):
        sync.upload_ui_files(image_ui(("secret.png", "linked", "output")))
    assert files_under(remote["output"].root) == []


class FailingWrites:
    """A store whose writes fail as an unreachable S3 server's would."""

    def __init__(self, inner: FileStore) -> None:
        self.inner = inner
        self.uri = inner.uri

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def local_path(self, key: str) -> Path | None:
        return None

    def write(self, key: str, chunks: Iterable[bytes], **_: Any) -> ObjectInfo:
        raise StoreError("s3 write failed: connection refused")


def test_a_failed_upload_raises_naming_the_file(
    worker: FolderPaths, remote: dict[str, FileStore]
) -> None:
    stores: dict[str, ContentStore] = {**remote, "output": FailingWrites(remote["output"])}  # type: ignore[dict-item]
    sync = StoreSync(stores, dirs(worker))
    (worker.output_dir / "a.png").write_bytes(b"x")
    with pytest.raises(StoreSyncError, match="'a.png'.*connection refused"):
        sync.upload_ui_files(image_ui(("a.png", "", "output")))


def test_a_failed_upload_fails_the_node_with_a_clear_message(
    worker: FolderPaths, remote: dict[str, FileStore]
) -> None:
    from node_actors.protocol import NodeResultMeta

    stores: dict[str, ContentStore] = {**remote, "output": FailingWrites(remote["output"])}  # type: ignore[dict-item]
    (worker.output_dir / "a.png").write_bytes(b"x")
    impl = NodeWorkerImpl.__new__(NodeWorkerImpl)  # only the upload step, no node library
    impl.sync = StoreSync(stores, dirs(worker))
    task = NodeTask("p1", "9", "9", "9", None, "SaveImage", {})
    meta = NodeResultMeta(status="done", ui=image_ui(("a.png", "", "output")))

    failed = impl._upload_ui_files(task, meta)

    assert failed is not None and failed.status == "failed" and failed.failure is not None
    assert "SaveImage output files could not be stored" in failed.failure.exception_message
    assert "connection refused" in failed.failure.exception_message
    assert failed.failure.exception_type.endswith("StoreSyncError")


# -- when the areas are the local folders, nothing moves ------------------------------------


def test_nothing_is_copied_when_the_areas_are_the_local_folders(worker: FolderPaths) -> None:
    # No store URI: the areas are file stores over the worker's own folders.
    stores = {area: FileStore(path, fsync=False) for area, path in dirs(worker).items()}
    sync = StoreSync(stores, dirs(worker))
    worker.sync = sync
    assert all(sync.is_local(area) for area in AREAS)
    path = worker.output_dir / "a.png"
    path.write_bytes(b"x")
    before = path.stat()
    assert sync.upload_ui_files(image_ui(("a.png", "", "output"))) == []
    assert path.stat().st_mtime_ns == before.st_mtime_ns  # not even touched
    (worker.input_dir / "in.png").write_bytes(b"y")
    assert sync.ensure_local("input", "in.png") is False
    assert sync.top_level_files("input") is None
    assert worker.input_image_files() == ["in.png"]
    assert files_under(worker.input_dir) == ["in.png"]


def test_a_remote_area_is_not_mistaken_for_local(sync: StoreSync) -> None:
    assert not any(sync.is_local(area) for area in AREAS)


# -- input files come down ------------------------------------------------------------------


def test_ensure_local_fetches_a_missing_input_then_only_when_stale(
    sync: StoreSync, worker: FolderPaths, remote: dict[str, FileStore]
) -> None:
    info = remote["input"].write_bytes("sub/in.png", b"version-1")
    local = worker.input_dir / "sub" / "in.png"

    assert sync.ensure_local("input", "sub/in.png") is True
    assert local.read_bytes() == b"version-1"
    assert abs(local.stat().st_mtime - info.modified) < 1e-3
    assert sync.ensure_local("input", "sub/in.png") is False  # current: nothing fetched

    # Same size, newer object: stale.
    remote["input"].write_bytes("sub/in.png", b"version-2")
    os.utime(remote["input"].root / "sub" / "in.png", (info.modified + 5, info.modified + 5))
    assert sync.ensure_local("input", "sub/in.png") is True
    assert local.read_bytes() == b"version-2"

    # A local copy that was changed on the worker is replaced by the store's object.
    local.write_bytes(b"edited on the worker")
    assert sync.ensure_local("input", "sub/in.png") is True
    assert local.read_bytes() == b"version-2"
    assert not [p for p in local.parent.iterdir() if p.name.startswith(".")]  # no temp left


def test_ensure_local_leaves_files_the_store_does_not_hold(
    sync: StoreSync, worker: FolderPaths
) -> None:
    (worker.input_dir / "only-here.png").write_bytes(b"local")
    assert sync.ensure_local("input", "only-here.png") is False
    assert (worker.input_dir / "only-here.png").read_bytes() == b"local"
    assert sync.ensure_local("input", "absent.png") is False
    assert not (worker.input_dir / "absent.png").exists()
    assert sync.ensure_local("input", "../escape.png") is False  # not a key: never fetched


def test_annotated_paths_fetch_from_their_area(
    sync: StoreSync, worker: FolderPaths, remote: dict[str, FileStore]
) -> None:
    remote["input"].write_bytes("in.png", b"input bytes")
    remote["output"].write_bytes("sub/out.png", b"output bytes")
    remote["temp"].write_bytes("t.png", b"temp bytes")

    assert not (worker.input_dir / "in.png").exists()
    assert worker.exists_annotated_filepath("in.png")  # VALIDATE_INPUTS of LoadImage
    assert Path(worker.get_annotated_filepath("in.png")).read_bytes() == b"input bytes"
    path = worker.get_annotated_filepath("sub/out.png [output]")
    assert path == str(worker.output_dir / "sub" / "out.png")
    assert Path(path).read_bytes() == b"output bytes"
    assert Path(worker.get_annotated_filepath("t.png [temp]")).read_bytes() == b"temp bytes"
    assert not worker.exists_annotated_filepath("nowhere.png")


def test_a_callers_own_default_dir_is_not_synced(
    sync: StoreSync, worker: FolderPaths, remote: dict[str, FileStore], tmp_path: Path
) -> None:
    remote["input"].write_bytes("in.png", b"input bytes")
    other = tmp_path / "other"
    other.mkdir()
    path = worker.get_annotated_filepath("in.png", default_dir=str(other))
    assert path == str(other / "in.png") and not Path(path).exists()
    assert not (worker.input_dir / "in.png").exists()


class FailingReads(FailingWrites):
    def stat(self, key: str) -> ObjectInfo:
        raise StoreError("s3 stat failed: connection refused")

    def list(self, prefix: str = "", *, recursive: bool = True) -> list[ObjectInfo]:
        raise StoreError("s3 list failed: connection refused")


def test_an_unreadable_store_fails_the_read_clearly(
    worker: FolderPaths, remote: dict[str, FileStore]
) -> None:
    stores: dict[str, ContentStore] = {**remote, "input": FailingReads(remote["input"])}  # type: ignore[dict-item]
    worker.sync = StoreSync(stores, dirs(worker))
    with pytest.raises(StoreSyncError, match="'in.png'.*connection refused"):
        worker.get_annotated_filepath("in.png")
    # LoadImage's options fall back to the local folder rather than failing object_info.
    (worker.input_dir / "local.png").write_bytes(b"x")
    assert worker.input_image_files() == ["local.png"]


# -- listings -------------------------------------------------------------------------------


def test_input_options_come_from_the_input_area(
    sync: StoreSync, worker: FolderPaths, remote: dict[str, FileStore]
) -> None:
    for key in ("b.png", "a.webp", "notes.txt", "sub/nested.png"):
        remote["input"].write_bytes(key, b"x")
    (worker.input_dir / "only-on-this-worker.png").write_bytes(b"x")

    assert sync.top_level_files("input") == ["a.webp", "b.png", "notes.txt"]
    assert worker.input_image_files() == ["a.webp", "b.png"]


def test_without_a_sync_folder_paths_behave_as_before(worker: FolderPaths) -> None:
    assert worker.sync is None
    (worker.input_dir / "a.png").write_bytes(b"x")
    assert worker.input_image_files() == ["a.png"]
    assert worker.get_annotated_filepath("a.png") == str(worker.input_dir / "a.png")
    assert worker.exists_annotated_filepath("a.png")
