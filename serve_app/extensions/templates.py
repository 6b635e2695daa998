"""`GET /workflow_templates`: the example workflows packs ship, and where their files are.

A pack's workflows are the `*.json` files directly inside any of its folders named in
EXAMPLE_WORKFLOW_FOLDERS; the listing gives their stems per pack folder name, and the files
are served at `/api/workflow_templates/<pack>/<file>`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from serve_app.extensions.packs import pack_folders, visible_files

logger = logging.getLogger(__name__)

# The folder names ComfyUI looks in, in its order; `example_workflows` is the documented one.
EXAMPLE_WORKFLOW_FOLDERS: tuple[str, ...] = (
    "example_workflows",
    "example",
    "examples",
    "workflow",
    "workflows",
)


def workflow_templates(custom_node_dirs: Iterable[str]) -> dict[str, list[str]]:
    """`{pack folder name: [workflow file stems]}`; packs without workflows are left out."""
    found: dict[str, list[str]] = {}
    for pack in pack_folders(custom_node_dirs):
        for folder in _existing_folders(pack.path):
            for path in visible_files(folder, ".json"):
                found.setdefault(pack.name, []).append(path.stem)
    return found


def template_folders(custom_node_dirs: Iterable[str], module: str) -> list[Path]:
    """The workflow folders of the pack(s) named `module`, in lookup order.

    `module` is compared with names read from disk, so a client's text never becomes a path.
    """
    return [
        folder
        for pack in pack_folders(custom_node_dirs)
        if pack.name == module
        for folder in _existing_folders(pack.path)
    ]


def _existing_folders(pack: Path) -> list[Path]:
    return [pack / name for name in EXAMPLE_WORKFLOW_FOLDERS if (pack / name).is_dir()]
