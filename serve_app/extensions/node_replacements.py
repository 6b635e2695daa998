"""`GET /node_replacements`: which node classes replace deprecated ones.

Nothing registers replacements yet; the registry is the seam a pack loader (or the core
library) will fill, and the route answers `{}` until then.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class NodeReplacement:
    """How the frontend turns an `old_node_id` node into a `new_node_id` node.

    The mappings are passed to the frontend as given (ComfyUI's shapes: lists of objects
    naming old and new inputs or outputs).
    """

    old_node_id: str
    new_node_id: str
    old_widget_ids: list[str] | None = None
    input_mapping: list[dict[str, Any]] | None = None
    output_mapping: list[dict[str, Any]] | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "new_node_id": self.new_node_id,
            "old_node_id": self.old_node_id,
            "old_widget_ids": self.old_widget_ids,
            "input_mapping": self.input_mapping,
            "output_mapping": self.output_mapping,
        }


class NodeReplacementRegistry:
    def __init__(self) -> None:
        self._by_old: dict[str, list[NodeReplacement]] = {}
        self._lock = threading.Lock()

    def register(self, replacement: NodeReplacement) -> None:
        if not replacement.old_node_id or not replacement.new_node_id:
            raise ValueError("a node replacement needs both old_node_id and new_node_id")
        with self._lock:
            self._by_old.setdefault(replacement.old_node_id, []).append(replacement)
        logger.info("node %s is replaced by %s", replacement.old_node_id, replacement.new_node_id)

    def as_json(self) -> dict[str, list[dict[str, Any]]]:
        """`{old_class: [replacement, ...]}` in registration order."""
        with self._lock:
            return {old: [r.as_json() for r in found] for old, found in self._by_old.items()}
