"""Text encoding and conditioning nodes: CLIPTextEncode (+ SDXL), combine, area, mask, zero out.

CONDITIONING is ComfyUI's list of `[cond_tensor, extras]` pairs; every node here returns a
new list and never changes the one it was given (it may be a cached output shared by prompts).
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from node_actors import context
from node_actors.models import runtime
from node_actors.models.model_ref import ModelRef

logger = logging.getLogger(__name__)

MAX_RESOLUTION = 16384
CLIP_MISSING = (
    "ERROR: clip input is invalid: None\n\nIf the clip is from a checkpoint loader node your "
    "checkpoint does not contain a valid clip or text encoder model."
)


def encode(clip: ModelRef | None, text: str, text_l: str | None = None) -> list[list[Any]]:
    from node_actors.models.embeddings import embedding_finder
    from node_actors.models.text_encode import encode_text

    if clip is None:
        raise RuntimeError(CLIP_MISSING)
    rt = runtime.installed()
    models = rt.clip(clip)
    encoded = encode_text(
        models,
        text,
        stop_at_layer=clip.option("stop_at_layer"),
        find_embedding=embedding_finder(rt.folders),
        text_l=text_l,
    )
    extras: dict[str, Any] = {}
    if encoded.pooled is not None:
        extras["pooled_output"] = encoded.pooled
    logger.debug("%s: encoded %d tokens", context.log_ids(), encoded.cond.shape[1])
    return [[encoded.cond, extras]]


class CLIPTextEncode:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "text": (
                    "STRING",
                    {
                        "multiline": True,
                        "dynamicPrompts": True,
                        "tooltip": "The text to be encoded.",
                    },
                ),
                "clip": ("CLIP", {"tooltip": "The CLIP model used for encoding the text."}),
            }
        }

    RETURN_TYPES = ("CONDITIONING",)
    OUTPUT_TOOLTIPS = (
        "A conditioning containing the embedded text used to guide the diffusion model.",
    )
    FUNCTION = "encode"
    CATEGORY = "conditioning"
    DESCRIPTION = (
        "Encodes a text prompt using a CLIP model into an embedding that can be used to guide "
        "the diffusion model towards generating specific images."
    )
    SEARCH_ALIASES = ["text", "prompt", "text prompt", "positive prompt", "negative prompt"]

    def encode(self, clip: ModelRef | None, text: str) -> tuple[list[list[Any]]]:
        return (encode(clip, text),)


class CLIPTextEncodeSDXL:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        size = {"default": 1024, "min": 0, "max": MAX_RESOLUTION}
        crop = {"default": 0, "min": 0, "max": MAX_RESOLUTION}
        return {
            "required": {
                "clip": ("CLIP",),
                "width": ("INT", dict(size)),
                "height": ("INT", dict(size)),
                "crop_w": ("INT", dict(crop)),
                "crop_h": ("INT", dict(crop)),
                "target_width": ("INT", dict(size)),
                "target_height": ("INT", dict(size)),
                "text_g": ("STRING", {"multiline": True, "dynamicPrompts": True}),
                "text_l": ("STRING", {"multiline": True, "dynamicPrompts": True}),
            }
        }

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "encode"
    CATEGORY = "advanced/conditioning"

    def encode(
        self,
        clip: ModelRef | None,
        width: int,
        height: int,
        crop_w: int,
        crop_h: int,
        target_width: int,
        target_height: int,
        text_g: str,
        text_l: str,
    ) -> tuple[list[list[Any]]]:
        conditioning = encode(clip, text_g, text_l=text_l)
        for _cond, extras in conditioning:
            extras.update(
                width=width,
                height=height,
                crop_w=crop_w,
                crop_h=crop_h,
                target_width=target_width,
                target_height=target_height,
            )
        return (conditioning,)


class ConditioningCombine:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {"conditioning_1": ("CONDITIONING",), "conditioning_2": ("CONDITIONING",)}
        }

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "combine"
    CATEGORY = "conditioning"

    def combine(self, conditioning_1: list[Any], conditioning_2: list[Any]) -> tuple[list[Any]]:
        return (list(conditioning_1) + list(conditioning_2),)


def _with_extras(conditioning: list[Any], **values: Any) -> list[list[Any]]:
    return [[cond, {**extras, **values}] for cond, extras in conditioning]


class ConditioningSetArea:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        size = {"default": 64, "min": 64, "max": MAX_RESOLUTION, "step": 8}
        offset = {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 8}
        return {
            "required": {
                "conditioning": ("CONDITIONING",),
                "width": ("INT", dict(size)),
                "height": ("INT", dict(size)),
                "x": ("INT", dict(offset)),
                "y": ("INT", dict(offset)),
                "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01}),
            }
        }

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "append"
    CATEGORY = "conditioning"

    def append(
        self, conditioning: list[Any], width: int, height: int, x: int, y: int, strength: float
    ) -> tuple[list[list[Any]]]:
        # Areas are kept in latent cells (pixels / 8), as the sampler applies them.
        area = (height // 8, width // 8, y // 8, x // 8)
        return (_with_extras(conditioning, area=area, strength=strength, set_area_to_bounds=False),)


class ConditioningSetMask:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "conditioning": ("CONDITIONING",),
                "mask": ("MASK",),
                "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01}),
                "set_cond_area": (["default", "mask bounds"],),
            }
        }

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "append"
    CATEGORY = "conditioning"

    def append(
        self, conditioning: list[Any], mask: torch.Tensor, set_cond_area: str, strength: float
    ) -> tuple[list[list[Any]]]:
        if mask.ndim < 3:
            mask = mask.unsqueeze(0)
        values: dict[str, Any] = {
            "mask": mask,
            "set_area_to_bounds": set_cond_area != "default",
            "mask_strength": strength,
        }
        if set_cond_area != "default":
            values.update(_mask_bounds(mask))
        return (_with_extras(conditioning, **values),)


def _mask_bounds(mask: torch.Tensor) -> dict[str, Any]:
    """The area (in latent cells) around the mask's non-zero cells, for "mask bounds"."""
    nonzero = torch.nonzero(mask.amax(dim=0) > 0)
    if nonzero.numel() == 0:
        return {}
    y0, x0 = (int(v) for v in nonzero.min(dim=0).values)
    y1, x1 = (int(v) for v in nonzero.max(dim=0).values)
    height, width = mask.shape[-2], mask.shape[-1]
    # The mask is in pixels when it is larger than a latent would be; areas are in latent cells.
    scale = 8 if height >= 64 and width >= 64 else 1
    return {
        "area": (
            max(1, (y1 - y0 + 1) // scale),
            max(1, (x1 - x0 + 1) // scale),
            y0 // scale,
            x0 // scale,
        )
    }


class ConditioningZeroOut:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"conditioning": ("CONDITIONING",)}}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "zero_out"
    CATEGORY = "advanced/conditioning"

    def zero_out(self, conditioning: list[Any]) -> tuple[list[list[Any]]]:
        out: list[list[Any]] = []
        for cond, extras in conditioning:
            extras = dict(extras)
            pooled = extras.get("pooled_output")
            if pooled is not None:
                extras["pooled_output"] = torch.zeros_like(pooled)
            out.append([torch.zeros_like(cond), extras])
        return (out,)


NODE_CLASS_MAPPINGS = {
    "CLIPTextEncode": CLIPTextEncode,
    "CLIPTextEncodeSDXL": CLIPTextEncodeSDXL,
    "ConditioningCombine": ConditioningCombine,
    "ConditioningSetArea": ConditioningSetArea,
    "ConditioningSetMask": ConditioningSetMask,
    "ConditioningZeroOut": ConditioningZeroOut,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "CLIPTextEncode": "CLIP Text Encode (Prompt)",
    "CLIPTextEncodeSDXL": "CLIPTextEncodeSDXL",
    "ConditioningCombine": "Conditioning (Combine)",
    "ConditioningSetArea": "Conditioning (Set Area)",
    "ConditioningSetMask": "Conditioning (Set Mask)",
    "ConditioningZeroOut": "ConditioningZeroOut",
}
