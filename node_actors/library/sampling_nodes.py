"""KSampler and KSampler (Advanced): denoise a latent with a model and its conditioning.

Progress goes to the client once per sampler step (progress / progress_state) with a latent
preview; an interrupt stops the run at the next step.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from node_actors import context
from node_actors.context import Preview
from node_actors.models import runtime
from node_actors.models.model_ref import ModelRef
from node_actors.sampling.ksampler import (
    SamplingResult,
    StepReport,
    run_sampler,
    schedule_for,
    sigmas_for,
    trim_sigmas,
)
from node_actors.sampling.samplers import SAMPLER_NAMES
from node_actors.sampling.schedulers import SCHEDULER_NAMES

logger = logging.getLogger(__name__)

MAX_SEED = 0xFFFFFFFFFFFFFFFF
PREVIEW_MAX_SIZE = 512


def step_reporter(family: str) -> StepReport | None:
    """Per-step progress with a latent preview, sent through the running node's context."""
    ctx = context.current()
    if ctx is None:
        return None
    from node_actors.sampling.preview import latent_to_image

    def report(step: int, total: int, x0: torch.Tensor) -> None:
        preview = Preview("JPEG", latent_to_image(x0[0], family), PREVIEW_MAX_SIZE)
        ctx.progress(ctx.node_id, float(step), float(total), preview, True)

    return report


def sample(
    model: ModelRef,
    *,
    seed: int,
    steps: int,
    cfg: float,
    sampler_name: str,
    scheduler: str,
    positive: list[Any],
    negative: list[Any],
    latent: dict[str, Any],
    denoise: float = 1.0,
    add_noise: bool = True,
    start_step: int | None = None,
    last_step: int | None = None,
    force_full_denoise: bool = False,
) -> dict[str, Any]:
    family, unet = runtime.installed().unet(model)
    schedule = schedule_for(family.prediction)
    sigmas = sigmas_for(schedule, scheduler, steps, denoise)
    sigmas = trim_sigmas(sigmas, steps, start_step, last_step, force_full_denoise)
    logger.info(
        "%s: %s/%s, %d steps, cfg %.2f, seed %d, family %s",
        context.log_ids(),
        sampler_name,
        scheduler,
        len(sigmas) - 1,
        cfg,
        seed,
        family.name,
    )
    result: SamplingResult = run_sampler(
        unet=unet,
        schedule=schedule,
        sampler_name=sampler_name,
        sigmas=sigmas,
        latent=latent,
        positive=positive,
        negative=negative,
        cfg=cfg,
        seed=seed,
        latent_scale=family.latent_scale,
        add_noise=add_noise,
        report=step_reporter(family.name),
        check_interrupted=context.throw_if_interrupted,
    )
    out = dict(latent)
    out["samples"] = result.samples
    return out


def _common_inputs() -> dict[str, Any]:
    return {
        "steps": ("INT", {"default": 20, "min": 1, "max": 10000}),
        "cfg": ("FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01}),
        "sampler_name": (list(SAMPLER_NAMES),),
        "scheduler": (list(SCHEDULER_NAMES),),
        "positive": ("CONDITIONING",),
        "negative": ("CONDITIONING",),
        "latent_image": ("LATENT",),
    }


class KSampler:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        common = _common_inputs()
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "The model used for denoising the input latent."}),
                "seed": (
                    "INT",
                    {
                        "default": 0,
                        "min": 0,
                        "max": MAX_SEED,
                        "control_after_generate": True,
                        "tooltip": "The random seed used for creating the noise.",
                    },
                ),
                **common,
                "denoise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01}),
            }
        }

    RETURN_TYPES = ("LATENT",)
    OUTPUT_TOOLTIPS = ("The denoised latent.",)
    FUNCTION = "sample"
    CATEGORY = "sampling"
    DESCRIPTION = (
        "Uses the provided model, positive and negative conditioning to denoise the latent image."
    )
    SEARCH_ALIASES = ["sampler", "sample", "generate", "denoise", "diffuse", "txt2img", "img2img"]

    def sample(
        self,
        model: ModelRef,
        seed: int,
        steps: int,
        cfg: float,
        sampler_name: str,
        scheduler: str,
        positive: list[Any],
        negative: list[Any],
        latent_image: dict[str, Any],
        denoise: float = 1.0,
    ) -> tuple[dict[str, Any]]:
        return (
            sample(
                model,
                seed=seed,
                steps=steps,
                cfg=cfg,
                sampler_name=sampler_name,
                scheduler=scheduler,
                positive=positive,
                negative=negative,
                latent=latent_image,
                denoise=denoise,
            ),
        )


class KSamplerAdvanced:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        common = _common_inputs()
        return {
            "required": {
                "model": ("MODEL",),
                "add_noise": (["enable", "disable"],),
                "noise_seed": (
                    "INT",
                    {"default": 0, "min": 0, "max": MAX_SEED, "control_after_generate": True},
                ),
                **common,
                "start_at_step": ("INT", {"default": 0, "min": 0, "max": 10000}),
                "end_at_step": ("INT", {"default": 10000, "min": 0, "max": 10000}),
                "return_with_leftover_noise": (["disable", "enable"],),
            }
        }

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "sample"
    CATEGORY = "sampling"

    def sample(
        self,
        model: ModelRef,
        add_noise: str,
        noise_seed: int,
        steps: int,
        cfg: float,
        sampler_name: str,
        scheduler: str,
        positive: list[Any],
        negative: list[Any],
        latent_image: dict[str, Any],
        start_at_step: int,
        end_at_step: int,
        return_with_leftover_noise: str,
        denoise: float = 1.0,
    ) -> tuple[dict[str, Any]]:
        return (
            sample(
                model,
                seed=noise_seed,
                steps=steps,
                cfg=cfg,
                sampler_name=sampler_name,
                scheduler=scheduler,
                positive=positive,
                negative=negative,
                latent=latent_image,
                denoise=denoise,
                add_noise=add_noise != "disable",
                start_step=start_at_step,
                last_step=end_at_step,
                force_full_denoise=return_with_leftover_noise != "enable",
            ),
        )


NODE_CLASS_MAPPINGS = {"KSampler": KSampler, "KSamplerAdvanced": KSamplerAdvanced}
NODE_DISPLAY_NAME_MAPPINGS = {"KSampler": "KSampler", "KSamplerAdvanced": "KSampler (Advanced)"}
