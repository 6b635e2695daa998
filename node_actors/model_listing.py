"""Model folder listings for /models, /experiment/models and /embeddings."""

from __future__ import annotations

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


def models_query(folders: FolderPaths, what: str, folder: str | None) -> Any:
    known = folders.folder_names_and_paths
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
