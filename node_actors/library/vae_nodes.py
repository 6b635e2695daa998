"""VAE nodes: decode and encode latents, whole or in overlapping tiles, and inpaint encoding.

The VAE comes from the worker's model cache. IMAGE is [B,H,W,3] in 0..1; the VAE works on
[B,3,H,W] in -1..1 and on raw (unscaled) latents, which is what LATENT holds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from node_actors.models import runtime
from node_actors.models.model_ref import ModelRef

logger = logging.getLogger(__name__)

DOWNSCALE = 8


def _module_dtype(vae: Any) -> tuple[torch.dtype, torch.device]:
    param = next(vae.parameters())
    return param.dtype, param.device


def decode_latents(vae: Any, latents: torch.Tensor) -> torch.Tensor:
    dtype, device = _module_dtype(vae)
    with torch.no_grad():
        pixels = vae.decode(latents.to(device, dtype)).sample
    image = ((pixels.float() + 1.0) / 2.0).clamp(0.0, 1.0)
    return image.movedim(1, -1).cpu()


def encode_pixels(vae: Any, image: torch.Tensor) -> torch.Tensor:
    dtype, device = _module_dtype(vae)
    pixels = image[..., :3].movedim(-1, 1) * 2.0 - 1.0
    with torch.no_grad():
        # The distribution's mean: the same image always gives the same latent.
        latent = vae.encode(pixels.to(device, dtype)).latent_dist.mode()
    return latent.float().cpu()


def crop_to_multiple(image: torch.Tensor, multiple: int = DOWNSCALE) -> torch.Tensor:
    """Centre-crop [B,H,W,C] to a multiple of the VAE's downscale (as ComfyUI does)."""
    height, width = image.shape[1], image.shape[2]
    new_h, new_w = (height // multiple) * multiple, (width // multiple) * multiple
    if (new_h, new_w) == (height, width):
        return image
    y, x = (height % multiple) // 2, (width % multiple) // 2
    return image[:, y : y + new_h, x : x + new_w, :]


def _ramp(length: int, overlap: int) -> torch.Tensor:
    """Blend weights along one tile axis: rising over the overlap at both ends."""
    weights = torch.ones(length)
    if overlap > 0:
        edge = torch.linspace(0.0, 1.0, overlap + 2)[1:-1]
        n = min(overlap, length // 2)
        weights[:n] = edge[:n]
        weights[length - n :] = torch.flip(edge[:n], dims=[0])
    return weights


def run_tiled(
    source: torch.Tensor,
    fn: Callable[[torch.Tensor], torch.Tensor],
    tile: int,
    overlap: int,
    scale: float,
    out_channels: int,
) -> torch.Tensor:
    """Apply fn to overlapping [B,C,tile,tile] tiles of source and blend the results.

    scale is the output size per input cell (8 for decoding, 1/8 for encoding)."""
    batch, _, height, width = source.shape
    out_h, out_w = round(height * scale), round(width * scale)
    total = torch.zeros((batch, out_channels, out_h, out_w))
    weight = torch.zeros((1, 1, out_h, out_w))
    stride = max(1, tile - overlap)
    ys = list(range(0, max(height - overlap, 1), stride))
    xs = list(range(0, max(width - overlap, 1), stride))
    for y in ys:
        for x in xs:
            y0, x0 = min(y, max(0, height - tile)), min(x, max(0, width - tile))
            part = source[:, :, y0 : y0 + tile, x0 : x0 + tile]
            result = fn(part).float().cpu()
            oy, ox = round(y0 * scale), round(x0 * scale)
            rh, rw = result.shape[-2], result.shape[-1]
            blend_overlap = round(overlap * scale)
            w = _ramp(rh, blend_overlap)[:, None] * _ramp(rw, blend_overlap)[None, :]
            total[:, :, oy : oy + rh, ox : ox + rw] += result * w
            weight[:, :, oy : oy + rh, ox : ox + rw] += w
    return total / weight.clamp_min(1e-8)


def _temporal_inputs(verb: str) -> dict[str, Any]:
    """The video-VAE inputs the tiled nodes declare (image VAEs ignore them)."""
    return {
        "temporal_size": (
            "INT",
            {
                "default": 64,
                "min": 8,
                "max": 4096,
                "step": 4,
                "tooltip": f"Only used for video VAEs: Amount of frames to {verb} at a time.",
            },
        ),
        "temporal_overlap": (
            "INT",
            {
                "default": 8,
                "min": 4,
                "max": 4096,
                "step": 4,
                "tooltip": "Only used for video VAEs: Amount of frames to overlap.",
            },
        ),
    }


class VAEDecode:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "samples": ("LATENT", {"tooltip": "The latent to be decoded."}),
                "vae": ("VAE", {"tooltip": "The VAE model used for decoding the latent."}),
            }
        }

    RETURN_TYPES = ("IMAGE",)
    OUTPUT_TOOLTIPS = ("The decoded image.",)
    FUNCTION = "decode"
    CATEGORY = "latent"
    DESCRIPTION = "Decodes latent images back into pixel space images."
    SEARCH_ALIASES = ["decode", "decode latent", "latent to image", "render latent"]

    def decode(self, vae: ModelRef, samples: dict[str, Any]) -> tuple[torch.Tensor]:
        return (decode_latents(runtime.installed().vae(vae), samples["samples"]),)


