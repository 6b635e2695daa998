"""A diffusers UNet2DConditionModel config derived from an LDM-layout UNet's key names and shapes.

No config file is shipped or fetched: every architecture number is read off the state dict, so a
fine-tune with an unusual width or depth loads as long as it keeps the LDM topology.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from node_actors.models.detect import UnknownModelError
from node_actors.models.families import ModelFamily

Shapes = Mapping[str, tuple[int, ...]]

_SDXL_TIME_EMBED = 256
_SD1_HEADS = 8
_HEAD_DIM = 64
_SAMPLE_SIZE = {"sd1": 64, "sd2": 64, "sd2_v": 96, "sdxl": 128, "sdxl_refiner": 128}


@dataclass(frozen=True)
class _ResBlock:
    width: int
    attention: bool
    depth: int


def unet_config_from_shapes(shapes: Shapes, prefix: str, family: ModelFamily) -> dict[str, Any]:
    """The UNet2DConditionModel(**config) arguments for the UNet stored under `prefix`."""
    local = {k[len(prefix) :]: v for k, v in shapes.items() if k.startswith(prefix)}
    model_channels = local["input_blocks.0.0.weight"][0]
    levels = _levels(local)
    widths = [level[0].width for level in levels]
    per_level = {len(level) for level in levels}
    if len(per_level) != 1:
        raise UnknownModelError(f"UNet levels have different res-block counts {sorted(per_level)}")
    for i, level in enumerate(levels):
        if len({(b.width, b.attention, b.depth) for b in level}) != 1:
            raise UnknownModelError(f"UNet level {i} mixes res-block widths or attention")
    attention = [level[0].attention for level in levels]
    mid_attention = "middle_block.1.proj_in.weight" in local
    mid_depth = _depth(local, "middle_block.1") if mid_attention else 1
    depths = [level[0].depth if level[0].attention else mid_depth for level in levels]
    if attention[-1] and mid_attention and depths[-1] != mid_depth:
        raise UnknownModelError(
            f"UNet middle block depth {mid_depth} differs from its last level's {depths[-1]}"
        )
    if family.name == "sd1":
        heads: list[int] = [_SD1_HEADS] * len(levels)
    else:
        heads = [max(1, w // _HEAD_DIM) for w in widths]

    config: dict[str, Any] = {
        "sample_size": _SAMPLE_SIZE.get(family.name, 64),
        "in_channels": local["input_blocks.0.0.weight"][1],
        "out_channels": local["out.2.weight"][0],
        "block_out_channels": widths,
        "layers_per_block": per_level.pop(),
        "down_block_types": ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attention],
        "up_block_types": ["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attention)],
        "mid_block_type": "UNetMidBlock2DCrossAttn" if mid_attention else "UNetMidBlock2D",
        "transformer_layers_per_block": depths,
        "attention_head_dim": heads,
        "cross_attention_dim": _context_dim(local),
        "use_linear_projection": _linear_projection(local),
    }
    time_embed = local["time_embed.0.weight"][0]
    if time_embed != 4 * model_channels:
        config["time_embedding_dim"] = time_embed
    if "label_emb.0.0.weight" in local:
        config["addition_embed_type"] = "text_time"
        config["addition_time_embed_dim"] = _SDXL_TIME_EMBED
        config["projection_class_embeddings_input_dim"] = local["label_emb.0.0.weight"][1]
    return config


def _levels(local: Shapes) -> list[list[_ResBlock]]:
    """Input blocks grouped by resolution level: a downsample op closes each level but the last."""
    indices = sorted({int(k.split(".")[1]) for k in local if k.startswith("input_blocks.")} - {0})
    levels: list[list[_ResBlock]] = [[]]
    for i in indices:
        block = f"input_blocks.{i}"
        if f"{block}.0.op.weight" in local:
            levels.append([])
            continue
        out_key = f"{block}.0.out_layers.3.weight"
        if out_key not in local:
            raise UnknownModelError(f"UNet input block {i} is neither a res-block nor a downsample")
        attention = f"{block}.1.proj_in.weight" in local
        depth = _depth(local, f"{block}.1") if attention else 0
        levels[-1].append(_ResBlock(local[out_key][0], attention, depth))
    if not levels[-1]:
        raise UnknownModelError("UNet ends with a downsample: not an LDM UNet")
    return levels


def _depth(local: Shapes, block: str) -> int:
    """Number of transformer blocks in the spatial transformer at `block`."""
    head = block + ".transformer_blocks."
    return len({key[len(head) :].split(".", 1)[0] for key in local if key.startswith(head)})


def _context_dim(local: Shapes) -> int | None:
    for key, shape in local.items():
        if key.endswith(".attn2.to_k.weight"):
            return shape[1]
    return None


def _linear_projection(local: Shapes) -> bool:
    for key, shape in local.items():
        if key.endswith(".proj_in.weight"):
            return len(shape) == 2
    return False
