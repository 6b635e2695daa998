"""The graph of one running prompt: the submitted nodes plus the ephemeral nodes that
expansions add while it runs (ComfyUI's `DynamicPrompt`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from node_actors.protocol import is_link

__all__ = ["DynamicPrompt", "is_link"]


class DynamicPrompt:
    def __init__(self, prompt: dict[str, dict[str, Any]]) -> None:
        self.original = prompt
        self.ephemeral: dict[str, dict[str, Any]] = {}
        self._parents: dict[str, str] = {}
        self._display: dict[str, str] = {}

    def get_node(self, node_id: str) -> dict[str, Any]:
        if node_id in self.ephemeral:
            return self.ephemeral[node_id]
        return self.original[node_id]

    def has_node(self, node_id: str) -> bool:
        return node_id in self.ephemeral or node_id in self.original

    def add_ephemeral_node(
        self, node_id: str, node: dict[str, Any], parent_id: str, display_id: str
    ) -> None:
        self.ephemeral[node_id] = node
        self._parents[node_id] = parent_id
        self._display[node_id] = display_id

    def is_ephemeral(self, node_id: str) -> bool:
        return node_id in self.ephemeral

    def parent_of(self, node_id: str) -> str | None:
        return self._parents.get(node_id)

    def real_node_id(self, node_id: str) -> str:
        """The submitted node an ephemeral node descends from."""
        while node_id in self._parents:
            node_id = self._parents[node_id]
        return node_id

    def display_node_id(self, node_id: str) -> str:
        return self._display.get(node_id, node_id)

    def all_node_ids(self) -> Iterator[str]:
        yield from self.original
        yield from self.ephemeral

    def as_dict(self) -> dict[str, Any]:
        """A plain snapshot for nodes that ask for DYNPROMPT."""
        return {
            "original": self.original,
            "ephemeral": self.ephemeral,
            "parents": dict(self._parents),
            "display": dict(self._display),
        }
