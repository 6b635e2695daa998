"""Tiny seeded LoRA files in the real key layouts, for tests of LoRA loading and patching.

Keys are written the way published files spell them: text encoder modules always under
"text_model." (as sd-scripts and diffusers saw CLIPTextModel), whatever the installed
transformers calls them, so the tests exercise the name matching a real file needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import save_file

DEFAULT_TARGETS: tuple[str, ...] = (
    "attn1.to_q",
    "attn1.to_k",
    "attn2.to_v",
    "attn2.to_out.0",
    "q_proj",
    "v_proj",
)

_UNET_PREFIX = {"kohya": "lora_unet_", "peft": "unet."}
# A kohya text-encoder prefix asked for in peft format means the same encoder's peft prefix.
_PEFT_TE_PREFIX = {
    "lora_te_": "text_encoder.",
    "lora_te1_": "text_encoder.",
    "lora_te2_": "text_encoder_2.",
}
_SUFFIXES = {
    "kohya": (".lora_down.weight", ".lora_up.weight"),
    "peft": (".lora_A.weight", ".lora_B.weight"),
}


def _covered(model: torch.nn.Module, targets: Sequence[str]) -> list[tuple[str, torch.nn.Module]]:
    return [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear | torch.nn.Conv2d)
        and any(name == t or name.endswith("." + t) for t in targets)
    ]


def _pair(
    module: torch.nn.Module, rank: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """(down, up) shaped as kohya writes them: a k×k conv gets a k×k down and a 1×1 up."""
    weight = module.weight
    out_features, in_features = int(weight.shape[0]), int(weight.shape[1])
    if weight.dim() == 4:
        down = torch.randn(rank, in_features, *weight.shape[2:], generator=gen) * 0.1
        up = torch.randn(out_features, rank, 1, 1, generator=gen) * 0.1
    else:
        down = torch.randn(rank, in_features, generator=gen) * 0.1
        up = torch.randn(out_features, rank, generator=gen) * 0.1
    return down, up


def write_tiny_lora(
    path: Path,
    *,
    unet: torch.nn.Module | None,
    text_encoder: torch.nn.Module | None,
    rank: int = 4,
    seed: int = 0,
    fmt: str = "kohya",
    te_prefix: str = "lora_te_",
    targets: Sequence[str] = DEFAULT_TARGETS,
    alpha: float | None = None,
) -> list[str]:
    """Write a seeded random LoRA for every Linear/Conv2d of the models whose name ends with a
    target; returns the module names covered (UNet first). `alpha`, when given, is written as
    each module's ".alpha" key.
    """
    if fmt not in _SUFFIXES:
        raise ValueError(f"fmt must be 'kohya' or 'peft', not {fmt!r}")
    if fmt == "peft":
        te_prefix = _PEFT_TE_PREFIX.get(te_prefix, te_prefix)
    down_suffix, up_suffix = _SUFFIXES[fmt]
    gen = torch.Generator().manual_seed(seed)
    tensors: dict[str, torch.Tensor] = {}
    covered: list[str] = []
    parts = [(unet, _UNET_PREFIX[fmt], False), (text_encoder, te_prefix, True)]
    for model, prefix, is_text in parts:
        if model is None:
            continue
        for name, module in _covered(model, targets):
            spelled = (
                name if not is_text or name.startswith("text_model.") else "text_model." + name
            )
            if fmt == "kohya":
                spelled = spelled.replace(".", "_")
            down, up = _pair(module, rank, gen)
            tensors[prefix + spelled + down_suffix] = down.contiguous()
            tensors[prefix + spelled + up_suffix] = up.contiguous()
            if alpha is not None:
                tensors[prefix + spelled + ".alpha"] = torch.tensor(float(alpha))
            covered.append(name)
    save_file(tensors, str(path))
    return covered
