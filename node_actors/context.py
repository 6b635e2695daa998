"""The per-call execution context a running node sees.

Node code (and the compatibility modules custom packs import, such as
`comfy.utils.ProgressBar` or `comfy.model_management.throw_exception_if_processing_interrupted`)
reaches the prompt it runs for through `current()`. The worker sets the context around every
FUNCTION, check_lazy_status, IS_CHANGED and VALIDATE_INPUTS call.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class InterruptProcessingException(Exception):  # noqa: N818 - ComfyUI's public name
    """Raised inside a node when its prompt was interrupted."""


class ExecutionBlocker:
    """Returned in place of an output to stop every node downstream of it.

    With a message, the run reports an `execution_error` of type ExecutionBlocked for the
    first node that receives it; without one, downstream nodes are skipped silently.
    """

    def __init__(self, message: str | None) -> None:
        self.message = message

    def __repr__(self) -> str:
        return f"ExecutionBlocker({self.message!r})"


@dataclass(frozen=True)
class Preview:
    """An image to send to the client as a binary preview frame."""

    image_format: str  # "JPEG" or "PNG"
    image: Any  # a PIL.Image.Image
    max_size: int | None = 512


ProgressSink = Callable[[str, float, float, "Preview | None", bool], None]
"""(node_id, value, max, preview, legacy) -> None. `legacy` False means progress_state only."""


@dataclass
class InterruptFlag:
    """Set from the worker's control thread, read by node code in the run thread."""

    _event: threading.Event = field(default_factory=threading.Event)

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    def is_set(self) -> bool:
        return self._event.is_set()


@dataclass
class ExecutionContext:
    prompt_id: str
    node_id: str
    display_node_id: str
    real_node_id: str
    parent_node_id: str | None
    progress: ProgressSink
    interrupt: InterruptFlag

    def check_interrupted(self) -> None:
        if self.interrupt.is_set():
            raise InterruptProcessingException()


_current: contextvars.ContextVar[ExecutionContext | None] = contextvars.ContextVar(
    "comfyray_execution_context", default=None
)


def current() -> ExecutionContext | None:
    return _current.get()


def set_current(ctx: ExecutionContext | None) -> contextvars.Token:
    return _current.set(ctx)


def reset_current(token: contextvars.Token) -> None:
    _current.reset(token)


def log_ids() -> str:
    """ "prompt P node N" of the running node, for log lines ("?" outside a node call)."""
    ctx = _current.get()
    return f"prompt {ctx.prompt_id} node {ctx.node_id}" if ctx else "prompt ? node ?"


def throw_if_interrupted() -> None:
    ctx = _current.get()
    if ctx is not None:
        ctx.check_interrupted()