class VAEDecodeTiled:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "samples": ("LATENT",),
                "vae": ("VAE",),
                "tile_size": ("INT", {"default": 512, "min": 64, "max": 4096, "step": 32}),
                "overlap": ("INT", {"default": 64, "min": 0, "max": 4096, "step": 32}),
                **_temporal_inputs("decode"),
            }
        }

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "decode"
    CATEGORY = "_for_testing"

    def decode(
        self,
        vae: ModelRef,
        samples: dict[str, Any],
        tile_size: int,
        overlap: int = 64,
        temporal_size: int = 64,
        temporal_overlap: int = 8,
    ) -> tuple[torch.Tensor]:
        module = runtime.installed().vae(vae)
        tile = max(8, tile_size // DOWNSCALE)
        cells = min(overlap // DOWNSCALE, tile // 4)

        def decode_tile(part: torch.Tensor) -> torch.Tensor:
            return decode_latents(module, part).movedim(-1, 1)

        image = run_tiled(samples["samples"], decode_tile, tile, cells, DOWNSCALE, 3)
        return (image.movedim(1, -1),)


class VAEEncode:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"pixels": ("IMAGE",), "vae": ("VAE",)}}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "encode"
    CATEGORY = "latent"

    def encode(self, vae: ModelRef, pixels: torch.Tensor) -> tuple[dict[str, Any]]:
        module = runtime.installed().vae(vae)
        return ({"samples": encode_pixels(module, crop_to_multiple(pixels))},)


class VAEEncodeTiled:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "pixels": ("IMAGE",),
                "vae": ("VAE",),
                "tile_size": ("INT", {"default": 512, "min": 64, "max": 4096, "step": 64}),
                "overlap": ("INT", {"default": 64, "min": 0, "max": 4096, "step": 32}),
                **_temporal_inputs("encode"),
            }
        }

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "encode"
    CATEGORY = "_for_testing"

    def encode(
        self,
        vae: ModelRef,
        pixels: torch.Tensor,
        tile_size: int,
        overlap: int = 64,
        temporal_size: int = 64,
        temporal_overlap: int = 8,
    ) -> tuple[dict[str, Any]]:
        module = runtime.installed().vae(vae)
        image = crop_to_multiple(pixels).movedim(-1, 1)
        overlap = min(overlap, tile_size // 4) // DOWNSCALE * DOWNSCALE

        def encode_tile(part: torch.Tensor) -> torch.Tensor:
            return encode_pixels(module, part.movedim(1, -1))

        channels = int(getattr(module.config, "latent_channels", 4))
        latent = run_tiled(image, encode_tile, tile_size, overlap, 1 / DOWNSCALE, channels)
        return ({"samples": latent},)


class VAEEncodeForInpaint:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "pixels": ("IMAGE",),
                "vae": ("VAE",),
                "mask": ("MASK",),
                "grow_mask_by": ("INT", {"default": 6, "min": 0, "max": 64, "step": 1}),
            }
        }

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "encode"
    CATEGORY = "latent/inpaint"

    def encode(
        self, vae: ModelRef, pixels: torch.Tensor, mask: torch.Tensor, grow_mask_by: int = 6
    ) -> tuple[dict[str, Any]]:
        module = runtime.installed().vae(vae)
        height, width = pixels.shape[1], pixels.shape[2]
        mask = mask.reshape((-1, 1, mask.shape[-2], mask.shape[-1])).float()
        mask = F.interpolate(mask, size=(height, width), mode="bilinear")
        pixels = crop_to_multiple(pixels.clone())
        y, x = (height % DOWNSCALE) // 2, (width % DOWNSCALE) // 2
        mask = mask[:, :, y : y + pixels.shape[1], x : x + pixels.shape[2]]
        if grow_mask_by > 0:
            # A square kernel of ones: every pixel within grow_mask_by of the mask joins it.
            kernel = torch.ones((1, 1, grow_mask_by, grow_mask_by))
            padding = grow_mask_by // 2
            grown = F.conv2d(mask.round(), kernel, padding=padding)
            grown = grown[:, :, : mask.shape[2], : mask.shape[3]].clamp(0.0, 1.0)
        else:
            grown = mask.round()
        # The masked pixels become neutral grey before encoding, so their content does not leak.
        keep = (1.0 - mask.round()).squeeze(1)
        pixels = pixels.clone()
        pixels[..., :3] = (pixels[..., :3] - 0.5) * keep.unsqueeze(-1) + 0.5
        latent = encode_pixels(module, pixels)
        return ({"samples": latent, "noise_mask": grown},)


NODE_CLASS_MAPPINGS = {
    "VAEDecode": VAEDecode,
    "VAEEncode": VAEEncode,
    "VAEDecodeTiled": VAEDecodeTiled,
    "VAEEncodeTiled": VAEEncodeTiled,
    "VAEEncodeForInpaint": VAEEncodeForInpaint,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "VAEDecode": "VAE Decode",
    "VAEEncode": "VAE Encode",
    "VAEDecodeTiled": "VAE Decode (Tiled)",
    "VAEEncodeTiled": "VAE Encode (Tiled)",
    "VAEEncodeForInpaint": "VAE Encode (for Inpainting)",
}
