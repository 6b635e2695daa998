"""The workers' answers behind /view_metadata and /internal/folder_paths."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from node_actors.folders import FolderPaths
from node_actors.model_listing import METADATA_HEADER_LIMIT, models_query


@pytest.fixture
def folders(tmp_path: Path) -> FolderPaths:
    return FolderPaths(tmp_path / "comfy")


def checkpoint(folders: FolderPaths, name: str, metadata: dict[str, str] | None) -> Path:
    path = folders.models_dir / "checkpoints" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"w": torch.zeros(2)}, str(path), metadata=metadata)
    return path


def test_metadata_of_a_listed_safetensors_file(folders: FolderPaths) -> None:
    checkpoint(folders, "sub/a.safetensors", {"modelspec.title": "A", "ss_steps": "10"})
    found = models_query(folders, "metadata", "checkpoints", "sub/a.safetensors")
    assert found == {"modelspec.title": "A", "ss_steps": "10"}


def test_no_metadata_is_none(folders: FolderPaths, tmp_path: Path) -> None:
    checkpoint(folders, "plain.safetensors", None)
    (folders.models_dir / "checkpoints" / "x.ckpt").write_bytes(b"not safetensors")
    outside = tmp_path / "outside.safetensors"
    save_file({"w": torch.zeros(1)}, str(outside), metadata={"secret": "1"})
    for folder, name in [
        ("checkpoints", "plain.safetensors"),  # no __metadata__
        ("checkpoints", "x.ckpt"),  # not .safetensors
        ("checkpoints", "missing.safetensors"),
        ("no_such_folder", "plain.safetensors"),
        ("checkpoints", "../../outside.safetensors"),  # leaves the folder
        ("checkpoints", str(outside)),  # absolute
    ]:
        assert models_query(folders, "metadata", folder, name) is None, (folder, name)


def test_a_huge_header_is_not_read(folders: FolderPaths) -> None:
    path = folders.models_dir / "checkpoints" / "huge.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    header = json.dumps({"__metadata__": {"pad": "x" * METADATA_HEADER_LIMIT}}).encode()
    path.write_bytes(len(header).to_bytes(8, "little") + header)
    assert models_query(folders, "metadata", "checkpoints", "huge.safetensors") is None


def test_folder_paths_lists_every_folder_with_its_absolute_dirs(folders: FolderPaths) -> None:
    paths = models_query(folders, "folder_paths", None)
    assert paths["checkpoints"] == [str(folders.models_dir / "checkpoints")]
    assert set(paths) == set(folders.folder_names_and_paths)
    assert all(Path(p).is_absolute() for dirs in paths.values() for p in dirs)


def test_a_safetensors_cover_image_is_the_preview(folders: FolderPaths) -> None:
    image = io.BytesIO()
    Image.new("RGB", (4, 3), (200, 10, 10)).save(image, format="PNG")
    cover = json.dumps([base64.b64encode(image.getvalue()).decode()])
    checkpoint(folders, "covered.safetensors", {"ssmd_cover_images": cover})
    checkpoint(folders, "bare.safetensors", {"other": "x"})
    status, body = models_query(folders, "preview", "checkpoints", (0, "covered.safetensors"))
    assert status == 200 and isinstance(body, bytes)
    with Image.open(io.BytesIO(body)) as preview:
        assert (preview.format, preview.size) == ("WEBP", (4, 3))
    assert models_query(folders, "preview", "checkpoints", (0, "bare.safetensors"))[0] == 404
