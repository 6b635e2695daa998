"""Conversions between IMAGE/MASK tensors and PIL images, and image resampling.

IMAGE is float32 [B,H,W,C] in 0..1 (C is 3, or 4 with alpha); MASK is float32 [B,H,W].
Converting to 8 bits clips first and then truncates, as ComfyUI does, so 0.999 -> 254.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from PIL import Image

logger = logging.getLogger(__name__)

UPSCALE_METHODS: tuple[str, ...] = ("nearest-exact", "bilinear", "area", "bicubic", "lanczos")
CROP_METHODS: tuple[str, ...] = ("disabled", "center")


def to_uint8(pixels: torch.Tensor) -> np.ndarray:
    """A float tensor in 0..1 as uint8: clip to 0..255, then truncate."""
    array = 255.0 * pixels.detach().to("cpu", torch.float32).numpy()
    return np.clip(array, 0, 255).astype(np.uint8)


def tensor_to_pil(image: torch.Tensor) -> Image.Image:
    """One image, [H,W,C] or [H,W], as a PIL image (RGB, RGBA or L)."""
    array = to_uint8(image)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    return Image.fromarray(array)


def pil_to_image(image: Image.Image) -> torch.Tensor:
    """A PIL image as a one-image IMAGE batch [1,H,W,3]."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array.copy()).unsqueeze(0)


def center_crop_box(old_w: int, old_h: int, new_w: int, new_h: int) -> tuple[int, int]:
    """(x, y) margins that cut the old size to the new aspect ratio around the centre."""
    old_aspect = old_w / old_h
    new_aspect = new_w / new_h
    x = y = 0
    if old_aspect > new_aspect:
        x = round((old_w - old_w * (new_aspect / old_aspect)) / 2)
    elif old_aspect < new_aspect:
        y = round((old_h - old_h * (old_aspect / new_aspect)) / 2)
    return x, y


def resize_nchw(
    samples: torch.Tensor, width: int, height: int, method: str, crop: str = "disabled"
) -> torch.Tensor:
    """Resize [B,C,H,W] to (height, width), optionally centre-cropping to the new aspect first."""
    if method not in UPSCALE_METHODS:
        raise ValueError(f"unknown upscale method {method!r}; expected one of {UPSCALE_METHODS}")
    if crop not in CROP_METHODS:
        raise ValueError(f"unknown crop method {crop!r}; expected one of {CROP_METHODS}")
    if width < 1 or height < 1:
        raise ValueError(f"cannot resize to {width}x{height}")
    if crop == "center":
        old_h, old_w = samples.shape[-2], samples.shape[-1]
        x, y = center_crop_box(old_w, old_h, width, height)
        samples = samples.narrow(-2, y, old_h - 2 * y).narrow(-1, x, old_w - 2 * x)
    if method == "lanczos":
        return _lanczos(samples, width, height)
    return torch.nn.functional.interpolate(samples, size=(height, width), mode=method)


def _lanczos(samples: torch.Tensor, width: int, height: int) -> torch.Tensor:
    # PIL resamples each band independently, so resizing channel by channel as 8-bit "L"
    # images gives the same pixels as resizing the RGB(A) image, for any channel count.
    batch = []
    for image in samples:
        channels = [
            torch.from_numpy(
                np.asarray(
                    tensor_to_pil(channel).resize((width, height), Image.Resampling.LANCZOS),
                    dtype=np.float32,
                )
                / 255.0
            )
            for channel in image
        ]
        batch.append(torch.stack(channels))
    return torch.stack(batch).to(samples.device, samples.dtype)


def resize_image(
    image: torch.Tensor, width: int, height: int, method: str, crop: str = "disabled"
) -> torch.Tensor:
    """Resize an IMAGE batch [B,H,W,C]."""
    return resize_nchw(image.movedim(-1, 1), width, height, method, crop).movedim(1, -1)
