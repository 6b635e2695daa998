"""The prompt queue: ComfyUI's priority heap plus the prompts now running.

Pure data structure; the controller makes it durable through the job journal.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any


@dataclass
class QueueItem:
    number: float | int
    prompt_id: str
    prompt: dict[str, Any]
    extra_data: dict[str, Any]
    outputs: list[str]
    # Credentials moved out of extra_data: never listed, never journaled.
    sensitive: dict[str, Any] = field(default_factory=dict)

    def as_list(self) -> list[Any]:
        """The 5-element row of /queue, /history and /api/jobs."""
        return [self.number, self.prompt_id, self.prompt, self.extra_data, self.outputs]

    def to_record(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "prompt_id": self.prompt_id,
            "prompt": self.prompt,
            "extra_data": self.extra_data,
            "outputs": self.outputs,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> QueueItem:
        return cls(
            record["number"],
            record["prompt_id"],
            record["prompt"],
            record.get("extra_data", {}),
            record.get("outputs", []),
        )


class JobQueue:
    def __init__(self) -> None:
        self._heap: list[tuple[float | int, str]] = []
        self._pending: dict[str, QueueItem] = {}
        self.running: dict[str, QueueItem] = {}

    def put(self, item: QueueItem) -> None:
        self._pending[item.prompt_id] = item
        heapq.heappush(self._heap, (item.number, item.prompt_id))

    def pop(self) -> QueueItem | None:
        """The next prompt by (number, prompt_id); it moves to `running`."""
        while self._heap:
            _, prompt_id = heapq.heappop(self._heap)
            item = self._pending.pop(prompt_id, None)
            if item is not None:
                self.running[prompt_id] = item
                return item
        return None

    def finish(self, prompt_id: str) -> QueueItem | None:
        return self.running.pop(prompt_id, None)

    def delete(self, prompt_ids: list[str]) -> list[str]:
        """Remove pending prompts (running ones are interrupted, not deleted)."""
        removed = [p for p in prompt_ids if self._pending.pop(p, None) is not None]
        if removed:
            self._rebuild()
        return removed

    def clear(self) -> list[str]:
        removed = list(self._pending)
        self._pending.clear()
        self._heap.clear()
        return removed

    def _rebuild(self) -> None:
        self._heap = [(n, p) for n, p in self._heap if p in self._pending]
        heapq.heapify(self._heap)

    def pending_items(self) -> list[QueueItem]:
        """In heap order, as ComfyUI lists them (clients sort by number)."""
        return [self._pending[p] for _, p in self._heap if p in self._pending]

    def running_items(self) -> list[QueueItem]:
        return list(self.running.values())

    def pending_count(self) -> int:
        return len(self._pending)

    def remaining(self) -> int:
        return len(self._pending) + len(self.running)

    def get(self, prompt_id: str) -> tuple[str, QueueItem] | None:
        if prompt_id in self.running:
            return "in_progress", self.running[prompt_id]
        if prompt_id in self._pending:
            return "pending", self._pending[prompt_id]
        return None
