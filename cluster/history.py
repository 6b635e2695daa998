"""Finished prompts, oldest first, capped as ComfyUI caps them."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

MAX_HISTORY = 10_000


class History:
    def __init__(self, capacity: int = MAX_HISTORY) -> None:
        self._entries: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._capacity = capacity

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, prompt_id: object) -> bool:
        return prompt_id in self._entries

    def add(self, prompt_id: str, entry: dict[str, Any]) -> None:
        self._entries[prompt_id] = entry
        self._entries.move_to_end(prompt_id)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    def get(self, prompt_id: str) -> dict[str, Any] | None:
        return self._entries.get(prompt_id)

    def page(self, max_items: int | None = None, offset: int = -1) -> dict[str, dict[str, Any]]:
        """ComfyUI's GET /history window: a negative offset with max_items gives the last
        max_items entries; otherwise entries from offset on, at most max_items."""
        total = len(self._entries)
        if offset < 0 and max_items is not None:
            offset = total - max_items
        offset = max(offset, 0)
        if offset > total:
            return {}
        result: dict[str, dict[str, Any]] = {}
        for index, (prompt_id, entry) in enumerate(self._entries.items()):
            if index < offset:
                continue
            if max_items is not None and len(result) >= max_items:
                break
            result[prompt_id] = entry
        return result

    def delete(self, prompt_ids: list[str]) -> list[str]:
        return [p for p in prompt_ids if self._entries.pop(p, None) is not None]

    def clear(self) -> None:
        self._entries.clear()

    def items(self) -> Iterator[tuple[str, dict[str, Any]]]:
        return iter(self._entries.items())

    def as_dict(self) -> dict[str, dict[str, Any]]:
        return dict(self._entries)
