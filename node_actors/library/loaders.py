"""Model loader nodes: checkpoints, split UNet / text encoder / VAE files, LoRAs, CLIP skip.

They return ModelRefs (file, content hash, patches, options), never weights: the node that
computes with a model gets it from its worker's model cache (node_actors/models/runtime.py).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from node_actors import context, folders
from node_actors.models import runtime
from node_actors.models.model_ref import ModelRef

logger = logging.getLogger(__name__)

CLIP_TYPES: tuple[str, ...] = ("stable_diffusion",)
DUAL_CLIP_TYPES: tuple[str, ...] = ("sdxl",)
WEIGHT_DTYPES: tuple[str, ...] = ("default", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2")


def _files(folder: str) -> list[str]:
    return folders.installed().get_filename_list(folder)


def checkpoint_refs(path: Path) -> tuple[ModelRef, ModelRef | None, ModelRef | None]:
    """The (MODEL, CLIP, VAE) references of a single-file checkpoint (reads its header only)."""
    from node_actors.models.checkpoint import inspect_checkpoint

    rt = runtime.installed()
    # The header, plus the one tensor that tells SD2 768-v (v-prediction) from eps models.
    layout = inspect_checkpoint(path)
    family = layout.family.name
    source = (("source", "checkpoint"),)
    unet = rt.ref("unet", [path], family, source)
    clip = rt.ref("clip", [path], family, source) if layout.clip_prefixes else None
    vae = rt.ref("vae", [path], family, source) if layout.vae_prefix is not None else None
    logger.info("%s: checkpoint %s is %s", context.log_ids(), path.name, family)
    return unet, clip, vae


class CheckpointLoaderSimple:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "ckpt_name": (
                    _files("checkpoints"),
                    {"tooltip": "The name of the checkpoint (model) to load."},
                )
            }
        }

    RETURN_TYPES = ("MODEL", "CLIP", "VAE")
    OUTPUT_TOOLTIPS = (
        "The model used for denoising latents.",
        "The CLIP model used for encoding text prompts.",
        "The VAE model used for encoding and decoding images to and from latent space.",
    )
    FUNCTION = "load_checkpoint"
    CATEGORY = "loaders"
    DESCRIPTION = (
        "Loads a diffusion model checkpoint, diffusion models are used to denoise latents."
    )
    SEARCH_ALIASES = ["load model", "checkpoint", "model loader"]

    def load_checkpoint(self, ckpt_name: str) -> tuple[Any, ...]:
        return checkpoint_refs(runtime.installed().resolve("checkpoints", ckpt_name))


class CheckpointLoader:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "config_name": (_files("configs"),),
                "ckpt_name": (_files("checkpoints"),),
            }
        }

    RETURN_TYPES = ("MODEL", "CLIP", "VAE")
    FUNCTION = "load_checkpoint"
    CATEGORY = "advanced/loaders"
    DEPRECATED = True

    def load_checkpoint(self, config_name: str, ckpt_name: str) -> tuple[Any, ...]:
        # The architecture is read from the checkpoint itself; the yaml only named it.
        logger.info(
            "%s: config %s not needed, detecting from the weights", context.log_ids(), config_name
        )
        return checkpoint_refs(runtime.installed().resolve("checkpoints", ckpt_name))


class UNETLoader:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "unet_name": (_files("diffusion_models"),),
                "weight_dtype": (list(WEIGHT_DTYPES), {"advanced": True}),
            }
        }

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "load_unet"
    CATEGORY = "advanced/loaders"
    SEARCH_ALIASES = ["load unet", "diffusion model", "unet loader"]

    def load_unet(self, unet_name: str, weight_dtype: str) -> tuple[ModelRef]:
        from node_actors.models.checkpoint import inspect_unet_file

        rt = runtime.installed()
        path = rt.resolve("diffusion_models", unet_name)
        family, _prefix = inspect_unet_file(path)
        if weight_dtype != "default":
            logger.info(
                "%s: weight_dtype %s runs in the device's dtype", context.log_ids(), weight_dtype
            )
        return (rt.ref("unet", [path], family.name, (("weight_dtype", weight_dtype),)),)


def _clip_ref(names: list[str], clip_type: str, device: str) -> ModelRef:
    rt = runtime.installed()
    paths = [rt.resolve("text_encoders", n) for n in names]
    family = "sdxl" if clip_type == "sdxl" else None
    options: tuple[tuple[str, Any], ...] = (("clip_type", clip_type),)
    if device != "default":
        options += (("device", device),)
    return rt.ref("clip", paths, family, options)


class CLIPLoader:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "clip_name": (_files("text_encoders"),),
                "type": (list(CLIP_TYPES),),
            },
            "optional": {"device": (["default", "cpu"], {"advanced": True})},
        }

    RETURN_TYPES = ("CLIP",)
    FUNCTION = "load_clip"
    CATEGORY = "advanced/loaders"
    DESCRIPTION = "[Recipes]\n\nstable_diffusion: clip-l (SD1.x) or OpenCLIP ViT-H (SD2.x)"

    def load_clip(
        self, clip_name: str, type: str = "stable_diffusion", device: str = "default"
    ) -> tuple[ModelRef]:
        return (_clip_ref([clip_name], type, device),)


class DualCLIPLoader:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        files = _files("text_encoders")
        return {
            "required": {
                "clip_name1": (files,),
                "clip_name2": (files,),
                "type": (list(DUAL_CLIP_TYPES),),
            },
            "optional": {"device": (["default", "cpu"], {"advanced": True})},
        }

    RETURN_TYPES = ("CLIP",)
    FUNCTION = "load_clip"
    CATEGORY = "advanced/loaders"
    DESCRIPTION = "[Recipes]\n\nsdxl: clip-l, clip-g"

    def load_clip(
        self, clip_name1: str, clip_name2: str, type: str, device: str = "default"
    ) -> tuple[ModelRef]:
        return (_clip_ref([clip_name1, clip_name2], type, device),)


class VAELoader:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"vae_name": (_files("vae"),)}}

    RETURN_TYPES = ("VAE",)
    FUNCTION = "load_vae"
    CATEGORY = "loaders"

    def load_vae(self, vae_name: str) -> tuple[ModelRef]:
        rt = runtime.installed()
        path = rt.resolve("vae", vae_name)
        return (rt.ref("vae", [path], None),)


class LoraLoader:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        strength = {"default": 1.0, "min": -100.0, "max": 100.0, "step": 0.01}
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "The diffusion model the LoRA will be applied to."}),
                "clip": ("CLIP", {"tooltip": "The CLIP model the LoRA will be applied to."}),
                "lora_name": (_files("loras"), {"tooltip": "The name of the LoRA."}),
                "strength_model": ("FLOAT", dict(strength)),
                "strength_clip": ("FLOAT", dict(strength)),
            }
        }

    RETURN_TYPES = ("MODEL", "CLIP")
    OUTPUT_TOOLTIPS = ("The modified diffusion model.", "The modified CLIP model.")
    FUNCTION = "load_lora"
    CATEGORY = "loaders"
    DESCRIPTION = (
        "LoRAs are used to modify diffusion and CLIP models, altering the way in which latents "
        "are denoised such as applying styles. Multiple LoRA nodes can be linked together."
    )

    def load_lora(
        self,
        model: ModelRef,
        clip: ModelRef | None,
        lora_name: str,
        strength_model: float,
        strength_clip: float,
    ) -> tuple[ModelRef, ModelRef | None]:
        if strength_model == 0 and strength_clip == 0:
            return model, clip
        rt = runtime.installed()
        if strength_model != 0:
            model = model.with_patch(rt.lora_patch(lora_name, strength_model))
        if clip is not None and strength_clip != 0:
            clip = clip.with_patch(rt.lora_patch(lora_name, strength_clip))
        return model, clip


class LoraLoaderModelOnly:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "model": ("MODEL",),
                "lora_name": (_files("loras"),),
                "strength_model": (
                    "FLOAT",
                    {"default": 1.0, "min": -100.0, "max": 100.0, "step": 0.01},
                ),
            }
        }

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "load_lora_model_only"
    CATEGORY = "loaders"

    def load_lora_model_only(
        self, model: ModelRef, lora_name: str, strength_model: float
    ) -> tuple[ModelRef]:
        if strength_model == 0:
            return (model,)
        return (model.with_patch(runtime.installed().lora_patch(lora_name, strength_model)),)


class CLIPSetLastLayer:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "clip": ("CLIP",),
                "stop_at_clip_layer": ("INT", {"default": -1, "min": -24, "max": -1, "step": 1}),
            }
        }

    RETURN_TYPES = ("CLIP",)
    FUNCTION = "set_last_layer"
    CATEGORY = "conditioning"

    def set_last_layer(self, clip: ModelRef, stop_at_clip_layer: int) -> tuple[ModelRef]:
        return (clip.with_option("stop_at_layer", int(stop_at_clip_layer)),)


NODE_CLASS_MAPPINGS = {
    "CheckpointLoaderSimple": CheckpointLoaderSimple,
    "CheckpointLoader": CheckpointLoader,
    "UNETLoader": UNETLoader,
    "CLIPLoader": CLIPLoader,
    "DualCLIPLoader": DualCLIPLoader,
    "VAELoader": VAELoader,
    "LoraLoader": LoraLoader,
    "LoraLoaderModelOnly": LoraLoaderModelOnly,
    "CLIPSetLastLayer": CLIPSetLastLayer,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "CheckpointLoaderSimple": "Load Checkpoint",
    "CheckpointLoader": "Load Checkpoint With Config (DEPRECATED)",
    "UNETLoader": "Load Diffusion Model",
    "CLIPLoader": "Load CLIP",
    "DualCLIPLoader": "DualCLIPLoader",
    "VAELoader": "Load VAE",
    "LoraLoader": "Load LoRA",
    "LoraLoaderModelOnly": "LoraLoaderModelOnly",
    "CLIPSetLastLayer": "CLIP Set Last Layer",
}
