"""Tiny seeded random-weight Stable Diffusion models, written in the real single-file key layouts.

The modules are diffusers / transformers modules with tiny configs; the files hold them under the
original LDM / open_clip names (model.diffusion_model., first_stage_model., cond_stage_model.,
conditioner.embedders.), converted by node_actors.models.ldm_layout's reverse maps.

Every weight is fp16-representable and files are stored in fp16 (as most real checkpoints are), so
a file loaded back in float32 equals the in-memory module exactly. Dimensions follow the real
models' wiring: the SD1 UNet attends to CLIP-L's hidden width, the SDXL UNet to L+G's, and SDXL's
ADM input is the bigG projection width + 6 size embeddings of 256.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from diffusers import AutoencoderKL, UNet2DConditionModel  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection  # noqa: E402

from node_actors.models.ldm_layout import (  # noqa: E402
    clip_to_hf_ldm,
    clip_to_open_clip,
    unet_to_ldm,
    vae_to_ldm,
)

FAMILIES = ("sd1", "sd2", "sd2_v", "sdxl", "sdxl_refiner")
CLIP_HIDDEN = 32
G_PROJECTION = 16  # != CLIP_HIDDEN so that a missing transpose of text_projection cannot load
VOCAB = 49408  # the real CLIP vocabulary, so the real tokenizer's ids are valid
ADM_TIME_EMBED = 256
V_PROBE = "output_blocks.11.1.transformer_blocks.0.norm1.bias"

_SEED_OFFSETS = {"unet": 0, "vae": 1, "l": 2, "h": 3, "g": 4}

# Where each family's text encoders live in a checkpoint, and in which layout.
_CLIP_SLOTS = {
    "sd1": (("l", "cond_stage_model.transformer."),),
    "sd2": (("h", "cond_stage_model.model."),),
    "sd2_v": (("h", "cond_stage_model.model."),),
    "sdxl": (
        ("l", "conditioner.embedders.0.transformer."),
        ("g", "conditioner.embedders.1.model."),
    ),
    "sdxl_refiner": (("g", "conditioner.embedders.0.model."),),
}


@dataclass
class TinyModules:
    family: str
    unet: UNet2DConditionModel
    vae: AutoencoderKL
    clip_l: CLIPTextModel | None = None
    clip_h: CLIPTextModel | None = None
    clip_g: CLIPTextModelWithProjection | None = None


def _seeded(seed: int, build: Any) -> Any:
    """Build a module with a private RNG state, then perturb every weight (norm scales and zero
    biases included, so a swapped pair of tensors cannot go unnoticed) and round to fp16."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = build()
        generator = torch.Generator().manual_seed(seed + 1000)
        with torch.no_grad():
            for param in module.parameters():
                noise = torch.randn(param.shape, generator=generator) * 0.02
                param.copy_((param + noise).half().float())
    return module.eval().requires_grad_(False)


def _unet_config(family: str) -> dict[str, Any]:
    if family in ("sd1", "sd2", "sd2_v"):
        # SD1/SD2 topology: 4 levels, 2 res-blocks each, attention on the first three.
        return {
            "sample_size": 8,
            "block_out_channels": (32, 32, 64, 64),
            "layers_per_block": 2,
            "down_block_types": ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
            "cross_attention_dim": CLIP_HIDDEN,
            "attention_head_dim": 8 if family == "sd1" else (1, 1, 1, 1),
            "use_linear_projection": family != "sd1",
        }
    refiner = family == "sdxl_refiner"
    # SDXL topology: 3 levels, attention on levels 2-3 with deeper transformers at the bottom.
    return {
        "sample_size": 8,
        "block_out_channels": (32, 32, 64),
        "layers_per_block": 2,
        "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        "transformer_layers_per_block": (1, 1, 2),
        "attention_head_dim": (1, 1, 1),
        "use_linear_projection": True,
        "cross_attention_dim": CLIP_HIDDEN if refiner else 2 * CLIP_HIDDEN,
        "addition_embed_type": "text_time",
        "addition_time_embed_dim": ADM_TIME_EMBED,
        # Refiner: pooled G + (size, crop, aesthetic score) = 5 embeddings; base: 6.
        "projection_class_embeddings_input_dim": G_PROJECTION
        + (5 if refiner else 6) * ADM_TIME_EMBED,
    }


def tiny_unet(family: str, seed: int = 0) -> UNet2DConditionModel:
    unet = _seeded(
        16 * seed + _SEED_OFFSETS["unet"], lambda: UNet2DConditionModel(**_unet_config(family))
    )
    if family == "sd2_v":
        # What ComfyUI's v-prediction probe sees in real 768-v models: a wide-spread norm bias.
        bias = unet.up_blocks[-1].attentions[-1].transformer_blocks[0].norm1.bias
        bias.copy_((bias * 10).half().float())
    return unet


def tiny_vae(seed: int = 0) -> AutoencoderKL:
    """4 levels (3 downsamplings: 64x64 pixels <-> 8x8 latents), 4 latent channels."""
    return _seeded(
        16 * seed + _SEED_OFFSETS["vae"],
        lambda: AutoencoderKL(
            block_out_channels=(32, 32, 64, 64),
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            layers_per_block=1,
            latent_channels=4,
            sample_size=64,
        ),
    )


