"""ComfyUI's WebSocket messages as the control plane produces them, and the log that
ingress replicas long-poll to forward them.

An event is addressed to one client id or broadcast (`target=None`). Progress and previews
travel as one `progress` bundle so that each socket can get them in the order its
feature flags call for (binary type 4 with metadata, or the legacy type 1).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

from node_actors.protocol import PreviewFrame


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Event:
    seq: int
    type: str  # a ComfyUI message type, or "progress_bundle"
    data: dict[str, Any]
    target: str | None  # client id; None broadcasts
    # progress_bundle only: progress_state data, legacy progress data (or None), preview.
    progress_state: dict[str, Any] | None = None
    progress: dict[str, Any] | None = None
    preview: PreviewFrame | None = None


class EventSink(Protocol):
    def emit(
        self,
        type_: str,
        data: dict[str, Any],
        target: str | None,
        *,
        progress_state: dict[str, Any] | None = None,
        progress: dict[str, Any] | None = None,
        preview: PreviewFrame | None = None,
    ) -> None: ...


class EventLog:
    """A bounded, sequence-numbered log; readers ask for everything after a seq.

    Bounded in events and in preview bytes: replicas read it within milliseconds, so old
    events only matter to a replica that fell behind, and previews must not pile up.
    """

    def __init__(self, capacity: int = 10_000, preview_bytes: int = 32 * 1024 * 1024) -> None:
        self._events: deque[Event] = deque()
        self._capacity = capacity
        self._preview_budget = preview_bytes
        self._preview_bytes = 0
        self._seq = 0
        self._changed: asyncio.Event | None = None

    @property
    def last_seq(self) -> int:
        return self._seq

    def _signal(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def emit(
        self,
        type_: str,
        data: dict[str, Any],
        target: str | None,
        *,
        progress_state: dict[str, Any] | None = None,
        progress: dict[str, Any] | None = None,
        preview: PreviewFrame | None = None,
    ) -> None:
        self._seq += 1
        self._events.append(
            Event(self._seq, type_, data, target, progress_state, progress, preview)
        )
        if preview is not None:
            self._preview_bytes += len(preview.data)
        while len(self._events) > 1 and (
            len(self._events) > self._capacity or self._preview_bytes > self._preview_budget
        ):
            dropped = self._events.popleft()
            if dropped.preview is not None:
                self._preview_bytes -= len(dropped.preview.data)
        signal = self._signal()
        signal.set()
        self._changed = None  # waiters hold the old one, which stays set

    def since(self, seq: int) -> list[Event]:
        if seq > self._seq:
            # A reader from before a controller restart: everything of this life is new to it.
            seq = 0
        if seq == self._seq:
            return []
        first = self._events[0].seq if self._events else self._seq + 1
        start = max(seq + 1 - first, 0)
        return list(itertools.islice(self._events, start, None))

    async def wait_since(self, seq: int, timeout: float, linger: float = 0.001) -> list[Event]:
        """Events after `seq`, waiting up to `timeout` for the first one, then `linger`
        for the rest of its burst: one reply per burst instead of one per event."""
        events = self.since(seq)
        if events:
            return events
        signal = self._signal()
        try:
            await asyncio.wait_for(signal.wait(), timeout)
        except TimeoutError:
            return []
        if linger > 0:
            await asyncio.sleep(linger)
        return self.since(seq)
