"""Which model family a state dict holds, and where each component's keys live.

Detection is structural (key names and tensor shapes), never by absolute sizes alone, so that the
tiny test checkpoints detect exactly like the real ones. Works on key -> shape only, without torch.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from node_actors.models.families import FAMILIES, ModelFamily

logger = logging.getLogger(__name__)

Shapes = Mapping[str, tuple[int, ...]]
# Returns the tensor stored under a key (torch or numpy: anything with .std()).
TensorReader = Callable[[str], Any]

UNET_PREFIX = "model.diffusion_model."
_UNET_MARKER = "input_blocks.0.0.weight"
_SDXL_MARKER = "label_emb.0.0.weight"
_VAE_PREFIXES = ("first_stage_model.", "vae.")
_HF_TOKENS = "embeddings.token_embedding.weight"
_OPEN_CLIP_TOKENS = "token_embedding.weight"
_OPEN_CLIP_MARKER = "transformer.resblocks.0.ln_1.weight"

# Text encoders inside full checkpoints: (encoder name, prefix, key under the prefix).
_CHECKPOINT_CLIPS = (
    ("l", "cond_stage_model.transformer.", "text_model." + _HF_TOKENS),
    ("l", "cond_stage_model.transformer.", _HF_TOKENS),
    ("h", "cond_stage_model.model.", _OPEN_CLIP_TOKENS),
    ("l", "conditioner.embedders.0.transformer.", "text_model." + _HF_TOKENS),
    ("g", "conditioner.embedders.1.model.", _OPEN_CLIP_TOKENS),
    ("g", "conditioner.embedders.0.model.", _OPEN_CLIP_TOKENS),
)

# ADM input widths of the released SDXL UNets: pooled bigG (1280) + 6 or 5 size embeddings of 256.
_SDXL_BASE_ADM = 2816
_SDXL_REFINER_ADM = 2560
_ADM_EMBED = 256

# ComfyUI tells SD2 768-v from 512-base by this norm bias: v-trained models have a wider spread.
_V_PROBE_KEY = "output_blocks.11.1.transformer_blocks.0.norm1.bias"
_V_PROBE_STD = 0.09

_PROJ_IN = re.compile(r"^(?:input_blocks|middle_block|output_blocks)\.\d+\.1\.proj_in\.weight$")


class UnknownModelError(ValueError):
    """The state dict holds no model this loader knows; the message names what was looked for."""


@dataclass(frozen=True)
class CheckpointLayout:
    family: ModelFamily
    unet_prefix: str | None
    vae_prefix: str | None
    clip_prefixes: dict[str, str]


def detect_checkpoint(shapes: Shapes, read_tensor: TensorReader | None = None) -> CheckpointLayout:
    """Family and component prefixes of a full single-file checkpoint (CheckpointLoaderSimple)."""
    unet_prefix = _find_unet_prefix(shapes)
    clips = _checkpoint_clips(shapes)
    if unet_prefix is None and not clips:
        raise UnknownModelError(
            "no Stable Diffusion model found: looked for a UNet at "
            f"'{UNET_PREFIX}{_UNET_MARKER}' (or '{_UNET_MARKER}') and for text encoders under "
            "'cond_stage_model.' / 'conditioner.embedders.'"
        )
    if unet_prefix is not None:
        family = _unet_family(shapes, unet_prefix, clips, read_tensor)
    else:
        family = _family_from_clips(clips)
    vae_prefix = _find_vae_prefix(shapes, _VAE_PREFIXES)
    logger.debug("detected %s: unet=%r vae=%r clip=%r", family.name, unet_prefix, vae_prefix, clips)
    return CheckpointLayout(family, unet_prefix, vae_prefix, clips)


def detect_unet(shapes: Shapes, read_tensor: TensorReader | None = None) -> tuple[ModelFamily, str]:
    """Family and key prefix of a diffusion-model file (UNETLoader); a full checkpoint also works."""
    prefix = _find_unet_prefix(shapes)
    if prefix is None:
        raise UnknownModelError(
            f"no Stable Diffusion UNet found: looked for '{_UNET_MARKER}' "
            f"and '{UNET_PREFIX}{_UNET_MARKER}'"
        )
    return _unet_family(shapes, prefix, _checkpoint_clips(shapes), read_tensor), prefix


def detect_vae(shapes: Shapes) -> str:
    """Key prefix of the autoencoder in a VAE file (LDM or diffusers layout) or a checkpoint."""
    prefix = _find_vae_prefix(shapes, ("", *_VAE_PREFIXES))
    if prefix is None:
        raise UnknownModelError(
            "no VAE found: looked for 'encoder.conv_in.weight' and 'decoder.conv_in.weight' "
            "(optionally under 'first_stage_model.' or 'vae.')"
        )
    return prefix


def detect_clip(shapes: Shapes) -> tuple[str, str]:
    """(encoder name, key prefix) of a text-encoder file (CLIPLoader).

    The prefix is what precedes 'text_model.' (HF layout) or 'token_embedding.' (open_clip layout).
    """
    found = [*_hf_clips(shapes), *_open_clip_clips(shapes)]
    if not found:
        raise UnknownModelError(
            "no CLIP text encoder found: looked for '[text_model.]embeddings.token_embedding.weight'"
            " (HF layout) and 'token_embedding.weight' with 'transformer.resblocks.*' (open_clip)"
        )
    if len(found) > 1:
        raise UnknownModelError(f"file holds {len(found)} text encoders {found}; expected one")
    return found[0]


# -- UNet -----------------------------------------------------------------------------------------


def _find_unet_prefix(shapes: Shapes) -> str | None:
    for prefix in (UNET_PREFIX, ""):
        if prefix + _UNET_MARKER in shapes:
            return prefix
    return None


def _unet_family(
    shapes: Shapes, prefix: str, clips: dict[str, str], read_tensor: TensorReader | None
) -> ModelFamily:
    if prefix + _SDXL_MARKER in shapes:
        family = FAMILIES[_sdxl_variant(shapes, prefix, clips)]
    elif clips.get("l") == "cond_stage_model.transformer.":
        family = FAMILIES["sd1"]
    elif clips.get("h") == "cond_stage_model.model.":
        family = FAMILIES["sd2"]
    else:
        family = FAMILIES[_family_from_proj_in(shapes, prefix)]
    return _with_prediction(family, shapes, prefix, read_tensor)


def _sdxl_variant(shapes: Shapes, prefix: str, clips: dict[str, str]) -> str:
    if "l" in clips and "g" in clips:
        return "sdxl"
    if clips.get("g") == "conditioner.embedders.0.model.":
        return "sdxl_refiner"
    adm = shapes[prefix + _SDXL_MARKER][1]
    if adm == _SDXL_REFINER_ADM:
        return "sdxl_refiner"
    if adm != _SDXL_BASE_ADM:
        # The refiner is conditioned on bigG alone: its pooled width equals its context width
        # whenever the projection is square, as in the released model.
        context = _context_dim(shapes, prefix)
        if context is not None and adm - 5 * _ADM_EMBED == context:
            return "sdxl_refiner"
    return "sdxl"


def _family_from_proj_in(shapes: Shapes, prefix: str) -> str:
    for key, shape in shapes.items():
        if key.startswith(prefix) and _PROJ_IN.match(key[len(prefix) :]):
            return "sd1" if len(shape) == 4 else "sd2"
    raise UnknownModelError(
        f"cannot tell SD1 from SD2: no text encoder and no '{prefix}input_blocks.*.1.proj_in.weight'"
    )


def _context_dim(shapes: Shapes, prefix: str) -> int | None:
    for key, shape in shapes.items():
        if key.startswith(prefix) and key.endswith(".attn2.to_k.weight"):
            return shape[1]
    return None


def _with_prediction(
    family: ModelFamily, shapes: Shapes, prefix: str, read_tensor: TensorReader | None
) -> ModelFamily:
    if "v_pred" in shapes:
        return FAMILIES["sd2_v"] if family.name == "sd2" else replace(family, prediction="v")
    probe = prefix + _V_PROBE_KEY
    if family.name == "sd2" and read_tensor is not None and probe in shapes:
        tensor = read_tensor(probe)
        std = float(tensor.float().std()) if hasattr(tensor, "float") else float(tensor.std())
        logger.debug("sd2 v-prediction probe %s std=%.4f", probe, std)
        if std > _V_PROBE_STD:
            return FAMILIES["sd2_v"]
    return family


# -- text encoders --------------------------------------------------------------------------------


def _checkpoint_clips(shapes: Shapes) -> dict[str, str]:
    clips: dict[str, str] = {}
    for name, prefix, key in _CHECKPOINT_CLIPS:
        if prefix + key in shapes and name not in clips:
            clips[name] = prefix
    return clips


def _family_from_clips(clips: dict[str, str]) -> ModelFamily:
    names = set(clips)
    by_encoders = {
        frozenset({"l"}): "sd1",
        frozenset({"h"}): "sd2",
        frozenset({"l", "g"}): "sdxl",
        frozenset({"g"}): "sdxl_refiner",
    }
    name = by_encoders.get(frozenset(names))
    if name is None:
        raise UnknownModelError(f"no known family has the text encoders {sorted(names)}")
    return FAMILIES[name]


def _hf_clips(shapes: Shapes) -> list[tuple[str, str]]:
    found = []
    for key, shape in shapes.items():
        if not key.endswith(_HF_TOKENS):
            continue
        prefix = key[: -len(_HF_TOKENS)]
        if prefix.endswith("text_model."):
            prefix = prefix[: -len("text_model.")]
        hidden = shape[1]
        name = {1024: "h", 1280: "g"}.get(hidden, "l")
        found.append((name, prefix))
    return found


def _open_clip_clips(shapes: Shapes) -> list[tuple[str, str]]:
    found = []
    for key, shape in shapes.items():
        if not key.endswith(_OPEN_CLIP_TOKENS) or key.endswith(_HF_TOKENS):
            continue
        prefix = key[: -len(_OPEN_CLIP_TOKENS)]
        if prefix + _OPEN_CLIP_MARKER not in shapes:
            continue
        hidden = shape[1]
        # Sizes of the released models decide; tiny test models fall back to the projection,
        # which only bigG is shipped with on its own.
        name = {1024: "h", 1280: "g"}.get(hidden)
        if name is None:
            name = "g" if prefix + "text_projection" in shapes else "h"
        found.append((name, prefix))
    return found


# -- VAE ------------------------------------------------------------------------------------------


def _find_vae_prefix(shapes: Shapes, prefixes: tuple[str, ...]) -> str | None:
    for prefix in prefixes:
        if (
            prefix + "encoder.conv_in.weight" in shapes
            and prefix + "decoder.conv_in.weight" in shapes
        ):
            return prefix
    return None
