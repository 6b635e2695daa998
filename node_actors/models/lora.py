"""LoRA files: reading them, matching their keys to model modules, and merging them in.

A LoRA holds, per patched module, a low-rank update W' = W + strength * scale * (up @ down).
Two key layouts are in use for Stable Diffusion models:

- kohya (sd-scripts, A1111, most downloads): "{prefix}{module_path_with_underscores}.lora_down
  .weight" / ".lora_up.weight" / ".alpha", optionally ".lora_mid.weight" (LoCon's Tucker core).
- diffusers / peft: "{prefix}{module.path}.lora_A.weight" / ".lora_B.weight" (+ ".alpha").

The underscore form loses the dots, so it cannot be split back into a path; instead every
module name of the model is turned into that form and looked up. transformers >= 5.6 names the
CLIPTextModel's modules without the "text_model." level that LoRA files were written against,
so both spellings are indexed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor

logger = logging.getLogger(__name__)

# Key suffix → role in LoraWeights. kohya and peft spellings share the roles.
_SUFFIXES: tuple[tuple[str, str], ...] = (
    (".lora_down.weight", "down"),
    (".lora_up.weight", "up"),
    (".lora_mid.weight", "mid"),
    (".lora_A.weight", "down"),
    (".lora_B.weight", "up"),
    (".alpha", "alpha"),
)

_TEXT_MODEL = "text_model."

_SAFETENSORS_SUFFIXES = frozenset({".safetensors", ".sft"})


class LoraError(Exception):
    """A LoRA file that cannot be read or whose tensors do not form low-rank pairs."""


@dataclass
class LoraWeights:
    """One module's low-rank update: up @ (mid) @ down, scaled by alpha / rank."""

    down: Tensor
    up: Tensor
    alpha: float | None
    mid: Tensor | None = None

    @property
    def rank(self) -> int:
        return int(self.down.shape[0])

    @property
    def scale(self) -> float:
        return 1.0 if self.alpha is None else self.alpha / self.rank

    def delta_numel(self) -> int:
        """Elements of the full update, known from the shapes alone (no matmul)."""
        if self.mid is None:
            return int(self.up.shape[0]) * math.prod(self.down.shape[1:])
        return int(self.up.shape[0]) * int(self.down.shape[1]) * math.prod(self.mid.shape[2:])

    def delta(self) -> Tensor:
        """The full-rank update in float32, shaped [out, in * kernel] or [out, in, kh, kw]."""
        up = self.up.reshape(self.up.shape[0], -1).float()
        down = self.down.reshape(self.rank, -1).float()
        if self.mid is None:
            return up @ down
        return torch.einsum("om,mdhw,dc->ochw", up, self.mid.float(), down)


def load_lora(path: Path) -> dict[str, Tensor]:
    """The tensors of a LoRA file: safetensors, or a pickled state dict loaded weights-only."""
    path = Path(path)
    try:
        if path.suffix.lower() in _SAFETENSORS_SUFFIXES:
            return load_file(str(path), device="cpu")
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # safetensors, pickle (weights_only refusals) and OS errors alike
        raise LoraError(f"cannot read LoRA file {path}: {exc}") from exc
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping):
        raise LoraError(f"LoRA file {path} holds a {type(loaded).__name__}, not a state dict")
    tensors = {str(k): v for k, v in loaded.items() if isinstance(v, Tensor)}
    if len(tensors) != len(loaded):
        logger.debug("LoRA %s: ignored %d non-tensor entries", path, len(loaded) - len(tensors))
    return tensors


def _patchable(module: torch.nn.Module) -> bool:
    return isinstance(module, torch.nn.Linear | torch.nn.Conv2d)


def _name_index(modules: Mapping[str, torch.nn.Module]) -> dict[str, str]:
    """Every spelling a LoRA key may use for a patchable module → the module's real name.

    An underscore spelling shared by two modules is dropped: guessing would patch the wrong one.
    """
    index: dict[str, str] = {}
    ambiguous: set[str] = set()
    names = [name for name, module in modules.items() if name and _patchable(module)]
    real = set(names)
    for name in names:
        index[name] = name
    for name in names:
        if name.startswith(_TEXT_MODEL):
            dotted = (name, name[len(_TEXT_MODEL) :])
        else:
            dotted = (name, _TEXT_MODEL + name)
        spellings = {dotted[1], dotted[0].replace(".", "_"), dotted[1].replace(".", "_")}
        for spelling in spellings:
            owner = index.get(spelling)
            if owner is None:
                index[spelling] = name
            elif owner != name and spelling not in real:
                ambiguous.add(spelling)
    for spelling in ambiguous:
        logger.warning("LoRA key form %r fits several modules; keys using it are skipped", spelling)
        del index[spelling]
    return index


def _split_key(key: str, prefixes: Sequence[str]) -> tuple[str, str, str] | None:
    """(prefix, module spelling, role) of a LoRA key under one of `prefixes`, else None."""
    prefix = next((p for p in sorted(prefixes, key=len, reverse=True) if key.startswith(p)), None)
    if prefix is None:
        return None
    for suffix, role in _SUFFIXES:
        if key.endswith(suffix):
            return prefix, key[len(prefix) : -len(suffix)], role
    return prefix, key[len(prefix) :], ""


