"""The DPM-Solver++ family (Lu et al. 2022): 2S ancestral, 2M, and the SDE variants 2M/3M and
the single-step SDE sampler, in the same x0-prediction, sigma-space form as samplers.py."""

from __future__ import annotations

import math

from torch import Tensor

from node_actors.sampling.model_sampling import DiscreteSchedule
from node_actors.sampling.noise import NoiseSource
from node_actors.sampling.sampler_base import (
    Denoiser,
    Run,
    StepCallback,
    ancestral_split,
    step_to,
)


def sample_dpmpp_2s_ancestral(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseSource,
    callback: StepCallback | None = None,
    schedule: DiscreteSchedule,
) -> Tensor:
    run = Run(denoiser, sigmas, callback, noise)
    for i, sigma, sigma_next in run.steps():
        denoised = run.denoise(x, sigma)
        run.report(i, x, denoised)
        down, up = ancestral_split(sigma, sigma_next)
        if down == 0.0:
            x = denoised
            continue
        # Single-step DPM-Solver++(2S): predict at the log-midpoint, step with that prediction.
        sigma_mid = math.sqrt(sigma * down)
        x_mid = step_to(x, denoised, sigma, sigma_mid)
        x = step_to(x, run.denoise(x_mid, sigma_mid), sigma, down)
        if sigma_next > 0.0:
            x = x + run.noise(sigma, sigma_next) * up
    return x


def sample_dpmpp_sde(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseSource,
    callback: StepCallback | None = None,
    schedule: DiscreteSchedule,
    r: float = 0.5,
) -> Tensor:
    """DPM-Solver++ SDE, two stages per step; independent noise draws instead of a Brownian tree."""
    run = Run(denoiser, sigmas, callback, noise)
    blend = 1.0 / (2.0 * r)
    for i, sigma, sigma_next in run.steps():
        denoised = run.denoise(x, sigma)
        run.report(i, x, denoised)
        if sigma_next == 0.0:
            x = denoised
            continue
        # Stage 1: an ancestral step to the intermediate level at fraction r of the log-step.
        sigma_mid = sigma * (sigma_next / sigma) ** r
        down, up = ancestral_split(sigma, sigma_mid)
        x_mid = step_to(x, denoised, sigma, down) + run.noise(sigma, sigma_mid) * up
        denoised_mid = run.denoise(x_mid, sigma_mid)
        # Stage 2: the whole step from x, with the prediction extrapolated from both stages.
        combined = denoised * (1.0 - blend) + denoised_mid * blend
        down, up = ancestral_split(sigma, sigma_next)
        x = step_to(x, combined, sigma, down) + run.noise(sigma, sigma_next) * up
    return x


def sample_dpmpp_2m(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseSource,
    callback: StepCallback | None = None,
    schedule: DiscreteSchedule,
) -> Tensor:
    run = Run(denoiser, sigmas, callback, noise)
    previous: Tensor | None = None
    for i, sigma, sigma_next in run.steps():
        denoised = run.denoise(x, sigma)
        run.report(i, x, denoised)
        if previous is None or sigma_next == 0.0:
            x = step_to(x, denoised, sigma, sigma_next)
        else:
            # Multistep: extrapolate the prediction linearly in log-sigma from the last two.
            h = math.log(sigma / sigma_next)
            h_last = math.log(run.levels[i - 1] / sigma)
            k = h / (2.0 * h_last)
            x = step_to(x, denoised * (1.0 + k) - previous * k, sigma, sigma_next)
        previous = denoised
    return x


def sample_dpmpp_2m_sde(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseSource,
    callback: StepCallback | None = None,
    schedule: DiscreteSchedule,
) -> Tensor:
    """DPM-Solver++(2M) SDE with the midpoint correction, eta = 1."""
    run = Run(denoiser, sigmas, callback, noise)
    previous: Tensor | None = None
    h_last = 0.0
    for i, sigma, sigma_next in run.steps():
        denoised = run.denoise(x, sigma)
        run.report(i, x, denoised)
        if sigma_next == 0.0:
            x = denoised
        else:
            h = math.log(sigma / sigma_next)
            gain = -math.expm1(-2.0 * h)  # 1 - (sigma_next / sigma)^2
            x = x * (1.0 - gain) + denoised * gain
            if previous is not None:
                x = x + (denoised - previous) * (gain * 0.5 * h / h_last)
            x = x + run.noise(sigma, sigma_next) * (sigma_next * math.sqrt(gain))
            h_last = h
        previous = denoised
    return x


def sample_dpmpp_3m_sde(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseSource,
    callback: StepCallback | None = None,
    schedule: DiscreteSchedule,
) -> Tensor:
    """DPM-Solver++(3M) SDE, eta = 1: up to second differences of past predictions."""
    run = Run(denoiser, sigmas, callback, noise)
    past: list[Tensor] = []  # newest first
    past_h: list[float] = []  # newest first
    for i, sigma, sigma_next in run.steps():
        denoised = run.denoise(x, sigma)
        run.report(i, x, denoised)
        if sigma_next == 0.0:
            x = denoised
        else:
            h = math.log(sigma / sigma_next)
            h_eta = 2.0 * h
            gain = -math.expm1(-h_eta)
            x = x * (1.0 - gain) + denoised * gain
            phi_2 = 1.0 - gain / h_eta
            if len(past_h) >= 2:
                r0, r1 = past_h[0] / h, past_h[1] / h
                diff_0 = (denoised - past[0]) / r0
                diff_1 = (past[0] - past[1]) / r1
                first = diff_0 + (diff_0 - diff_1) * (r0 / (r0 + r1))
                second = (diff_0 - diff_1) / (r0 + r1)
                phi_3 = phi_2 / h_eta - 0.5
                x = x + first * phi_2 - second * phi_3
            elif past_h:
                x = x + (denoised - past[0]) * (phi_2 * h / past_h[0])
            x = x + run.noise(sigma, sigma_next) * (sigma_next * math.sqrt(gain))
            past_h = [h, *past_h[:1]]
        past = [denoised, *past[:1]]
    return x