def tiny_clip(encoder: str, seed: int = 0) -> CLIPTextModel | CLIPTextModelWithProjection:
    """A tiny text encoder: l = OpenAI CLIP-L (quick_gelu), h = OpenCLIP-H, g = bigG + projection."""
    config = CLIPTextConfig(
        vocab_size=VOCAB,
        hidden_size=CLIP_HIDDEN,
        intermediate_size=2 * CLIP_HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=1,
        max_position_embeddings=77,
        hidden_act="quick_gelu" if encoder == "l" else "gelu",
        projection_dim=G_PROJECTION,
        bos_token_id=49406,
        eos_token_id=49407,
    )
    cls = CLIPTextModelWithProjection if encoder == "g" else CLIPTextModel
    return _seeded(16 * seed + _SEED_OFFSETS[encoder], lambda: cls(config))


def tiny_modules(family: str, seed: int = 0) -> TinyModules:
    """The modules a tiny checkpoint of `family` holds, built fresh (callers may mutate them)."""
    if family not in _CLIP_SLOTS:
        raise ValueError(f"unknown tiny family {family!r}; known: {FAMILIES}")
    clips = {f"clip_{e}": tiny_clip(e, seed) for e, _ in _CLIP_SLOTS[family]}
    return TinyModules(family, tiny_unet(family, seed), tiny_vae(seed), **clips)


# -- LDM layout -----------------------------------------------------------------------------------


def _prefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {prefix + k: v for k, v in tensors.items()}


def _open_clip_h(clip: CLIPTextModel, seed: int) -> dict[str, torch.Tensor]:
    """SD2 files carry OpenCLIP-H's projection although SD2 never uses it."""
    state = clip_to_open_clip(clip.state_dict())
    generator = torch.Generator().manual_seed(seed)
    state["text_projection"] = (
        (torch.randn(CLIP_HIDDEN, CLIP_HIDDEN, generator=generator) * 0.02).half().float()
    )
    return state


@functools.lru_cache(maxsize=16)
def _cached_checkpoint_state(family: str, seed: int) -> dict[str, torch.Tensor]:
    # Many tests write the same few checkpoints; building the modules dominates that cost.
    return modules_to_ldm(tiny_modules(family, seed), seed)


def ldm_checkpoint_state(family: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A full single-file checkpoint's state dict, in float32 with the original key names
    (fresh tensors: callers may modify them)."""
    return {k: v.clone() for k, v in _cached_checkpoint_state(family, seed).items()}


def modules_to_ldm(modules: TinyModules, seed: int = 0) -> dict[str, torch.Tensor]:
    """The modules under a full checkpoint's original key names."""
    state = _prefixed("model.diffusion_model.", unet_to_ldm(modules.unet.state_dict()))
    state.update(_prefixed("first_stage_model.", vae_to_ldm(modules.vae.state_dict())))
    for encoder, prefix in _CLIP_SLOTS[modules.family]:
        clip = getattr(modules, f"clip_{encoder}")
        if encoder == "l":
            tensors = clip_to_hf_ldm(clip.state_dict())
        elif encoder == "h":
            tensors = _open_clip_h(clip, seed)
        else:
            tensors = clip_to_open_clip(clip.state_dict())
        state.update(_prefixed(prefix, tensors))
    return state


def checkpoint_shapes(family: str, seed: int = 0) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the tiny checkpoint of `family` (what detection looks at)."""
    return {k: tuple(v.shape) for k, v in _cached_checkpoint_state(family, seed).items()}


def save_fp16(path: Path, state: dict[str, torch.Tensor]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().to(torch.float16).contiguous() for k, v in state.items()}, str(path))
    return path


def write_checkpoint(path: Path, family: str, seed: int = 0) -> Path:
    """A tiny single-file checkpoint of any family in FAMILIES (checkpoints folder)."""
    return save_fp16(path, _cached_checkpoint_state(family, seed))


def write_sd1_checkpoint(path: Path, seed: int = 0) -> Path:
    return write_checkpoint(path, "sd1", seed)


def write_sdxl_checkpoint(path: Path, seed: int = 0) -> Path:
    return write_checkpoint(path, "sdxl", seed)


def write_vae(path: Path, seed: int = 0) -> Path:
    """A standalone LDM-layout VAE (vae folder), no prefix; equals tiny_modules(*, seed).vae."""
    return save_fp16(path, vae_to_ldm(tiny_vae(seed).state_dict()))


def write_unet(path: Path, family: str = "sd1", seed: int = 0) -> Path:
    """A standalone LDM-layout UNet (diffusion_models folder), no prefix."""
    return save_fp16(path, unet_to_ldm(tiny_unet(family, seed).state_dict()))


def write_clip(path: Path, encoder: str = "l", seed: int = 0) -> Path:
    """A standalone text encoder (text_encoders folder), no prefix: "l" in HF layout
    ('text_model.*'), "g" and "h" in open_clip layout."""
    clip = tiny_clip(encoder, seed)
    if encoder == "l":
        return save_fp16(path, clip_to_hf_ldm(clip.state_dict()))
    return save_fp16(path, clip_to_open_clip(clip.state_dict()))
