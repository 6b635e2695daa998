"""One sampling run as the KSampler nodes do it: noise, sigmas (denoise, start/end steps),
the inpaint mask, the sampler loop with per-step progress and latent previews.

Pure torch plus the caller's callbacks: node code supplies the UNet (from the model cache),
the progress sink and the interrupt check.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from node_actors.sampling.guidance import (
    Conditioning,
    GuidedDenoiser,
    InpaintDenoiser,
    prepare_mask,
)
from node_actors.sampling.model_sampling import DiscreteSchedule
from node_actors.sampling.noise import initial_noise, make_noise_source
from node_actors.sampling.samplers import get_sampler
from node_actors.sampling.schedulers import calculate_sigmas

logger = logging.getLogger(__name__)

StepReport = Callable[[int, int, torch.Tensor], None]
"""(step number starting at 1, total steps, x0 prediction of that step) -> None"""


def schedule_for(prediction: str) -> DiscreteSchedule:
    return DiscreteSchedule(prediction="v" if prediction == "v" else "eps")


def sigmas_for(
    schedule: DiscreteSchedule, scheduler: str, steps: int, denoise: float = 1.0
) -> torch.Tensor:
    """The node's sigmas: with denoise < 1, the tail of a longer schedule (ComfyUI's rule)."""
    if denoise <= 0.0:
        return torch.zeros((0,), dtype=torch.float32)
    total = steps if denoise >= 0.9999 else int(steps / denoise)
    return calculate_sigmas(schedule, scheduler, total)[-(steps + 1) :]


def trim_sigmas(
    sigmas: torch.Tensor, steps: int, start_step: int | None, last_step: int | None, full: bool
) -> torch.Tensor:
    """KSamplerAdvanced's start/end steps; `full` forces the last sigma to 0."""
    if last_step is not None and last_step < len(sigmas) - 1:
        sigmas = sigmas[: last_step + 1].clone()
        if full:
            sigmas[-1] = 0.0
    if start_step is not None:
        if start_step < len(sigmas) - 1:
            sigmas = sigmas[start_step:]
        else:
            return sigmas[:0]
    return sigmas


def _inpaint_concat(unet: Any, source: torch.Tensor, mask: torch.Tensor | None) -> Any:
    """For inpainting UNets (4 + 5 input channels): the mask, then the masked image's latent."""
    extra = int(getattr(unet.config, "in_channels", source.shape[1])) - source.shape[1]
    if extra != 5:
        return None
    if mask is None:
        full = torch.ones((source.shape[0], 1, *source.shape[-2:]), dtype=source.dtype)
    else:
        full = prepare_mask(mask, source).round()
    return torch.cat([full, source], dim=1)


@dataclass
class SamplingResult:
    samples: torch.Tensor
    denoised: torch.Tensor  # the last step's x0 prediction (SamplerCustom's denoised_output)


def run_sampler(
    *,
    unet: Any,
    schedule: DiscreteSchedule,
    sampler_name: str,
    sigmas: torch.Tensor,
    latent: dict[str, Any],
    positive: Conditioning,
    negative: Conditioning,
    cfg: float,
    seed: int,
    latent_scale: float = 1.0,
    add_noise: bool = True,
    noise: torch.Tensor | None = None,
    report: StepReport | None = None,
    check_interrupted: Callable[[], None] | None = None,
) -> SamplingResult:
    # LATENT holds the VAE's raw latents (as ComfyUI's do); the model works on scaled ones.
    raw = latent["samples"].to(torch.float32)
    source = raw * latent_scale
    if len(sigmas) <= 1:
        # Nothing to do (denoise 0, or start at or past the end): the latent comes back as is.
        return SamplingResult(raw.clone(), raw.clone())
    if noise is None:
        noise = (
            initial_noise(source.shape, seed, latent.get("batch_index"))
            if add_noise
            else torch.zeros_like(source)
        )
    mask = latent.get("noise_mask")
    denoiser: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = GuidedDenoiser(
        unet,
        schedule,
        positive,
        negative,
        cfg,
        check_interrupted=check_interrupted,
        concat=_inpaint_concat(unet, source, mask),
    )
    if mask is not None:
        denoiser = InpaintDenoiser(denoiser, source, noise, prepare_mask(mask, source))
    sigma0 = float(sigmas[0])
    max_denoise = (
        math.isclose(schedule.sigma_max, sigma0, rel_tol=1e-5) or sigma0 > schedule.sigma_max
    )
    x = schedule.noise_scaling(sigmas[:1], noise, source, max_denoise)
    last: list[torch.Tensor] = [source]
    total = len(sigmas) - 1

    def callback(index: int, _x: torch.Tensor, denoised: torch.Tensor, steps: int) -> None:
        last[0] = denoised
        if check_interrupted is not None:
            check_interrupted()
        if report is not None:
            report(index + 1, steps or total, denoised)

    sampler = get_sampler(sampler_name)
    with torch.no_grad():
        samples = sampler(
            denoiser,
            x,
            sigmas.to(torch.float32),
            noise=make_noise_source(x, seed),
            callback=callback,
            schedule=schedule,
        )
    samples = schedule.inverse_noise_scaling(sigmas[-1:], samples)
    if mask is not None:
        keep = prepare_mask(mask, source)
        samples = samples * keep + source * (1.0 - keep)
    return SamplingResult(samples / latent_scale, last[0] / latent_scale)
