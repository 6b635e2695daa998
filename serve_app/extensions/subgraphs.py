"""`GET /global_subgraphs`: subgraph blueprints the frontend offers in its node library.

Sources: each pack's `subgraphs/*.json` (source `custom_node`, node pack `custom_nodes.<pack>`)
and the server's own `blueprints/*.json` (source `templates`, node pack `comfyui`). An entry's
id is the sha256 of its source and absolute path, as in ComfyUI, so ids stay stable while the
files do. The listing is scanned once per catalog (ComfyUI caches it too); a file's JSON text
is read only when that one blueprint is asked for.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serve_app.extensions.packs import pack_folders, visible_files

logger = logging.getLogger(__name__)

CUSTOM_NODE_SOURCE = "custom_node"
TEMPLATES_SOURCE = "templates"
CORE_NODE_PACK = "comfyui"
PACK_SUBGRAPH_FOLDER = "subgraphs"
BLUEPRINT_FOLDER = "blueprints"


def subgraph_id(source: str, path: Path) -> str:
    return hashlib.sha256(f"{source}{path}".encode()).hexdigest()


@dataclass(frozen=True)
class SubgraphEntry:
    id: str
    source: str
    name: str
    node_pack: str
    path: Path

    def summary(self) -> dict[str, Any]:
        """The listing's shape: no `data`, and never the server-side path."""
        return {"source": self.source, "name": self.name, "info": {"node_pack": self.node_pack}}

    def with_data(self, data: str) -> dict[str, Any]:
        return {**self.summary(), "data": data}


def scan_subgraphs(
    custom_node_dirs: Iterable[str], blueprint_dir: Path | None
) -> list[SubgraphEntry]:
    entries: list[SubgraphEntry] = []
    for pack in pack_folders(custom_node_dirs):
        for path in visible_files(pack.path / PACK_SUBGRAPH_FOLDER, ".json"):
            entries.append(_entry(CUSTOM_NODE_SOURCE, path, f"custom_nodes.{pack.name}"))
    if blueprint_dir is not None:
        for path in visible_files(blueprint_dir, ".json"):
            entries.append(_entry(TEMPLATES_SOURCE, path, CORE_NODE_PACK))
    return entries


def _entry(source: str, path: Path, node_pack: str) -> SubgraphEntry:
    absolute = path.absolute()
    return SubgraphEntry(
        id=subgraph_id(source, absolute),
        source=source,
        name=path.stem,
        node_pack=node_pack,
        path=absolute,
    )


class SubgraphCatalog:
    """The blueprints of one set of folders, scanned on first use."""

    def __init__(self, custom_node_dirs: Iterable[str], blueprint_dir: Path | None) -> None:
        self._custom_node_dirs = tuple(custom_node_dirs)
        self._blueprint_dir = blueprint_dir
        self._entries: dict[str, SubgraphEntry] | None = None
        self._lock = threading.Lock()

    def entries(self) -> dict[str, SubgraphEntry]:
        with self._lock:
            if self._entries is None:
                scanned = scan_subgraphs(self._custom_node_dirs, self._blueprint_dir)
                self._entries = {entry.id: entry for entry in scanned}
                logger.info("found %d global subgraph blueprints", len(self._entries))
            return self._entries

    def listing(self) -> dict[str, dict[str, Any]]:
        return {entry_id: entry.summary() for entry_id, entry in self.entries().items()}

    def get(self, entry_id: str) -> dict[str, Any] | None:
        """The blueprint with its JSON text, or None for an unknown id or a vanished file."""
        entry = self.entries().get(entry_id)
        if entry is None:
            return None
        try:
            data = entry.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            logger.warning(
                "global subgraph %s (%s) cannot be read: %s", entry.name, entry.path, exc
            )
            return None
        return entry.with_data(data)


class SubgraphCatalogs:
    """One catalog per folder set, so each replica scans its folders once."""

    def __init__(self) -> None:
        self._catalogs: dict[tuple[tuple[str, ...], str], SubgraphCatalog] = {}
        self._lock = threading.Lock()

    def for_folders(self, custom_node_dirs: Iterable[str], base_dir: str) -> SubgraphCatalog:
        dirs = tuple(custom_node_dirs)
        with self._lock:
            catalog = self._catalogs.get((dirs, base_dir))
            if catalog is None:
                blueprints = Path(base_dir) / BLUEPRINT_FOLDER if base_dir else None
                catalog = SubgraphCatalog(dirs, blueprints)
                self._catalogs[(dirs, base_dir)] = catalog
            return catalog
