"""LoadImage and LoadImageMask: read a file from the input folder into IMAGE/MASK tensors.

The image name may carry a " [output]" / " [temp]" annotation; it never resolves outside
its folder. Multi-frame files (GIF, APNG, animated WebP, TIFF pages) become one batch of
the frames that share the first frame's size.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, ImageSequence

from node_actors import context, folders

logger = logging.getLogger(__name__)

MASK_CHANNELS: tuple[str, ...] = ("alpha", "red", "green", "blue")

# Pillow opens 16-bit greyscale PNGs in these modes; their values run to 65535.
_WIDE_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})

# ComfyUI's stand-in mask for images without transparency.
_NO_ALPHA_SIZE = 64


def _frame_rgb(frame: Image.Image) -> np.ndarray:
    """[H,W,3] float32 in 0..1."""
    if frame.mode in _WIDE_MODES:
        grey = np.clip(np.asarray(frame, dtype=np.float32) / 65535.0, 0.0, 1.0)
        return np.repeat(grey[..., None], 3, axis=-1)
    return np.asarray(frame.convert("RGB"), dtype=np.float32) / 255.0


def _frame_mask(frame: Image.Image) -> np.ndarray | None:
    """1 - alpha as [H,W] float32, or None when the frame has no transparency."""
    if "A" in frame.getbands():
        alpha = frame.getchannel("A")
    elif frame.mode == "P" and "transparency" in frame.info:
        alpha = frame.convert("RGBA").getchannel("A")
    else:
        return None
    return 1.0 - np.asarray(alpha, dtype=np.float32) / 255.0


def read_image_file(path: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(IMAGE [B,H,W,3], MASK [B,H,W] or [B,64,64] zeros without any transparency)."""
    frames: list[np.ndarray] = []
    masks: list[np.ndarray | None] = []
    with Image.open(path) as img:
        single_frame = img.format == "MPO"  # its extra frames are other views, not time
        for raw in ImageSequence.Iterator(img):
            frame = ImageOps.exif_transpose(raw)
            rgb = _frame_rgb(frame)
            if frames and rgb.shape != frames[0].shape:
                continue
            frames.append(rgb)
            masks.append(_frame_mask(frame))
            if single_frame:
                break
    image = torch.from_numpy(np.stack(frames))
    height, width = frames[0].shape[:2]
    if all(m is None for m in masks):
        mask = torch.zeros((len(frames), _NO_ALPHA_SIZE, _NO_ALPHA_SIZE), dtype=torch.float32)
    else:
        # Frames without alpha next to frames with it get an all-opaque (zero) mask.
        full = [m if m is not None else np.zeros((height, width), np.float32) for m in masks]
        mask = torch.from_numpy(np.stack(full))
    return image, mask


def file_sha256(name: str) -> str:
    digest = hashlib.sha256()
    with open(folders.installed().get_annotated_filepath(name), "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class LoadImage:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        options = folders.installed().input_image_files()
        return {"required": {"image": (options, {"image_upload": True})}}

    RETURN_TYPES = ("IMAGE", "MASK")
    FUNCTION = "load_image"
    CATEGORY = "image"
    ESSENTIALS_CATEGORY = "Basics"
    SEARCH_ALIASES = [
        "load image",
        "open image",
        "import image",
        "image input",
        "upload image",
        "read image",
        "image loader",
    ]

    def load_image(self, image: str) -> tuple[torch.Tensor, torch.Tensor]:
        path = folders.installed().get_annotated_filepath(image)
        pixels, mask = read_image_file(path)
        logger.debug("%s: loaded %s as %s", context.log_ids(), image, tuple(pixels.shape))
        return pixels, mask

    @classmethod
    def IS_CHANGED(cls, image: str) -> str:
        return file_sha256(image)

    @classmethod
    def VALIDATE_INPUTS(cls, image: str) -> bool | str:
        # Annotated names ("x.png [output]") are not among the options, so existence is the
        # check rather than membership.
        if not folders.installed().exists_annotated_filepath(image):
            return f"Invalid image file: {image}"
        return True


class LoadImageMask(LoadImage):
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        required = dict(super().INPUT_TYPES()["required"])
        required["channel"] = (list(MASK_CHANNELS),)
        return {"required": required}

    RETURN_TYPES = ("MASK",)
    FUNCTION = "load_image_mask"
    CATEGORY = "image"
    ESSENTIALS_CATEGORY = "Image Tools"
    SEARCH_ALIASES = ["import mask", "alpha mask", "channel mask"]

    def load_image_mask(self, image: str, channel: str) -> tuple[torch.Tensor]:
        if channel not in MASK_CHANNELS:
            raise ValueError(f"unknown channel {channel!r}; expected one of {MASK_CHANNELS}")
        pixels, mask = self.load_image(image)
        if channel == "alpha":
            return (mask,)
        return (pixels[..., MASK_CHANNELS.index(channel) - 1].clone(),)

    @classmethod
    def IS_CHANGED(cls, image: str, channel: str) -> str:
        return file_sha256(image)


NODE_CLASS_MAPPINGS = {"LoadImage": LoadImage, "LoadImageMask": LoadImageMask}

NODE_DISPLAY_NAME_MAPPINGS = {"LoadImage": "Load Image", "LoadImageMask": "Load Image (as Mask)"}
