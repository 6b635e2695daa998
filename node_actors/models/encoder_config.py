"""AutoencoderKL and CLIP text-model configs derived from key names and shapes (no config files)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from node_actors.models.detect import UnknownModelError

Shapes = Mapping[str, tuple[int, ...]]

_HEAD_DIM = 64
# OpenAI's CLIP-L was trained with quick_gelu; the OpenCLIP H and bigG models with exact gelu.
_ACTIVATION = {"l": "quick_gelu", "h": "gelu", "g": "gelu"}
_CLIP_BOS, _CLIP_EOS = 49406, 49407


def _local(shapes: Shapes, prefix: str) -> dict[str, tuple[int, ...]]:
    return {k[len(prefix) :]: v for k, v in shapes.items() if k.startswith(prefix)}


def _count(local: Mapping[str, Any], head: str) -> int:
    """How many distinct indices follow `head` (e.g. 'encoder.down.' -> number of levels)."""
    return len({k[len(head) :].split(".", 1)[0] for k in local if k.startswith(head)})


# -- VAE ------------------------------------------------------------------------------------------


def vae_is_ldm_layout(shapes: Shapes, prefix: str) -> bool:
    return any(k.startswith(prefix + "encoder.down.") for k in shapes)


def vae_config_from_shapes(shapes: Shapes, prefix: str, scaling_factor: float) -> dict[str, Any]:
    """AutoencoderKL(**config) arguments for the VAE under `prefix`, in LDM or diffusers layout."""
    local = _local(shapes, prefix)
    if vae_is_ldm_layout(shapes, prefix):
        down, block = "encoder.down.", "block"
    else:
        down, block = "encoder.down_blocks.", "resnets"
    levels = _count(local, down)
    if levels == 0:
        raise UnknownModelError(f"VAE under {prefix!r} has no encoder down blocks")
    widths = []
    for i in range(levels):
        key = f"{down}{i}.{block}.0.conv1.weight"
        if key not in local:
            raise UnknownModelError(f"VAE level {i} has no first res-block ({prefix}{key})")
        widths.append(local[key][0])
    return {
        "in_channels": local["encoder.conv_in.weight"][1],
        "out_channels": local["decoder.conv_out.weight"][0],
        "down_block_types": ["DownEncoderBlock2D"] * levels,
        "up_block_types": ["UpDecoderBlock2D"] * levels,
        "block_out_channels": widths,
        "layers_per_block": _count(local, f"{down}0.{block}."),
        "latent_channels": local["decoder.conv_in.weight"][1],
        "scaling_factor": scaling_factor,
        "use_quant_conv": "quant_conv.weight" in local,
        "use_post_quant_conv": "post_quant_conv.weight" in local,
    }


# -- CLIP -----------------------------------------------------------------------------------------


def clip_is_open_clip_layout(shapes: Shapes, prefix: str) -> bool:
    return prefix + "transformer.resblocks.0.ln_1.weight" in shapes


def clip_config_from_shapes(shapes: Shapes, prefix: str, encoder: str) -> dict[str, Any]:
    """CLIPTextConfig(**config) arguments; 'projection_dim' is set only for bigG ("g")."""
    local = _local(shapes, prefix)
    if clip_is_open_clip_layout(shapes, prefix):
        tokens = local["token_embedding.weight"]
        positions = local["positional_embedding"][0]
        layers = _count(local, "transformer.resblocks.")
        intermediate = local["transformer.resblocks.0.mlp.c_fc.weight"][0]
        # open_clip multiplies x @ text_projection, so it is stored as [hidden, projection].
        projection = local.get("text_projection", (0, 0))[1]
    else:
        local = {k.removeprefix("text_model."): v for k, v in local.items()}
        if "embeddings.token_embedding.weight" not in local:
            raise UnknownModelError(f"no CLIP token embedding under {prefix!r}")
        tokens = local["embeddings.token_embedding.weight"]
        positions = local["embeddings.position_embedding.weight"][0]
        layers = _count(local, "encoder.layers.")
        intermediate = local["encoder.layers.0.mlp.fc1.weight"][0]
        projection = local.get("text_projection.weight", (0,))[0]
    hidden = tokens[1]
    config: dict[str, Any] = {
        "vocab_size": tokens[0],
        "hidden_size": hidden,
        "intermediate_size": intermediate,
        "num_hidden_layers": layers,
        "num_attention_heads": max(1, hidden // _HEAD_DIM),
        "max_position_embeddings": positions,
        "hidden_act": _ACTIVATION[encoder],
        "bos_token_id": _CLIP_BOS,
        # The pooled output is read at the first end-of-text token, as ComfyUI does.
        "eos_token_id": _CLIP_EOS,
    }
    if encoder == "g":
        if not projection:
            raise UnknownModelError(f"CLIP-G under {prefix!r} has no text_projection")
        config["projection_dim"] = projection
    return config
