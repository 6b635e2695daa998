"""`comfy_api.latest.ui`: the small part of ComfyUI's UI-output helpers comfyray has now."""

from __future__ import annotations

from typing import Any

__all__ = ["PreviewText", "UIOutput"]


class UIOutput:
    """Base of V3 ui helpers: `NodeOutput(ui=helper)` is sent as `helper.as_dict()`."""

    def as_dict(self) -> dict[str, list[Any]]:
        raise NotImplementedError


class PreviewText(UIOutput):
    def __init__(self, value: str, **kwargs: Any) -> None:
        self.value = value

    def as_dict(self) -> dict[str, list[Any]]:
        return {"text": [self.value]}
