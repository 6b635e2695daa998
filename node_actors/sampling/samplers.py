"""Samplers by ComfyUI's names, written from the published algorithms.

All work in the variance-exploding parameterization x = x0 + sigma * eps: the denoiser maps a
sample at noise level sigma to a prediction of x0, and each step moves from sigmas[i] to
sigmas[i + 1]. Ancestral and SDE samplers use eta = 1 and s_noise = 1 and draw their noise from
the NoiseSource they are given.

References: Karras et al. 2022 (Euler, Heun, DPM2, ancestral split); Lu et al. 2022
(DPM-Solver++ 2S/2M/SDE/3M); Ho et al. 2020 (DDPM posterior); Luo et al. 2023 (LCM).
"""

from __future__ import annotations

import importlib
import logging
import math
from types import MappingProxyType

from numpy.polynomial import Polynomial
from torch import Tensor

from node_actors.sampling.dpmpp import (
    sample_dpmpp_2m,
    sample_dpmpp_2m_sde,
    sample_dpmpp_2s_ancestral,
    sample_dpmpp_3m_sde,
    sample_dpmpp_sde,
)
from node_actors.sampling.model_sampling import DiscreteSchedule
from node_actors.sampling.noise import NoiseSource
from node_actors.sampling.sampler_base import (
    Denoiser,
    Run,
    SamplerFn,
    StepCallback,
    ancestral_split,
    step_to,
)

logger = logging.getLogger(__name__)

SAMPLER_NAMES: tuple[str, ...] = (
    "euler",
    "euler_ancestral",
    "heun",
    "dpm_2",
    "dpm_2_ancestral",
    "lms",
    "dpm_fast",
    "dpm_adaptive",
    "dpmpp_2s_ancestral",
    "dpmpp_sde",
    "dpmpp_sde_gpu",
    "dpmpp_2m",
    "dpmpp_2m_sde",
    "dpmpp_2m_sde_gpu",
    "dpmpp_3m_sde",
    "dpmpp_3m_sde_gpu",
    "ddpm",
    "lcm",
    "ddim",
    "uni_pc",
    "uni_pc_bh2",
)

# Implemented in node_actors.sampling.solvers, imported on first use.
SOLVER_NAMES: frozenset[str] = frozenset({"dpm_fast", "dpm_adaptive", "uni_pc", "uni_pc_bh2"})

_LMS_ORDER = 4


class UnknownSamplerError(ValueError):
    """The sampler name is not one of SAMPLER_NAMES, or its implementation is unavailable."""


