"""Loading Stable Diffusion single-file checkpoints (SD1.x, SD2.x, SDXL) and split component files
offline: the architecture comes from the state dict itself, never from the network.

What the loader nodes call: CheckpointLoaderSimple -> load_checkpoint, UNETLoader -> load_unet_file,
VAELoader -> load_vae_file, CLIPLoader / DualCLIPLoader -> load_clip_files.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel

from node_actors.models.builders import build_clip, build_unet, build_vae
from node_actors.models.clip_models import ClipModels
from node_actors.models.detect import (
    CheckpointLayout,
    UnknownModelError,
    detect_checkpoint,
    detect_clip,
    detect_unet,
    detect_vae,
)
from node_actors.models.families import FAMILIES, ModelFamily, clip_family_name
from node_actors.models.weight_files import (
    CheckpointError,
    WeightSource,
    load_state_dict,
    read_shapes,
)

__all__ = [
    "CheckpointError",
    "LoadedCheckpoint",
    "inspect_checkpoint",
    "inspect_unet_file",
    "load_checkpoint",
    "load_clip_files",
    "load_state_dict",
    "load_unet_file",
    "load_vae_file",
    "read_shapes",
]

logger = logging.getLogger(__name__)

# A VAE file alone does not say which family it serves; the SD1/SD2 factor is diffusers' default.
# Samplers should scale latents by ModelFamily.latent_scale, not by this config value.
_DEFAULT_VAE_SCALE = FAMILIES["sd1"].latent_scale

# CLIPLoader types -> {encoder set: text-encoder family}.
_CLIP_TYPES: dict[str, dict[frozenset[str], str]] = {
    "stable_diffusion": {
        frozenset({"l"}): "sd1",
        frozenset({"h"}): "sd2",
        frozenset({"g"}): "sdxl_refiner",
    },
    "sdxl": {frozenset({"l", "g"}): "sdxl"},
}


@dataclass
class LoadedCheckpoint:
    family: ModelFamily
    unet: UNet2DConditionModel | None
    clip: ClipModels | None
    vae: AutoencoderKL | None


def _detected(path: Path, exc: UnknownModelError) -> UnknownModelError:
    return UnknownModelError(f"{path.name}: {exc}")


def inspect_checkpoint(path: Path) -> CheckpointLayout:
    """Family and layout of a checkpoint without loading it: the header, plus (for SD2) the one
    small tensor that tells a v-prediction model from an eps one. Prefer this to
    detect_checkpoint(read_shapes(path)), which cannot see that tensor."""
    path = Path(path)
    with WeightSource(path) as source:
        try:
            return detect_checkpoint(source.shapes, read_tensor=source.get)
        except UnknownModelError as exc:
            raise _detected(path, exc) from exc


def inspect_unet_file(path: Path) -> tuple[ModelFamily, str]:
    """detect_unet for a file, with the SD2 v-prediction probe (see inspect_checkpoint)."""
    path = Path(path)
    with WeightSource(path) as source:
        try:
            return detect_unet(source.shapes, read_tensor=source.get)
        except UnknownModelError as exc:
            raise _detected(path, exc) from exc


def load_checkpoint(
    path: Path,
    *,
    unet: bool = True,
    clip: bool = True,
    vae: bool = True,
    dtype: torch.dtype = torch.float32,
) -> LoadedCheckpoint:
    """The components asked for; a component the file lacks comes back as None."""
    path = Path(path)
    with WeightSource(path) as source:
        try:
            layout = detect_checkpoint(source.shapes, read_tensor=source.get)
        except UnknownModelError as exc:
            raise _detected(path, exc) from exc
        family = layout.family
        logger.info("%s: %s checkpoint (prediction %s)", path.name, family.name, family.prediction)
        unet_model = vae_model = None
        clip_models = None
        if unet and layout.unet_prefix is not None:
            tensors = source.under(layout.unet_prefix)
            unet_model = build_unet(
                tensors, source.shapes, layout.unet_prefix, family, dtype, path.name
            )
            del tensors
        if vae and layout.vae_prefix is not None:
            vae_model = build_vae(
                source.under(layout.vae_prefix),
                source.shapes,
                layout.vae_prefix,
                family.latent_scale,
                dtype,
                path.name,
            )
        elif vae:
            logger.warning("%s: checkpoint holds no VAE", path.name)
        if clip and layout.clip_prefixes:
            missing = set(family.clip_encoders) - set(layout.clip_prefixes)
            if missing:
                raise CheckpointError(
                    f"{path}: {family.name} checkpoint lacks text encoder(s) {sorted(missing)}"
                )
            encoders = {
                name: build_clip(
                    source.under(prefix), source.shapes, prefix, name, dtype, path.name
                )
                for name, prefix in layout.clip_prefixes.items()
            }
            clip_models = ClipModels(family=clip_family_name(family), **encoders)
        elif clip:
            logger.warning("%s: checkpoint holds no text encoder", path.name)
    return LoadedCheckpoint(family, unet_model, clip_models, vae_model)


def load_unet_file(
    path: Path, dtype: torch.dtype = torch.float32
) -> tuple[ModelFamily, UNet2DConditionModel]:
    """A diffusion-model file (bare LDM UNet keys, or a full checkpoint's UNet)."""
    path = Path(path)
    with WeightSource(path) as source:
        try:
            family, prefix = detect_unet(source.shapes, read_tensor=source.get)
        except UnknownModelError as exc:
            raise _detected(path, exc) from exc
        logger.info("%s: %s UNet", path.name, family.name)
        model = build_unet(source.under(prefix), source.shapes, prefix, family, dtype, path.name)
    return family, model


def load_vae_file(path: Path, dtype: torch.dtype = torch.float32) -> AutoencoderKL:
    """A VAE file in LDM layout (encoder.down.*, quant_conv, ...) or diffusers layout."""
    path = Path(path)
    with WeightSource(path) as source:
        try:
            prefix = detect_vae(source.shapes)
        except UnknownModelError as exc:
            raise _detected(path, exc) from exc
        return build_vae(
            source.under(prefix), source.shapes, prefix, _DEFAULT_VAE_SCALE, dtype, path.name
        )


def load_clip_files(
    paths: Sequence[Path], clip_type: str, dtype: torch.dtype = torch.float32
) -> ClipModels:
    """Text-encoder files for CLIPLoader ("stable_diffusion": one file) and DualCLIPLoader
    ("sdxl": CLIP-L and bigG in either order); HF or open_clip layout, with or without prefix."""
    families = _CLIP_TYPES.get(clip_type)
    if families is None:
        raise UnknownModelError(
            f"unsupported CLIP type {clip_type!r}; supported: {sorted(_CLIP_TYPES)}"
        )
    encoders = {}
    for path in map(Path, paths):
        with WeightSource(path) as source:
            try:
                name, prefix = detect_clip(source.shapes)
            except UnknownModelError as exc:
                raise _detected(path, exc) from exc
            if name in encoders:
                raise UnknownModelError(f"{path.name}: a second CLIP-{name.upper()} file")
            logger.info("%s: CLIP-%s text encoder (%s)", path.name, name.upper(), clip_type)
            encoders[name] = build_clip(
                source.under(prefix), source.shapes, prefix, name, dtype, path.name
            )
    family = families.get(frozenset(encoders))
    if family is None:
        raise UnknownModelError(
            f"CLIP type {clip_type!r} does not take text encoders {sorted(encoders)}; it takes "
            + " or ".join(str(sorted(s)) for s in families)
        )
    return ClipModels(family=family, **encoders)
