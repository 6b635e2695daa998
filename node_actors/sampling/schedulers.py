"""Sigma schedules for a sampling run, by ComfyUI's scheduler names.

Each scheduler picks `steps` noise levels from high to low and appends 0.0, so a run of n steps
walks n + 1 sigmas. Values are computed in float64 and returned as float32.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from types import MappingProxyType

import torch
from torch import Tensor

from node_actors.sampling.model_sampling import DiscreteSchedule

logger = logging.getLogger(__name__)

SCHEDULER_NAMES: tuple[str, ...] = (
    "simple",
    "sgm_uniform",
    "karras",
    "exponential",
    "ddim_uniform",
    "beta",
    "normal",
    "linear_quadratic",
    "kl_optimal",
)


class UnknownSchedulerError(ValueError):
    """The scheduler name is not one of SCHEDULER_NAMES."""


def _with_zero(values: Tensor) -> Tensor:
    """Append the final clean level and settle on float32."""
    tail = torch.zeros(1, dtype=values.dtype)
    return torch.cat([values, tail]).to(torch.float32)


def karras_sigmas(steps: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> Tensor:
    """Karras et al. (2022) schedule: uniform in sigma^(1/rho); `steps + 1` values ending in 0."""
    ramp = torch.linspace(0.0, 1.0, steps, dtype=torch.float64)
    top = sigma_max ** (1.0 / rho)
    bottom = sigma_min ** (1.0 / rho)
    return _with_zero((top + ramp * (bottom - top)) ** rho)


def exponential_sigmas(steps: int, sigma_min: float, sigma_max: float) -> Tensor:
    """Uniform in log-sigma from sigma_max to sigma_min; `steps + 1` values ending in 0."""
    logs = torch.linspace(math.log(sigma_max), math.log(sigma_min), steps, dtype=torch.float64)
    return _with_zero(logs.exp())


def _timestep_sigmas(schedule: DiscreteSchedule, steps: int, *, include_end: bool) -> Tensor:
    """Evenly spaced continuous timesteps from the top of the schedule down, mapped to sigmas."""
    start = float(schedule.timestep(torch.tensor(schedule.sigma_max)))
    end = float(schedule.timestep(torch.tensor(schedule.sigma_min)))
    if include_end:
        ts = torch.linspace(start, end, steps, dtype=torch.float64)
    else:
        # SGM spacing: steps + 1 points with the last (lowest) one dropped.
        ts = torch.linspace(start, end, steps + 1, dtype=torch.float64)[:-1]
    return _with_zero(schedule.sigma(ts.to(torch.float32)).to(torch.float64))


def _normal(schedule: DiscreteSchedule, steps: int) -> Tensor:
    return _timestep_sigmas(schedule, steps, include_end=True)


def _sgm_uniform(schedule: DiscreteSchedule, steps: int) -> Tensor:
    return _timestep_sigmas(schedule, steps, include_end=False)


def _simple(schedule: DiscreteSchedule, steps: int) -> Tensor:
    """Every (T/steps)-th trained sigma, counting down from the largest."""
    total = schedule.timesteps
    stride = total / steps
    indices = [total - 1 - int(i * stride) for i in range(steps)]
    return _with_zero(schedule.sigmas[indices].to(torch.float64))


def _ddim_uniform(schedule: DiscreteSchedule, steps: int) -> Tensor:
    """Trained sigmas at timesteps 1, 1 + c, 1 + 2c, ... (c = T // steps), largest first.

    As in ComfyUI, when steps does not divide T this yields more than `steps` levels.
    """
    stride = max(schedule.timesteps // steps, 1)
    indices = list(range(1, schedule.timesteps, stride))[::-1]
    return _with_zero(schedule.sigmas[indices].to(torch.float64))


def _beta(schedule: DiscreteSchedule, steps: int, alpha: float = 0.6, beta: float = 0.6) -> Tensor:
    """Timesteps at quantiles of a Beta(alpha, beta) distribution: dense at both ends of the run.

    Rounding to whole timesteps can make neighbours collide; repeats are dropped, so large step
    counts may yield fewer than `steps` levels (ComfyUI does the same).
    """
    # scipy.stats is slow to import; only this scheduler needs it.
    from scipy.stats import beta as beta_dist

    last = schedule.timesteps - 1
    # The top quantile is 1 (pure noise); the lowest is 1/steps, never 0.
    quantiles = 1.0 - torch.arange(steps, dtype=torch.float64).numpy() / steps
    timesteps = [int(round(float(q) * last)) for q in beta_dist.ppf(quantiles, alpha, beta)]
    kept: list[int] = []
    for t in timesteps:
        if not kept or kept[-1] != t:
            kept.append(t)
    return _with_zero(schedule.sigmas[kept].to(torch.float64))


def _linear_quadratic(
    schedule: DiscreteSchedule, steps: int, threshold_noise: float = 0.025
) -> Tensor:
    """SD3's ramp: linear up to threshold_noise over the first half, then a quadratic to 1.

    The quadratic continues the linear part with the same value and slope at the joint and reaches
    1 at the end; sigma = (1 - ramp) * sigma_max.
    """
    if steps == 1:
        ramp = torch.tensor([0.0, 1.0], dtype=torch.float64)
        return ((1.0 - ramp) * schedule.sigma_max).to(torch.float32)
    linear_steps = steps // 2
    quad_steps = steps - linear_steps
    slope = threshold_noise / linear_steps
    # Curvature that lifts value threshold + slope * quad_steps at the end up to exactly 1.
    curvature = (1.0 - threshold_noise - slope * quad_steps) / quad_steps**2
    values: list[float] = []
    for i in range(steps):
        if i < linear_steps:
            values.append(i * slope)
        else:
            k = i - linear_steps
            values.append(threshold_noise + slope * k + curvature * k * k)
    ramp = torch.tensor(values, dtype=torch.float64)
    return _with_zero((1.0 - ramp) * schedule.sigma_max)


def _kl_optimal(schedule: DiscreteSchedule, steps: int) -> Tensor:
    """The KL-optimal schedule (Align Your Steps appendix): uniform in atan(sigma)."""
    t = torch.linspace(0.0, 1.0, steps, dtype=torch.float64)
    angle = t * math.atan(schedule.sigma_min) + (1.0 - t) * math.atan(schedule.sigma_max)
    return _with_zero(angle.tan())


def _karras(schedule: DiscreteSchedule, steps: int) -> Tensor:
    return karras_sigmas(steps, schedule.sigma_min, schedule.sigma_max)


def _exponential(schedule: DiscreteSchedule, steps: int) -> Tensor:
    return exponential_sigmas(steps, schedule.sigma_min, schedule.sigma_max)


_SCHEDULERS: MappingProxyType[str, Callable[[DiscreteSchedule, int], Tensor]] = MappingProxyType(
    {
        "simple": _simple,
        "sgm_uniform": _sgm_uniform,
        "karras": _karras,
        "exponential": _exponential,
        "ddim_uniform": _ddim_uniform,
        "beta": _beta,
        "normal": _normal,
        "linear_quadratic": _linear_quadratic,
        "kl_optimal": _kl_optimal,
    }
)


def calculate_sigmas(schedule: DiscreteSchedule, scheduler: str, steps: int) -> Tensor:
    """The sigmas of a `steps`-step run: float32, non-increasing, ending in 0.0.

    The length is steps + 1, except for ddim_uniform (steps not dividing T) and beta (colliding
    timesteps), which keep ComfyUI's lengths. steps == 0 gives an empty tensor.
    """
    make = _SCHEDULERS.get(scheduler)
    if make is None:
        raise UnknownSchedulerError(
            f"unknown scheduler {scheduler!r}; expected one of {', '.join(SCHEDULER_NAMES)}"
        )
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if steps == 0:
        return torch.zeros(0, dtype=torch.float32)
    sigmas = make(schedule, steps)
    logger.debug("scheduler %s steps=%d -> %d sigmas", scheduler, steps, sigmas.numel())
    return sigmas
