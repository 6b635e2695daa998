"""Samplers and seeded noise (node_actors/sampling), on denoisers with analytic answers."""

from __future__ import annotations

import math
import sys
import types

import pytest
import torch
from torch import Tensor

from node_actors.sampling.model_sampling import DiscreteSchedule
from node_actors.sampling.noise import initial_noise, make_noise_source
from node_actors.sampling.samplers import (
    SAMPLER_NAMES,
    SOLVER_NAMES,
    UnknownSamplerError,
    get_sampler,
    lms_coefficients,
)
from node_actors.sampling.schedulers import calculate_sigmas, karras_sigmas

SCHEDULE = DiscreteSchedule()
LOCAL = tuple(n for n in SAMPLER_NAMES if n not in SOLVER_NAMES)
DETERMINISTIC = ("euler", "heun", "dpm_2", "lms", "dpmpp_2m", "ddim")
SECOND_ORDER = ("heun", "lms", "dpmpp_2m")
STOCHASTIC = tuple(n for n in LOCAL if n not in DETERMINISTIC)
ANCESTRAL_CONSISTENT = tuple(n for n in STOCHASTIC if n != "lcm")
MU, S = 0.3, 0.5


def point_denoiser(target: Tensor):
    def denoise(x: Tensor, sigma: Tensor) -> Tensor:
        assert sigma.shape == (x.shape[0],)
        return target.expand_as(x).clone()

    return denoise


def gaussian_denoiser(x: Tensor, sigma: Tensor) -> Tensor:
    """E[x0 | x] for data N(MU, S^2) noised to sigma."""
    assert sigma.shape == (x.shape[0],)
    s = sigma.view(-1, *([1] * (x.ndim - 1))).to(x.dtype)
    return MU + (x - MU) * (S * S / (S * S + s * s))


def run(name: str, denoiser, x: Tensor, sigmas: Tensor, seed: int = 0, callback=None) -> Tensor:
    fn = get_sampler(name)
    return fn(
        denoiser,
        x.clone(),
        sigmas,
        noise=make_noise_source(x, seed),
        callback=callback,
        schedule=SCHEDULE,
    )


def ode_error(name: str, steps: int) -> float:
    sigmas = calculate_sigmas(SCHEDULE, "karras", steps)
    x_t = torch.linspace(-3, 3, 61).reshape(61, 1) * sigmas[0]
    exact = MU + (x_t.double() - MU) * S / math.sqrt(S * S + float(sigmas[0]) ** 2)
    return (run(name, gaussian_denoiser, x_t, sigmas).double() - exact).abs().max().item()


