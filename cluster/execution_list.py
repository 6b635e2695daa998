"""Which nodes of a running prompt may run next (ComfyUI's `ExecutionList`).

A topological "dissolve": a node becomes ready when every node it is blocked by has
completed. Lazy inputs do not block until the node asks for them; expansions and lazy
requests add strong links while the prompt runs.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from cluster.dynamic_prompt import DynamicPrompt, is_link


class ExecutionList:
    def __init__(
        self,
        dynprompt: DynamicPrompt,
        is_available: Callable[[str], bool],
        is_lazy_input: Callable[[str, str], bool],
    ) -> None:
        """`is_available(node_id)`: its outputs exist (ran, or found in the cache).
        `is_lazy_input(node_id, input_name)`: the input is declared lazy."""
        self._dynprompt = dynprompt
        self._is_available = is_available
        self._is_lazy_input = is_lazy_input
        self.pending: dict[str, None] = {}  # insertion-ordered set
        self._block_count: dict[str, int] = {}
        self._blocking: dict[str, dict[str, set[int]]] = {}

    def add_node(
        self, node_id: str, include_lazy: bool = False, subgraph: Collection[str] | None = None
    ) -> None:
        to_visit = [node_id]
        links: list[tuple[str, int, str]] = []
        while to_visit:
            current = to_visit.pop()
            if current in self.pending:
                continue
            self.pending[current] = None
            self._block_count[current] = 0
            self._blocking[current] = {}
            for name, value in self._dynprompt.get_node(current).get("inputs", {}).items():
                if not is_link(value):
                    continue
                upstream, slot = value[0], int(value[1])
                if subgraph is not None and upstream not in subgraph:
                    continue
                if include_lazy or not self._is_lazy_input(current, name):
                    if not self._is_available(upstream):
                        to_visit.append(upstream)
                    links.append((upstream, slot, current))
        for upstream, slot, downstream in links:
            self.add_strong_link(upstream, slot, downstream)

    def add_strong_link(self, upstream: str, slot: int, downstream: str) -> None:
        if self._is_available(upstream):
            return
        self.add_node(upstream)
        blocked = self._blocking[upstream]
        if downstream not in blocked:
            blocked[downstream] = set()
            self._block_count[downstream] += 1
        blocked[downstream].add(slot)

    def make_input_strong_link(self, node_id: str, input_name: str) -> None:
        value = self._dynprompt.get_node(node_id)["inputs"][input_name]
        if is_link(value):
            self.add_strong_link(value[0], int(value[1]), node_id)

    def ready(self) -> list[str]:
        return [n for n in self.pending if self._block_count[n] == 0]

    def is_empty(self) -> bool:
        return not self.pending

    def complete(self, node_id: str) -> None:
        self.pending.pop(node_id, None)
        for downstream in self._blocking.pop(node_id, {}):
            self._block_count[downstream] -= 1
        self._block_count.pop(node_id, None)

    def cycle_nodes(self) -> list[str]:
        """Pending nodes that can never become ready (all remaining ones are blocked)."""
        return [n for n in self.pending if self._block_count[n] > 0]
