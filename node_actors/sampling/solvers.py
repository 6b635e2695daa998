"""Exponential-integrator ODE solvers behind ComfyUI's dpm_fast, dpm_adaptive, uni_pc, uni_pc_bh2.

All four integrate the probability-flow ODE of the variance-exploding parameterization
x = x0 + sigma * eps in log-SNR time lambda = -log(sigma), where the linear part of the ODE is solved
exactly and only the network's prediction is approximated by a polynomial in lambda.

- DPM-Solver (Lu et al. 2022) in its noise-prediction form: singlestep solvers of order 1-3, the
  "fast" order split of a fixed budget of model calls, and the adaptive DPM-Solver-12/23.
- UniPC (Zhao et al. 2023) in its data-prediction form: multistep UniP predictor plus UniC
  corrector, which reuses the model call made at the predicted point, with B(h) variant bh1 or bh2.

Written from the papers' equations; pure torch, no I/O.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from node_actors.sampling.sampler_base import Denoiser, SamplerFn, StepCallback

if TYPE_CHECKING:
    from node_actors.sampling.model_sampling import DiscreteSchedule
    from node_actors.sampling.noise import NoiseSource

logger = logging.getLogger(__name__)


class SolverError(RuntimeError):
    """A solver could not finish (for example the adaptive step size collapsed)."""


# The paper's fixed splits of one step for the singlestep solvers.
_DPM2_R1 = 0.5
_DPM3_R1, _DPM3_R2 = 1.0 / 3.0, 2.0 / 3.0
# Bounds the adaptive loop so a denoiser returning NaN cannot spin forever.
_MAX_ADAPTIVE_ATTEMPTS = 100_000
# Below this lambda gap the adaptive loop treats the end as reached (float noise in t).
_T_END_SLACK = 1e-5


class _Model:
    """The denoiser seen as functions of (x, sigma as a Python float), counting calls for logs."""

    def __init__(self, denoiser: Denoiser, sigma_dtype: torch.dtype) -> None:
        self._denoiser = denoiser
        self._sigma_dtype = sigma_dtype
        self.calls = 0

    def denoised(self, x: Tensor, sigma: float) -> Tensor:
        self.calls += 1
        sigma_b = torch.full((x.shape[0],), sigma, dtype=self._sigma_dtype, device=x.device)
        return self._denoiser(x, sigma_b)

    def eps_and_denoised(self, x: Tensor, sigma: float) -> tuple[Tensor, Tensor]:
        den = self.denoised(x, sigma)
        return (x - den) / sigma, den


def _sigma(lam: float) -> float:
    return math.exp(-lam)


def _lam(sigma: float) -> float:
    return -math.log(sigma)


def _notify(callback: StepCallback | None, i: int, x: Tensor, den: Tensor, total: int) -> None:
    if callback is not None:
        callback(i, x, den, total)


def _solve_range(sigmas: Tensor) -> tuple[list[float], float, bool]:
    """Float sigmas, the last non-zero one, and whether the run ends at sigma 0."""
    sig = [float(s) for s in sigmas]
    ends_at_zero = sig[-1] == 0.0
    return sig, (sig[-2] if ends_at_zero else sig[-1]), ends_at_zero


# --- DPM-Solver, noise-prediction form: x_t = x_s - sigma_t * (e^h - 1) * eps + corrections ---


def _dpm1(x: Tensor, t: float, h: float, eps_s: Tensor) -> Tensor:
    return x - _sigma(t) * math.expm1(h) * eps_s


def _dpm2(
    model: _Model, x: Tensor, s: float, t: float, eps_s: Tensor, r1: float
) -> tuple[Tensor, Tensor]:
    """DPM-Solver-2 (one extra call at s + r1*h); also returns that call's eps for reuse."""
    h = t - s
    s1 = s + r1 * h
    u1 = _dpm1(x, s1, r1 * h, eps_s)
    eps_1, _ = model.eps_and_denoised(u1, _sigma(s1))
    x_t = _dpm1(x, t, h, eps_s) - _sigma(t) / (2.0 * r1) * math.expm1(h) * (eps_1 - eps_s)
    return x_t, eps_1


