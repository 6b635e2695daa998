"""Key layouts: original LDM / open_clip names <-> diffusers / transformers names.

Loading uses diffusers' own converters (`diffusers.loaders.single_file_utils`) where they fit.
The reverse direction (diffusers -> LDM) is ours: it writes test checkpoints in the real layout and
can back a checkpoint-saving node.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import torch
from diffusers.loaders.single_file_utils import (
    DIFFUSERS_TO_LDM_MAPPING,
    LDM_UNET_KEY,
    convert_ldm_unet_checkpoint,
    convert_ldm_vae_checkpoint,
    convert_open_clip_checkpoint,
)

Tensors = Mapping[str, torch.Tensor]

_LDM_VAE_KEY = "first_stage_model."


def _strip(tensors: Tensors, prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


# -- LDM -> diffusers (loading) -------------------------------------------------------------------


def unet_to_diffusers(tensors: Tensors, prefix: str, config: dict[str, Any]) -> dict[str, Any]:
    """UNet weights under `prefix` (LDM names) -> UNet2DConditionModel state dict."""
    # diffusers' converter only looks under the checkpoint prefix; a bare UNet file is re-rooted.
    rooted = {LDM_UNET_KEY + k: v for k, v in _strip(tensors, prefix).items()}
    return convert_ldm_unet_checkpoint(rooted, config)


_DEPRECATED_VAE_ATTENTION = {
    ".query.": ".to_q.",
    ".key.": ".to_k.",
    ".value.": ".to_v.",
    ".proj_attn.": ".to_out.0.",
}


def vae_to_diffusers(
    tensors: Tensors, prefix: str, config: dict[str, Any], ldm_layout: bool
) -> dict[str, Any]:
    """VAE weights under `prefix` -> AutoencoderKL state dict (from LDM or diffusers layout)."""
    local = _strip(tensors, prefix)
    if ldm_layout:
        return convert_ldm_vae_checkpoint({_LDM_VAE_KEY + k: v for k, v in local.items()}, config)
    converted: dict[str, Any] = {}
    for key, value in local.items():
        for old, new in _DEPRECATED_VAE_ATTENTION.items():
            key = key.replace(old, new)
        if ".attentions." in key and key.endswith(".weight") and value.ndim > 2:
            value = value.reshape(value.shape[0], value.shape[1])
        converted[key] = value
    return converted


_HF_TEXT_ROOTS = ("embeddings.", "encoder.", "final_layer_norm.")


def clip_to_transformers(tensors: Tensors, prefix: str, open_clip: bool) -> dict[str, Any]:
    """Text-encoder weights under `prefix` -> transformers CLIP keys, in the 'text_model.' form
    (plus 'text_projection.weight' when the file has one)."""
    local = _strip(tensors, prefix)
    if open_clip:
        hidden = local["token_embedding.weight"].shape[1]
        # The converter reads the hidden width from the model only when there is no projection.
        stand_in = SimpleNamespace(config=SimpleNamespace(hidden_size=hidden))
        return convert_open_clip_checkpoint(stand_in, local, prefix="")
    converted: dict[str, Any] = {}
    for key, value in local.items():
        if key.startswith("text_model.") or key == "text_projection.weight":
            converted[key] = value
        elif key.startswith(_HF_TEXT_ROOTS):
            converted["text_model." + key] = value
    return converted


# -- diffusers -> LDM (writing) -------------------------------------------------------------------

_RESNET_TO_LDM = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
_UNET_FIXED = {
    **DIFFUSERS_TO_LDM_MAPPING["unet"]["layers"],
    **DIFFUSERS_TO_LDM_MAPPING["unet"]["addition_embed_type"],
}
_BLOCK = re.compile(
    r"^(down|up)_blocks\.(\d+)\.(resnets|attentions|downsamplers|upsamplers)\.(\d+)\.(.+)$"
)
_MID = re.compile(r"^mid_block\.(resnets|attentions)\.(\d+)\.(.+)$")


def _resnet_rest(rest: str) -> str:
    head, tail = rest.split(".", 1)
    return f"{_RESNET_TO_LDM.get(head, head)}.{tail}"


def unet_to_ldm(state: Tensors) -> dict[str, torch.Tensor]:
    """UNet2DConditionModel state dict -> LDM UNet keys (no prefix)."""
    per_level = 1 + max(
        int(m.group(4))
        for k in state
        if (m := _BLOCK.match(k)) and m.group(1) == "down" and m.group(3) == "resnets"
    )
    up_attention = {
        int(m.group(2))
        for k in state
        if (m := _BLOCK.match(k)) and m.group(1) == "up" and m.group(3) == "attentions"
    }
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        out[_unet_key_to_ldm(key, per_level, up_attention)] = value
    return out


def _unet_key_to_ldm(key: str, per_level: int, up_attention: set[int]) -> str:
    if key in _UNET_FIXED:
        return _UNET_FIXED[key]
    if m := _MID.match(key):
        kind, index, rest = m.group(1), int(m.group(2)), m.group(3)
        if kind == "resnets":
            return f"middle_block.{2 * index}.{_resnet_rest(rest)}"
        return f"middle_block.1.{rest}"
    m = _BLOCK.match(key)
    if m is None:
        raise KeyError(f"no LDM name for UNet key {key!r}")
    side, level, kind, index, rest = (
        m.group(1),
        int(m.group(2)),
        m.group(3),
        int(m.group(4)),
        m.group(5),
    )
    if side == "down":
        # input_blocks: 0 is conv_in, then per level `per_level` res-blocks and one downsample.
        first = 1 + level * (per_level + 1)
        if kind == "downsamplers":
            return f"input_blocks.{first + per_level}.0.op.{rest.removeprefix('conv.')}"
    else:
        # output_blocks: per level per_level + 1 res-blocks; the upsample rides on the last one.
        first = level * (per_level + 1)
        if kind == "upsamplers":
            slot = 2 if level in up_attention else 1
            return f"output_blocks.{first + per_level}.{slot}.{rest}"
    block = "input_blocks" if side == "down" else "output_blocks"
    if kind == "resnets":
        return f"{block}.{first + index}.0.{_resnet_rest(rest)}"
    return f"{block}.{first + index}.1.{rest}"


_VAE_ATTENTION_TO_LDM = {
    "group_norm": "norm",
    "to_q": "q",
    "to_k": "k",
    "to_v": "v",
    "to_out.0": "proj_out",
}
_VAE_BLOCK = re.compile(
    r"^(encoder|decoder)\.(down|up)_blocks\.(\d+)\.(resnets|downsamplers|upsamplers)\.(\d+)\.(.+)$"
)
_VAE_MID = re.compile(r"^(encoder|decoder)\.mid_block\.(resnets|attentions)\.(\d+)\.(.+)$")


def vae_to_ldm(state: Tensors) -> dict[str, torch.Tensor]:
    """AutoencoderKL state dict -> LDM VAE keys (no prefix); attention weights become 1x1 convs."""
    levels = 1 + max(int(m.group(3)) for k in state if (m := _VAE_BLOCK.match(k)))
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        new = _vae_key_to_ldm(key, levels)
        if ".mid.attn_1." in new and new.endswith(".weight") and value.ndim == 2:
            value = value[:, :, None, None]
        out[new] = value
    return out


def _vae_key_to_ldm(key: str, levels: int) -> str:
    if m := _VAE_MID.match(key):
        part, kind, index, rest = m.group(1), m.group(2), int(m.group(3)), m.group(4)
        if kind == "resnets":
            return f"{part}.mid.block_{index + 1}.{rest.replace('conv_shortcut', 'nin_shortcut')}"
        head, tail = rest.rsplit(".", 1)
        return f"{part}.mid.attn_1.{_VAE_ATTENTION_TO_LDM[head]}.{tail}"
    if m := _VAE_BLOCK.match(key):
        part, level, kind, index, rest = (
            m.group(1),
            int(m.group(3)),
            m.group(4),
            int(m.group(5)),
            m.group(6),
        )
        # The decoder's up blocks are numbered from the lowest resolution in diffusers, the
        # highest in LDM.
        ldm_level = level if part == "encoder" else levels - 1 - level
        side = "down" if part == "encoder" else "up"
        if kind == "resnets":
            rest = rest.replace("conv_shortcut", "nin_shortcut")
            return f"{part}.{side}.{ldm_level}.block.{index}.{rest}"
        sampler = "downsample" if kind == "downsamplers" else "upsample"
        return f"{part}.{side}.{ldm_level}.{sampler}.{rest}"
    return key.replace("conv_norm_out", "norm_out")


def clip_to_hf_ldm(state: Tensors) -> dict[str, torch.Tensor]:
    """A transformers CLIP text model's state dict -> the 'text_model.*' names LDM files use."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith(_HF_TEXT_ROOTS):
            key = "text_model." + key
        if key.endswith("position_ids"):
            continue
        out[key] = value
    return out


