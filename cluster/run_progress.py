"""Progress of one running prompt: puts worker reports back in order and turns them into
ComfyUI's `progress_state` / `progress` / preview messages.

Reports travel fire-and-forget from workers and may overtake each other; each carries a
per-node sequence number (1, 2, ...), and early ones wait until the gap is filled. A node
that was submitted ahead of its turn may report before it is announced: its reports wait
until `executing` has been sent for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from cluster.events import EventSink
from cluster.progress import ProgressRegistry
from node_actors.protocol import PreviewFrame

logger = logging.getLogger(__name__)

Report = tuple[float, float, PreviewFrame | None, bool]


class ProgressRelay:
    def __init__(
        self,
        prompt_id: str,
        client_id: str | None,
        events: EventSink,
        ids_of: Callable[[str], tuple[str, str | None, str]],
    ) -> None:
        self.prompt_id = prompt_id
        self.client_id = client_id
        self.registry = ProgressRegistry(prompt_id)
        self._events = events
        self._ids_of = ids_of
        self._next: dict[str, int] = {}
        self._early: dict[str, dict[int, Report]] = {}
        self._waiters: dict[str, tuple[int, asyncio.Event]] = {}
        self._held: dict[str, list[Report]] = {}

    # --- node lifecycle ---------------------------------------------------------------------

    def send_state(self) -> None:
        self._events.emit(
            "progress_bundle", {}, self.client_id, progress_state=self.registry.message()
        )

    def hold(self, node_id: str) -> None:
        """The node runs ahead of its announcement: keep its reports for later."""
        self._held.setdefault(node_id, [])

    def start(self, node_id: str) -> None:
        display, parent, real = self._ids_of(node_id)
        self.registry.start(node_id, display, parent, real)
        self.send_state()

    def release(self, node_id: str) -> None:
        """The node was announced: deliver what it reported while it ran ahead."""
        for report in self._held.pop(node_id, []):
            self._apply(node_id, *report)

    def finish(self, node_id: str) -> None:
        display, parent, real = self._ids_of(node_id)
        self._held.pop(node_id, None)
        self.registry.finish(node_id, display, parent, real)
        self.send_state()

    def fail(self, node_id: str) -> None:
        self.registry.fail(node_id)

    # --- reports ----------------------------------------------------------------------------

    def report(
        self,
        node_id: str,
        value: float,
        max_value: float,
        preview: PreviewFrame | None,
        legacy: bool,
        seq: int = 0,
    ) -> None:
        if not seq:
            self._deliver(node_id, (value, max_value, preview, legacy))
            return
        expected = self._next.get(node_id, 1)
        if seq < expected:
            return
        early = self._early.setdefault(node_id, {})
        early[seq] = (value, max_value, preview, legacy)
        while expected in early:
            self._deliver(node_id, early.pop(expected))
            expected += 1
        self._next[node_id] = expected
        waiter = self._waiters.get(node_id)
        if waiter is not None and expected > waiter[0]:
            waiter[1].set()

    async def delivered(self, node_id: str, last_seq: int, timeout: float) -> None:
        """Return once report `last_seq` of the node (and all before it) arrived."""
        if self._next.get(node_id, 1) > last_seq:
            return
        event = asyncio.Event()
        self._waiters[node_id] = (last_seq, event)
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            logger.warning(
                "prompt %s node %s: progress reports up to %d did not all arrive",
                self.prompt_id,
                node_id,
                last_seq,
            )
        finally:
            self._waiters.pop(node_id, None)

    def _deliver(self, node_id: str, report: Report) -> None:
        held = self._held.get(node_id)
        if held is not None:
            held.append(report)
        else:
            self._apply(node_id, *report)

    def _apply(
        self,
        node_id: str,
        value: float,
        max_value: float,
        preview: PreviewFrame | None,
        legacy: bool,
    ) -> None:
        if not self.registry.update(node_id, value, max_value):
            return
        legacy_data: dict[str, Any] | None = (
            {"value": value, "max": max_value, "prompt_id": self.prompt_id, "node": node_id}
            if legacy
            else None
        )
        if preview is not None:
            display, parent, real = self._ids_of(node_id)
            preview = PreviewFrame(
                preview.image_type,
                preview.data,
                {
                    "node_id": node_id,
                    "prompt_id": self.prompt_id,
                    "display_node_id": display,
                    "parent_node_id": parent,
                    "real_node_id": real,
                    "image_type": preview.image_type,
                },
            )
        self._events.emit(
            "progress_bundle",
            {},
            self.client_id,
            progress_state=self.registry.message(),
            progress=legacy_data,
            preview=preview,
        )
