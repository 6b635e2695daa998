"""Latent nodes: empty latents, upscaling, batch slicing and repeating, the inpaint noise mask.

LATENT is `{"samples": [B,4,H/8,W/8], "noise_mask"?, "batch_index"?}` with the VAE's raw
latents. `batch_index` remembers which noise each latent of a sliced or repeated batch gets.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch

from node_actors.library.pixels import CROP_METHODS, center_crop_box

logger = logging.getLogger(__name__)

MAX_RESOLUTION = 16384
LATENT_UPSCALE_METHODS: tuple[str, ...] = (
    "nearest-exact",
    "bilinear",
    "area",
    "bicubic",
    "bislerp",
)


class EmptyLatentImage:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        size = {"default": 512, "min": 16, "max": MAX_RESOLUTION, "step": 8}
        return {
            "required": {
                "width": ("INT", {**size, "tooltip": "The width of the latent images in pixels."}),
                "height": (
                    "INT",
                    {**size, "tooltip": "The height of the latent images in pixels."},
                ),
                "batch_size": (
                    "INT",
                    {
                        "default": 1,
                        "min": 1,
                        "max": 4096,
                        "tooltip": "The number of latent images in the batch.",
                    },
                ),
            }
        }

    RETURN_TYPES = ("LATENT",)
    OUTPUT_TOOLTIPS = ("The empty latent image batch.",)
    FUNCTION = "generate"
    CATEGORY = "latent"
    DESCRIPTION = "Create a new batch of empty latent images to be denoised via sampling."
    SEARCH_ALIASES = ["empty", "empty latent", "new latent", "create latent", "blank latent"]

    def generate(self, width: int, height: int, batch_size: int = 1) -> tuple[dict[str, Any]]:
        samples = torch.zeros([batch_size, 4, height // 8, width // 8])
        return ({"samples": samples},)


def _slerp_pixels(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of channel vectors (per pixel), magnitudes interpolated linearly."""
    norm_a = a.norm(dim=1, keepdim=True)
    norm_b = b.norm(dim=1, keepdim=True)
    unit_a = a / norm_a.clamp_min(1e-12)
    unit_b = b / norm_b.clamp_min(1e-12)
    dot = (unit_a * unit_b).sum(dim=1, keepdim=True).clamp(-1.0, 1.0)
    omega = torch.acos(dot)
    sin_omega = torch.sin(omega)
    near = sin_omega.abs() < 1e-4
    wa = torch.where(near, 1.0 - t, torch.sin((1.0 - t) * omega) / sin_omega.clamp_min(1e-12))
    wb = torch.where(near, t, torch.sin(t * omega) / sin_omega.clamp_min(1e-12))
    direction = wa * unit_a + wb * unit_b
    return direction * (norm_a * (1.0 - t) + norm_b * t)


def _bislerp_axis(samples: torch.Tensor, size: int, axis: int) -> torch.Tensor:
    old = samples.shape[axis]
    position = (torch.arange(size, dtype=torch.float32) + 0.5) * old / size - 0.5
    position = position.clamp(0, old - 1)
    low = position.floor().long()
    high = (low + 1).clamp(max=old - 1)
    t = (position - low.float()).to(samples.dtype)
    a = samples.index_select(axis, low)
    b = samples.index_select(axis, high)
    shape = [1] * samples.ndim
    shape[axis] = size
    return _slerp_pixels(a, b, t.reshape(shape))


def resize_latent(
    samples: torch.Tensor, width: int, height: int, method: str, crop: str = "disabled"
) -> torch.Tensor:
    if method not in LATENT_UPSCALE_METHODS:
        raise ValueError(f"unknown upscale method {method!r}")
    if crop not in CROP_METHODS:
        raise ValueError(f"unknown crop method {crop!r}")
    if crop == "center":
        old_h, old_w = samples.shape[-2], samples.shape[-1]
        x, y = center_crop_box(old_w, old_h, width, height)
        samples = samples.narrow(-2, y, old_h - 2 * y).narrow(-1, x, old_w - 2 * x)
    if method == "bislerp":
        return _bislerp_axis(_bislerp_axis(samples, height, 2), width, 3)
    return torch.nn.functional.interpolate(samples, size=(height, width), mode=method)


def _copy(samples: dict[str, Any], new: torch.Tensor) -> dict[str, Any]:
    out = {k: v for k, v in samples.items() if k != "noise_mask"}
    out["samples"] = new
    return out


