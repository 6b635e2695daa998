"""The queue and history made durable: every change goes to the job journal before it is
acknowledged, and a new controller replays the journal to pick up where the last one was."""

from __future__ import annotations

import logging
from typing import Any

from cluster.history import History
from cluster.queue import JobQueue, QueueItem
from storage.journal import JobJournal

logger = logging.getLogger(__name__)


class JobStore:
    def __init__(self, journal: JobJournal | None, queue: JobQueue, history: History) -> None:
        self._journal = journal
        self._queue = queue
        self._history = history

    def replay(self) -> int:
        """Rebuild the queue and history from the journal; returns the next queue number."""
        next_number = 0
        if self._journal is None:
            return next_number
        for record in self._journal.replay():
            op = record.get("op")
            if op == "queued":
                item = QueueItem.from_record(record["item"])
                self._queue.put(item)
                if isinstance(item.number, int | float):
                    next_number = max(next_number, int(abs(item.number)) + 1)
            elif op == "removed":
                self._queue.delete(record.get("ids", []))
            elif op == "finished":
                self._queue.delete([record["prompt_id"]])
                self._history.add(record["prompt_id"], record["entry"])
            elif op == "history_deleted":
                self._history.delete(record.get("ids", []))
            elif op == "history_cleared":
                self._history.clear()
        pending = self._queue.pending_count()
        if pending:
            logger.info("job journal: %d queued prompts picked up again", pending)
        self.compact()
        return next_number

    def write(self, record: dict[str, Any]) -> None:
        if self._journal is None:
            return
        # Compact before appending: callers apply `record` to memory only after this
        # returns, so a snapshot taken after the append would miss it.
        if self._journal.needs_compaction():
            self.compact()
        self._journal.append(record)

    def compact(self) -> None:
        if self._journal is None:
            return
        records: list[dict[str, Any]] = [
            {"op": "finished", "prompt_id": p, "entry": e} for p, e in self._history.items()
        ]
        # Prompts that were running when the controller stopped run again.
        for item in self._queue.running_items() + self._queue.pending_items():
            records.append({"op": "queued", "item": item.to_record()})
        self._journal.rewrite(records)

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()
