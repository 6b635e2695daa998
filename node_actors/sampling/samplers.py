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
from collections.abc import Callable, Iterator
from types import MappingProxyType

import torch
from numpy.polynomial import Polynomial
from torch import Tensor

from node_actors.sampling.model_sampling import DiscreteSchedule
from node_actors.sampling.noise import NoiseSource

logger = logging.getLogger(__name__)

Denoiser = Callable[[Tensor, Tensor], Tensor]
StepCallback = Callable[[int, Tensor, Tensor, int], None]
SamplerFn = Callable[..., Tensor]

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


class _Run:
    """One sampling run: scalar noise levels, denoiser calls with a [B] sigma, step reports."""

    def __init__(
        self,
        denoiser: Denoiser,
        sigmas: Tensor,
        callback: StepCallback | None,
        noise: NoiseSource,
    ) -> None:
        self._denoiser = denoiser
        self._dtype = sigmas.dtype if sigmas.is_floating_point() else torch.float32
        self._callback = callback
        self._noise = noise
        # Python floats: step coefficients are computed in double precision.
        self.levels: list[float] = [float(s) for s in sigmas]
        self.total = max(len(self.levels) - 1, 0)

    def steps(self) -> Iterator[tuple[int, float, float]]:
        for i in range(self.total):
            yield i, self.levels[i], self.levels[i + 1]

    def denoise(self, x: Tensor, sigma: float) -> Tensor:
        sigma_b = torch.full((x.shape[0],), sigma, dtype=self._dtype, device=x.device)
        return self._denoiser(x, sigma_b)

    def report(self, i: int, x: Tensor, denoised: Tensor) -> None:
        if self._callback is not None:
            self._callback(i, x, denoised, self.total)

    def noise(self, sigma: float, sigma_next: float) -> Tensor:
        return self._noise(torch.tensor(sigma), torch.tensor(sigma_next))


def _step_to(x: Tensor, denoised: Tensor, sigma: float, sigma_to: float) -> Tensor:
    """First-order step along the ODE from sigma to sigma_to (Euler = DDIM = DPM-Solver++ 1).

    Written as a blend towards the prediction so a step to 0 returns it exactly.
    """
    if sigma_to == 0.0:
        return denoised
    return denoised + (x - denoised) * (sigma_to / sigma)


def _ancestral_split(sigma: float, sigma_next: float, eta: float = 1.0) -> tuple[float, float]:
    """Split the step to sigma_next into a deterministic part (down) and fresh noise (up).

    Chosen so that down^2 + up^2 = sigma_next^2; eta = 1 matches the DDPM posterior variance.
    """
    if sigma_next == 0.0:
        return 0.0, 0.0
    up = eta * math.sqrt(max(sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2, 0.0))
    up = min(up, sigma_next)
    down = math.sqrt(sigma_next**2 - up**2)
    return down, up


def sample_euler(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseSource,
    callback: StepCallback | None = None,
    schedule: DiscreteSchedule,
) -> Tensor:
    run = _Run(denoiser, sigmas, callback, noise)
    for i, sigma, sigma_next in run.steps():
        denoised = run.denoise(x, sigma)
        run.report(i, x, denoised)
        x = _step_to(x, denoised, sigma, sigma_next)
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
    run = _Run(denoiser, sigmas, callback, noise)
    for i, sigma, sigma_next in run.steps():
        denoised = run.denoise(x, sigma)
        run.report(i, x, denoised)
        down, up = _ancestral_split(sigma, sigma_next)
        x = _step_to(x, denoised, sigma, down)
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
    run = _Run(denoiser, sigmas, callback, noise)
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


def _dpm2_step(run: _Run, x: Tensor, denoised: Tensor, sigma: float, sigma_to: float) -> Tensor:
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
    run = _Run(denoiser, sigmas, callback, noise)
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
    run = _Run(denoiser, sigmas, callback, noise)
    for i, sigma, sigma_next in run.steps():
        denoised = run.denoise(x, sigma)
        run.report(i, x, denoised)
        down, up = _ancestral_split(sigma, sigma_next)
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
    run = _Run(denoiser, sigmas, callback, noise)
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


def sample_dpmpp_2s_ancestral(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseSource,
    callback: StepCallback | None = None,
    schedule: DiscreteSchedule,
) -> Tensor:
    run = _Run(denoiser, sigmas, callback, noise)
    for i, sigma, sigma_next in run.steps():
        denoised = run.denoise(x, sigma)
        run.report(i, x, denoised)
        down, up = _ancestral_split(sigma, sigma_next)
        if down == 0.0:
            x = denoised
            continue
        # Single-step DPM-Solver++(2S): predict at the log-midpoint, step with that prediction.
        sigma_mid = math.sqrt(sigma * down)
        x_mid = _step_to(x, denoised, sigma, sigma_mid)
        x = _step_to(x, run.denoise(x_mid, sigma_mid), sigma, down)
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
    run = _Run(denoiser, sigmas, callback, noise)
    blend = 1.0 / (2.0 * r)
    for i, sigma, sigma_next in run.steps():
        denoised = run.denoise(x, sigma)
        run.report(i, x, denoised)
        if sigma_next == 0.0:
            x = denoised
            continue
        # Stage 1: an ancestral step to the intermediate level at fraction r of the log-step.
        sigma_mid = sigma * (sigma_next / sigma) ** r
        down, up = _ancestral_split(sigma, sigma_mid)
        x_mid = _step_to(x, denoised, sigma, down) + run.noise(sigma, sigma_mid) * up
        denoised_mid = run.denoise(x_mid, sigma_mid)
        # Stage 2: the whole step from x, with the prediction extrapolated from both stages.
        combined = denoised * (1.0 - blend) + denoised_mid * blend
        down, up = _ancestral_split(sigma, sigma_next)
        x = _step_to(x, combined, sigma, down) + run.noise(sigma, sigma_next) * up
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
    run = _Run(denoiser, sigmas, callback, noise)
    previous: Tensor | None = None
    for i, sigma, sigma_next in run.steps():
        denoised = run.denoise(x, sigma)
        run.report(i, x, denoised)
        if previous is None or sigma_next == 0.0:
            x = _step_to(x, denoised, sigma, sigma_next)
        else:
            # Multistep: extrapolate the prediction linearly in log-sigma from the last two.
            h = math.log(sigma / sigma_next)
            h_last = math.log(run.levels[i - 1] / sigma)
            k = h / (2.0 * h_last)
            x = _step_to(x, denoised * (1.0 + k) - previous * k, sigma, sigma_next)
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
    run = _Run(denoiser, sigmas, callback, noise)
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
    run = _Run(denoiser, sigmas, callback, noise)
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
    run = _Run(denoiser, sigmas, callback, noise)
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
    run = _Run(denoiser, sigmas, callback, noise)
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