# --- samplers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", LOCAL)
def test_single_point_data_ends_at_the_point(name: str) -> None:
    target = torch.randn(1, 4, 3, 3, generator=torch.Generator().manual_seed(5))
    sigmas = calculate_sigmas(SCHEDULE, "karras", 10)
    x = target + torch.randn(4, 4, 3, 3, generator=torch.Generator().manual_seed(6)) * sigmas[0]
    out = run(name, point_denoiser(target), x, sigmas)
    torch.testing.assert_close(out, target.expand_as(out), atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", LOCAL)
def test_step_to_zero_returns_the_prediction_exactly(name: str) -> None:
    x = torch.randn(3, 2, 4, 4, generator=torch.Generator().manual_seed(1)) * 5.0
    sigmas = torch.tensor([5.0, 0.0])
    out = run(name, gaussian_denoiser, x, sigmas)
    assert torch.equal(out, gaussian_denoiser(x, torch.full((3,), 5.0)))


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_gaussian_data_follows_the_probability_flow_ode(name: str) -> None:
    error_30 = ode_error(name, 30)
    if name in ("euler", "ddim"):
        # First order: bounded error that halves with twice the steps.
        assert error_30 < 0.1
        assert ode_error(name, 60) < 0.6 * error_30
    else:
        assert error_30 < 1e-2


@pytest.mark.parametrize("name", SECOND_ORDER)
def test_second_order_methods_converge_faster_than_first(name: str) -> None:
    assert ode_error(name, 60) < ode_error(name, 30) / 3


@pytest.mark.parametrize("name", STOCHASTIC)
def test_stochastic_samplers_follow_the_seed(name: str) -> None:
    sigmas = calculate_sigmas(SCHEDULE, "karras", 6)
    x = torch.randn(2, 4, 4, 4, generator=torch.Generator().manual_seed(2)) * sigmas[0]
    first = run(name, gaussian_denoiser, x, sigmas, seed=11)
    again = run(name, gaussian_denoiser, x, sigmas, seed=11)
    other = run(name, gaussian_denoiser, x, sigmas, seed=12)
    assert torch.equal(first, again)
    assert not torch.allclose(first, other, atol=1e-3)


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_samplers_ignore_the_seed(name: str) -> None:
    sigmas = calculate_sigmas(SCHEDULE, "karras", 5)
    x = torch.randn(2, 1, 3, 3, generator=torch.Generator().manual_seed(2)) * sigmas[0]
    assert torch.equal(
        run(name, gaussian_denoiser, x, sigmas, seed=1),
        run(name, gaussian_denoiser, x, sigmas, seed=2),
    )


@pytest.mark.parametrize("name", ANCESTRAL_CONSISTENT)
def test_stochastic_samplers_reproduce_the_data_distribution(name: str) -> None:
    sigmas = calculate_sigmas(SCHEDULE, "karras", 100)
    x = torch.randn(10000, 1, generator=torch.Generator().manual_seed(3)) * sigmas[0]
    out = run(name, gaussian_denoiser, x, sigmas, seed=4)
    assert out.mean().item() == pytest.approx(MU, abs=0.02)
    assert out.std().item() == pytest.approx(S, abs=0.03)


def _ancestral_variance(sigmas: list[float]) -> float:
    """Exact output variance of Euler-ancestral (eta 1) on N(MU, S^2) data."""
    var = sigmas[0] ** 2
    for sigma, nxt in zip(sigmas[:-1], sigmas[1:], strict=True):
        if nxt == 0:
            return var * (S * S / (S * S + sigma * sigma)) ** 2
        keep = (S * S + nxt * nxt) / (S * S + sigma * sigma)
        var = keep * keep * var + nxt * nxt * (1 - nxt * nxt / (sigma * sigma))
    return var


@pytest.mark.parametrize("name", ["euler_ancestral", "ddpm"])
def test_ancestral_variance_matches_the_analytic_recursion(name: str) -> None:
    sigmas = calculate_sigmas(SCHEDULE, "karras", 30)
    x = torch.randn(20000, 1, generator=torch.Generator().manual_seed(8)) * sigmas[0]
    out = run(name, gaussian_denoiser, x, sigmas, seed=9).double()
    expected = math.sqrt(_ancestral_variance([float(s) for s in sigmas]))
    assert out.std().item() == pytest.approx(expected, abs=0.01)
    assert expected < S - 0.02  # the test would notice an exact (variance-preserving) sampler


def _quadratic_in_lambda(lam: Tensor | float) -> Tensor | float:
    return 1.0 + 0.5 * lam + 0.1 * lam * lam


def time_only_denoiser(x: Tensor, sigma: Tensor) -> Tensor:
    """A prediction that depends only on the noise level: quadratic in lambda = -log(sigma)."""
    value = _quadratic_in_lambda(-torch.log(sigma.double())).to(x.dtype)
    return value.view(-1, *([1] * (x.ndim - 1))).expand_as(x).clone()


def _sde_drift_error(name: str, steps: int) -> float:
    """Noise-free run of an SDE solver from sigma 10 to 0.05 (no final step to 0), against the
    exact solution x_t = (sigma_t/sigma_s)^2 x_s + int 2 exp(-2 (lambda_t - l)) D(l) dl."""
    from scipy.integrate import quad

    # Karras spacing without its final 0: uneven steps exercise the step-ratio terms.
    sigmas = karras_sigmas(steps, 0.05, 10.0)[:-1].double()
    x = torch.full((1, 1), 5.0, dtype=torch.float64)
    out = get_sampler(name)(
        time_only_denoiser,
        x,
        sigmas,
        noise=lambda sigma, sigma_next: torch.zeros_like(x),
        callback=None,
        schedule=SCHEDULE,
    )
    lam_0, lam_n = -math.log(10.0), -math.log(0.05)
    integral, _ = quad(
        lambda lam: 2 * math.exp(-2 * (lam_n - lam)) * _quadratic_in_lambda(lam),
        lam_0,
        lam_n,
        epsabs=1e-12,
        epsrel=1e-12,
    )
    exact = math.exp(-2 * (lam_n - lam_0)) * 5.0 + integral
    return abs(out.item() - exact)


@pytest.mark.parametrize(
    ("name", "bound_at_32"),
    [("dpmpp_sde", 0.015), ("dpmpp_2m_sde", 0.02), ("dpmpp_3m_sde", 1.5e-3)],
)
def test_sde_solvers_integrate_the_drift_to_second_order(name: str, bound_at_32: float) -> None:
    error_16, error_32 = _sde_drift_error(name, 16), _sde_drift_error(name, 32)
    assert error_32 < bound_at_32
    assert error_32 < 0.3 * error_16


def test_ddpm_is_euler_ancestral_in_sigma_form() -> None:
    sigmas = calculate_sigmas(SCHEDULE, "normal", 8)
    x = torch.randn(2, 4, 4, 4, generator=torch.Generator().manual_seed(3)) * sigmas[0]
    a = run("ddpm", gaussian_denoiser, x, sigmas, seed=5)
    b = run("euler_ancestral", gaussian_denoiser, x, sigmas, seed=5)
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_lcm_renoises_its_prediction() -> None:
    sigmas = torch.tensor([4.0, 1.0, 0.0])
    x = torch.randn(20000, 1, generator=torch.Generator().manual_seed(8)) * 4.0
    out = run("lcm", gaussian_denoiser, x, sigmas, seed=1).double()
    shrink_4, shrink_1 = S * S / (S * S + 16.0), S * S / (S * S + 1.0)
    expected_var = shrink_1**2 * (shrink_4**2 * 16.0 + 1.0)
    assert out.var().item() == pytest.approx(expected_var, rel=0.03)
    assert out.mean().item() == pytest.approx(MU, abs=0.01)


@pytest.mark.parametrize("name", LOCAL)
def test_callback_once_per_step_with_the_prediction(name: str) -> None:
    target = torch.full((1, 2, 2, 2), 0.7)
    sigmas = calculate_sigmas(SCHEDULE, "karras", 5)
    x = torch.randn(2, 2, 2, 2, generator=torch.Generator().manual_seed(1)) * sigmas[0]
    calls: list[tuple[int, int]] = []
    seen_x: list[Tensor] = []

    def callback(i: int, x_i: Tensor, denoised: Tensor, total: int) -> None:
        calls.append((i, total))
        seen_x.append(x_i)
        assert torch.equal(denoised, target.expand_as(x_i))

    run(name, point_denoiser(target), x, sigmas, callback=callback)
    assert calls == [(i, 5) for i in range(5)]
    assert torch.equal(seen_x[0], x)


def test_lms_coefficients_integrate_the_step() -> None:
    levels = [10.0, 6.0, 3.0, 1.5, 0.5, 0.0]
    assert lms_coefficients(levels, 0, 1) == pytest.approx([-4.0])
    for i in range(1, 5):
        order = min(i + 1, 4)
        weights = lms_coefficients(levels, i, order)
        assert len(weights) == order
        assert sum(weights) == pytest.approx(levels[i + 1] - levels[i], rel=1e-9)
    # Order 2: the trapezoid-like extrapolation from the last two slopes.
    h, h_prev = 3.0 - 6.0, 6.0 - 10.0
    w_now = h + h * h / (2 * h_prev)
    assert lms_coefficients(levels, 1, 2) == pytest.approx([w_now, h - w_now])


def test_empty_schedule_returns_input_unchanged() -> None:
    x = torch.ones(1, 1, 2, 2)
    for name in LOCAL:
        assert torch.equal(run(name, gaussian_denoiser, x, torch.zeros(0)), x)


# --- registry ---------------------------------------------------------------------------------


def test_get_sampler_knows_every_local_name() -> None:
    for name in LOCAL:
        assert callable(get_sampler(name))
    for gpu in ("dpmpp_sde_gpu", "dpmpp_2m_sde_gpu", "dpmpp_3m_sde_gpu"):
        assert get_sampler(gpu) is get_sampler(gpu.removesuffix("_gpu"))
    assert get_sampler("ddim") is get_sampler("euler")


def test_unknown_sampler_is_typed() -> None:
    with pytest.raises(UnknownSamplerError, match="euler_z"):
        get_sampler("euler_z")
    assert issubclass(UnknownSamplerError, ValueError)


def test_solver_names_raise_when_the_solvers_module_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "node_actors.sampling.solvers", None)
    for name in SOLVER_NAMES:
        with pytest.raises(UnknownSamplerError, match=name):
            get_sampler(name)


