"""Output cache keys by ComfyUI's input-signature rule.

A node's key hashes its class, its IS_CHANGED value, its constant inputs and, for linked
inputs, the position of the ancestor in a DFS over sorted input names plus the slot - and
the same for every ancestor. Identical sub-graphs under other node ids share keys; nodes
that are not idempotent or take UNIQUE_ID include their id.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from cluster.dynamic_prompt import DynamicPrompt, is_link
from node_actors.protocol import NodeDefinition


class _Uncacheable(Exception):
    pass


def _canonical(value: Any) -> Any:
    """A JSON-able form of a signature part, or _Uncacheable (NaN, tensors, objects)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            raise _Uncacheable()
        return ["f", repr(value)]
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        return {"d": sorted((str(k), _canonical(v)) for k, v in value.items())}
    raise _Uncacheable()


class CacheKeyer:
    """Computes keys for the nodes of one prompt; memoized per node."""

    def __init__(
        self,
        dynprompt: DynamicPrompt,
        definition_of: Callable[[str], NodeDefinition | None],
        is_changed: Mapping[str, Any],
    ) -> None:
        self._dynprompt = dynprompt
        self._definition_of = definition_of
        self._is_changed = is_changed
        self._keys: dict[str, str] = {}

    def key(self, node_id: str) -> str:
        cached = self._keys.get(node_id)
        if cached is None:
            cached = self._compute(node_id)
            self._keys[node_id] = cached
        return cached

    def _ancestry(self, node_id: str) -> tuple[list[str], dict[str, int]]:
        order: list[str] = []
        index: dict[str, int] = {}

        # DFS over inputs sorted by name; an ancestor is numbered when first seen.
        def visit(current: str) -> None:
            inputs = self._dynprompt.get_node(current).get("inputs", {})
            for name in sorted(inputs):
                value = inputs[name]
                if is_link(value) and value[0] not in index and value[0] != node_id:
                    index[value[0]] = len(order)
                    order.append(value[0])
                    if self._dynprompt.has_node(value[0]):
                        visit(value[0])

        visit(node_id)
        return order, index

    def _signature(self, node_id: str, index: Mapping[str, int]) -> list[Any]:
        if not self._dynprompt.has_node(node_id):
            return ["MISSING", node_id]
        node = self._dynprompt.get_node(node_id)
        class_type = node.get("class_type")
        definition = self._definition_of(class_type) if isinstance(class_type, str) else None
        sig: list[Any] = [class_type, _canonical(self._is_changed.get(node_id, False))]
        if definition is not None and (definition.not_idempotent or definition.takes_unique_id):
            sig.append(node_id)
        inputs = node.get("inputs", {})
        for name in sorted(inputs):
            value = inputs[name]
            if is_link(value):
                sig.append([name, "ANCESTOR", index.get(value[0], -1), int(value[1])])
            else:
                sig.append([name, _canonical(value)])
        parent = self._dynprompt.parent_of(node_id)
        if parent is not None:
            sig.append(["PARENT", self.key(parent)])
        return sig

    def _compute(self, node_id: str) -> str:
        order, index = self._ancestry(node_id)
        try:
            parts = [self._signature(node_id, index)]
            parts.extend(self._signature(a, index) for a in order)
            text = json.dumps(parts, separators=(",", ":"), sort_keys=False)
        except (_Uncacheable, RecursionError):
            # Never equal to any later key: the node always re-runs.
            return "uncacheable:" + uuid.uuid4().hex
        return hashlib.blake2b(text.encode(), digest_size=20).hexdigest()
