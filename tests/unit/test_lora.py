"""LoRA reading, key matching and merging on tiny diffusers / transformers models."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from diffusers import UNet2DConditionModel  # noqa: E402
from transformers import (  # noqa: E402
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
)

from node_actors.models.lora import (  # noqa: E402
    LoraError,
    LoraWeights,
    apply_lora,
    load_lora,
    lora_targets,
)
from tests.lora_fixture import write_tiny_lora  # noqa: E402

UNET_PREFIXES = ("lora_unet_", "unet.")
TE_PREFIXES = ("lora_te_", "text_encoder.")


class Payload:
    """Any pickled object that is not tensors: weights_only loading must refuse it."""


def tiny_unet() -> UNet2DConditionModel:
    torch.manual_seed(0)
    return UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(8, 16),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=2,
        norm_num_groups=4,
    )


def clip_config() -> CLIPTextConfig:
    return CLIPTextConfig(
        vocab_size=1000,
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        projection_dim=32,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )


def tiny_clip() -> CLIPTextModel:
    torch.manual_seed(1)
    return CLIPTextModel(clip_config())


def tiny_clip_g() -> CLIPTextModelWithProjection:
    torch.manual_seed(2)
    return CLIPTextModelWithProjection(clip_config())


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def expected_delta(lora: dict[str, torch.Tensor], stem: str, fmt: str) -> torch.Tensor:
    """up @ down * alpha / rank, computed here independently of lora.py."""
    down_key, up_key = (
        (".lora_down.weight", ".lora_up.weight")
        if fmt == "kohya"
        else (".lora_A.weight", ".lora_B.weight")
    )
    down, up = lora[stem + down_key], lora[stem + up_key]
    rank = down.shape[0]
    scale = float(lora[stem + ".alpha"]) / rank if stem + ".alpha" in lora else 1.0
    return (up.reshape(up.shape[0], rank) @ down.reshape(rank, -1)) * scale


def assert_only_changed(
    before: dict[str, torch.Tensor], model: torch.nn.Module, changed: set[str]
) -> dict[str, torch.Tensor]:
    """Every parameter except `{name}.weight` for `changed` is bit-equal; returns the deltas."""
    after = model.state_dict()
    deltas = {}
    for key, old in before.items():
        module = key.rsplit(".", 1)[0]
        if key.endswith(".weight") and module in changed:
            deltas[module] = (after[key] - old).reshape(old.shape[0], -1)
            assert not torch.equal(after[key], old), key
        else:
            assert torch.equal(after[key], old), key
    assert set(deltas) == changed
    return deltas


def kohya_stem(prefix: str, name: str, text: bool = False) -> str:
    if text and not name.startswith("text_model."):
        name = "text_model." + name
    return prefix + name.replace(".", "_")


def test_strength_zero_changes_nothing(tmp_path: Path) -> None:
    unet, clip = tiny_unet(), tiny_clip()
    path = tmp_path / "style.safetensors"
    assert write_tiny_lora(path, unet=unet, text_encoder=clip)
    lora = load_lora(path)
    before_unet, before_clip = snapshot(unet), snapshot(clip)
    assert apply_lora(unet, lora, UNET_PREFIXES, 0.0) == []
    assert apply_lora(clip, lora, TE_PREFIXES, 0.0) == []
    assert_only_changed(before_unet, unet, set())
    assert_only_changed(before_clip, clip, set())


@pytest.mark.parametrize("fmt", ["kohya", "peft"])
def test_strength_one_patches_exactly_the_covered_modules(tmp_path: Path, fmt: str) -> None:
    unet, clip = tiny_unet(), tiny_clip()
    path = tmp_path / "style.safetensors"
    covered = write_tiny_lora(path, unet=unet, text_encoder=clip, fmt=fmt, seed=3)
    lora = load_lora(path)
    unet_names = {n for n in covered if not n.startswith(("text_model.", "encoder."))}
    clip_names = set(covered) - unet_names
    assert len(unet_names) == 16  # 4 attention blocks x (attn1.to_q, to_k, attn2.to_v, to_out.0)
    assert len(clip_names) == 4  # 2 layers x (q_proj, v_proj)
    before_unet, before_clip = snapshot(unet), snapshot(clip)

    assert set(apply_lora(unet, lora, UNET_PREFIXES, 1.0)) == unet_names
    assert set(apply_lora(clip, lora, TE_PREFIXES, 1.0)) == clip_names

    for model, before, names, prefix, text in (
        (unet, before_unet, unet_names, "lora_unet_" if fmt == "kohya" else "unet.", False),
        (clip, before_clip, clip_names, "lora_te_" if fmt == "kohya" else "text_encoder.", True),
    ):
        deltas = assert_only_changed(before, model, names)
        for name in names:
            if fmt == "kohya":
                stem = kohya_stem(prefix, name, text)
            else:
                stem = prefix + (
                    name if not text or name.startswith("text_model.") else "text_model." + name
                )
            torch.testing.assert_close(deltas[name], expected_delta(lora, stem, fmt))


def test_alpha_and_strength_scale_the_update(tmp_path: Path) -> None:
    plain_model, scaled_model = tiny_unet(), tiny_unet()
    before = snapshot(plain_model)
    write_tiny_lora(
        tmp_path / "plain.safetensors", unet=plain_model, text_encoder=None, rank=4, seed=5
    )
    write_tiny_lora(
        tmp_path / "alpha.safetensors",
        unet=scaled_model,
        text_encoder=None,
        rank=4,
        seed=5,
        alpha=2.0,
    )
    plain = load_lora(tmp_path / "plain.safetensors")
    with_alpha = load_lora(tmp_path / "alpha.safetensors")
    assert set(with_alpha) - set(plain) == {
        k.replace(".lora_down.weight", ".alpha") for k in plain if k.endswith(".lora_down.weight")
    }
    names = apply_lora(plain_model, plain, UNET_PREFIXES, 1.0)
    assert apply_lora(scaled_model, with_alpha, UNET_PREFIXES, -0.7) == names
    after_plain, after_scaled = plain_model.state_dict(), scaled_model.state_dict()
    for name in names:
        key = name + ".weight"
        full = after_plain[key] - before[key]
        # alpha 2 over rank 4 halves the update; strength -0.7 scales and flips it.
        torch.testing.assert_close(after_scaled[key] - before[key], full * 0.5 * -0.7)


def test_sdxl_text_encoders_take_only_their_own_prefix(tmp_path: Path) -> None:
    te1, te2 = tiny_clip(), tiny_clip_g()
    names1 = write_tiny_lora(
        tmp_path / "l.safetensors", unet=None, text_encoder=te1, te_prefix="lora_te1_", seed=7
    )
    names2 = write_tiny_lora(
        tmp_path / "g.safetensors", unet=None, text_encoder=te2, te_prefix="lora_te2_", seed=8
    )
    # One file as sd-scripts writes it for SDXL: both encoders, told apart only by prefix.
    lora = {**load_lora(tmp_path / "l.safetensors"), **load_lora(tmp_path / "g.safetensors")}
    assert any(k.startswith("lora_te1_text_model_encoder") for k in lora)
    assert any(k.startswith("lora_te2_text_model_encoder") for k in lora)
    before1, before2 = snapshot(te1), snapshot(te2)

    assert set(apply_lora(te1, lora, ("lora_te1_", "text_encoder."), 1.0)) == set(names1)
    assert set(apply_lora(te2, lora, ("lora_te2_", "text_encoder_2."), 1.0)) == set(names2)

    deltas1 = assert_only_changed(before1, te1, set(names1))
    deltas2 = assert_only_changed(before2, te2, set(names2))
    for name in names1:
        torch.testing.assert_close(
            deltas1[name], expected_delta(lora, kohya_stem("lora_te1_", name, True), "kohya")
        )
    for name in names2:
        torch.testing.assert_close(
            deltas2[name], expected_delta(lora, kohya_stem("lora_te2_", name, True), "kohya")
        )


def test_sdxl_peft_text_encoder_2_prefix(tmp_path: Path) -> None:
    te2 = tiny_clip_g()
    names = write_tiny_lora(
        tmp_path / "g.safetensors", unet=None, text_encoder=te2, fmt="peft", te_prefix="lora_te2_"
    )
    lora = load_lora(tmp_path / "g.safetensors")
    assert all(k.startswith("text_encoder_2.text_model.") for k in lora)
    before = snapshot(te2)
    assert apply_lora(te2, lora, ("lora_te1_", "text_encoder."), 1.0) == []
    assert_only_changed(before, te2, set())
    assert set(apply_lora(te2, lora, ("lora_te2_", "text_encoder_2."), 1.0)) == set(names)


def test_conv_layers_kxk_down_and_1x1(tmp_path: Path) -> None:
    unet = tiny_unet()
    path = tmp_path / "locon.safetensors"
    covered = write_tiny_lora(
        path, unet=unet, text_encoder=None, targets=("conv1", "proj_in", "conv_shortcut"), alpha=1.0
    )
    modules = dict(unet.named_modules())
    assert {modules[n].kernel_size for n in covered} == {(3, 3), (1, 1)}
    lora = load_lora(path)
    before = snapshot(unet)
    assert set(apply_lora(unet, lora, UNET_PREFIXES, 1.0)) == set(covered)
    deltas = assert_only_changed(before, unet, set(covered))
    for name in covered:
        torch.testing.assert_close(
            deltas[name], expected_delta(lora, kohya_stem("lora_unet_", name), "kohya")
        )


def test_tucker_mid_update_equals_the_three_convolutions() -> None:
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 5, 3, padding=1, bias=False)
    down = torch.randn(2, 3, 1, 1)
    mid = torch.randn(2, 2, 3, 3)
    up = torch.randn(5, 2, 1, 1)
    lora = {
        "lora_unet_conv.lora_down.weight": down,
        "lora_unet_conv.lora_mid.weight": mid,
        "lora_unet_conv.lora_up.weight": up,
        "lora_unet_conv.alpha": torch.tensor(2.0),
    }
    model = torch.nn.Module()
    model.conv = conv
    x = torch.randn(1, 3, 6, 6)
    base = conv(x).detach()
    assert apply_lora(model, lora, UNET_PREFIXES, 1.0) == ["conv"]
    chained = torch.nn.functional.conv2d(
        torch.nn.functional.conv2d(torch.nn.functional.conv2d(x, down), mid, padding=1), up
    )
    torch.testing.assert_close(conv(x).detach(), base + chained, rtol=1e-4, atol=1e-4)


def test_lora_targets_resolves_underscores_and_both_clip_spellings() -> None:
    with_prefix, without_prefix = tiny_clip_g(), tiny_clip()
    down, up = torch.zeros(2, 32), torch.zeros(32, 2)
    lora = {
        "lora_te_text_model_encoder_layers_1_self_attn_out_proj.lora_down.weight": down,
        "lora_te_text_model_encoder_layers_1_self_attn_out_proj.lora_up.weight": up,
        "lora_te_text_model_encoder_layers_1_self_attn_out_proj.alpha": torch.tensor(1.0),
    }
    for model, name in (
        (with_prefix, "text_model.encoder.layers.1.self_attn.out_proj"),
        (without_prefix, "encoder.layers.1.self_attn.out_proj"),
    ):
        targets = lora_targets(lora, dict(model.named_modules()), ("lora_te_",))
        assert list(targets) == [name]
        assert isinstance(targets[name], LoraWeights) and targets[name].alpha == 1.0
    # Keys spelled without "text_model." (a newer writer) still find the module.
    short = {k.replace("text_model_", ""): v for k, v in lora.items()}
    assert list(lora_targets(short, dict(with_prefix.named_modules()), ("lora_te_",))) == [
        "text_model.encoder.layers.1.self_attn.out_proj"
    ]


def test_ambiguous_underscore_form_is_not_guessed(caplog: pytest.LogCaptureFixture) -> None:
    model = torch.nn.Module()
    model.a_b = torch.nn.Module()
    model.a_b.c = torch.nn.Linear(2, 2)
    model.a = torch.nn.Module()
    model.a.b_c = torch.nn.Linear(2, 2)
    lora = {
        "lora_unet_a_b_c.lora_down.weight": torch.ones(1, 2),
        "lora_unet_a_b_c.lora_up.weight": torch.ones(2, 1),
    }
    before = snapshot(model)
    with caplog.at_level(logging.WARNING, logger="node_actors.models.lora"):
        assert apply_lora(model, lora, UNET_PREFIXES, 1.0) == []
    assert_only_changed(before, model, set())
    assert any("several modules" in r.getMessage() for r in caplog.records)


def test_unmatched_keys_are_logged_once_and_mismatched_shapes_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    model = torch.nn.Module()
    model.proj = torch.nn.Linear(4, 3)
    model.other = torch.nn.Linear(4, 3)
    lora = {
        "lora_unet_proj.lora_down.weight": torch.ones(2, 4),
        "lora_unet_proj.lora_up.weight": torch.ones(3, 2),
        "lora_unet_missing_a.lora_down.weight": torch.ones(2, 4),
        "lora_unet_missing_a.lora_up.weight": torch.ones(3, 2),
        "lora_unet_missing_b.hada_w1_a": torch.ones(2, 4),
        "lora_unet_other.lora_down.weight": torch.ones(2, 5),  # made for a wider layer
        "lora_unet_other.lora_up.weight": torch.ones(3, 2),
        "lora_te_proj.lora_down.weight": torch.ones(2, 4),  # the text encoder's part: not ours
        "lora_te_proj.lora_up.weight": torch.ones(3, 2),
    }
    before = snapshot(model)
    with caplog.at_level(logging.WARNING, logger="node_actors.models.lora"):
        assert apply_lora(model, lora, UNET_PREFIXES, 0.5) == ["proj"]
    assert_only_changed(before, model, {"proj"})
    torch.testing.assert_close(model.proj.weight, before["proj.weight"] + 0.5 * 2.0)
    unmatched = [r.getMessage() for r in caplog.records if "fit no module" in r.getMessage()]
    assert len(unmatched) == 1 and unmatched[0].startswith("LoRA: 3 keys")
    assert any(
        "does not fit weight" in r.getMessage() and "other" in r.getMessage()
        for r in caplog.records
    )


def test_malformed_pairs_raise_lora_error() -> None:
    model = torch.nn.Module()
    model.proj = torch.nn.Linear(4, 3)
    modules = dict(model.named_modules())
    half = {"lora_unet_proj.lora_down.weight": torch.ones(2, 4)}
    with pytest.raises(LoraError, match="no up"):
        lora_targets(half, modules, UNET_PREFIXES)
    bad_rank = {
        "lora_unet_proj.lora_down.weight": torch.ones(2, 4),
        "lora_unet_proj.lora_up.weight": torch.ones(3, 5),
    }
    with pytest.raises(LoraError, match="does not fit"):
        apply_lora(model, bad_rank, UNET_PREFIXES, 1.0)
    twice = {
        "lora_unet_proj.lora_down.weight": torch.ones(2, 4),
        "lora_unet_proj.lora_up.weight": torch.ones(3, 2),
        "unet.proj.lora_A.weight": torch.ones(2, 4),
        "unet.proj.lora_B.weight": torch.ones(3, 2),
    }
    with pytest.raises(LoraError, match="two LoRA entries"):
        lora_targets(twice, modules, UNET_PREFIXES)


def test_load_lora_reads_pt_weights_only_and_rejects_garbage(tmp_path: Path) -> None:
    tensors = {"lora_unet_proj.lora_down.weight": torch.ones(2, 4)}
    torch.save({"state_dict": tensors, "epoch": 3}, tmp_path / "old.pt")
    loaded = load_lora(tmp_path / "old.pt")
    assert list(loaded) == list(tensors) and torch.equal(
        loaded["lora_unet_proj.lora_down.weight"], torch.ones(2, 4)
    )

    torch.save(Payload(), tmp_path / "evil.pt")
    with pytest.raises(LoraError, match="evil.pt"):
        load_lora(tmp_path / "evil.pt")
    (tmp_path / "broken.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(LoraError, match="broken.safetensors"):
        load_lora(tmp_path / "broken.safetensors")
    with pytest.raises(LoraError):
        load_lora(tmp_path / "absent.safetensors")
