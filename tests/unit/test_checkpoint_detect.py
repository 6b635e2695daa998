"""Model-family detection and architecture configs derived from key names and shapes."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from accelerate import init_empty_weights  # noqa: E402
from diffusers import UNet2DConditionModel  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from node_actors.models import checkpoint as ckpt  # noqa: E402
from node_actors.models import weight_files  # noqa: E402
from node_actors.models.detect import (  # noqa: E402
    UnknownModelError,
    detect_checkpoint,
    detect_clip,
    detect_unet,
    detect_vae,
)
from node_actors.models.encoder_config import clip_config_from_shapes  # noqa: E402
from node_actors.models.families import FAMILIES  # noqa: E402
from node_actors.models.ldm_layout import clip_to_open_clip, unet_to_ldm  # noqa: E402
from node_actors.models.unet_config import unet_config_from_shapes  # noqa: E402
from tests import model_fixtures as mf  # noqa: E402

Shapes = dict[str, tuple[int, ...]]
UNET = "model.diffusion_model."


def shapes_of(state: dict[str, torch.Tensor]) -> Shapes:
    return {k: tuple(v.shape) for k, v in state.items()}


def tiny_shapes(family: str) -> Shapes:
    return mf.checkpoint_shapes(family)


def only(shapes: Shapes, *prefixes: str) -> Shapes:
    return {k: v for k, v in shapes.items() if k.startswith(prefixes)}


def without(shapes: Shapes, *prefixes: str) -> Shapes:
    return {k: v for k, v in shapes.items() if not k.startswith(prefixes)}


def strip(shapes: Shapes, prefix: str) -> Shapes:
    return {k[len(prefix) :]: v for k, v in shapes.items() if k.startswith(prefix)}


# -- fixtures detect like the real models ---------------------------------------------------------


@pytest.mark.parametrize(
    ("family", "clips"),
    [
        ("sd1", {"l": "cond_stage_model.transformer."}),
        ("sd2", {"h": "cond_stage_model.model."}),
        ("sd2_v", {"h": "cond_stage_model.model."}),
        (
            "sdxl",
            {"l": "conditioner.embedders.0.transformer.", "g": "conditioner.embedders.1.model."},
        ),
        ("sdxl_refiner", {"g": "conditioner.embedders.0.model."}),
    ],
)
def test_fixture_checkpoints_detect_as_their_family(family: str, clips: dict[str, str]) -> None:
    state = mf.ldm_checkpoint_state(family)
    layout = detect_checkpoint(shapes_of(state), read_tensor=state.__getitem__)
    assert layout.family is FAMILIES[family]
    assert layout.unet_prefix == UNET
    assert layout.vae_prefix == "first_stage_model."
    assert layout.clip_prefixes == clips


def test_sd2_v_needs_the_tensor_probe_and_defaults_to_eps_without_it() -> None:
    state = mf.ldm_checkpoint_state("sd2_v")
    assert detect_checkpoint(shapes_of(state)).family.name == "sd2"
    probe = UNET + mf.V_PROBE
    assert float(state[probe].std()) > 0.09
    assert float(mf.ldm_checkpoint_state("sd2")[probe].std()) < 0.09


def test_v_pred_key_marks_v_prediction() -> None:
    shapes = tiny_shapes("sd2") | {"v_pred": (0,)}
    assert detect_checkpoint(shapes).family is FAMILIES["sd2_v"]
    xl = detect_checkpoint(tiny_shapes("sdxl") | {"v_pred": (0,)}).family
    assert (xl.name, xl.prediction, xl.latent_scale) == ("sdxl", "v", 0.13025)


def test_the_fixtures_use_the_real_key_names() -> None:
    # Names as they appear in released SD1.5 / SDXL files (and in diffusers' own detection keys).
    sd1 = tiny_shapes("sd1")
    for key in (
        "model.diffusion_model.output_blocks.11.0.skip_connection.weight",
        "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight",
        "model.diffusion_model.input_blocks.3.0.op.weight",
        "model.diffusion_model.middle_block.1.proj_in.weight",
        "model.diffusion_model.output_blocks.2.1.conv.weight",
        "model.diffusion_model.output_blocks.5.2.conv.weight",
        "model.diffusion_model.time_embed.2.weight",
        "model.diffusion_model.out.2.weight",
        "first_stage_model.encoder.mid.attn_1.proj_out.weight",
        "first_stage_model.encoder.down.0.downsample.conv.weight",
        "first_stage_model.decoder.up.3.upsample.conv.weight",
        "first_stage_model.decoder.up.0.block.1.conv2.weight",  # decoder: one extra res-block
        "first_stage_model.encoder.norm_out.weight",
        "first_stage_model.quant_conv.weight",
        "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight",
        "cond_stage_model.transformer.text_model.final_layer_norm.weight",
    ):
        assert key in sd1, key
    assert "first_stage_model.decoder.up.0.upsample.conv.weight" not in sd1
    assert "first_stage_model.encoder.down.0.block.1.conv2.weight" not in sd1
    assert len(sd1["first_stage_model.encoder.mid.attn_1.q.weight"]) == 4  # 1x1 conv
    assert len(sd1["model.diffusion_model.input_blocks.1.1.proj_in.weight"]) == 4
    xl = tiny_shapes("sdxl")
    for key in (
        "model.diffusion_model.label_emb.0.0.weight",
        "model.diffusion_model.output_blocks.2.2.conv.weight",
        "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight",
        "conditioner.embedders.1.model.positional_embedding",
        "conditioner.embedders.1.model.ln_final.weight",
        "conditioner.embedders.1.model.transformer.resblocks.1.attn.in_proj_weight",
        "conditioner.embedders.1.model.transformer.resblocks.1.mlp.c_proj.bias",
    ):
        assert key in xl, key
    assert xl["conditioner.embedders.1.model.text_projection"] == (mf.CLIP_HIDDEN, mf.G_PROJECTION)
    assert xl["model.diffusion_model.label_emb.0.0.weight"][1] == mf.G_PROJECTION + 6 * 256
    refiner = tiny_shapes("sdxl_refiner")
    assert "conditioner.embedders.0.model.text_projection" in refiner


# -- structural rules on constructed key sets -----------------------------------------------------


def test_sd1_and_sd2_tell_apart_by_proj_in_without_a_text_encoder() -> None:
    sd1 = without(tiny_shapes("sd1"), "cond_stage_model.")
    sd2 = without(tiny_shapes("sd2"), "cond_stage_model.")
    assert detect_checkpoint(sd1).family.name == "sd1"
    assert detect_checkpoint(sd2).family.name == "sd2"
    assert detect_checkpoint(sd2).clip_prefixes == {}


def test_text_encoder_layout_decides_sd1_vs_sd2() -> None:
    unet_sd1 = only(tiny_shapes("sd1"), UNET)
    clip_h = only(tiny_shapes("sd2"), "cond_stage_model.")
    assert detect_checkpoint(unet_sd1 | clip_h).family.name == "sd2"


def test_sdxl_variants() -> None:
    xl = tiny_shapes("sdxl")
    refiner = without(xl, "conditioner.") | only(tiny_shapes("sdxl_refiner"), "conditioner.")
    assert detect_checkpoint(refiner).family.name == "sdxl_refiner"
    bare = strip(xl, UNET)
    for adm, name in ((2816, "sdxl"), (2560, "sdxl_refiner")):
        shapes = bare | {"label_emb.0.0.weight": (bare["label_emb.0.0.weight"][0], adm)}
        family, prefix = detect_unet(shapes)
        assert (family.name, prefix) == (name, "")


def test_checkpoint_without_unet_detects_from_its_text_encoders() -> None:
    layout = detect_checkpoint(without(tiny_shapes("sdxl"), UNET))
    assert (layout.family.name, layout.unet_prefix) == ("sdxl", None)


def test_detect_unet_bare_and_prefixed() -> None:
    sd1 = tiny_shapes("sd1")
    assert detect_unet(strip(sd1, UNET)) == (FAMILIES["sd1"], "")
    assert detect_unet(sd1) == (FAMILIES["sd1"], UNET)
    sd2_v = mf.ldm_checkpoint_state("sd2_v")
    bare = {k[len(UNET) :]: v for k, v in sd2_v.items() if k.startswith(UNET)}
    assert detect_unet(shapes_of(bare), read_tensor=bare.__getitem__)[0].name == "sd2_v"


def test_detect_vae_and_clip_prefixes() -> None:
    sd1 = tiny_shapes("sd1")
    assert detect_vae(sd1) == "first_stage_model."
    assert detect_vae(strip(sd1, "first_stage_model.")) == ""
    assert detect_clip(only(sd1, "cond_stage_model.")) == ("l", "cond_stage_model.transformer.")
    flat = strip(sd1, "cond_stage_model.transformer.text_model.")
    assert detect_clip(flat) == ("l", "")
    g = strip(tiny_shapes("sdxl_refiner"), "conditioner.embedders.0.model.")
    assert detect_clip(g) == ("g", "")
    h = strip(tiny_shapes("sd2"), "cond_stage_model.model.")
    assert detect_clip(without(h, "text_projection")) == ("h", "")
    with pytest.raises(UnknownModelError, match="2 text encoders"):
        detect_clip(tiny_shapes("sdxl"))


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (detect_checkpoint, "model.diffusion_model.input_blocks.0.0.weight"),
        (detect_unet, "input_blocks.0.0.weight"),
        (detect_vae, "encoder.conv_in.weight"),
        (detect_clip, "token_embedding.weight"),
    ],
)
def test_unknown_state_dict_names_what_was_looked_for(
    call: Callable[[Shapes], Any], needle: str
) -> None:
    with pytest.raises(UnknownModelError, match=needle.replace(".", r"\.")):
        call({"foo.weight": (3, 3), "bar.bias": (3,)})


def test_random_safetensors_file_is_an_unknown_model(tmp_path: Path) -> None:
    path = tmp_path / "random.safetensors"
    save_file({"layer.weight": torch.randn(4, 4), "layer.bias": torch.randn(4)}, str(path))
    with pytest.raises(UnknownModelError, match=r"random\.safetensors.*input_blocks"):
        ckpt.load_checkpoint(path)
    with pytest.raises(UnknownModelError, match="random.safetensors"):
        ckpt.load_unet_file(path)


# -- read_shapes ----------------------------------------------------------------------------------


def test_read_shapes_reads_only_the_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "model.safetensors"
    save_file({"a.weight": torch.zeros(2, 3), "v_pred": torch.zeros(0)}, str(path))

    def no_tensor_reading(*args: object, **kwargs: object) -> None:
        raise AssertionError("read_shapes loaded tensors")

    monkeypatch.setattr(weight_files, "safe_open", no_tensor_reading)
    monkeypatch.setattr(weight_files.torch, "load", no_tensor_reading)
    assert ckpt.read_shapes(path) == {"a.weight": (2, 3), "v_pred": (0,)}


# -- architecture configs of the released models (built on the meta device, no memory) -----------

_REAL_UNETS: dict[str, dict[str, Any]] = {
    "sd1": {
        "block_out_channels": (320, 640, 1280, 1280),
        "cross_attention_dim": 768,
        "attention_head_dim": 8,
    },
    "sd2": {
        "block_out_channels": (320, 640, 1280, 1280),
        "cross_attention_dim": 1024,
        "attention_head_dim": (5, 10, 20, 20),
        "use_linear_projection": True,
    },
    "sdxl": {
        "block_out_channels": (320, 640, 1280),
        "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        "transformer_layers_per_block": (1, 2, 10),
        "cross_attention_dim": 2048,
        "attention_head_dim": (5, 10, 20),
        "use_linear_projection": True,
        "addition_embed_type": "text_time",
        "addition_time_embed_dim": 256,
        "projection_class_embeddings_input_dim": 2816,
    },
    "sdxl_refiner": {
        "block_out_channels": (384, 768, 1536, 1536),
        "down_block_types": (
            "DownBlock2D",
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
            "DownBlock2D",
        ),
        "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        "transformer_layers_per_block": 4,
        "cross_attention_dim": 1280,
        "attention_head_dim": (6, 12, 24, 24),
        "use_linear_projection": True,
        "addition_embed_type": "text_time",
        "addition_time_embed_dim": 256,
        "projection_class_embeddings_input_dim": 2560,
    },
}


def _meta_state(factory: Callable[[], torch.nn.Module]) -> dict[str, torch.Tensor]:
    with init_empty_weights():
        return factory().state_dict()


@pytest.mark.parametrize("family", sorted(_REAL_UNETS))
def test_real_unet_architectures_are_rebuilt_from_shapes(family: str) -> None:
    original = _meta_state(lambda: UNet2DConditionModel(**_REAL_UNETS[family]))
    ldm = shapes_of(unet_to_ldm(original))
    detected, prefix = detect_unet(ldm)
    assert (detected.name, prefix) == (family, "")
    config = unet_config_from_shapes(ldm, "", detected)
    levels = len(config["block_out_channels"])
    for key, value in _REAL_UNETS[family].items():
        if key == "transformer_layers_per_block":
            continue  # the derived config holds placeholders on attention-free levels
        if isinstance(value, tuple):
            value = list(value)
        elif key == "attention_head_dim":
            value = [value] * levels
        assert config[key] == value, key
    rebuilt = _meta_state(lambda: UNet2DConditionModel(**config))
    assert shapes_of(rebuilt) == shapes_of(original)


def test_real_bigg_text_encoder_detects_and_configures_from_shapes() -> None:
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    real = CLIPTextConfig(
        hidden_size=1280,
        intermediate_size=5120,
        num_hidden_layers=32,
        num_attention_heads=20,
        projection_dim=1280,
        hidden_act="gelu",
    )
    state = _meta_state(lambda: CLIPTextModelWithProjection(real))
    assert detect_clip(shapes_of(state)) == ("g", "")  # HF layout, as diffusers repos store it
    shapes = shapes_of(clip_to_open_clip(state))
    assert detect_clip(shapes) == ("g", "")
    derived = clip_config_from_shapes(shapes, "", "g")
    assert {k: derived[k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers")} == {
        "hidden_size": 1280,
        "intermediate_size": 5120,
        "num_hidden_layers": 32,
    }
    assert (derived["num_attention_heads"], derived["projection_dim"]) == (20, 1280)
    assert (derived["hidden_act"], derived["vocab_size"], derived["max_position_embeddings"]) == (
        "gelu",
        49408,
        77,
    )


def test_tiny_sdxl_unet_config_from_shapes() -> None:
    config = unet_config_from_shapes(tiny_shapes("sdxl"), UNET, FAMILIES["sdxl"])
    assert config["block_out_channels"] == [32, 32, 64]
    assert config["layers_per_block"] == 2
    assert config["transformer_layers_per_block"][1:] == [1, 2]
    assert config["cross_attention_dim"] == 2 * mf.CLIP_HIDDEN
    assert config["projection_class_embeddings_input_dim"] == mf.G_PROJECTION + 6 * 256
    assert config["use_linear_projection"] is True
