"""`comfy_execution.graph_utils`: GraphBuilder and links for node expansion.

A node that expands returns `{"result": (...), "expand": builder.finalize()}`. Node ids in
the expansion carry a prefix `<parent>.<call index>.<graph index>.` so that two expansions
of the same node (list calls, or several builders in one call) never collide. The worker
sets the prefix root and call index before each call with `GraphBuilder.set_default_prefix`.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from typing import Any

from node_actors.context import ExecutionBlocker

__all__ = ["ExecutionBlocker", "GraphBuilder", "Node", "is_link"]


def is_link(value: Any) -> bool:
    """A link is `[node_id: str, output_index: int]` (a list or tuple of two)."""
    return (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
    )


@dataclass
class _PrefixState:
    root: str = ""
    call_index: int = 0
    graph_index: int = 0


# A context variable, not a class attribute: async nodes of different prompts may build
# graphs concurrently in one worker. The state object is mutable so that a thread that
# copied the context (asyncio.to_thread) still advances the same graph counter.
_prefix_state: contextvars.ContextVar[_PrefixState | None] = contextvars.ContextVar(
    "comfyray_graph_prefix", default=None
)


def _state() -> _PrefixState:
    state = _prefix_state.get()
    if state is None:
        state = _PrefixState()
        _prefix_state.set(state)
    return state


class Node:
    """One node of an expansion graph."""

    def __init__(self, id: str, class_type: str, inputs: dict[str, Any]) -> None:  # noqa: A002
        self.id = id
        self.class_type = class_type
        self.inputs = dict(inputs)
        self.override_display_id: str | None = None

    def out(self, index: int) -> list[Any]:
        return [self.id, index]

    def set_input(self, key: str, value: Any) -> None:
        # None removes the input, matching how packs clear an optional input.
        if value is None:
            self.inputs.pop(key, None)
        else:
            self.inputs[key] = value

    def get_input(self, key: str) -> Any:
        return self.inputs.get(key)

    def set_override_display_id(self, override_display_id: str) -> None:
        self.override_display_id = override_display_id

    def serialize(self) -> dict[str, Any]:
        data: dict[str, Any] = {"class_type": self.class_type, "inputs": self.inputs}
        if self.override_display_id is not None:
            data["override_display_id"] = self.override_display_id
        return data


class GraphBuilder:
    """Builds a prompt-format graph of new nodes for node expansion."""

    def __init__(self, prefix: str | None = None) -> None:
        self.prefix = GraphBuilder.alloc_prefix() if prefix is None else prefix
        self.nodes: dict[str, Node] = {}
        self.id_gen = 1

    @classmethod
    def set_default_prefix(cls, prefix_root: str, call_index: int, graph_index: int = 0) -> None:
        _prefix_state.set(_PrefixState(str(prefix_root), int(call_index), int(graph_index)))

    @classmethod
    def alloc_prefix(
        cls,
        root: str | None = None,
        call_index: int | None = None,
        graph_index: int | None = None,
    ) -> str:
        state = _state()
        root = state.root if root is None else root
        call_index = state.call_index if call_index is None else call_index
        if graph_index is None:
            graph_index = state.graph_index
            state.graph_index += 1
        return f"{root}.{call_index}.{graph_index}."

    def node(self, class_type: str, id: str | None = None, **kwargs: Any) -> Node:  # noqa: A002
        if id is None:
            id = str(self.id_gen)
            self.id_gen += 1
        full_id = self.prefix + id
        existing = self.nodes.get(full_id)
        if existing is not None:
            return existing
        node = Node(full_id, class_type, kwargs)
        self.nodes[full_id] = node
        return node

    def lookup_node(self, id: str) -> Node | None:  # noqa: A002
        return self.nodes.get(self.prefix + id)

    def finalize(self) -> dict[str, dict[str, Any]]:
        return {node_id: node.serialize() for node_id, node in self.nodes.items()}

    def replace_node_output(self, node_id: str, index: int, new_value: Any) -> None:
        """Point every input linked to (node_id, index) at new_value; None unlinks it."""
        full_id = self.prefix + node_id
        for node in self.nodes.values():
            for key, value in list(node.inputs.items()):
                if is_link(value) and value[0] == full_id and value[1] == index:
                    if new_value is None:
                        del node.inputs[key]
                    else:
                        node.inputs[key] = new_value

    def remove_node(self, id: str) -> None:  # noqa: A002
        del self.nodes[self.prefix + id]