_OPEN_CLIP_LAYER = re.compile(r"^text_model\.encoder\.layers\.(\d+)\.(.+)$")
_OPEN_CLIP_PARTS = {
    "self_attn.out_proj": "attn.out_proj",
    "layer_norm1": "ln_1",
    "layer_norm2": "ln_2",
    "mlp.fc1": "mlp.c_fc",
    "mlp.fc2": "mlp.c_proj",
}
_OPEN_CLIP_FIXED = {
    "text_model.embeddings.token_embedding.weight": "token_embedding.weight",
    "text_model.embeddings.position_embedding.weight": "positional_embedding",
    "text_model.final_layer_norm.weight": "ln_final.weight",
    "text_model.final_layer_norm.bias": "ln_final.bias",
}


def clip_to_open_clip(state: Tensors) -> dict[str, torch.Tensor]:
    """A transformers CLIP text model's state dict -> open_clip names (fused q/k/v in_proj,
    text_projection stored as [hidden, projection])."""
    canonical = clip_to_hf_ldm(state)
    out: dict[str, torch.Tensor] = {}
    fused: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in canonical.items():
        if key in _OPEN_CLIP_FIXED:
            out[_OPEN_CLIP_FIXED[key]] = value
        elif key == "text_projection.weight":
            out["text_projection"] = value.T.contiguous()
        elif m := _OPEN_CLIP_LAYER.match(key):
            layer, rest = m.group(1), m.group(2)
            head, tail = rest.rsplit(".", 1)
            if head.startswith("self_attn.") and head.endswith(("q_proj", "k_proj", "v_proj")):
                fused.setdefault(f"transformer.resblocks.{layer}.attn.in_proj_{tail}", {})[
                    head[-6]
                ] = value
            else:
                out[f"transformer.resblocks.{layer}.{_OPEN_CLIP_PARTS[head]}.{tail}"] = value
        else:
            raise KeyError(f"no open_clip name for CLIP key {key!r}")
    for key, parts in fused.items():
        out[key] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    return out
