"""Our KSampler against diffusers' own pipeline and schedulers, on the same tiny SD1 network.

The reference is computed here with `StableDiffusionPipeline` built from the very modules the
tiny checkpoint was written from, its `EulerDiscreteScheduler` configured as SD1.5's
(scaled_linear betas 0.00085..0.012, `linspace` timesteps; Karras sigmas for `karras`), and
the same starting noise. With 4 steps the `normal` schedule's timesteps (999, 666, 333, 0) are
whole numbers, so both sides use the same sigmas; what remains are float differences.

Tolerance: the final latents (values up to about 40 with these random weights) agree within
2e-3 absolute; measured: 3e-4 for both schedules.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from node_actors.library.conditioning import CLIPTextEncode
from node_actors.library.latent import EmptyLatentImage
from node_actors.library.loaders import CheckpointLoaderSimple
from node_actors.library.sampling_nodes import KSampler
from node_actors.models.tokenizer import default_tokenizer
from node_actors.sampling.model_sampling import DiscreteSchedule
from node_actors.sampling.noise import initial_noise
from tests.engine.harness import shared_worker
from tests.model_fixtures import tiny_modules
from tests.model_library import SD1

TOLERANCE = 2e-3
STEPS = 4
SEED = 42
CFG = 7.5
PROMPT = "a photo of a cat"
LATENT_SCALE = 0.18215


def reference_latents(karras: bool) -> torch.Tensor:
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline
    from transformers import CLIPTokenizer

    modules = tiny_modules("sd1")
    vocab = default_tokenizer().vocab_dir
    tokenizer = CLIPTokenizer(
        vocab=str(vocab / "vocab.json"),
        merges=str(vocab / "merges.txt"),
        model_max_length=77,
    )
    assert tokenizer(PROMPT).input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    scheduler = EulerDiscreteScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        timestep_spacing="linspace",
        steps_offset=1,  # what SD's scheduler configs say (unused by linspace spacing)
        use_karras_sigmas=karras,
    )
    pipe = StableDiffusionPipeline(
        vae=modules.vae,
        text_encoder=modules.clip_l,
        tokenizer=tokenizer,
        unet=modules.unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    noise = initial_noise((1, 4, 8, 8), SEED)
    # KSampler starts a full denoise at sqrt(1 + sigma_max^2) (the sample's variance); the
    # pipeline scales the latents it is given by its init_noise_sigma (sigma_max) instead.
    sigma_max = DiscreteSchedule().sigma_max
    start = noise * math.sqrt(1.0 + sigma_max**2) / float(scheduler.init_noise_sigma)
    with torch.no_grad():
        out = pipe(
            PROMPT,
            negative_prompt="",
            height=64,
            width=64,
            num_inference_steps=STEPS,
            guidance_scale=CFG,
            latents=start,
            output_type="latent",
        )
    return out.images


def our_latents(base: Path, scheduler: str) -> torch.Tensor:
    shared_worker(base)
    model, clip, _ = CheckpointLoaderSimple().load_checkpoint(SD1)
    positive = CLIPTextEncode().encode(clip, PROMPT)[0]
    negative = CLIPTextEncode().encode(clip, "")[0]
    latent = EmptyLatentImage().generate(64, 64, 1)[0]
    out: dict[str, Any] = KSampler().sample(
        model, SEED, STEPS, CFG, "euler", scheduler, positive, negative, latent
    )[0]
    # LATENT holds raw VAE latents; the pipeline returns them scaled.
    return out["samples"] * LATENT_SCALE


@pytest.mark.parametrize("scheduler", ["normal", "karras"])
def test_euler_matches_diffusers_pipeline(engine_base: Path, scheduler: str) -> None:
    ours = our_latents(engine_base, scheduler)
    reference = reference_latents(karras=scheduler == "karras")
    assert ours.shape == reference.shape
    assert reference.abs().max() > 0.1  # a real result, not zeros
    torch.testing.assert_close(ours, reference, rtol=0, atol=TOLERANCE)


def test_a_different_scheduler_does_not_match(engine_base: Path) -> None:
    """The comparison can fail: karras sigmas are not the normal ones."""
    ours = our_latents(engine_base, "normal")
    reference = reference_latents(karras=True)
    assert (ours - reference).abs().max() > 10 * TOLERANCE
