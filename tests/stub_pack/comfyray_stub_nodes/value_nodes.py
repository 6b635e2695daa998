"""Stub nodes producing and transforming plain values and images."""

from __future__ import annotations

import json
import time
from typing import Any

from comfy.utils import ProgressBar
from comfy_api.latest import ComfyAPISync
from comfy_execution.graph import ExecutionBlocker

CATEGORY = "stub"
MAX_SIZE = 4096
ANY = "*"


class StubImage:
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "make"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "content": (["WHITE", "BLACK", "NOISE"],),
                "height": ("INT", {"default": 64, "min": 1, "max": MAX_SIZE}),
                "width": ("INT", {"default": 64, "min": 1, "max": MAX_SIZE}),
                "batch_size": ("INT", {"default": 1, "min": 1, "max": 64}),
            }
        }

    def make(self, content: str, height: int, width: int, batch_size: int) -> tuple[Any]:
        import torch

        shape = (batch_size, height, width, 3)
        if content == "WHITE":
            return (torch.ones(shape),)
        if content == "BLACK":
            return (torch.zeros(shape),)
        generator = torch.Generator().manual_seed(0)
        return (torch.rand(shape, generator=generator),)


class StubMask:
    CATEGORY = CATEGORY
    RETURN_TYPES = ("MASK",)
    FUNCTION = "make"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "value": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01}),
                "height": ("INT", {"default": 64, "min": 1, "max": MAX_SIZE}),
                "width": ("INT", {"default": 64, "min": 1, "max": MAX_SIZE}),
                "batch_size": ("INT", {"default": 1, "min": 1, "max": 64}),
            }
        }

    def make(self, value: float, height: int, width: int, batch_size: int) -> tuple[Any]:
        import torch

        return (torch.full((batch_size, height, width), float(value)),)


def _constant_node(name: str, type_name: str, spec: dict[str, Any]) -> type:
    def value_of(self: Any, value: Any) -> tuple[Any]:
        return (value,)

    return type(
        name,
        (),
        {
            "CATEGORY": CATEGORY,
            "RETURN_TYPES": (type_name,),
            "FUNCTION": "value_of",
            "INPUT_TYPES": classmethod(lambda cls: {"required": {"value": (type_name, spec)}}),
            "value_of": value_of,
        },
    )


StubInt = _constant_node(
    "StubInt", "INT", {"default": 0, "min": -(2**63), "max": 2**64 - 1, "step": 1}
)
StubFloat = _constant_node("StubFloat", "FLOAT", {"default": 0.0, "min": -1e9, "max": 1e9})
StubString = _constant_node("StubString", "STRING", {"default": "", "multiline": False})


class StubImageInvert:
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "invert"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"image": ("IMAGE",)}}

    def invert(self, image: Any) -> tuple[Any]:
        return (1.0 - image,)


class StubIntToString:
    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING",)
    FUNCTION = "convert"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"value": ("INT", {"default": 0})}}

    def convert(self, value: int) -> tuple[str]:
        return (str(value),)


class StubSleep:
    """Sleeps in 0.05 s steps, updating a ProgressBar so an interrupt stops it."""

    CATEGORY = CATEGORY
    RETURN_TYPES = (ANY,)
    FUNCTION = "sleep"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "value": (ANY, {}),
                "seconds": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 3600.0, "step": 0.01}),
            }
        }

    def sleep(self, value: Any, seconds: float) -> tuple[Any]:
        steps = max(1, round(seconds / 0.05))
        bar = ProgressBar(steps)
        for step in range(steps):
            time.sleep(seconds / steps)
            bar.update_absolute(step + 1)
        return (value,)


class StubRaise:
    CATEGORY = CATEGORY
    RETURN_TYPES = (ANY,)
    FUNCTION = "fail"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "value": (ANY, {}),
                "message": ("STRING", {"default": "stub failure"}),
            }
        }

    def fail(self, value: Any, message: str) -> tuple[Any]:
        raise RuntimeError(message)


class StubHidden:
    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING",)
    FUNCTION = "echo"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {"value": (ANY, {})},
            "hidden": {
                "prompt": "PROMPT",
                "extra_pnginfo": "EXTRA_PNGINFO",
                "unique_id": "UNIQUE_ID",
            },
        }

    def echo(
        self, value: Any, prompt: Any = None, extra_pnginfo: Any = None, unique_id: Any = None
    ) -> tuple[str]:
        payload = {"prompt": prompt, "extra_pnginfo": extra_pnginfo, "unique_id": unique_id}
        return (json.dumps(payload, sort_keys=True, default=str),)


class StubUniqueId:
    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING",)
    FUNCTION = "node_id"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {}, "hidden": {"unique_id": "UNIQUE_ID"}}

    def node_id(self, unique_id: str) -> tuple[str]:
        return (str(unique_id),)


class StubOutput:
    CATEGORY = CATEGORY
    RETURN_TYPES = ()
    FUNCTION = "show"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"value": (ANY, {})}}

    def show(self, value: Any) -> dict[str, Any]:
        return {"ui": {"text": [str(value)]}, "result": ()}


def _png_preview(step: int) -> tuple[str, Any, int]:
    from PIL import Image

    shade = (step * 40) % 256
    return ("PNG", Image.new("RGB", (8, 8), (shade, 0, 255 - shade)), 512)


class StubPreviewProgress:
    """One ProgressBar update with a small PNG preview per step."""

    CATEGORY = CATEGORY
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"steps": ("INT", {"default": 3, "min": 1, "max": 100})}}

    def run(self, steps: int) -> tuple[int]:
        bar = ProgressBar(steps)
        for step in range(steps):
            bar.update_absolute(step + 1, steps, _png_preview(step))
        return (steps,)


class StubSetProgress:
    """Progress through the V3 runtime API (progress_state only, no legacy message)."""

    CATEGORY = CATEGORY
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"steps": ("INT", {"default": 3, "min": 1, "max": 100})}}

    def run(self, steps: int) -> tuple[int]:
        api = ComfyAPISync()
        for step in range(steps):
            api.execution.set_progress(step + 1, steps)
        return (steps,)


class StubNotIdempotent:
    CATEGORY = CATEGORY
    RETURN_TYPES = ("INT",)
    FUNCTION = "value_of"
    NOT_IDEMPOTENT = True

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"value": ("INT", {"default": 0})}}

    def value_of(self, value: int) -> tuple[int]:
        return (value,)


class StubBlocker:
    CATEGORY = CATEGORY
    RETURN_TYPES = (ANY,)
    FUNCTION = "gate"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "value": (ANY, {}),
                "block": ("BOOLEAN", {"default": False}),
                "message": ("STRING", {"default": ""}),
            }
        }

    def gate(self, value: Any, block: bool, message: str) -> Any:
        if block:
            return ExecutionBlocker(message or None)
        return (value,)


class StubWorkerPid:
    """Which worker process ran it: lets tests see where the scheduler put a step."""

    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING",)
    FUNCTION = "pid"
    NOT_IDEMPOTENT = True

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"value": (ANY, {})}}

    def pid(self, value: Any) -> tuple[str]:
        import os

        return (str(os.getpid()),)


VALUE_NODES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        StubImage,
        StubMask,
        StubInt,
        StubFloat,
        StubString,
        StubImageInvert,
        StubIntToString,
        StubSleep,
        StubRaise,
        StubHidden,
        StubUniqueId,
        StubOutput,
        StubPreviewProgress,
        StubSetProgress,
        StubNotIdempotent,
        StubBlocker,
        StubWorkerPid,
    )
}
