"""Per-prompt progress registry: the `progress_state` map ComfyUI sends on every change."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class NodeProgress:
    state: str  # "running" | "finished" | "error"
    value: float
    max: float
    display_node_id: str
    parent_node_id: str | None
    real_node_id: str


class ProgressRegistry:
    def __init__(self, prompt_id: str) -> None:
        self.prompt_id = prompt_id
        self._nodes: dict[str, NodeProgress] = {}

    def start(self, node_id: str, display: str, parent: str | None, real: str) -> None:
        self._nodes[node_id] = NodeProgress("running", 0.0, 1.0, display, parent, real)

    def update(self, node_id: str, value: float, max_value: float) -> bool:
        """Apply a report; False when the node is not running (a late report)."""
        entry = self._nodes.get(node_id)
        if entry is None or entry.state != "running":
            return False
        entry.value = value
        entry.max = max_value
        return True

    def finish(self, node_id: str, display: str, parent: str | None, real: str) -> None:
        entry = self._nodes.get(node_id)
        if entry is None:
            entry = NodeProgress("finished", 1.0, 1.0, display, parent, real)
            self._nodes[node_id] = entry
        entry.state = "finished"
        entry.value = entry.max

    def fail(self, node_id: str) -> None:
        entry = self._nodes.get(node_id)
        if entry is not None:
            entry.state = "error"

    def message(self) -> dict[str, Any]:
        return {
            "prompt_id": self.prompt_id,
            "nodes": {
                node_id: {
                    "value": p.value,
                    "max": p.max,
                    "state": p.state,
                    "node_id": node_id,
                    "prompt_id": self.prompt_id,
                    "display_node_id": p.display_node_id,
                    "parent_node_id": p.parent_node_id,
                    "real_node_id": p.real_node_id,
                }
                for node_id, p in self._nodes.items()
            },
        }
