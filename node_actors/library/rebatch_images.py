"""RebatchImages, from ComfyUI's comfy_extras/nodes_rebatch.py."""

from __future__ import annotations

import logging
from typing import Any

import torch

logger = logging.getLogger(__name__)

PYTHON_MODULE = "comfy_extras.nodes_rebatch"


class RebatchImages:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "images": ("IMAGE", {}),
                "batch_size": ("INT", {"default": 1, "min": 1, "max": 4096}),
            }
        }

    RETURN_TYPES = ("IMAGE",)
    INPUT_IS_LIST = True
    OUTPUT_IS_LIST = (True,)
    FUNCTION = "rebatch"
    CATEGORY = "image/batch"

    def rebatch(
        self, images: list[torch.Tensor], batch_size: list[int]
    ) -> tuple[list[torch.Tensor]]:
        # With INPUT_IS_LIST every input arrives as a list; the batch size is its first item.
        size = batch_size[0]
        if size < 1:
            raise ValueError(f"batch_size must be at least 1, got {size}")
        singles = [batch[i : i + 1] for batch in images for i in range(batch.shape[0])]
        return ([torch.cat(singles[i : i + size], dim=0) for i in range(0, len(singles), size)],)


NODE_CLASS_MAPPINGS = {"RebatchImages": RebatchImages}

NODE_DISPLAY_NAME_MAPPINGS = {"RebatchImages": "Rebatch Images"}