def _dpm3(
    model: _Model,
    x: Tensor,
    s: float,
    t: float,
    eps_s: Tensor,
    eps_1: Tensor | None = None,
) -> Tensor:
    """DPM-Solver-3 with r1 = 1/3, r2 = 2/3; eps_1 (at s + h/3) may come from a DPM-Solver-2."""
    h = t - s
    s1, s2 = s + _DPM3_R1 * h, s + _DPM3_R2 * h
    if eps_1 is None:
        u1 = _dpm1(x, s1, _DPM3_R1 * h, eps_s)
        eps_1, _ = model.eps_and_denoised(u1, _sigma(s1))
    d1 = eps_1 - eps_s
    r2h = _DPM3_R2 * h
    u2 = (
        _dpm1(x, s2, r2h, eps_s)
        - _sigma(s2) * (_DPM3_R2 / _DPM3_R1) * (math.expm1(r2h) / r2h - 1.0) * d1
    )
    eps_2, _ = model.eps_and_denoised(u2, _sigma(s2))
    return _dpm1(x, t, h, eps_s) - _sigma(t) / _DPM3_R2 * (math.expm1(h) / h - 1.0) * (
        eps_2 - eps_s
    )


def fast_orders(nfe: int) -> list[int]:
    """The paper's split of a budget of model calls into singlestep orders (sum == nfe)."""
    if nfe < 1:
        return []
    steps = nfe // 3 + 1
    if nfe % 3 == 0:
        return [3] * (steps - 2) + [2, 1]
    return [3] * (steps - 1) + [nfe % 3]


def sample_dpm_fast(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseSource,
    callback: StepCallback | None,
    schedule: DiscreteSchedule,
) -> Tensor:
    """DPM-Solver-fast from sigmas[0] to the last non-zero sigma with len(sigmas)-1 model calls,
    steps uniform in lambda; a run ending at sigma 0 adds one call that denoises at that sigma.
    Deterministic (eta 0): `noise` and `schedule` are not needed."""
    if len(sigmas) <= 1:
        return x
    sig, sigma_end, ends_at_zero = _solve_range(sigmas)
    model = _Model(denoiser, sigmas.dtype)
    t_start, t_end = _lam(sig[0]), _lam(sigma_end)
    orders = fast_orders(len(sig) - 1) if t_end > t_start else []
    total = len(orders) + int(ends_at_zero)
    ts = torch.linspace(t_start, t_end, len(orders) + 1, dtype=torch.float64).tolist()
    for i, order in enumerate(orders):
        s, t = ts[i], ts[i + 1]
        eps_s, den = model.eps_and_denoised(x, _sigma(s))
        _notify(callback, i, x, den, total)
        if order == 1:
            x = _dpm1(x, t, t - s, eps_s)
        elif order == 2:
            x, _ = _dpm2(model, x, s, t, eps_s, _DPM2_R1)
        else:
            x = _dpm3(model, x, s, t, eps_s)
    if ends_at_zero:
        # The exact first-order step from sigma_end to 0 is the denoised prediction itself.
        x_end = x
        x = model.denoised(x_end, sigma_end)
        _notify(callback, len(orders), x_end, x, total)
    logger.debug("dpm_fast: %d steps, %d model calls", total, model.calls)
    return x


class _StepSizeController:
    """PID step-size control on the scaled error (Soderlind's digital filter with a smooth
    arctangent limiter): a step is accepted when the proposed growth factor stays above
    `accept_safety`; the next h is the current h times that factor either way."""

    def __init__(
        self,
        h: float,
        *,
        pcoeff: float,
        icoeff: float,
        dcoeff: float,
        order: float,
        accept_safety: float,
    ) -> None:
        self.h = h
        self._b1 = (pcoeff + icoeff + dcoeff) / order
        self._b2 = -(pcoeff + 2.0 * dcoeff) / order
        self._b3 = dcoeff / order
        self._accept_safety = accept_safety
        self._history: list[float] = []

    def propose(self, error: float) -> bool:
        inv = 1.0 / (error + 1e-8)
        if not self._history:
            self._history = [inv, inv]
        prev1, prev2 = self._history
        factor = inv**self._b1 * prev1**self._b2 * prev2**self._b3
        factor = 1.0 + math.atan(factor - 1.0)
        accepted = factor >= self._accept_safety
        if accepted:
            self._history = [inv, prev1]
        self.h *= factor
        return accepted


