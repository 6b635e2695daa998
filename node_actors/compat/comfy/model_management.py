"""`comfy.model_management`: interrupt helpers (and a few device helpers) for custom packs.

ComfyUI keeps one global interrupt flag; here each running prompt has its own flag in the
execution context, so an interrupt of one prompt never stops another on the same worker.
Outside a node call (no context) nothing is ever interrupted.
"""

from __future__ import annotations

import logging
from typing import Any

from node_actors.context import InterruptProcessingException, current

__all__ = [
    "InterruptProcessingException",
    "get_torch_device",
    "interrupt_current_processing",
    "intermediate_device",
    "processing_interrupted",
    "soft_empty_cache",
    "throw_exception_if_processing_interrupted",
]

logger = logging.getLogger(__name__)


def interrupt_current_processing(value: bool = True) -> None:
    ctx = current()
    if ctx is None:
        logger.debug("interrupt_current_processing(%s) outside a node call: ignored", value)
        return
    if value:
        ctx.interrupt.set()
    else:
        ctx.interrupt.clear()


def processing_interrupted() -> bool:
    ctx = current()
    return ctx is not None and ctx.interrupt.is_set()


def throw_exception_if_processing_interrupted() -> None:
    ctx = current()
    if ctx is not None:
        ctx.check_interrupted()


def get_torch_device() -> Any:
    import torch

    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def intermediate_device() -> Any:
    import torch

    return torch.device("cpu")


def soft_empty_cache(force: bool = False) -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
