"""Puts the ComfyUI compatibility modules on sys.path.

Custom node packs import `folder_paths`, `comfy.utils`, `comfy_api` and friends as top-level
names. Those live in `node_actors/compat/`; they are made importable only in the processes
that load node packs (workers and the registry), never in the HTTP edge or the controller.
"""

from __future__ import annotations

import sys
from pathlib import Path

COMPAT_DIR = Path(__file__).resolve().parent / "compat"


def install_compat_path() -> None:
    """Prepend the compat folder to sys.path once; later calls do nothing."""
    entry = str(COMPAT_DIR)
    if entry not in sys.path:
        # First place, so an unrelated `server` or `comfy` module elsewhere on the path
        # cannot shadow the names packs expect.
        sys.path.insert(0, entry)