def sample_dpm_adaptive(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseSource,
    callback: StepCallback | None,
    schedule: DiscreteSchedule,
    order: int = 3,
    rtol: float = 0.05,
    atol: float = 0.0078,
    h_init: float = 0.05,
    pcoeff: float = 0.0,
    icoeff: float = 1.0,
    dcoeff: float = 0.0,
    accept_safety: float = 0.81,
) -> Tensor:
    """Adaptive DPM-Solver-23 (order 3) or -12 (order 2) from sigmas[0] to the last non-zero
    sigma; the number of steps in `sigmas` is ignored. A run ending at sigma 0 finishes with one
    denoise. Callbacks come once per accepted step, with total len(sigmas) - 1 (not known ahead)."""
    if order not in (2, 3):
        raise ValueError(f"dpm_adaptive order must be 2 or 3, got {order}")
    if len(sigmas) <= 1:
        return x
    sig, sigma_end, ends_at_zero = _solve_range(sigmas)
    total = len(sig) - 1
    model = _Model(denoiser, sigmas.dtype)
    control = _StepSizeController(
        h_init,
        pcoeff=pcoeff,
        icoeff=icoeff,
        dcoeff=dcoeff,
        order=order,
        accept_safety=accept_safety,
    )
    s, t_end = _lam(sig[0]), _lam(sigma_end)
    start: tuple[Tensor, Tensor] | None = None  # eps and denoised at s, kept across rejections
    accepted = attempts = 0
    while s < t_end - _T_END_SLACK:
        attempts += 1
        if attempts > _MAX_ADAPTIVE_ATTEMPTS or not math.isfinite(control.h) or control.h <= 0:
            raise SolverError(
                f"dpm_adaptive gave up at sigma {_sigma(s):.6g} after {accepted} steps"
            )
        t = min(t_end, s + control.h)
        if start is None:
            start = model.eps_and_denoised(x, _sigma(s))
        eps_s, den_s = start
        if order == 3:
            x_low, eps_1 = _dpm2(model, x, s, t, eps_s, _DPM3_R1)
            x_high = _dpm3(model, x, s, t, eps_s, eps_1)
        else:
            x_low = _dpm1(x, t, t - s, eps_s)
            x_high, _ = _dpm2(model, x, s, t, eps_s, _DPM2_R1)
        scale = torch.maximum(x_low.abs(), x.abs()) * rtol
        scale = scale.clamp_min(atol)
        error = float(((x_high - x_low) / scale).double().pow(2).mean().sqrt())
        if control.propose(error):
            _notify(callback, accepted, x, den_s, total)
            x, s, start = x_high, t, None
            accepted += 1
    if ends_at_zero:
        x_end = x
        x = model.denoised(x_end, sigma_end)
        _notify(callback, accepted, x_end, x, total)
    logger.debug(
        "dpm_adaptive: %d accepted of %d attempts, %d model calls", accepted, attempts, model.calls
    )
    return x


# --- UniPC, data-prediction form: x_t = (sigma_t/sigma_s) x_s + (1 - e^-h) x0_s + B(h) * sum ---


def _phi_integral(k: int, h: float) -> float:
    """g_k(h) = integral over u in [0, h] of e^(u-h) u^k / k!: the weight of the k-th lambda
    derivative of x0 in the exact data-prediction step (g_0 = 1 - e^-h)."""
    if h < 1.0:
        # The recursion below cancels catastrophically for small h; the series converges fast.
        term = h ** (k + 1) / math.factorial(k + 1)
        total, j = 0.0, 0
        while abs(term) > 1e-18 * abs(total) or j == 0:
            total += term
            j += 1
            term *= -h / (k + 1 + j)
        return total
    g = -math.expm1(-h)
    for i in range(1, k + 1):
        g = h**i / math.factorial(i) - g
    return g


