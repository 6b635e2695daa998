"""`comfy.utils`: ProgressBar for custom packs.

Updates go to the progress sink of the running node's execution context. They are
throttled as ComfyUI does (at least 100 ms and 0.5 % of the total between sends), except
the first, the final and any update carrying a preview, which are always sent. Every
update, sent or not, checks the interrupt flag, which is how a long loop becomes
interruptible.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from node_actors.context import Preview, current

__all__ = ["ProgressBar", "to_preview"]

logger = logging.getLogger(__name__)

_MIN_INTERVAL_S = 0.1
_MIN_FRACTION = 0.005


def to_preview(preview: Any) -> Preview | None:
    """ComfyUI's ("JPEG"|"PNG", PIL image, max_size) tuple as our Preview."""
    if preview is None or isinstance(preview, Preview):
        return preview
    if isinstance(preview, (tuple, list)) and len(preview) in (2, 3):
        image_format = str(preview[0]).upper()
        max_size = preview[2] if len(preview) == 3 else 512
        return Preview(image_format=image_format, image=preview[1], max_size=max_size)
    raise TypeError(
        f"unsupported preview {type(preview).__name__}: expected (format, image, max_size)"
    )


class ProgressBar:
    def __init__(self, total: float, node_id: str | None = None) -> None:
        self.total = total
        self.current = 0.0
        self.node_id = node_id
        self._sent_any = False
        self._last_sent_at = 0.0
        self._last_sent_value = 0.0

    def update(self, value: float) -> None:
        self.update_absolute(self.current + value)

    def update_absolute(
        self, value: float, total: float | None = None, preview: Any = None
    ) -> None:
        if total is not None:
            self.total = total
        if self.total is not None and value > self.total:
            value = self.total
        self.current = value
        ctx = current()
        if ctx is None:
            return
        ctx.check_interrupted()
        converted = to_preview(preview)
        if not self._should_send(value, converted is not None):
            return
        self._sent_any = True
        self._last_sent_at = time.monotonic()
        self._last_sent_value = value
        node_id = self.node_id if self.node_id is not None else ctx.node_id
        ctx.progress(node_id, value, self.total, converted, True)

    def _should_send(self, value: float, has_preview: bool) -> bool:
        if not self._sent_any or has_preview or value >= self.total:
            return True
        elapsed = time.monotonic() - self._last_sent_at
        change = abs(value - self._last_sent_value)
        return elapsed >= _MIN_INTERVAL_S and change >= _MIN_FRACTION * abs(self.total or 0)