def _match(
    lora: Mapping[str, Tensor],
    modules: Mapping[str, torch.nn.Module],
    prefixes: Sequence[str],
) -> tuple[dict[str, LoraWeights], list[str]]:
    """Matched module name → weights, and the keys under `prefixes` that fit no module."""
    # Grouped by prefix too, so a file that holds one module in both layouts is caught below
    # instead of having its halves mixed.
    groups: dict[tuple[str, str], dict[str, Tensor]] = {}
    group_keys: dict[tuple[str, str], list[str]] = {}
    unmatched: list[str] = []
    for key, tensor in lora.items():
        split = _split_key(key, prefixes)
        if split is None:
            continue  # another model's part of the file (text encoder vs UNet)
        prefix, spelling, role = split
        if not role:
            unmatched.append(key)
            continue
        groups.setdefault((prefix, spelling), {})[role] = tensor
        group_keys.setdefault((prefix, spelling), []).append(key)
    index = _name_index(modules)
    targets: dict[str, LoraWeights] = {}
    for (prefix, spelling), parts in groups.items():
        name = index.get(spelling)
        if name is None:
            unmatched.extend(group_keys[prefix, spelling])
            continue
        if name in targets:
            raise LoraError(f"two LoRA entries target module {name!r} (second: {prefix}{spelling})")
        targets[name] = _weights(name, parts)
    return targets, unmatched


def _weights(name: str, parts: Mapping[str, Tensor]) -> LoraWeights:
    if "down" not in parts or "up" not in parts:
        missing = "down (lora_down / lora_A)" if "down" not in parts else "up (lora_up / lora_B)"
        raise LoraError(f"LoRA entry for module {name!r} has no {missing} weight")
    down, up, mid = parts["down"], parts["up"], parts.get("mid")
    rank = int(down.shape[0])
    inner = rank if mid is None else int(mid.shape[0])
    if up.dim() < 2 or up.reshape(up.shape[0], -1).shape[1] != inner:
        raise LoraError(
            f"LoRA entry for module {name!r}: up {tuple(up.shape)} does not fit "
            f"down {tuple(down.shape)}" + ("" if mid is None else f" and mid {tuple(mid.shape)}")
        )
    if mid is not None and (mid.dim() != 4 or int(mid.shape[1]) != rank):
        raise LoraError(
            f"LoRA entry for module {name!r}: mid {tuple(mid.shape)} does not fit down "
            f"{tuple(down.shape)}"
        )
    alpha_tensor = parts.get("alpha")
    alpha = None if alpha_tensor is None else float(alpha_tensor.float().reshape(-1)[0])
    return LoraWeights(down=down, up=up, alpha=alpha, mid=mid)


def lora_targets(
    lora: Mapping[str, Tensor],
    modules: Mapping[str, torch.nn.Module],
    prefixes: Sequence[str],
) -> dict[str, LoraWeights]:
    """Module name → its low-rank update, for every key of `lora` under `prefixes` that fits.

    `modules` is `dict(model.named_modules())` of a diffusers UNet or a transformers CLIP text
    model; only Linear and Conv2d modules can be targets.
    """
    return _match(lora, modules, prefixes)[0]


def _fits(weights: LoraWeights, weight: Tensor) -> bool:
    return weights.delta_numel() == weight.numel() and int(weights.up.shape[0]) == weight.shape[0]


def apply_lora(
    model: torch.nn.Module,
    lora: Mapping[str, Tensor],
    prefixes: Sequence[str],
    strength: float,
    aliases: Mapping[str, str] | None = None,
) -> list[str]:
    """Merge `lora` into `model` in place at `strength`; returns the patched module names.

    `aliases` maps other names of modules (the original LDM names that kohya's SDXL LoRAs use)
    to the model's own. A target whose update does not have its weight's shape (a LoRA made
    for another model family) is skipped with a warning, as are keys that fit no module;
    neither is an error, because ComfyUI loads such LoRAs partially too.
    """
    if strength == 0:
        return []
    modules = dict(model.named_modules())
    for alias, real in (aliases or {}).items():
        if real in modules and alias not in modules:
            modules[alias] = modules[real]
    targets, unmatched = _match(lora, modules, prefixes)
    if unmatched:
        logger.warning(
            "LoRA: %d keys under %s fit no module of %s, e.g. %s",
            len(unmatched),
            list(prefixes),
            type(model).__name__,
            unmatched[:3],
        )
    patched: list[str] = []
    with torch.no_grad():
        for name, weights in targets.items():
            weight = modules[name].weight
            if not _fits(weights, weight):
                logger.warning(
                    "LoRA: update for %s (up %s, down %s) does not fit weight %s; skipped",
                    name,
                    tuple(weights.up.shape),
                    tuple(weights.down.shape),
                    tuple(weight.shape),
                )
                continue
            # One module's delta at a time: all of them at once would double the model's memory.
            delta = weights.delta().to(weight.device).reshape(weight.shape)
            delta.mul_(strength * weights.scale)
            weight.add_(delta.to(weight.dtype))
            patched.append(name)
    logger.info(
        "LoRA: patched %d modules of %s at strength %s",
        len(patched),
        type(model).__name__,
        strength,
    )
    return patched
