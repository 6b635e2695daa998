"""`folder_paths`: ComfyUI's module-level folder API, delegating to the worker's FolderPaths.

The worker installs one `node_actors.folders.FolderPaths` per process
(`node_actors.folders.install`); every function here reads it at call time, so a pack that
imported this module before installation still sees the right folders. Module attributes
such as `models_dir` or `folder_names_and_paths` are resolved the same way, through the
module `__getattr__`.
"""

from __future__ import annotations

import mimetypes
import os
from pathlib import Path
from typing import Any

_DEFAULT_PT_EXTENSIONS = frozenset(
    {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}
)

# Types mimetypes does not know everywhere; filter_files_content_types relies on them.
_EXTRA_TYPES = {
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".jxl": "image/jxl",
    ".webm": "video/webm",
    ".mkv": "video/x-matroska",
    ".flac": "audio/flac",
    ".opus": "audio/opus",
    ".m4a": "audio/mp4",
    ".glb": "model/gltf-binary",
    ".gltf": "model/gltf+json",
    ".obj": "model/obj",
    ".fbx": "model/fbx",
    ".stl": "model/stl",
}


def _folders() -> Any:
    # Imported late: this module must be importable before the worker installs folders.
    from node_actors.folders import installed

    return installed()


_DYNAMIC_ATTRIBUTES = {
    "folder_names_and_paths": lambda f: f.folder_names_and_paths,
    "models_dir": lambda f: str(f.models_dir),
    "base_path": lambda f: str(f.base_dir),
    "output_directory": lambda f: str(f.output_dir),
    "input_directory": lambda f: str(f.input_dir),
    "temp_directory": lambda f: str(f.temp_dir),
    "user_directory": lambda f: str(f.user_dir),
    # The FolderPaths' own set: packs add extensions to it and every folder sees them.
    "supported_pt_extensions": lambda f: getattr(
        f, "supported_pt_extensions", set(_DEFAULT_PT_EXTENSIONS)
    ),
}


def __getattr__(name: str) -> Any:
    getter = _DYNAMIC_ATTRIBUTES.get(name)
    if getter is None:
        raise AttributeError(f"module 'folder_paths' has no attribute {name!r}")
    return getter(_folders())


def get_output_directory() -> str:
    return str(_folders().output_dir)


def get_input_directory() -> str:
    return str(_folders().input_dir)


def get_temp_directory() -> str:
    return str(_folders().temp_dir)


def get_user_directory() -> str:
    return str(_folders().user_dir)


def get_directory_by_type(type_name: str) -> str | None:
    path = _folders().get_directory_by_type(type_name)
    return None if path is None else str(path)


def get_folder_paths(folder_name: str) -> list[str]:
    return list(_folders().get_folder_paths(folder_name))


def get_filename_list(folder_name: str) -> list[str]:
    return list(_folders().get_filename_list(folder_name))


def get_full_path(folder_name: str, filename: str) -> str | None:
    return _folders().get_full_path(folder_name, filename)


def get_full_path_or_raise(folder_name: str, filename: str) -> str:
    full_path = get_full_path(folder_name, filename)
    if full_path is None:
        raise FileNotFoundError(
            f"Model in folder '{folder_name}' with filename '{filename}' not found."
        )
    return full_path


def add_model_folder_path(
    folder_name: str, full_folder_path: str, is_default: bool = False
) -> None:
    _folders().add_model_folder_path(folder_name, full_folder_path, is_default)


def get_annotated_filepath(name: str, default_dir: str | None = None) -> str:
    return _folders().get_annotated_filepath(name, default_dir)


def exists_annotated_filepath(name: str) -> bool:
    return bool(_folders().exists_annotated_filepath(name))


def get_save_image_path(
    filename_prefix: str,
    output_dir: str | Path,
    image_width: int = 0,
    image_height: int = 0,
) -> tuple[str, str, int, str, str]:
    return _folders().get_save_image_path(filename_prefix, output_dir, image_width, image_height)


def _content_type(filename: str) -> str | None:
    ext = os.path.splitext(filename)[1].lower()
    if ext in _EXTRA_TYPES:
        return _EXTRA_TYPES[ext]
    return mimetypes.guess_type(filename, strict=False)[0]


def filter_files_content_types(files: list[str], content_types: list[str]) -> list[str]:
    """Keep the files whose major MIME type (image, video, audio, model) is listed."""
    wanted = set(content_types)
    kept = []
    for name in files:
        mime = _content_type(name)
        if mime is not None and mime.split("/", 1)[0] in wanted:
            kept.append(name)
    return kept
