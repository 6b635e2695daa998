"""The custom node pack folders under the configured custom_nodes directories.

ComfyUI finds what packs contribute to the frontend with `glob("<custom_nodes>/*/...")`, so a
pack here is any non-hidden sub-folder, whether or not a worker imported it. Names come from
the disk, never from a request: routes look a client's module name up in this list.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PackFolder:
    name: str
    path: Path


def visible_dirs(folder: Path) -> list[Path]:
    """Non-hidden sub-folders of `folder`, sorted by name; [] when it is not a folder."""
    try:
        entries = sorted(folder.iterdir(), key=lambda entry: entry.name)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        logger.warning("cannot list %s: %s", folder, exc)
        return []
    return [entry for entry in entries if not entry.name.startswith(".") and entry.is_dir()]


def visible_files(folder: Path, suffix: str) -> list[Path]:
    """Non-hidden files of `folder` ending in `suffix`, sorted by name."""
    try:
        entries = sorted(folder.iterdir(), key=lambda entry: entry.name)
    except OSError:
        return []
    return [
        entry
        for entry in entries
        if not entry.name.startswith(".") and entry.name.endswith(suffix) and entry.is_file()
    ]


def pack_folders(custom_node_dirs: Iterable[str]) -> list[PackFolder]:
    """Every pack folder, in the order of the custom_nodes directories, then by name."""
    return [
        PackFolder(name=folder.name, path=folder)
        for base in custom_node_dirs
        if base
        for folder in visible_dirs(Path(base))
    ]


def read_json_file(path: Path) -> Any | None:
    """The parsed file, or None (logged) when it is unreadable or not JSON: one broken pack
    file must not take the whole answer down."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        logger.warning("skipping %s: %s", path, exc)
        return None
