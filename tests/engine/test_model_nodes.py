"""The image-generation nodes on tiny random-weight checkpoints, in process (no Ray).

Node classes are called directly where a test needs the latents themselves; whole prompts run
through the real controller (tests/engine/harness.py) where the messages matter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from node_actors.library.conditioning import (
    CLIPTextEncode,
    ConditioningCombine,
    ConditioningSetArea,
    ConditioningZeroOut,
)
from node_actors.library.custom_sampling import (
    BasicScheduler,
    CFGGuider,
    KSamplerSelect,
    RandomNoise,
    SamplerCustomAdvanced,
)
from node_actors.library.latent import (
    EmptyLatentImage,
    LatentFromBatch,
    LatentUpscale,
    RepeatLatentBatch,
    SetLatentNoiseMask,
)
from node_actors.library.loaders import (
    CheckpointLoaderSimple,
    CLIPLoader,
    CLIPSetLastLayer,
    LoraLoader,
    UNETLoader,
    VAELoader,
)
from node_actors.library.sampling_nodes import KSampler, KSamplerAdvanced
from node_actors.library.vae_nodes import VAEDecode, VAEEncode, VAEEncodeForInpaint
from node_actors.models import runtime
from tests.engine.harness import make_harness, shared_worker
from tests.model_library import CLIP_L, LORA, SD1, SDXL, UNET, VAE
from tests.sd_graphs import txt2img, with_lora


@pytest.fixture
def worker(engine_base: Path) -> Any:
    return shared_worker(engine_base)


@pytest.fixture
def sd1(worker: Any) -> tuple[Any, Any, Any]:
    return CheckpointLoaderSimple().load_checkpoint(SD1)


def cond(clip: Any, text: str) -> Any:
    return CLIPTextEncode().encode(clip, text)[0]


def ksample(model: Any, clip: Any, latent: dict[str, Any], **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "seed": 3,
        "steps": 3,
        "cfg": 5.0,
        "sampler_name": "euler",
        "scheduler": "normal",
        "denoise": 1.0,
    }
    args.update(kw)
    return KSampler().sample(
        model,
        positive=cond(clip, "a cat"),
        negative=cond(clip, "blurry"),
        latent_image=latent,
        **args,
    )[0]


def empty(size: int = 64, batch: int = 1) -> dict[str, Any]:
    return EmptyLatentImage().generate(size, size, batch)[0]


def saved_pixels(base: Path, entry: dict[str, Any], node: str = "save") -> np.ndarray:
    image = entry["outputs"][node]["images"][0]
    path = base / "output" / image["subfolder"] / image["filename"]
    return np.asarray(Image.open(path).convert("RGB"))


def test_txt2img_prompt_runs_with_progress_and_previews_per_step(engine_base: Path, arun) -> None:
    async def scenario() -> None:
        h = await make_harness(engine_base)
        prompt_id, entry, events = await h.run(txt2img("eng_t2i", steps=3, seed=11))
        assert entry["status"]["status_str"] == "success", entry["status"]
        progress = [d for _, t, d in events if t == "progress" and d["node"] == "sampler"]
        assert [(p["value"], p["max"]) for p in progress] == [(1, 3), (2, 3), (3, 3)]
        assert sum(1 for _, t, _ in events if t == "preview") == 3
        pixels = saved_pixels(engine_base, entry)
        assert pixels.shape == (64, 64, 3)
        # Another seed gives another image.
        _, other, _ = await h.run(txt2img("eng_t2i", steps=3, seed=12))
        assert not np.array_equal(saved_pixels(engine_base, other), pixels)
        await h.controller.shutdown()

    arun(scenario())


def test_same_seed_gives_identical_latents(sd1: Any) -> None:
    model, clip, _ = sd1
    first = ksample(model, clip, empty(), seed=21)["samples"]
    second = ksample(model, clip, empty(), seed=21)["samples"]
    third = ksample(model, clip, empty(), seed=22)["samples"]
    assert torch.equal(first, second)
    assert not torch.allclose(first, third)


def test_lora_at_strength_zero_is_a_no_op_and_at_one_changes_the_result(sd1: Any) -> None:
    model, clip, _ = sd1
    plain = ksample(model, clip, empty())["samples"]
    zero_model, zero_clip = LoraLoader().load_lora(model, clip, LORA, 0.0, 0.0)
    assert zero_model == model and zero_clip == clip
    assert torch.equal(ksample(zero_model, zero_clip, empty())["samples"], plain)
    lora_model, lora_clip = LoraLoader().load_lora(model, clip, LORA, 1.0, 1.0)
    assert lora_model.cache_key() != model.cache_key()
    assert not torch.allclose(ksample(lora_model, lora_clip, empty())["samples"], plain)
    # The base model in the cache is untouched by the patched copy.
    assert torch.equal(ksample(model, clip, empty())["samples"], plain)


def test_lora_prompt_through_the_engine(engine_base: Path, arun) -> None:
    async def scenario() -> None:
        h = await make_harness(engine_base)
        base = txt2img("eng_lora", seed=5)
        _, plain, _ = await h.run(base)
        _, zero, _ = await h.run(with_lora(txt2img("eng_lora0", seed=5), LORA, 0.0, 0.0))
        _, one, _ = await h.run(with_lora(txt2img("eng_lora1", seed=5), LORA, 1.0, 1.0))
        assert np.array_equal(saved_pixels(engine_base, zero), saved_pixels(engine_base, plain))
        assert not np.array_equal(saved_pixels(engine_base, one), saved_pixels(engine_base, plain))
        await h.controller.shutdown()

    arun(scenario())


def test_denoise_zero_returns_the_latent_unchanged(sd1: Any) -> None:
    model, clip, _ = sd1
    latent = {"samples": torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(1))}
    assert torch.equal(ksample(model, clip, latent, denoise=0.0)["samples"], latent["samples"])


def test_advanced_sampler_split_in_two_passes_equals_one_pass(sd1: Any) -> None:
    model, clip, _ = sd1
    positive, negative = cond(clip, "a cat"), cond(clip, "blurry")
    common = {
        "noise_seed": 9,
        "steps": 4,
        "cfg": 5.0,
        "sampler_name": "euler",
        "scheduler": "karras",
        "positive": positive,
        "negative": negative,
    }
    whole = KSampler().sample(
        model,
        seed=9,
        steps=4,
        cfg=5.0,
        sampler_name="euler",
        scheduler="karras",
        positive=positive,
        negative=negative,
        latent_image=empty(),
    )[0]["samples"]
    first = KSamplerAdvanced().sample(
        model,
        add_noise="enable",
        latent_image=empty(),
        start_at_step=0,
        end_at_step=2,
        return_with_leftover_noise="enable",
        **common,
    )[0]
    second = KSamplerAdvanced().sample(
        model,
        add_noise="disable",
        latent_image=first,
        start_at_step=2,
        end_at_step=10000,
        return_with_leftover_noise="disable",
        **common,
    )[0]["samples"]
    torch.testing.assert_close(second, whole, rtol=1e-4, atol=1e-5)


def test_custom_sampling_nodes_reproduce_ksampler(sd1: Any) -> None:
    model, clip, _ = sd1
    positive, negative = cond(clip, "a cat"), cond(clip, "blurry")
    expected = KSampler().sample(
        model, 4, 3, 6.0, "dpmpp_2m", "karras", positive, negative, empty()
    )[0]["samples"]
    sigmas = BasicScheduler().get_sigmas(model, "karras", 3, 1.0)[0]
    output, denoised = SamplerCustomAdvanced().sample(
        RandomNoise().get_noise(4)[0],
        CFGGuider().get_guider(model, positive, negative, 6.0)[0],
        KSamplerSelect().get_sampler("dpmpp_2m")[0],
        sigmas,
        empty(),
    )
    torch.testing.assert_close(output["samples"], expected)
    # The last step denoises to sigma 0: its x0 prediction is the output.
    torch.testing.assert_close(denoised["samples"], expected)


def test_inpaint_keeps_the_latent_outside_the_mask(sd1: Any) -> None:
    model, clip, vae = sd1
    generator = torch.Generator().manual_seed(2)
    pixels = torch.rand((1, 64, 64, 3), generator=generator)
    mask = torch.zeros((1, 64, 64))
    mask[:, 16:48, 16:48] = 1.0
    source = VAEEncode().encode(vae, pixels)[0]
    masked = SetLatentNoiseMask().set_mask(source, mask)[0]
    out = ksample(model, clip, masked, denoise=0.8)["samples"]
    torch.testing.assert_close(out[..., :1, :], source["samples"][..., :1, :])
    assert not torch.allclose(out[..., 3:5, 3:5], source["samples"][..., 3:5, 3:5])
    inpaint = VAEEncodeForInpaint().encode(vae, pixels, mask, 6)[0]
    assert inpaint["noise_mask"].shape == (1, 1, 64, 64)
    # A 6-pixel kernel grows the mask by 3 pixels on each side.
    assert float(inpaint["noise_mask"][0, 0, 14, 14]) == 1.0
    assert float(inpaint["noise_mask"][0, 0, 10, 10]) == 0.0


def test_split_loaders_give_the_checkpoint_s_result(worker: Any, sd1: Any) -> None:
    model, clip, vae = sd1
    unet = UNETLoader().load_unet(UNET, "default")[0]
    text = CLIPLoader().load_clip(CLIP_L, "stable_diffusion")[0]
    decoder = VAELoader().load_vae(VAE)[0]
    assert unet.family == "sd1"
    from_checkpoint = ksample(model, clip, empty())
    from_files = ksample(unet, text, empty())
    torch.testing.assert_close(from_files["samples"], from_checkpoint["samples"])
    torch.testing.assert_close(
        VAEDecode().decode(decoder, from_files)[0], VAEDecode().decode(vae, from_checkpoint)[0]
    )


def test_clip_skip_changes_the_conditioning(sd1: Any) -> None:
    _, clip, _ = sd1
    skipped = CLIPSetLastLayer().set_last_layer(clip, -2)[0]
    assert skipped.base_key() == clip.base_key()  # the same loaded encoder
    last = cond(clip, "a cat")[0][0]
    penultimate = cond(skipped, "a cat")[0][0]
    assert last.shape == penultimate.shape
    assert not torch.allclose(last, penultimate)


def test_conditioning_nodes_build_comfyui_lists(sd1: Any) -> None:
    _, clip, _ = sd1
    a, b = cond(clip, "a cat"), cond(clip, "a dog")
    combined = ConditioningCombine().combine(a, b)[0]
    assert len(combined) == 2
    area = ConditioningSetArea().append(a, 64, 32, 8, 16, 0.5)[0]
    assert area[0][1]["area"] == (4, 8, 2, 1) and area[0][1]["strength"] == 0.5
    assert "area" not in a[0][1]  # the input list is not changed
    zero = ConditioningZeroOut().zero_out(a)[0]
    assert not zero[0][0].any() and not zero[0][1]["pooled_output"].any()


def test_area_conditioning_runs_through_the_sampler(sd1: Any) -> None:
    model, clip, _ = sd1
    dog = ConditioningSetArea().append(cond(clip, "a dog"), 64, 64, 64, 0, 1.0)[0]
    positive = ConditioningCombine().combine(cond(clip, "a cat"), dog)[0]
    # One step: the result is the first x0 prediction, which the area changes only where it is.
    plain = KSampler().sample(
        model, 1, 1, 5.0, "euler", "normal", cond(clip, "a cat"), cond(clip, ""), empty(128)
    )[0]["samples"]
    out = KSampler().sample(
        model, 1, 1, 5.0, "euler", "normal", positive, cond(clip, ""), empty(128)
    )[0]["samples"]
    assert out.shape == (1, 4, 16, 16) and torch.isfinite(out).all()
    # (up to float differences: the plain run batches cond and uncond in one UNet call)
    torch.testing.assert_close(out[..., 8:, :], plain[..., 8:, :], rtol=0, atol=2e-3)
    assert not torch.allclose(out[..., :8, 8:], plain[..., :8, 8:])


def test_latent_batch_nodes_keep_noise_positions(sd1: Any) -> None:
    model, clip, _ = sd1
    batch = ksample(model, clip, empty(batch=3), seed=7)["samples"]
    picked = LatentFromBatch().frombatch(empty(batch=3), 2, 1)[0]
    assert picked["batch_index"] == [2]
    alone = ksample(model, clip, picked, seed=7)["samples"]
    # Latent #2 gets the noise it had in the batch, so it samples to the same result (up to
    # the float differences of a batch of 1 vs 3 in the UNet).
    torch.testing.assert_close(alone[0], batch[2], rtol=0, atol=5e-3)
    assert not torch.allclose(alone[0], batch[0], rtol=0, atol=5e-2)
    repeated = RepeatLatentBatch().repeat(picked, 2)[0]
    assert repeated["samples"].shape[0] == 2 and repeated["batch_index"] == [2, 5]
    bigger = LatentUpscale().upscale(empty(), "bislerp", 128, 96, "disabled")[0]
    assert bigger["samples"].shape == (1, 4, 12, 16)


def test_sdxl_checkpoint_samples_with_pooled_and_size_conditioning(worker: Any) -> None:
    model, clip, vae = CheckpointLoaderSimple().load_checkpoint(SDXL)
    assert model.family == "sdxl"
    positive = cond(clip, "a cat")
    assert positive[0][0].shape[-1] == 64 and positive[0][1]["pooled_output"].shape == (1, 16)
    latent = KSampler().sample(
        model, 1, 2, 5.0, "euler", "normal", positive, cond(clip, ""), empty()
    )[0]
    image = VAEDecode().decode(vae, latent)[0]
    assert image.shape == (1, 64, 64, 3)


def test_model_cache_hits_and_free_unloads_every_model(worker: Any, sd1: Any) -> None:
    model, clip, _ = sd1
    ksample(model, clip, empty())
    stats = runtime.installed().cache.stats()
    ksample(model, clip, empty())
    after = runtime.installed().cache.stats()
    assert after.hits > stats.hits and after.misses == stats.misses
    assert model.cache_key() in worker.models.held_keys()
    worker.free(unload_models=True, free_memory=False)
    assert worker.models.held_keys() == ()
