"""Model folder listings for /models, /experiment/models and /embeddings."""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path
from typing import Any

from node_actors.folders import FolderPaths

HIDDEN_FOLDERS = {"configs", "custom_nodes"}
EXPERIMENT_EXTENSIONS = {".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".pt2", ".sft"}


def _experiment_files(folders: FolderPaths, folder: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for index, root in enumerate(folders.get_folder_paths(folder)):
        base = Path(root)
        if not base.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(base, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith(".") or Path(name).suffix.lower() not in EXPERIMENT_EXTENSIONS:
                    continue
                path = Path(dirpath) / name
                stat = path.stat()
                entries.append(
                    {
                        "name": path.relative_to(base).as_posix(),
                        "pathIndex": index,
                        "modified": stat.st_mtime,
                        "created": stat.st_ctime,
                        "size": stat.st_size,
                    }
                )
    return entries


def model_preview(
    folders: FolderPaths, folder: str, path_index: int, filename: str
) -> tuple[int, bytes | str]:
    """(200, WebP bytes) of the preview image kept beside a model file, or (status, message):
    400 for an empty name, 403 for a name leaving its folder, 404 when there is none."""
    if not filename or "\x00" in filename:
        return 400, "Invalid filename"
    known = folders.folder_names_and_paths
    if folder not in known or folder in HIDDEN_FOLDERS:
        return 404, f"Unknown model folder: {folder}"
    roots = folders.get_folder_paths(folder)
    if path_index < 0 or path_index >= len(roots):
        return 404, f"No path {path_index} for model folder {folder}"
    root = Path(roots[path_index]).resolve()
    target = (root / filename).resolve()
    if not target.is_relative_to(root) or Path(filename).is_absolute():
        return 403, "Path is outside the model folder"
    stem = target.with_suffix("")
    for candidate in (
        stem.with_name(stem.name + ".png"),
        stem.with_name(stem.name + ".preview.png"),
    ):
        if candidate.is_file() and candidate.resolve().is_relative_to(root):
            return 200, _webp(candidate.read_bytes())
    cover = _safetensors_cover(target)
    if cover is not None:
        return 200, _webp(cover)
    return 404, "No preview found"


def _webp(data: bytes) -> bytes:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        out = io.BytesIO()
        image.save(out, format="WEBP")
        return out.getvalue()


def _safetensors_cover(path: Path) -> bytes | None:
    """The first `ssmd_cover_images` entry (base64 image) of a safetensors file's metadata."""
    if path.suffix.lower() not in {".safetensors", ".sft"}:
        return None
    metadata = _header_metadata(path, COVER_HEADER_LIMIT)
    try:
        covers = json.loads((metadata or {}).get("ssmd_cover_images", "[]"))
        return base64.b64decode(covers[0]) if covers else None
    except (ValueError, IndexError, TypeError):
        return None


# Cover images are large, so their header may be; /view_metadata reads at most 1 MiB of
# header, so a hostile file cannot make it allocate more.
COVER_HEADER_LIMIT = 100 * 1024 * 1024
METADATA_HEADER_LIMIT = 1024 * 1024


def _header_metadata(path: str | Path, limit: int) -> dict[str, Any] | None:
    """The `__metadata__` object of a safetensors file whose header is at most `limit` bytes."""
    if not os.path.isfile(path):
        return None
    try:
        with open(path, "rb") as handle:
            size = int.from_bytes(handle.read(8), "little")
            if size <= 0 or size > limit:
                return None
            header = json.loads(handle.read(size))
    except (OSError, ValueError):
        return None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    return metadata if isinstance(metadata, dict) else None


def safetensors_metadata(folders: FolderPaths, folder: str, filename: str) -> dict[str, Any] | None:
    """The `__metadata__` object of a listed .safetensors file, or None (404 at the edge)."""
    if not filename.endswith(".safetensors"):
        return None
    found = folders.get_full_path(folder, filename)
    return None if found is None else _header_metadata(found, METADATA_HEADER_LIMIT)


def models_query(folders: FolderPaths, what: str, folder: str | None, detail: Any = None) -> Any:
    known = folders.folder_names_and_paths
    if what == "metadata":
        return safetensors_metadata(folders, folder or "", str(detail))
    if what == "folder_paths":
        return {name: list(paths) for name, (paths, _extensions) in known.items()}
    if what == "preview":
        path_index, filename = detail
        return model_preview(folders, folder or "", int(path_index), str(filename))
    if what == "embeddings":
        return [Path(n).with_suffix("").as_posix() for n in folders.get_filename_list("embeddings")]
    if what == "folders":
        return list(known)
    if what == "files":
        return folders.get_filename_list(folder) if folder in known else None
    if what == "experiment":
        return [
            {"name": name, "folders": paths, "extensions": sorted(extensions)}
            for name, (paths, extensions) in known.items()
            if name not in HIDDEN_FOLDERS
        ]
    if what == "experiment_files":
        if folder not in known or folder in HIDDEN_FOLDERS:
            return None
        return _experiment_files(folders, folder)
    raise ValueError(f"unknown models query {what!r}")