def sample_euler(
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
        x = step_to(x, denoised, sigma, sigma_next)
    return x


def sample_euler_ancestral(
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
        x = step_to(x, denoised, sigma, down)
        if sigma_next > 0.0:
            x = x + run.noise(sigma, sigma_next) * up
    return x


def sample_heun(
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
        if sigma_next == 0.0:
            # The corrector would need the slope at sigma 0, which is undefined.
            x = denoised
            continue
        slope = (x - denoised) / sigma
        dt = sigma_next - sigma
        x_pred = x + slope * dt
        slope_next = (x_pred - run.denoise(x_pred, sigma_next)) / sigma_next
        x = x + (slope + slope_next) * (dt / 2.0)
    return x


def _dpm2_step(run: Run, x: Tensor, denoised: Tensor, sigma: float, sigma_to: float) -> Tensor:
    """DPM-Solver-2: evaluate the slope at the log-midpoint and take the full step with it."""
    sigma_mid = math.sqrt(sigma * sigma_to)
    slope = (x - denoised) / sigma
    x_mid = x + slope * (sigma_mid - sigma)
    slope_mid = (x_mid - run.denoise(x_mid, sigma_mid)) / sigma_mid
    return x + slope_mid * (sigma_to - sigma)


def sample_dpm_2(
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
        if sigma_next == 0.0:
            x = denoised
        else:
            x = _dpm2_step(run, x, denoised, sigma, sigma_next)
    return x


def sample_dpm_2_ancestral(
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
        x = _dpm2_step(run, x, denoised, sigma, down)
        x = x + run.noise(sigma, sigma_next) * up
    return x


def lms_coefficients(levels: list[float], i: int, order: int) -> list[float]:
    """Weights of the last `order` slopes (newest first) for the step levels[i] -> levels[i + 1].

    Each weight is the integral over the step of a Lagrange basis polynomial through the past
    noise levels; the polynomials have degree < 4, so the integral is computed exactly.
    """
    nodes = [levels[i - j] for j in range(order)]
    weights: list[float] = []
    for j, node in enumerate(nodes):
        others = [n for k, n in enumerate(nodes) if k != j]
        denominator = math.prod(node - n for n in others)
        basis = Polynomial.fromroots(others) if others else Polynomial([1.0])
        antiderivative = (basis / denominator).integ()
        weights.append(float(antiderivative(levels[i + 1]) - antiderivative(levels[i])))
    return weights


def sample_lms(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseSource,
    callback: StepCallback | None = None,
    schedule: DiscreteSchedule,
) -> Tensor:
    run = Run(denoiser, sigmas, callback, noise)
    slopes: list[Tensor] = []
    for i, sigma, sigma_next in run.steps():
        denoised = run.denoise(x, sigma)
        run.report(i, x, denoised)
        slopes.append((x - denoised) / sigma)
        if len(slopes) > _LMS_ORDER:
            slopes.pop(0)
        if sigma_next == 0.0 and len(slopes) == 1:
            x = denoised
            continue
        weights = lms_coefficients(run.levels, i, len(slopes))
        for weight, slope in zip(weights, reversed(slopes), strict=True):
            x = x + slope * weight
    return x


def sample_ddpm(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseSource,
    callback: StepCallback | None = None,
    schedule: DiscreteSchedule,
) -> Tensor:
    """Ancestral DDPM: sample the posterior q(x_prev | x_t, x0) in the variance-preserving frame.

    alpha_cumprod is recovered from sigma (sigma^2 = (1 - acp) / acp, the schedule's definition),
    which also holds between the trained timesteps.
    """
    run = Run(denoiser, sigmas, callback, noise)
    for i, sigma, sigma_next in run.steps():
        denoised = run.denoise(x, sigma)
        run.report(i, x, denoised)
        if sigma_next == 0.0:
            x = denoised
            continue
        acp = 1.0 / (1.0 + sigma**2)
        acp_next = 1.0 / (1.0 + sigma_next**2)
        alpha = acp / acp_next
        x_vp = x * math.sqrt(acp)
        mean = denoised * (math.sqrt(acp_next) * (1.0 - alpha) / (1.0 - acp)) + x_vp * (
            math.sqrt(alpha) * (1.0 - acp_next) / (1.0 - acp)
        )
        std = math.sqrt((1.0 - alpha) * (1.0 - acp_next) / (1.0 - acp))
        x_vp_next = mean + run.noise(sigma, sigma_next) * std
        x = x_vp_next / math.sqrt(acp_next)
    return x


def sample_lcm(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseSource,
    callback: StepCallback | None = None,
    schedule: DiscreteSchedule,
) -> Tensor:
    """Latent consistency sampling: jump to the prediction, then re-noise to the next level."""
    run = Run(denoiser, sigmas, callback, noise)
    for i, sigma, sigma_next in run.steps():
        denoised = run.denoise(x, sigma)
        run.report(i, x, denoised)
        x = denoised
        if sigma_next > 0.0:
            x = denoised + run.noise(sigma, sigma_next) * sigma_next
    return x


_SAMPLERS: MappingProxyType[str, SamplerFn] = MappingProxyType(
    {
        "euler": sample_euler,
        "euler_ancestral": sample_euler_ancestral,
        "heun": sample_heun,
        "dpm_2": sample_dpm_2,
        "dpm_2_ancestral": sample_dpm_2_ancestral,
        "lms": sample_lms,
        "dpmpp_2s_ancestral": sample_dpmpp_2s_ancestral,
        "dpmpp_sde": sample_dpmpp_sde,
        # The *_gpu variants differ in ComfyUI only by where noise is drawn; ours always come
        # from the CPU generator, so they are the same function.
        "dpmpp_sde_gpu": sample_dpmpp_sde,
        "dpmpp_2m": sample_dpmpp_2m,
        "dpmpp_2m_sde": sample_dpmpp_2m_sde,
        "dpmpp_2m_sde_gpu": sample_dpmpp_2m_sde,
        "dpmpp_3m_sde": sample_dpmpp_3m_sde,
        "dpmpp_3m_sde_gpu": sample_dpmpp_3m_sde,
        "ddpm": sample_ddpm,
        "lcm": sample_lcm,
        # ComfyUI's "ddim" is the deterministic first-order step, the same update as Euler.
        "ddim": sample_euler,
    }
)


def _solver(name: str) -> SamplerFn:
    try:
        module = importlib.import_module("node_actors.sampling.solvers")
    except ImportError as exc:
        logger.warning("sampler %s unavailable: solvers module failed to import: %s", name, exc)
        raise UnknownSamplerError(f"sampler {name!r} is not available: {exc}") from exc
    solvers: dict[str, SamplerFn] = getattr(module, "SOLVERS", {})
    fn = solvers.get(name)
    if fn is None:
        raise UnknownSamplerError(f"sampler {name!r} is not provided by the solvers module")
    return fn


def get_sampler(name: str) -> SamplerFn:
    """The sampler function for a ComfyUI sampler name."""
    fn = _SAMPLERS.get(name)
    if fn is not None:
        return fn
    if name in SOLVER_NAMES:
        return _solver(name)
    raise UnknownSamplerError(
        f"unknown sampler {name!r}; expected one of {', '.join(SAMPLER_NAMES)}"
    )