class LatentUpscale:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        size = {"default": 512, "min": 0, "max": MAX_RESOLUTION, "step": 8}
        return {
            "required": {
                "samples": ("LATENT",),
                "upscale_method": (list(LATENT_UPSCALE_METHODS),),
                "width": ("INT", dict(size)),
                "height": ("INT", dict(size)),
                "crop": (list(CROP_METHODS),),
            }
        }

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "upscale"
    CATEGORY = "latent"

    def upscale(
        self, samples: dict[str, Any], upscale_method: str, width: int, height: int, crop: str
    ) -> tuple[dict[str, Any]]:
        latent = samples["samples"]
        if width == 0 and height == 0:
            return (dict(samples),)
        old_h, old_w = latent.shape[-2], latent.shape[-1]
        if width == 0:
            width = max(64, round(old_w * 8 * height / (old_h * 8)))
        elif height == 0:
            height = max(64, round(old_h * 8 * width / (old_w * 8)))
        new = resize_latent(latent, width // 8, height // 8, upscale_method, crop)
        return (_copy(samples, new),)


class LatentUpscaleBy:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "samples": ("LATENT",),
                "upscale_method": (list(LATENT_UPSCALE_METHODS),),
                "scale_by": ("FLOAT", {"default": 1.5, "min": 0.01, "max": 8.0, "step": 0.01}),
            }
        }

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "upscale"
    CATEGORY = "latent"

    def upscale(
        self, samples: dict[str, Any], upscale_method: str, scale_by: float
    ) -> tuple[dict[str, Any]]:
        latent = samples["samples"]
        width = max(1, round(latent.shape[-1] * scale_by))
        height = max(1, round(latent.shape[-2] * scale_by))
        return (_copy(samples, resize_latent(latent, width, height, upscale_method)),)


class LatentFromBatch:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "samples": ("LATENT",),
                "batch_index": ("INT", {"default": 0, "min": 0, "max": 63}),
                "length": ("INT", {"default": 1, "min": 1, "max": 64}),
            }
        }

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "frombatch"
    CATEGORY = "latent/batch"

    def frombatch(
        self, samples: dict[str, Any], batch_index: int, length: int
    ) -> tuple[dict[str, Any]]:
        latent = samples["samples"]
        total = latent.shape[0]
        start = min(total - 1, batch_index)
        length = min(total - start, length)
        out = dict(samples)
        out["samples"] = latent[start : start + length].clone()
        mask = samples.get("noise_mask")
        if mask is not None:
            if mask.shape[0] == 1:
                out["noise_mask"] = mask.clone()
            else:
                if mask.shape[0] < total:
                    repeats = math.ceil(total / mask.shape[0])
                    mask = mask.repeat(repeats, *([1] * (mask.ndim - 1)))[:total]
                out["noise_mask"] = mask[start : start + length].clone()
        indices = samples.get("batch_index") or list(range(total))
        out["batch_index"] = list(indices[start : start + length])
        return (out,)


class RepeatLatentBatch:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "samples": ("LATENT",),
                "amount": ("INT", {"default": 1, "min": 1, "max": 64}),
            }
        }

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "repeat"
    CATEGORY = "latent/batch"

    def repeat(self, samples: dict[str, Any], amount: int) -> tuple[dict[str, Any]]:
        latent = samples["samples"]
        out = dict(samples)
        out["samples"] = latent.repeat(amount, 1, 1, 1)
        mask = samples.get("noise_mask")
        if mask is not None and mask.shape[0] > 1:
            if mask.shape[0] < latent.shape[0]:
                repeats = math.ceil(latent.shape[0] / mask.shape[0])
                mask = mask.repeat(repeats, *([1] * (mask.ndim - 1)))[: latent.shape[0]]
            out["noise_mask"] = mask.repeat(amount, *([1] * (mask.ndim - 1)))
        if "batch_index" in samples:
            # Each copy draws noise for new positions after the existing ones.
            indices = list(samples["batch_index"])
            step = max(indices) + 1
            out["batch_index"] = indices + [i + step * k for k in range(1, amount) for i in indices]
        return (out,)


class SetLatentNoiseMask:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"samples": ("LATENT",), "mask": ("MASK",)}}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "set_mask"
    CATEGORY = "latent/inpaint"

    def set_mask(self, samples: dict[str, Any], mask: torch.Tensor) -> tuple[dict[str, Any]]:
        out = dict(samples)
        out["noise_mask"] = mask.reshape((-1, 1, mask.shape[-2], mask.shape[-1]))
        return (out,)


NODE_CLASS_MAPPINGS = {
    "EmptyLatentImage": EmptyLatentImage,
    "LatentUpscale": LatentUpscale,
    "LatentUpscaleBy": LatentUpscaleBy,
    "LatentFromBatch": LatentFromBatch,
    "RepeatLatentBatch": RepeatLatentBatch,
    "SetLatentNoiseMask": SetLatentNoiseMask,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "EmptyLatentImage": "Empty Latent Image",
    "LatentUpscale": "Upscale Latent",
    "LatentUpscaleBy": "Upscale Latent By",
    "LatentFromBatch": "Latent From Batch",
    "RepeatLatentBatch": "Repeat Latent Batch",
    "SetLatentNoiseMask": "Set Latent Noise Mask",
}
