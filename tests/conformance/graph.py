"""A tiny builder for API-format prompts, so tests read as graphs rather than nested dicts.

    g = Graph()
    img = g.node("StubImage", content="BLACK", height=8, width=8, batch_size=1)
    g.node("SaveImage", images=img.out(0), filename_prefix=unique("x"))
    body = g.prompt()

Ids are "1", "2", ... unless a node is given `node_id=` (any string, e.g. "KSampler.0").
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any


def unique(prefix: str) -> str:
    """A name no other test uses: keeps SaveImage counters and cache keys apart."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def unique_int(low: int = 1, high: int = 10**9) -> int:
    """An int in [low, high] that another test is unlikely to use as a constant input."""
    return low + uuid.uuid4().int % (high - low + 1)


@dataclass(frozen=True)
class NodeRef:
    node_id: str

    def out(self, slot: int = 0) -> list[Any]:
        """A link to one of the node's outputs, as the prompt format writes it."""
        return [self.node_id, slot]


class Graph:
    def __init__(self) -> None:
        self._nodes: dict[str, dict[str, Any]] = {}
        self._next = 1

    def _fresh_id(self) -> str:
        while str(self._next) in self._nodes:
            self._next += 1
        return str(self._next)

    def node(
        self,
        class_type: str,
        /,
        *,
        node_id: str | None = None,
        title: str | None = None,
        **inputs: Any,
    ) -> NodeRef:
        """Add a node; inputs are constants or `ref.out(slot)` links. `title` adds `_meta`."""
        node_id = node_id if node_id is not None else self._fresh_id()
        if node_id in self._nodes:
            raise ValueError(f"node id {node_id!r} is already in the graph")
        spec: dict[str, Any] = {"class_type": class_type, "inputs": dict(inputs)}
        if title is not None:
            spec["_meta"] = {"title": title}
        self._nodes[node_id] = spec
        return NodeRef(node_id)

    def set_input(self, ref: NodeRef, name: str, value: Any) -> None:
        """Change an input after the fact (for cycles, which cannot be built in order)."""
        self._nodes[ref.node_id]["inputs"][name] = value

    def prompt(self) -> dict[str, Any]:
        """The `prompt` field of a POST /prompt body (a fresh copy each call)."""
        return {
            node_id: {**spec, "inputs": dict(spec["inputs"])}
            for node_id, spec in self._nodes.items()
        }


def image(g: Graph, content: str = "BLACK", *, node_id: str | None = None) -> NodeRef:
    """A StubImage of a size unlikely to be in the cache from another test (still tiny)."""
    return g.node(
        "StubImage",
        node_id=node_id,
        content=content,
        height=unique_int(1, 16),
        width=unique_int(1, 4096),
        batch_size=1,
    )
