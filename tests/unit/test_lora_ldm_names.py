"""Kohya LoRAs keyed by the original LDM module names patch the same diffusers modules."""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from node_actors.models.lora import apply_lora, load_lora
from node_actors.models.runtime import ldm_module_names
from tests.lora_fixture import write_tiny_lora
from tests.model_fixtures import tiny_unet


def test_ldm_named_lora_equals_the_diffusers_named_one(tmp_path: Path) -> None:
    unet = tiny_unet("sdxl")
    covered = write_tiny_lora(tmp_path / "lora.safetensors", unet=unet, text_encoder=None)
    diffusers_named = load_lora(tmp_path / "lora.safetensors")
    aliases = ldm_module_names(unet)
    to_ldm = {ours.replace(".", "_"): ldm.replace(".", "_") for ldm, ours in aliases.items()}
    ldm_named = {}
    for key, value in diffusers_named.items():
        head, _, tail = key.removeprefix("lora_unet_").partition(".")
        ldm_named[f"lora_unet_{to_ldm[head]}.{tail}"] = value
    assert set(ldm_named) != set(diffusers_named)
    assert any("input_blocks" in key for key in ldm_named)

    by_diffusers = copy.deepcopy(unet)
    by_ldm = copy.deepcopy(unet)
    patched = apply_lora(by_diffusers, diffusers_named, ["lora_unet_"], 1.0)
    patched_ldm = apply_lora(by_ldm, ldm_named, ["lora_unet_"], 1.0, aliases)
    assert sorted(patched) == sorted(covered)
    assert len(patched_ldm) == len(patched)
    for (name, a), (_, b) in zip(
        by_diffusers.state_dict().items(), by_ldm.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    # Without the aliases the LDM names fit nothing.
    assert apply_lora(copy.deepcopy(unet), ldm_named, ["lora_unet_"], 1.0) == []
