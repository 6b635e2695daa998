"""The DPM-Solver and UniPC samplers against analytic probability-flow ODE solutions."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from node_actors.sampling.model_sampling import DiscreteSchedule
from node_actors.sampling.solvers import SOLVERS, _phi_integral, fast_orders

SHAPE = (2, 4, 8, 8)
SIGMA_MAX, SIGMA_MIN = 14.6, 0.03
SCHEDULE = DiscreteSchedule()


def karras(
    n: int, smin: float = SIGMA_MIN, smax: float = SIGMA_MAX, *, zero: bool = True
) -> Tensor:
    ramp = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
    rho = 7.0
    sig = (smax ** (1 / rho) + ramp * (smin ** (1 / rho) - smax ** (1 / rho))) ** rho
    if zero:
        sig = torch.cat([sig, sig.new_zeros(1)])
    return sig.to(torch.float32)


def no_noise(_sigma: Tensor, _sigma_next: Tensor) -> Tensor:
    raise AssertionError("these solvers are deterministic (eta 0) and must not draw noise")


class Gaussian:
    """Data ~ N(mu, s^2) per element: exact denoiser and exact ODE flow, counting calls."""

    def __init__(self, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.mu = torch.randn(SHAPE, generator=g, dtype=torch.float64)
        self.s = 0.5 + torch.rand(SHAPE, generator=g, dtype=torch.float64)
        self.z = torch.randn(SHAPE, generator=g, dtype=torch.float64)
        self.calls = 0

    def __call__(self, x: Tensor, sigma: Tensor) -> Tensor:
        assert sigma.shape == (x.shape[0],)
        self.calls += 1
        s2 = sigma.to(torch.float64).reshape(-1, 1, 1, 1) ** 2
        out = self.mu + (x.to(torch.float64) - self.mu) * self.s**2 / (self.s**2 + s2)
        return out.to(x.dtype)

    def start(self, sigma: float) -> Tensor:
        return (self.mu + self.z * torch.sqrt(self.s**2 + sigma**2)).to(torch.float32)

    def flow(self, x_start: Tensor, sigma_start: float, sigma: float) -> Tensor:
        ratio = torch.sqrt(self.s**2 + sigma**2) / torch.sqrt(self.s**2 + sigma_start**2)
        return self.mu + (x_start.to(torch.float64) - self.mu) * ratio


def run(name: str, denoiser, x: Tensor, sigmas: Tensor, callback=None, **kw) -> Tensor:
    return SOLVERS[name](
        denoiser, x.clone(), sigmas, noise=no_noise, callback=callback, schedule=SCHEDULE, **kw
    )


def euler(denoiser, x: Tensor, sigmas: Tensor) -> Tensor:
    for i in range(len(sigmas) - 1):
        s, t = sigmas[i], sigmas[i + 1]
        x = x + (x - denoiser(x, s.reshape(1).expand(x.shape[0]))) / s * (t - s)
    return x


def errors(out: Tensor, exact: Tensor) -> tuple[float, float]:
    diff = (out.to(torch.float64) - exact).abs()
    return float(diff.max()), float(diff.mean())


def test_registry_names() -> None:
    assert set(SOLVERS) == {"dpm_fast", "dpm_adaptive", "uni_pc", "uni_pc_bh2"}


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_single_point_data_ends_at_the_point(name: str) -> None:
    target = torch.linspace(-1.0, 1.0, math.prod(SHAPE)).reshape(SHAPE)
    x = target + SIGMA_MAX * torch.randn(SHAPE, generator=torch.Generator().manual_seed(1))
    out = run(name, lambda _x, _s: target.clone(), x, karras(20))
    torch.testing.assert_close(out, target, atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", ["dpm_fast", "uni_pc", "uni_pc_bh2"])
def test_fixed_step_solvers_follow_the_gaussian_flow(name: str) -> None:
    data = Gaussian()
    sigmas = karras(20)
    x = data.start(SIGMA_MAX)
    exact = data.flow(x, SIGMA_MAX, 0.0)
    max_err, _ = errors(run(name, data, x, sigmas), exact)
    euler_max, _ = errors(euler(data, x, sigmas), exact)
    assert max_err < 2e-2
    assert max_err < euler_max / 10


def test_dpm_adaptive_beats_euler_at_default_tolerances() -> None:
    # rtol 0.05 bounds the local error relative to |x|, so on unit-scale data the endpoint is
    # only good to a few percent: that is the documented trade-off of the defaults.
    data = Gaussian()
    sigmas = karras(20)
    x = data.start(SIGMA_MAX)
    exact = data.flow(x, SIGMA_MAX, 0.0)
    max_err, mean_err = errors(run("dpm_adaptive", data, x, sigmas), exact)
    euler_max, euler_mean = errors(euler(data, x, sigmas), exact)
    assert max_err < euler_max
    assert mean_err < euler_mean / 1.5
    assert mean_err < 0.05


def test_dpm_adaptive_converges_as_tolerances_tighten() -> None:
    data = Gaussian()
    x = data.start(SIGMA_MAX)
    exact = data.flow(x, SIGMA_MAX, 0.0)
    loose_max, _ = errors(run("dpm_adaptive", data, x, karras(20)), exact)
    loose_calls = data.calls
    data.calls = 0
    tight = run("dpm_adaptive", data, x, karras(20), rtol=1e-3, atol=1e-4)
    tight_max, _ = errors(tight, exact)
    assert tight_max < 2e-2
    assert tight_max < loose_max / 10
    assert data.calls > loose_calls


def test_dpm_adaptive_ignores_the_step_count() -> None:
    data = Gaussian()
    x = data.start(SIGMA_MAX)
    few = run("dpm_adaptive", data, x, karras(5))
    many = run("dpm_adaptive", data, x, karras(50))
    # Only sigma_max and the last non-zero sigma matter; both are the same here.
    torch.testing.assert_close(few, many, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_stopping_at_a_nonzero_sigma_lands_on_the_flow(name: str) -> None:
    data = Gaussian()
    sigmas = karras(20, smin=0.5, zero=False)
    x = data.start(SIGMA_MAX)
    exact = data.flow(x, SIGMA_MAX, 0.5)
    _, mean_err = errors(run(name, data, x, sigmas), exact)
    # dpm_adaptive's default rtol allows a few percent (see the test above).
    assert mean_err < (0.05 if name == "dpm_adaptive" else 2e-2)


@pytest.mark.parametrize("name", ["uni_pc", "uni_pc_bh2", "dpm_fast"])
def test_high_order_convergence(name: str) -> None:
    # Without the final jump to 0 the global error is the solver's own: doubling the steps
    # must cut it by far more than first-order Euler's factor of about 2.
    data = Gaussian()
    x = data.start(SIGMA_MAX)
    exact = data.flow(x, SIGMA_MAX, SIGMA_MIN)
    err_20, _ = errors(run(name, data, x, karras(20, zero=False)), exact)
    err_40, _ = errors(run(name, data, x, karras(40, zero=False)), exact)
    euler_20, _ = errors(euler(data, x, karras(20, zero=False)), exact)
    euler_40, _ = errors(euler(data, x, karras(40, zero=False)), exact)
    assert euler_20 / euler_40 < 3
    assert err_20 / err_40 > 5


def test_bh1_and_bh2_differ_but_agree_closely() -> None:
    data = Gaussian()
    x = data.start(SIGMA_MAX)
    bh1 = run("uni_pc", data, x, karras(20))
    bh2 = run("uni_pc_bh2", data, x, karras(20))
    gap = float((bh1 - bh2).abs().max())
    assert 1e-6 < gap < 1e-2


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_deterministic(name: str) -> None:
    data = Gaussian()
    x = data.start(SIGMA_MAX)
    assert torch.equal(run(name, data, x, karras(12)), run(name, data, x, karras(12)))


@pytest.mark.parametrize("name", ["uni_pc", "uni_pc_bh2"])
def test_unipc_one_call_and_one_callback_per_step(name: str) -> None:
    data = Gaussian()
    seen: list[tuple[int, int]] = []
    run(name, data, data.start(SIGMA_MAX), karras(9), lambda i, _x, _d, n: seen.append((i, n)))
    assert seen == [(i, 9) for i in range(9)]
    assert data.calls == 9  # corrector reuses the predictor's call; none after the last step


def test_dpm_fast_calls_and_callbacks() -> None:
    data = Gaussian()
    got: list[tuple[int, int, Tensor]] = []
    sigmas = karras(10)
    out = run(
        "dpm_fast", data, data.start(SIGMA_MAX), sigmas, lambda i, _x, d, n: got.append((i, n, d))
    )
    steps = len(fast_orders(10)) + 1  # solver steps plus the final denoise to sigma 0
    assert [(i, n) for i, n, _ in got] == [(i, steps) for i in range(steps)]
    assert data.calls == 10 + 1
    assert torch.equal(got[-1][2], out)


def test_dpm_adaptive_callbacks_are_consecutive() -> None:
    data = Gaussian()
    got: list[tuple[int, int, Tensor]] = []
    out = run(
        "dpm_adaptive",
        data,
        data.start(SIGMA_MAX),
        karras(20),
        lambda i, _x, d, n: got.append((i, n, d)),
    )
    assert len(got) >= 3
    assert [i for i, _, _ in got] == list(range(len(got)))
    assert {n for _, n, _ in got} == {20}
    assert torch.equal(got[-1][2], out)


@pytest.mark.parametrize(
    ("nfe", "orders"),
    [
        (1, [1]),
        (2, [2]),
        (3, [2, 1]),
        (4, [3, 1]),
        (5, [3, 2]),
        (9, [3, 3, 2, 1]),
        (10, [3, 3, 3, 1]),
    ],
)
def test_fast_order_split(nfe: int, orders: list[int]) -> None:
    assert fast_orders(nfe) == orders
    assert sum(fast_orders(nfe)) == nfe


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_trivial_sigma_lists(name: str) -> None:
    data = Gaussian()
    x = data.start(3.0)
    assert torch.equal(run(name, data, x, torch.tensor([3.0])), x)
    one_step = run(name, data, x, torch.tensor([3.0, 0.0]))
    torch.testing.assert_close(one_step, data(x, torch.full((SHAPE[0],), 3.0)))


@pytest.mark.parametrize("h", [1e-4, 0.05, 0.3, 0.999, 1.001, 2.5, 40.0])
def test_phi_integrals_match_closed_forms(h: float) -> None:
    em = math.exp(-h)
    expected = [1 - em, h - 1 + em, h * h / 2 - h + 1 - em]
    for k, value in enumerate(expected):
        # The closed forms cancel badly for small h; compare to their leading Taylor term there.
        ref = h ** (k + 1) / math.factorial(k + 1) if h < 1e-3 else value
        assert _phi_integral(k, h) == pytest.approx(ref, rel=1e-3 if h < 1e-3 else 1e-9)
