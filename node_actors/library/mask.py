"""Mask nodes from ComfyUI's comfy_extras/nodes_mask.py: solid, invert, image <-> mask."""

from __future__ import annotations

import logging
from typing import Any

import torch

from node_actors.library.image import MAX_RESOLUTION

logger = logging.getLogger(__name__)

PYTHON_MODULE = "comfy_extras.nodes_mask"

IMAGE_CHANNELS: tuple[str, ...] = ("red", "green", "blue", "alpha")


class SolidMask:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "value": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01}),
                "width": ("INT", {"default": 512, "min": 1, "max": MAX_RESOLUTION, "step": 1}),
                "height": ("INT", {"default": 512, "min": 1, "max": MAX_RESOLUTION, "step": 1}),
            }
        }

    RETURN_TYPES = ("MASK",)
    FUNCTION = "solid"
    CATEGORY = "image/mask"

    def solid(self, value: float, width: int, height: int) -> tuple[torch.Tensor]:
        return (torch.full((1, height, width), value, dtype=torch.float32),)


class InvertMask:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"mask": ("MASK", {})}}

    RETURN_TYPES = ("MASK",)
    FUNCTION = "invert"
    CATEGORY = "image/mask"
    SEARCH_ALIASES = ["reverse mask", "flip mask"]

    def invert(self, mask: torch.Tensor) -> tuple[torch.Tensor]:
        return (1.0 - mask,)


class MaskToImage:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"mask": ("MASK", {})}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "mask_to_image"
    CATEGORY = "image/mask"
    SEARCH_ALIASES = ["convert mask"]

    def mask_to_image(self, mask: torch.Tensor) -> tuple[torch.Tensor]:
        # A single [H,W] mask is accepted too; it becomes a batch of one.
        grey = mask.reshape((-1, mask.shape[-2], mask.shape[-1])).unsqueeze(-1)
        return (grey.expand(-1, -1, -1, 3),)


class ImageToMask:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"image": ("IMAGE", {}), "channel": (list(IMAGE_CHANNELS), {})}}

    RETURN_TYPES = ("MASK",)
    FUNCTION = "image_to_mask"
    CATEGORY = "image/mask"
    SEARCH_ALIASES = ["extract channel", "channel to mask"]

    def image_to_mask(self, image: torch.Tensor, channel: str) -> tuple[torch.Tensor]:
        if channel not in IMAGE_CHANNELS:
            raise ValueError(f"unknown channel {channel!r}; expected one of {IMAGE_CHANNELS}")
        index = IMAGE_CHANNELS.index(channel)
        if index >= image.shape[-1]:
            raise ValueError(
                f"the image has {image.shape[-1]} channels, so it has no {channel} channel"
            )
        return (image[:, :, :, index],)


NODE_CLASS_MAPPINGS = {
    "SolidMask": SolidMask,
    "InvertMask": InvertMask,
    "MaskToImage": MaskToImage,
    "ImageToMask": ImageToMask,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "SolidMask": "Create Solid Mask",
    "InvertMask": "Invert Mask",
    "MaskToImage": "Convert Mask to Image",
    "ImageToMask": "Convert Image to Mask",
}
