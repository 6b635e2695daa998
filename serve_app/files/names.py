"""File names as ComfyUI clients write them: " [output]" annotations and "name (1).png"."""

from __future__ import annotations

import posixpath

from storage.areas import FILE_TYPES

# Where an upload goes when the client names no `type`, and where /view looks.
DEFAULT_UPLOAD_TYPE = "input"
DEFAULT_VIEW_TYPE = "output"
# Where /upload/mask looks for the original when its reference names no type.
DEFAULT_ORIGINAL_TYPE = "output"


def split_annotation(name: str) -> tuple[str, str | None]:
    """`"x.png [temp]"` -> `("x.png", "temp")`; any other name -> `(name, None)`."""
    for area in FILE_TYPES:
        suffix = f" [{area}]"
        if name.endswith(suffix):
            return name[: -len(suffix)], area
    return name, None


def numbered_name(filename: str, number: int) -> str:
    """The n-th alternative to a taken name: `"a.png"`, 2 -> `"a (2).png"`.

    The number goes before the last extension only (`"x.tar.gz"` -> `"x.tar (1).gz"`), and a
    leading dot does not start an extension (`".env"` -> `".env (1)"`), as ComfyUI names them.
    """
    stem, ext = posixpath.splitext(filename)
    return f"{stem} ({number}){ext}"


def is_overwrite(value: str | None) -> bool:
    """ComfyUI overwrites only for the exact texts "true" and "1"."""
    return value in ("true", "1")