def test_solver_names_come_from_the_solvers_module(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake(*args: object, **kwargs: object) -> Tensor:
        return torch.zeros(1)

    module = types.ModuleType("node_actors.sampling.solvers")
    module.SOLVERS = {"uni_pc": fake}  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "node_actors.sampling.solvers", module)
    assert get_sampler("uni_pc") is fake
    with pytest.raises(UnknownSamplerError):
        get_sampler("dpm_fast")


# --- noise ------------------------------------------------------------------------------------


def test_noise_source_is_the_seeded_cpu_stream() -> None:
    like = torch.zeros(2, 4, 3, 3, dtype=torch.float16)
    source = make_noise_source(like, 42)
    first = source(torch.tensor(2.0), torch.tensor(1.0))
    second = source(torch.tensor(1.0), torch.tensor(0.5))
    gen = torch.Generator("cpu").manual_seed(42)
    expected_1 = torch.randn(2, 4, 3, 3, generator=gen, dtype=torch.float32)
    expected_2 = torch.randn(2, 4, 3, 3, generator=gen, dtype=torch.float32)
    assert first.dtype == torch.float16 and first.shape == like.shape
    assert torch.equal(first, expected_1.half())
    assert torch.equal(second, expected_2.half())


def test_initial_noise_plain_and_batch_index() -> None:
    gen = torch.Generator("cpu").manual_seed(7)
    plain = initial_noise([3, 4, 8, 8], 7)
    assert plain.dtype == torch.float32
    assert torch.equal(plain, torch.randn(3, 4, 8, 8, generator=gen))
    batch = initial_noise([4, 4, 8, 8], 7, batch_index=[0, 1, 2, 3])
    alone = initial_noise([1, 4, 8, 8], 7, batch_index=[2])
    assert torch.equal(alone[0], batch[2])
    picked = initial_noise([2, 4, 8, 8], 7, batch_index=[3, 1])
    assert torch.equal(picked, batch[[3, 1]])
    assert not torch.equal(initial_noise([1, 4, 8, 8], 8), initial_noise([1, 4, 8, 8], 7))
