"""`comfy.comfy_types`: re-exports of node_typing, as ComfyUI's package does."""

from .node_typing import IO, CheckLazyMixin, ComfyNodeABC, FileLocator, InputTypeDict, StrEnum

__all__ = ["IO", "CheckLazyMixin", "ComfyNodeABC", "FileLocator", "InputTypeDict", "StrEnum"]
