"""ComfyExtension and ComfyAPI / ComfyAPISync of `comfy_api.latest`."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import Any

from node_actors.context import Preview, current

__all__ = ["ComfyAPI", "ComfyAPISync", "ComfyExtension"]

logger = logging.getLogger(__name__)

_PREVIEW_MAX_SIZE = 512


class ComfyExtension(ABC):
    """What a V3 module's `comfy_entrypoint()` returns."""

    async def on_load(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Called once before get_node_list."""

    @abstractmethod
    async def get_node_list(self) -> list[type[Any]]:
        """The ComfyNode classes this extension registers."""


def _to_pil(image: Any) -> Any:
    """A PIL image from a PIL image, or from a [B,H,W,C]/[H,W,C] tensor or array in 0..1."""
    from PIL import Image

    if isinstance(image, Image.Image):
        return image
    import numpy as np

    array = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    if array.ndim == 4:
        array = array[0]
    array = np.clip(array * 255.0, 0, 255).astype(np.uint8)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    return Image.fromarray(array)


def _set_progress(
    value: float,
    max_value: float,
    node_id: str | None,
    preview_image: Any,
    ignore_size_limit: bool,
) -> None:
    ctx = current()
    if ctx is None:
        logger.debug("set_progress outside a node call: ignored")
        return
    preview = None
    if preview_image is not None:
        if isinstance(preview_image, Preview):
            preview = preview_image
        else:
            max_size = None if ignore_size_limit else _PREVIEW_MAX_SIZE
            preview = Preview("JPEG", _to_pil(preview_image), max_size)
    # legacy=False: progress_state (and preview) only, no legacy `progress` message.
    ctx.progress(node_id if node_id is not None else ctx.node_id, value, max_value, preview, False)


class _Execution:
    async def set_progress(
        self,
        value: float,
        max_value: float,
        node_id: str | None = None,
        preview_image: Any = None,
        ignore_size_limit: bool = False,
    ) -> None:
        _set_progress(value, max_value, node_id, preview_image, ignore_size_limit)


class _ExecutionSync:
    def set_progress(
        self,
        value: float,
        max_value: float,
        node_id: str | None = None,
        preview_image: Any = None,
        ignore_size_limit: bool = False,
    ) -> None:
        _set_progress(value, max_value, node_id, preview_image, ignore_size_limit)


class ComfyAPI:
    """Async face of the runtime API a node may call."""

    def __init__(self) -> None:
        self.execution = _Execution()


class ComfyAPISync:
    """Sync twin of ComfyAPI."""

    def __init__(self) -> None:
        self.execution = _ExecutionSync()
