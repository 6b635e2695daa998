"""Loading tiny single-file checkpoints and component files back into diffusers/transformers
modules: every tensor and every output must equal the modules the files were written from."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from node_actors.models import checkpoint as ckpt  # noqa: E402
from node_actors.models.checkpoint import CheckpointError  # noqa: E402
from node_actors.models.detect import UnknownModelError  # noqa: E402
from node_actors.models.weight_files import WeightSource  # noqa: E402
from tests import model_fixtures as mf  # noqa: E402


def assert_same_weights(original: torch.nn.Module, loaded: torch.nn.Module) -> None:
    a, b = original.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different[:5]


def assert_loaded_state(module: torch.nn.Module, dtype: torch.dtype = torch.float32) -> None:
    assert not module.training
    params = list(module.parameters())
    assert params and all(not p.requires_grad for p in params)
    assert {p.device.type for p in params} == {"cpu"}
    assert {p.dtype for p in params} == {dtype}


def unet_output(unet: torch.nn.Module, family: str) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    context = mf.CLIP_HIDDEN * (2 if family == "sdxl" else 1)
    kwargs = {}
    if family.startswith("sdxl"):
        size_embeds = 6 if family == "sdxl" else 5
        kwargs["added_cond_kwargs"] = {
            "text_embeds": torch.randn(1, mf.G_PROJECTION, generator=gen),
            "time_ids": torch.rand(1, size_embeds, generator=gen) * 1024,
        }
    with torch.no_grad():
        return unet(
            torch.randn(1, 4, 8, 8, generator=gen),
            torch.tensor([500.0]),
            encoder_hidden_states=torch.randn(1, 77, context, generator=gen),
            **kwargs,
        ).sample


def vae_outputs(vae: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        latent = vae.encode(torch.rand(1, 3, 64, 64, generator=gen) * 2 - 1).latent_dist.mode()
        image = vae.decode(torch.randn(1, 4, 8, 8, generator=gen)).sample
    assert latent.shape == (1, 4, 8, 8) and image.shape == (1, 3, 64, 64)
    return latent, image


def clip_outputs(clip: torch.nn.Module) -> list[torch.Tensor]:
    ids = torch.randint(0, mf.VOCAB - 2, (2, 77), generator=torch.Generator().manual_seed(3))
    ids[:, 0], ids[:, 10:] = 49406, 49407
    with torch.no_grad():
        out = clip(ids, output_hidden_states=True)
    tensors = [out.last_hidden_state, out.hidden_states[-2]]
    if hasattr(out, "text_embeds"):
        tensors.append(out.text_embeds)
    return tensors


@pytest.mark.parametrize("family", mf.FAMILIES)
def test_checkpoint_round_trip(tmp_path: Path, family: str) -> None:
    original = mf.tiny_modules(family)
    path = mf.write_checkpoint(tmp_path / f"{family}.safetensors", family)
    loaded = ckpt.load_checkpoint(path)
    assert loaded.family.name == family
    assert loaded.unet is not None and loaded.vae is not None and loaded.clip is not None
    assert_same_weights(original.unet, loaded.unet)
    assert_same_weights(original.vae, loaded.vae)
    encoders = {"l": original.clip_l, "h": original.clip_h, "g": original.clip_g}
    expected = {k: v for k, v in encoders.items() if v is not None}
    assert loaded.clip.encoders().keys() == expected.keys()
    for name, module in expected.items():
        assert_same_weights(module, loaded.clip.encoders()[name])
        assert type(loaded.clip.encoders()[name]) is type(module)
    assert loaded.clip.family == ("sd2" if family == "sd2_v" else family)
    for module in (loaded.unet, loaded.vae, *loaded.clip.encoders().values()):
        assert_loaded_state(module)
    assert loaded.vae.config.scaling_factor == loaded.family.latent_scale


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_loaded_modules_compute_what_the_originals_compute(tmp_path: Path, family: str) -> None:
    original = mf.tiny_modules(family)
    writer = mf.write_sd1_checkpoint if family == "sd1" else mf.write_sdxl_checkpoint
    loaded = ckpt.load_checkpoint(writer(tmp_path / "model.safetensors"))
    assert torch.equal(unet_output(loaded.unet, family), unet_output(original.unet, family))
    for a, b in zip(vae_outputs(loaded.vae), vae_outputs(original.vae), strict=True):
        assert torch.equal(a, b)
    for name, module in loaded.clip.encoders().items():
        reference = getattr(original, f"clip_{name}")
        for a, b in zip(clip_outputs(module), clip_outputs(reference), strict=True):
            assert torch.equal(a, b)


def test_inspect_sees_sd2_v_prediction_from_the_file(tmp_path: Path) -> None:
    v_path = mf.write_checkpoint(tmp_path / "sd2_v.safetensors", "sd2_v")
    eps_path = mf.write_checkpoint(tmp_path / "sd2.safetensors", "sd2")
    assert ckpt.inspect_checkpoint(v_path).family.name == "sd2_v"
    assert ckpt.inspect_checkpoint(eps_path).family.name == "sd2"
    assert ckpt.inspect_unet_file(v_path) == (
        ckpt.load_checkpoint(v_path).family,
        "model.diffusion_model.",
    )
    assert (
        ckpt.inspect_unet_file(mf.write_unet(tmp_path / "u.safetensors", "sd2_v"))[0].name
        == "sd2_v"
    )


def test_seeds_give_different_models(tmp_path: Path) -> None:
    a = ckpt.load_unet_file(mf.write_unet(tmp_path / "a.safetensors", "sd1", seed=0))[1]
    b = ckpt.load_unet_file(mf.write_unet(tmp_path / "b.safetensors", "sd1", seed=1))[1]
    assert not torch.equal(unet_output(a, "sd1"), unet_output(b, "sd1"))


def test_only_the_requested_components_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = mf.write_sd1_checkpoint(tmp_path / "sd1.safetensors")
    read: list[str] = []
    real_get = WeightSource.get

    def spy(self: WeightSource, key: str) -> torch.Tensor:
        read.append(key)
        return real_get(self, key)

    monkeypatch.setattr(WeightSource, "get", spy)
    loaded = ckpt.load_checkpoint(path, unet=False, clip=False)
    assert loaded.unet is None and loaded.clip is None and loaded.vae is not None
    assert read and all(k.startswith("first_stage_model.") for k in read)


def test_half_precision_load(tmp_path: Path) -> None:
    loaded = ckpt.load_checkpoint(
        mf.write_sd1_checkpoint(tmp_path / "sd1.safetensors"), vae=False, dtype=torch.float16
    )
    assert_loaded_state(loaded.unet, torch.float16)
    assert_loaded_state(loaded.clip.l, torch.float16)
    reference = mf.tiny_unet("sd1").half()
    assert_same_weights(reference, loaded.unet)


def test_unet_file(tmp_path: Path) -> None:
    for family in ("sd1", "sd2", "sdxl"):
        path = mf.write_unet(tmp_path / f"{family}.safetensors", family)
        detected, unet = ckpt.load_unet_file(path)
        assert detected.name == family
        assert_same_weights(mf.tiny_unet(family), unet)
        assert_loaded_state(unet)
    # A full checkpoint in the diffusion_models folder gives its UNet.
    family, unet = ckpt.load_unet_file(mf.write_sdxl_checkpoint(tmp_path / "full.safetensors"))
    assert family.name == "sdxl"
    assert_same_weights(mf.tiny_unet("sdxl"), unet)


def test_vae_file_ldm_and_diffusers_layouts(tmp_path: Path) -> None:
    reference = mf.tiny_vae(seed=3)
    ldm = ckpt.load_vae_file(mf.write_vae(tmp_path / "ldm.safetensors", seed=3))
    assert_same_weights(reference, ldm)
    assert_loaded_state(ldm)
    diffusers_path = tmp_path / "diffusers.safetensors"
    save_file(reference.state_dict(), str(diffusers_path))
    assert_same_weights(reference, ckpt.load_vae_file(diffusers_path))
    # A VAE file that is really a checkpoint: its first_stage_model. part.
    from_checkpoint = ckpt.load_vae_file(mf.write_sd1_checkpoint(tmp_path / "sd1.safetensors"))
    assert_same_weights(mf.tiny_vae(), from_checkpoint)


def test_clip_files_single_and_dual(tmp_path: Path) -> None:
    l_path = mf.write_clip(tmp_path / "clip_l.safetensors", "l")
    g_path = mf.write_clip(tmp_path / "clip_g.safetensors", "g")
    h_path = mf.write_clip(tmp_path / "clip_h.safetensors", "h")
    sd1 = ckpt.load_clip_files([l_path], "stable_diffusion")
    assert (sd1.family, list(sd1.encoders())) == ("sd1", ["l"])
    assert_same_weights(mf.tiny_clip("l"), sd1.l)
    sd2 = ckpt.load_clip_files([h_path], "stable_diffusion")
    assert (sd2.family, list(sd2.encoders())) == ("sd2", ["h"])
    assert_same_weights(mf.tiny_clip("h"), sd2.h)
    xl = ckpt.load_clip_files([g_path, l_path], "sdxl")
    assert (xl.family, sorted(xl.encoders())) == ("sdxl", ["g", "l"])
    assert_same_weights(mf.tiny_clip("l"), xl.l)
    assert_same_weights(mf.tiny_clip("g"), xl.g)
    for a, b in zip(clip_outputs(xl.g), clip_outputs(mf.tiny_clip("g")), strict=True):
        assert torch.equal(a, b)
    assert_loaded_state(xl.g)


def test_clip_files_in_other_layouts(tmp_path: Path) -> None:
    reference_l, reference_g = mf.tiny_clip("l"), mf.tiny_clip("g")
    # transformers >= 5.6 saves CLIPTextModel without the 'text_model.' level.
    flat = tmp_path / "flat.safetensors"
    save_file(dict(reference_l.state_dict()), str(flat))
    assert not any(k.startswith("text_model.") for k in reference_l.state_dict())
    assert_same_weights(reference_l, ckpt.load_clip_files([flat], "stable_diffusion").l)
    # A whole checkpoint in the text_encoders folder: its cond_stage_model. encoder.
    full = mf.write_sd1_checkpoint(tmp_path / "sd1.safetensors")
    assert_same_weights(reference_l, ckpt.load_clip_files([full], "stable_diffusion").l)
    # bigG in open_clip layout under its SDXL checkpoint prefix.
    prefixed = tmp_path / "g_prefixed.safetensors"
    state = mf.ldm_checkpoint_state("sdxl_refiner")
    mf.save_fp16(prefixed, {k: v for k, v in state.items() if k.startswith("conditioner.")})
    assert_same_weights(reference_g, ckpt.load_clip_files([prefixed], "stable_diffusion").g)


def test_clip_type_mismatches_are_refused(tmp_path: Path) -> None:
    l_path = mf.write_clip(tmp_path / "clip_l.safetensors", "l")
    with pytest.raises(UnknownModelError, match="does not take"):
        ckpt.load_clip_files([l_path], "sdxl")
    with pytest.raises(UnknownModelError, match="unsupported CLIP type"):
        ckpt.load_clip_files([l_path], "flux")


# -- pickled checkpoints and damaged files --------------------------------------------------------


class NotATensor:
    """Stands for arbitrary code a malicious pickle could carry."""

    def __init__(self) -> None:
        self.payload = "anything"


def test_ckpt_loads_through_weights_only(tmp_path: Path) -> None:
    state = mf.ldm_checkpoint_state("sd1")
    path = tmp_path / "sd1.ckpt"
    torch.save({"state_dict": state, "global_step": 1234, "epoch": 3}, path)
    assert ckpt.read_shapes(path) == {k: tuple(v.shape) for k, v in state.items()}
    assert ckpt.load_state_dict(path).keys() == state.keys()
    loaded = ckpt.load_checkpoint(path)
    assert loaded.family.name == "sd1"
    original = mf.tiny_modules("sd1")
    assert_same_weights(original.unet, loaded.unet)
    assert_same_weights(original.clip_l, loaded.clip.l)
    bare_vae = tmp_path / "vae.pt"
    torch.save({k.removeprefix("first_stage_model."): v for k, v in state.items()}, bare_vae)
    assert_same_weights(original.vae, ckpt.load_vae_file(bare_vae))


def test_pickle_with_custom_object_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "extra": NotATensor()}, path)
    for call in (ckpt.load_state_dict, ckpt.read_shapes, ckpt.load_checkpoint):
        with pytest.raises(CheckpointError, match=r"evil\.ckpt.*refused"):
            call(path)


def test_truncated_and_garbage_files(tmp_path: Path) -> None:
    good = mf.write_vae(tmp_path / "vae.safetensors")
    data = good.read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    for call in (ckpt.read_shapes, ckpt.load_vae_file, ckpt.load_state_dict):
        with pytest.raises(CheckpointError, match=r"truncated\.safetensors: truncated"):
            call(truncated)
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match=r"garbage\.ckpt"):
        ckpt.load_state_dict(garbage)
    with pytest.raises(CheckpointError, match="no such file"):
        ckpt.load_checkpoint(tmp_path / "missing.safetensors")


def test_missing_weights_are_reported(tmp_path: Path) -> None:
    state = mf.ldm_checkpoint_state("sd1")
    del state["model.diffusion_model.output_blocks.3.0.skip_connection.weight"]
    path = mf.save_fp16(tmp_path / "broken.safetensors", state)
    with pytest.raises(CheckpointError, match=r"broken\.safetensors UNet.*missing"):
        ckpt.load_checkpoint(path)
