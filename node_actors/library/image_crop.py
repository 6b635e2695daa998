"""ImageCrop, from ComfyUI's comfy_extras/nodes_images.py (deprecated there, still served)."""

from __future__ import annotations

import logging
from typing import Any

import torch

from node_actors.library.image import MAX_RESOLUTION

logger = logging.getLogger(__name__)

PYTHON_MODULE = "comfy_extras.nodes_images"


class ImageCrop:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "image": ("IMAGE", {}),
                "width": ("INT", {"default": 512, "min": 1, "max": MAX_RESOLUTION, "step": 1}),
                "height": ("INT", {"default": 512, "min": 1, "max": MAX_RESOLUTION, "step": 1}),
                "x": ("INT", {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 1}),
                "y": ("INT", {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 1}),
            }
        }

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "crop"
    CATEGORY = "image/transform"
    DEPRECATED = True
    ESSENTIALS_CATEGORY = "Image Tools"
    SEARCH_ALIASES = ["trim"]

    def crop(
        self, image: torch.Tensor, width: int, height: int, x: int, y: int
    ) -> tuple[torch.Tensor]:
        # An origin past the edge is pulled back onto the last row/column, so the result
        # is never empty.
        x = min(x, image.shape[2] - 1)
        y = min(y, image.shape[1] - 1)
        return (image[:, y : y + height, x : x + width, :],)


NODE_CLASS_MAPPINGS = {"ImageCrop": ImageCrop}

NODE_DISPLAY_NAME_MAPPINGS = {"ImageCrop": "Crop Image (DEPRECATED)"}