def _unipc_coefficients(rs: list[float], h: float, b_h: float) -> list[float]:
    """Weights a_m with sum_m a_m r_m^(k-1) = k! g_k(h) / (h^k B(h)) for k = 1..len(rs), so that
    B(h) * sum_m a_m D_m / r_m matches the Taylor terms of the exact step to that order."""
    n = len(rs)
    if n == 1:
        # The paper's choice for a single difference: any B(h) = O(h) keeps the order.
        return [0.5]
    vander = torch.tensor(
        [[r ** (k - 1) for r in rs] for k in range(1, n + 1)], dtype=torch.float64
    )
    rhs = torch.tensor(
        [math.factorial(k) * _phi_integral(k, h) / (h**k * b_h) for k in range(1, n + 1)],
        dtype=torch.float64,
    )
    return torch.linalg.solve(vander, rhs).tolist()


def _unipc_update(
    x: Tensor,
    ratio: float,
    h: float,
    b_h: float,
    history: list[tuple[float, Tensor]],
    order: int,
    x0_new: Tensor | None,
) -> Tensor:
    """UniP (x0_new None) or UniC (x0_new = model output at the predicted point) of `order`."""
    lam_s, x0_s = history[-1]
    base = x * ratio + x0_s * (1.0 - ratio)
    rs: list[float] = []
    diffs: list[Tensor] = []
    for lam_m, x0_m in reversed(history[-order:-1]):
        rs.append((lam_m - lam_s) / h)
        diffs.append(x0_m - x0_s)
    if x0_new is not None:
        rs.append(1.0)
        diffs.append(x0_new - x0_s)
    if not rs:
        return base
    for a_m, r_m, d_m in zip(_unipc_coefficients(rs, h, b_h), rs, diffs, strict=True):
        base = base + d_m * (b_h * a_m / r_m)
    return base


def _sample_unipc(
    denoiser: Denoiser, x: Tensor, sigmas: Tensor, callback: StepCallback | None, variant: str
) -> Tensor:
    if len(sigmas) <= 1:
        return x
    sig = [float(s) for s in sigmas]
    steps = len(sig) - 1
    model = _Model(denoiser, sigmas.dtype)
    history: list[tuple[float, Tensor]] = [(_lam(sig[0]), model.denoised(x, sig[0]))]
    for i in range(steps):
        s, t = sig[i], sig[i + 1]
        _notify(callback, i, x, history[-1][1], steps)
        if t == 0.0:
            # h is infinite: the step's first-order limit is the denoised prediction itself.
            x = history[-1][1]
            break
        if t == s:
            continue  # a repeated sigma is a zero-length step
        order = min(3, i + 1, steps - i)
        h = _lam(t) - _lam(s)
        ratio = t / s
        b_h = h if variant == "bh1" else -math.expm1(-h)
        x_pred = _unipc_update(x, ratio, h, b_h, history, order, None)
        if i == steps - 1:
            x = x_pred
            break
        x0_t = model.denoised(x_pred, t)
        x = _unipc_update(x, ratio, h, b_h, history, order, x0_t)
        history = [*history[-2:], (_lam(t), x0_t)]
    logger.debug("uni_pc(%s): %d steps, %d model calls", variant, steps, model.calls)
    return x


def sample_uni_pc(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseSource,
    callback: StepCallback | None,
    schedule: DiscreteSchedule,
) -> Tensor:
    """UniPC order 3 (lower while warming up and near the end), B(h) = h, one call per step."""
    return _sample_unipc(denoiser, x, sigmas, callback, "bh1")


def sample_uni_pc_bh2(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseSource,
    callback: StepCallback | None,
    schedule: DiscreteSchedule,
) -> Tensor:
    """UniPC with the bh2 choice, B(h) = e^h - 1 written in data-prediction time (h -> -h)."""
    return _sample_unipc(denoiser, x, sigmas, callback, "bh2")


SOLVERS: dict[str, SamplerFn] = {
    "dpm_fast": sample_dpm_fast,
    "dpm_adaptive": sample_dpm_adaptive,
    "uni_pc": sample_uni_pc,
    "uni_pc_bh2": sample_uni_pc_bh2,
}
