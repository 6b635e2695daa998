"""The custom-sampling family: sampler, sigmas, noise and guider as separate nodes.

SAMPLER, NOISE and GUIDER values are small picklable specs (a name, a seed, a model reference
with its conditioning); SIGMAS is a float tensor ending in 0 for a full denoise.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

from node_actors import context
from node_actors.library.sampling_nodes import MAX_SEED, step_reporter
from node_actors.models import runtime
from node_actors.models.families import FAMILIES
from node_actors.models.model_ref import ModelRef
from node_actors.sampling.ksampler import run_sampler, schedule_for, sigmas_for
from node_actors.sampling.noise import initial_noise
from node_actors.sampling.samplers import SAMPLER_NAMES
from node_actors.sampling.schedulers import SCHEDULER_NAMES, karras_sigmas

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SamplerSpec:
    sampler_name: str


@dataclass(frozen=True)
class NoiseSpec:
    """RandomNoise: the seed, or None for DisableNoise-style zero noise."""

    seed: int | None

    def generate(self, latent: dict[str, Any]) -> torch.Tensor:
        samples = latent["samples"]
        if self.seed is None:
            return torch.zeros_like(samples, dtype=torch.float32)
        return initial_noise(samples.shape, self.seed, latent.get("batch_index"))


@dataclass(frozen=True)
class GuiderSpec:
    model: ModelRef
    positive: Any
    negative: Any
    cfg: float


def _family(model: ModelRef) -> str:
    return model.family or "sd1"


class KSamplerSelect:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"sampler_name": (list(SAMPLER_NAMES),)}}

    RETURN_TYPES = ("SAMPLER",)
    FUNCTION = "get_sampler"
    CATEGORY = "sampling/custom_sampling/samplers"

    def get_sampler(self, sampler_name: str) -> tuple[SamplerSpec]:
        return (SamplerSpec(sampler_name),)


class BasicScheduler:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "model": ("MODEL",),
                "scheduler": (list(SCHEDULER_NAMES),),
                "steps": ("INT", {"default": 20, "min": 1, "max": 10000}),
                "denoise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01}),
            }
        }

    RETURN_TYPES = ("SIGMAS",)
    FUNCTION = "get_sigmas"
    CATEGORY = "sampling/custom_sampling/schedulers"

    def get_sigmas(
        self, model: ModelRef, scheduler: str, steps: int, denoise: float
    ) -> tuple[torch.Tensor]:
        # The schedule depends only on the family's prediction type: no weights are loaded.
        family = FAMILIES.get(_family(model))
        schedule = schedule_for(family.prediction if family else "eps")
        return (sigmas_for(schedule, scheduler, steps, denoise),)


class KarrasScheduler:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        sigma = {"min": 0.0, "max": 5000.0, "step": 0.01, "round": False}
        return {
            "required": {
                "steps": ("INT", {"default": 20, "min": 1, "max": 10000}),
                "sigma_max": ("FLOAT", {"default": 14.614642, **sigma}),
                "sigma_min": ("FLOAT", {"default": 0.0291675, **sigma}),
                "rho": (
                    "FLOAT",
                    {"default": 7.0, "min": 0.0, "max": 100.0, "step": 0.01, "round": False},
                ),
            }
        }

    RETURN_TYPES = ("SIGMAS",)
    FUNCTION = "get_sigmas"
    CATEGORY = "sampling/custom_sampling/schedulers"

    def get_sigmas(
        self, steps: int, sigma_max: float, sigma_min: float, rho: float
    ) -> tuple[torch.Tensor]:
        sigmas = karras_sigmas(steps, sigma_min, sigma_max, rho)
        if len(sigmas) == steps:  # without the final 0
            sigmas = torch.cat([sigmas, sigmas.new_zeros(1)])
        return (sigmas,)


class RandomNoise:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "noise_seed": (
                    "INT",
                    {"default": 0, "min": 0, "max": MAX_SEED, "control_after_generate": True},
                )
            }
        }

    RETURN_TYPES = ("NOISE",)
    FUNCTION = "get_noise"
    CATEGORY = "sampling/custom_sampling/noise"

    def get_noise(self, noise_seed: int) -> tuple[NoiseSpec]:
        return (NoiseSpec(noise_seed),)


class CFGGuider:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "model": ("MODEL",),
                "positive": ("CONDITIONING",),
                "negative": ("CONDITIONING",),
                "cfg": (
                    "FLOAT",
                    {"default": 8.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01},
                ),
            }
        }

    RETURN_TYPES = ("GUIDER",)
    FUNCTION = "get_guider"
    CATEGORY = "sampling/custom_sampling/guiders"

    def get_guider(
        self, model: ModelRef, positive: Any, negative: Any, cfg: float
    ) -> tuple[GuiderSpec]:
        return (GuiderSpec(model, positive, negative, cfg),)


def _run(
    guider: GuiderSpec,
    sampler: SamplerSpec,
    sigmas: torch.Tensor,
    latent: dict[str, Any],
    noise: NoiseSpec,
) -> tuple[dict[str, Any], dict[str, Any]]:
    family, unet = runtime.installed().unet(guider.model)
    result = run_sampler(
        unet=unet,
        schedule=schedule_for(family.prediction),
        sampler_name=sampler.sampler_name,
        sigmas=sigmas,
        latent=latent,
        positive=guider.positive,
        negative=guider.negative,
        cfg=guider.cfg,
        seed=noise.seed or 0,
        latent_scale=family.latent_scale,
        noise=noise.generate(latent),
        report=step_reporter(family.name),
        check_interrupted=context.throw_if_interrupted,
    )
    out = dict(latent)
    out["samples"] = result.samples
    denoised = dict(latent)
    denoised["samples"] = result.denoised
    return out, denoised


class SamplerCustom:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "model": ("MODEL",),
                "add_noise": ("BOOLEAN", {"default": True}),
                "noise_seed": (
                    "INT",
                    {"default": 0, "min": 0, "max": MAX_SEED, "control_after_generate": True},
                ),
                "cfg": (
                    "FLOAT",
                    {"default": 8.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01},
                ),
                "positive": ("CONDITIONING",),
                "negative": ("CONDITIONING",),
                "sampler": ("SAMPLER",),
                "sigmas": ("SIGMAS",),
                "latent_image": ("LATENT",),
            }
        }

    RETURN_TYPES = ("LATENT", "LATENT")
    RETURN_NAMES = ("output", "denoised_output")
    FUNCTION = "sample"
    CATEGORY = "sampling/custom_sampling"

    def sample(
        self,
        model: ModelRef,
        add_noise: bool,
        noise_seed: int,
        cfg: float,
        positive: Any,
        negative: Any,
        sampler: SamplerSpec,
        sigmas: torch.Tensor,
        latent_image: dict[str, Any],
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        guider = GuiderSpec(model, positive, negative, cfg)
        noise = NoiseSpec(noise_seed if add_noise else None)
        return _run(guider, sampler, sigmas, latent_image, noise)


class SamplerCustomAdvanced:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "noise": ("NOISE",),
                "guider": ("GUIDER",),
                "sampler": ("SAMPLER",),
                "sigmas": ("SIGMAS",),
                "latent_image": ("LATENT",),
            }
        }

    RETURN_TYPES = ("LATENT", "LATENT")
    RETURN_NAMES = ("output", "denoised_output")
    FUNCTION = "sample"
    CATEGORY = "sampling/custom_sampling"

    def sample(
        self,
        noise: NoiseSpec,
        guider: GuiderSpec,
        sampler: SamplerSpec,
        sigmas: torch.Tensor,
        latent_image: dict[str, Any],
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        return _run(guider, sampler, sigmas, latent_image, noise)


NODE_CLASS_MAPPINGS = {
    "SamplerCustom": SamplerCustom,
    "KSamplerSelect": KSamplerSelect,
    "BasicScheduler": BasicScheduler,
    "KarrasScheduler": KarrasScheduler,
    "RandomNoise": RandomNoise,
    "CFGGuider": CFGGuider,
    "SamplerCustomAdvanced": SamplerCustomAdvanced,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "SamplerCustom": "SamplerCustom",
    "KSamplerSelect": "KSamplerSelect",
    "BasicScheduler": "BasicScheduler",
    "KarrasScheduler": "KarrasScheduler",
    "RandomNoise": "RandomNoise",
    "CFGGuider": "CFGGuider",
    "SamplerCustomAdvanced": "SamplerCustomAdvanced",
}
