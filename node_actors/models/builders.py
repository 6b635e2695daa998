"""Building diffusers / transformers modules from weights in original key layouts.

Modules are created without allocating (accelerate's empty-weights context), then the converted
tensors are assigned in, so an SDXL UNet does not pay for a random init it throws away.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

import torch
from accelerate import init_empty_weights
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from node_actors.models.encoder_config import (
    clip_config_from_shapes,
    clip_is_open_clip_layout,
    vae_config_from_shapes,
    vae_is_ldm_layout,
)
from node_actors.models.families import ModelFamily
from node_actors.models.ldm_layout import clip_to_transformers, unet_to_diffusers, vae_to_diffusers
from node_actors.models.unet_config import unet_config_from_shapes
from node_actors.models.weight_files import CheckpointError

logger = logging.getLogger(__name__)

_BUILD_LOCK = threading.Lock()

Shapes = Mapping[str, tuple[int, ...]]
Tensors = Mapping[str, torch.Tensor]
# Keys some files carry that no module wants (buffers saved by older libraries, CLIP-L's unused
# projection, the contrastive temperature).
_HARMLESS_EXTRA = ("position_ids", "text_projection.weight", "logit_scale")


def build_unet(
    tensors: Tensors,
    shapes: Shapes,
    prefix: str,
    family: ModelFamily,
    dtype: torch.dtype,
    source: str,
) -> UNet2DConditionModel:
    config = unet_config_from_shapes(shapes, prefix, family)
    logger.debug("%s: %s UNet config %s", source, family.name, config)
    state = unet_to_diffusers(tensors, prefix, config)
    return _instantiate(lambda: UNet2DConditionModel(**config), state, dtype, f"{source} UNet")


def build_vae(
    tensors: Tensors,
    shapes: Shapes,
    prefix: str,
    scaling_factor: float,
    dtype: torch.dtype,
    source: str,
) -> AutoencoderKL:
    config = vae_config_from_shapes(shapes, prefix, scaling_factor)
    state = vae_to_diffusers(tensors, prefix, config, vae_is_ldm_layout(shapes, prefix))
    return _instantiate(lambda: AutoencoderKL(**config), state, dtype, f"{source} VAE")


def build_clip(
    tensors: Tensors, shapes: Shapes, prefix: str, encoder: str, dtype: torch.dtype, source: str
) -> CLIPTextModel | CLIPTextModelWithProjection:
    """CLIP-L / OpenCLIP-H as CLIPTextModel; bigG as CLIPTextModelWithProjection."""
    config = CLIPTextConfig(**clip_config_from_shapes(shapes, prefix, encoder))
    state = clip_to_transformers(tensors, prefix, clip_is_open_clip_layout(shapes, prefix))
    cls = CLIPTextModelWithProjection if encoder == "g" else CLIPTextModel
    return _instantiate(lambda: cls(config), state, dtype, f"{source} CLIP-{encoder.upper()}")


def _fit_text_model_prefix(state: dict[str, Any], expected: set[str]) -> dict[str, Any]:
    """transformers >= 5.6 dropped the 'text_model.' level from CLIPTextModel's own keys."""
    if any(k.startswith("text_model.") for k in expected):
        return state
    return {k.removeprefix("text_model."): v for k, v in state.items()}


def _instantiate(
    factory: Callable[[], torch.nn.Module], state: dict[str, Any], dtype: torch.dtype, what: str
) -> Any:
    # accelerate's empty-weights context patches nn.Module.register_parameter for the whole
    # process, not the thread: while it is active, a parameter another thread registers (a
    # second build, or load_state_dict(assign=True) finishing one) lands on the meta device,
    # and two overlapping contexts can leave the patch in place for good. One build at a time.
    with _BUILD_LOCK:
        return _build_and_load(factory, state, dtype, what)


def _build_and_load(
    factory: Callable[[], torch.nn.Module], state: dict[str, Any], dtype: torch.dtype, what: str
) -> Any:
    with init_empty_weights():
        model = factory()
    expected = dict(model.state_dict())
    state = _fit_text_model_prefix(state, set(expected))
    missing = [k for k in expected if state.get(k) is None]
    if missing:
        raise CheckpointError(f"{what}: {len(missing)} weights missing, e.g. {missing[:3]}")
    extra = [k for k in state if k not in expected]
    unexplained = [k for k in extra if not k.endswith(_HARMLESS_EXTRA)]
    if unexplained:
        logger.warning(
            "%s: ignoring %d unexpected weights, e.g. %s", what, len(unexplained), unexplained[:3]
        )
    loaded: dict[str, torch.Tensor] = {}
    for key, target in expected.items():
        value = state[key]
        if tuple(value.shape) != tuple(target.shape):
            raise CheckpointError(
                f"{what}: {key} has shape {tuple(value.shape)}, the derived architecture expects "
                f"{tuple(target.shape)}"
            )
        loaded[key] = value.to(
            dtype=dtype if value.is_floating_point() else value.dtype
        ).contiguous()
    model.load_state_dict(loaded, strict=True, assign=True)
    # Module.to(dtype) would do, but diffusers' override warns about fp32-pinned modules we lack.
    for module in model.modules():
        for name, buffer in module.named_buffers(recurse=False):
            if buffer.is_floating_point():
                setattr(module, name, buffer.to(dtype))
    model.eval()
    model.requires_grad_(False)
    return model
