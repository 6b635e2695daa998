"""Core image nodes from ComfyUI's nodes.py: create, invert, scale, batch and pad images."""

from __future__ import annotations

import logging
from typing import Any

import torch

from node_actors.library.pixels import CROP_METHODS, UPSCALE_METHODS, resize_image

logger = logging.getLogger(__name__)

MAX_RESOLUTION = 16384


class EmptyImage:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "width": ("INT", {"default": 512, "min": 1, "max": MAX_RESOLUTION, "step": 1}),
                "height": ("INT", {"default": 512, "min": 1, "max": MAX_RESOLUTION, "step": 1}),
                "batch_size": ("INT", {"default": 1, "min": 1, "max": 4096}),
                "color": (
                    "INT",
                    {"default": 0, "min": 0, "max": 0xFFFFFF, "step": 1, "display": "color"},
                ),
            }
        }

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "generate"
    CATEGORY = "image"

    def generate(
        self, width: int, height: int, batch_size: int = 1, color: int = 0
    ) -> tuple[torch.Tensor]:
        rgb = torch.tensor(
            [((color >> shift) & 0xFF) / 0xFF for shift in (16, 8, 0)], dtype=torch.float32
        )
        return (rgb.expand(batch_size, height, width, 3).clone(),)


class ImageInvert:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"image": ("IMAGE",)}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "invert"
    CATEGORY = "image/color"
    ESSENTIALS_CATEGORY = "Image Tools"
    SEARCH_ALIASES = ["reverse colors"]

    def invert(self, image: torch.Tensor) -> tuple[torch.Tensor]:
        return (1.0 - image,)


class ImageScale:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "image": ("IMAGE",),
                "upscale_method": (list(UPSCALE_METHODS),),
                "width": ("INT", {"default": 512, "min": 0, "max": MAX_RESOLUTION, "step": 1}),
                "height": ("INT", {"default": 512, "min": 0, "max": MAX_RESOLUTION, "step": 1}),
                "crop": (list(CROP_METHODS),),
            }
        }

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "upscale"
    CATEGORY = "image/upscaling"
    ESSENTIALS_CATEGORY = "Image Tools"
    SEARCH_ALIASES = [
        "resize",
        "resize image",
        "scale image",
        "image resize",
        "zoom",
        "zoom in",
        "change size",
    ]

    def upscale(
        self, image: torch.Tensor, upscale_method: str, width: int, height: int, crop: str
    ) -> tuple[torch.Tensor]:
        if width == 0 and height == 0:
            return (image,)
        old_h, old_w = image.shape[1], image.shape[2]
        # A zero side follows the other one, keeping the aspect ratio.
        if width == 0:
            width = max(1, round(old_w * height / old_h))
        elif height == 0:
            height = max(1, round(old_h * width / old_w))
        return (resize_image(image, width, height, upscale_method, crop),)


class ImageScaleBy:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "image": ("IMAGE",),
                "upscale_method": (list(UPSCALE_METHODS),),
                "scale_by": ("FLOAT", {"default": 1.0, "min": 0.01, "max": 8.0, "step": 0.01}),
            }
        }

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "upscale"
    CATEGORY = "image/upscaling"
    ESSENTIALS_CATEGORY = "Image Tools"

    def upscale(
        self, image: torch.Tensor, upscale_method: str, scale_by: float
    ) -> tuple[torch.Tensor]:
        # ComfyUI fails on a side that rounds to 0; one pixel is the smallest useful answer.
        width = max(1, round(image.shape[2] * scale_by))
        height = max(1, round(image.shape[1] * scale_by))
        return (resize_image(image, width, height, upscale_method, "disabled"),)


class ImageBatch:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"image1": ("IMAGE",), "image2": ("IMAGE",)}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "batch"
    CATEGORY = "image/batch"
    DEPRECATED = True
    SEARCH_ALIASES = ["combine images", "merge images", "stack images"]

    def batch(self, image1: torch.Tensor, image2: torch.Tensor) -> tuple[torch.Tensor]:
        # An RGB image joining an RGBA one gets an opaque alpha channel.
        if image1.shape[-1] < image2.shape[-1]:
            image1 = torch.nn.functional.pad(image1, (0, 1), value=1.0)
        elif image2.shape[-1] < image1.shape[-1]:
            image2 = torch.nn.functional.pad(image2, (0, 1), value=1.0)
        if image1.shape[1:] != image2.shape[1:]:
            image2 = resize_image(image2, image1.shape[2], image1.shape[1], "bilinear", "center")
        return (torch.cat((image1, image2), dim=0),)


class ImagePadForOutpaint:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        side = {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 8}
        return {
            "required": {
                "image": ("IMAGE",),
                "left": ("INT", dict(side)),
                "top": ("INT", dict(side)),
                "right": ("INT", dict(side)),
                "bottom": ("INT", dict(side)),
                "feathering": (
                    "INT",
                    {"default": 40, "min": 0, "max": MAX_RESOLUTION, "step": 1, "advanced": True},
                ),
            }
        }

    RETURN_TYPES = ("IMAGE", "MASK")
    FUNCTION = "expand_image"
    CATEGORY = "image/transform"
    SEARCH_ALIASES = ["extend canvas", "expand image"]

    def expand_image(
        self,
        image: torch.Tensor,
        left: int,
        top: int,
        right: int,
        bottom: int,
        feathering: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        batch, height, width, channels = image.shape
        out_h, out_w = height + top + bottom, width + left + right
        padded = torch.full((batch, out_h, out_w, channels), 0.5, dtype=torch.float32)
        padded[:, top : top + height, left : left + width, :] = image
        mask = torch.ones((out_h, out_w), dtype=torch.float32)
        mask[top : top + height, left : left + width] = _feather(
            height, width, left, top, right, bottom, feathering
        )
        return padded, mask.unsqueeze(0)


def _feather(
    height: int, width: int, left: int, top: int, right: int, bottom: int, feathering: int
) -> torch.Tensor:
    """The mask over the original pixels: 0 inside, rising quadratically toward padded sides.

    Only sides that were padded fade; a feather wider than half the image is ignored.
    """
    if not (feathering > 0 and 2 * feathering < height and 2 * feathering < width):
        return torch.zeros((height, width), dtype=torch.float32)
    rows = torch.arange(height, dtype=torch.float64).unsqueeze(1)
    cols = torch.arange(width, dtype=torch.float64).unsqueeze(0)
    far_h = torch.full_like(rows, float(height))
    far_w = torch.full_like(cols, float(width))
    distance = torch.minimum(
        torch.minimum(
            rows if top else far_h,
            (height - rows) if bottom else far_h,
        ),
        torch.minimum(
            cols if left else far_w,
            (width - cols) if right else far_w,
        ),
    )
    ramp = ((feathering - distance) / feathering) ** 2
    return torch.where(distance < feathering, ramp, torch.zeros_like(ramp)).to(torch.float32)


NODE_CLASS_MAPPINGS = {
    "EmptyImage": EmptyImage,
    "ImageInvert": ImageInvert,
    "ImageScale": ImageScale,
    "ImageScaleBy": ImageScaleBy,
    "ImageBatch": ImageBatch,
    "ImagePadForOutpaint": ImagePadForOutpaint,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "EmptyImage": "Empty Image",
    "ImageInvert": "Invert Image Colors",
    "ImageScale": "Upscale Image",
    "ImageScaleBy": "Upscale Image By",
    "ImageBatch": "Batch Images (DEPRECATED)",
    "ImagePadForOutpaint": "Pad Image for Outpainting",
}
