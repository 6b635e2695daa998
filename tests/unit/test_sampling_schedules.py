"""DiscreteSchedule and the sigma schedulers (node_actors/sampling)."""

from __future__ import annotations

import math

import pytest
import torch

from node_actors.sampling.model_sampling import (
    DiscreteSchedule,
    UnknownBetaScheduleError,
    UnknownPredictionError,
)
from node_actors.sampling.schedulers import (
    SCHEDULER_NAMES,
    UnknownSchedulerError,
    calculate_sigmas,
    exponential_sigmas,
    karras_sigmas,
)


@pytest.fixture(scope="module")
def schedule() -> DiscreteSchedule:
    return DiscreteSchedule()


# --- DiscreteSchedule -------------------------------------------------------------------------


def test_sd_schedule_numbers(schedule: DiscreteSchedule) -> None:
    assert schedule.sigmas.shape == (1000,)
    assert schedule.sigmas.dtype == torch.float32
    assert schedule.alphas_cumprod.dtype == torch.float32
    assert schedule.sigmas[0].item() == pytest.approx(0.0292, abs=1e-4)
    assert schedule.sigma_max == pytest.approx(14.6146, abs=1e-3)
    assert schedule.sigma_min == pytest.approx(float(schedule.sigmas[0]))
    assert bool((schedule.sigmas[1:] > schedule.sigmas[:-1]).all())
    # The first beta of the scaled-linear schedule is exactly linear_start.
    assert schedule.alphas_cumprod[0].item() == pytest.approx(1 - 0.00085, rel=1e-7)
    acp = schedule.alphas_cumprod.double()
    expected = ((1 - acp) / acp).sqrt().float()
    # acp is stored in float32, so 1 - acp near t = 0 carries ~1e-4 relative rounding.
    torch.testing.assert_close(schedule.sigmas, expected, rtol=1e-4, atol=0)


def test_linear_beta_schedule_differs() -> None:
    linear = DiscreteSchedule(beta_schedule="linear", linear_start=0.0001, linear_end=0.02)
    assert linear.alphas_cumprod[0].item() == pytest.approx(1 - 0.0001, rel=1e-7)
    acp_1 = (1 - 0.0001) * (1 - (0.0001 + (0.02 - 0.0001) / 999))
    assert linear.alphas_cumprod[1].item() == pytest.approx(acp_1, rel=1e-6)
    assert linear.sigma_max > DiscreteSchedule().sigma_max


def test_bad_schedule_arguments_are_typed() -> None:
    with pytest.raises(UnknownBetaScheduleError):
        DiscreteSchedule(beta_schedule="cosine-ish")
    with pytest.raises(UnknownPredictionError):
        DiscreteSchedule("x0")  # type: ignore[arg-type]


def test_timestep_of_trained_sigmas_is_their_index(schedule: DiscreteSchedule) -> None:
    idx = torch.tensor([0, 1, 17, 500, 998, 999])
    torch.testing.assert_close(
        schedule.timestep(schedule.sigmas[idx]), idx.float(), atol=2e-3, rtol=0
    )
    torch.testing.assert_close(schedule.sigma(idx.float()), schedule.sigmas[idx])


def test_timestep_sigma_round_trip(schedule: DiscreteSchedule) -> None:
    sigmas = torch.exp(torch.linspace(math.log(0.03), math.log(14.6), 57))
    back = schedule.sigma(schedule.timestep(sigmas))
    torch.testing.assert_close(back, sigmas, rtol=1e-4, atol=0)
    ts = torch.tensor([0.25, 3.5, 250.75, 998.9])
    torch.testing.assert_close(schedule.timestep(schedule.sigma(ts)), ts, atol=2e-3, rtol=0)


def test_fractional_timestep_interpolates_log_sigma(schedule: DiscreteSchedule) -> None:
    mid = schedule.sigma(torch.tensor(10.5)).item()
    expected = math.sqrt(float(schedule.sigmas[10]) * float(schedule.sigmas[11]))
    assert mid == pytest.approx(expected, rel=1e-5)


def test_timestep_clamps_outside_the_schedule(schedule: DiscreteSchedule) -> None:
    out = schedule.timestep(torch.tensor([0.001, 100.0]))
    assert out.tolist() == pytest.approx([0.0, 999.0])


def test_percent_to_sigma_ends_and_middle(schedule: DiscreteSchedule) -> None:
    assert schedule.percent_to_sigma(0.0) == 999999999.9
    assert schedule.percent_to_sigma(-0.3) == 999999999.9
    assert schedule.percent_to_sigma(1.0) == 0.0
    assert schedule.percent_to_sigma(1.5) == 0.0
    mid = schedule.percent_to_sigma(0.5)
    assert mid == pytest.approx(schedule.sigma(torch.tensor(499.5)).item(), rel=1e-6)
    assert schedule.percent_to_sigma(0.001) == pytest.approx(
        schedule.sigma(torch.tensor(0.999 * 999)).item(), rel=1e-6
    )
    values = [schedule.percent_to_sigma(p) for p in (0.1, 0.3, 0.6, 0.9)]
    assert values == sorted(values, reverse=True)


def test_calculate_input_scales_to_unit_variance(schedule: DiscreteSchedule) -> None:
    x = torch.ones(2, 4, 3, 3)
    out = schedule.calculate_input(torch.tensor([0.0, 3.0]), x)
    assert out[0].unique().tolist() == [1.0]
    assert out[1].unique().tolist() == pytest.approx([1 / math.sqrt(10.0)])


def test_eps_and_v_predictions_recover_x0() -> None:
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(3, 4, 5, 5, generator=gen)
    eps = torch.randn(3, 4, 5, 5, generator=gen)
    sigma = torch.tensor([0.1, 1.0, 9.0])
    s = sigma.view(-1, 1, 1, 1)
    x = x0 + eps * s
    eps_model = DiscreteSchedule("eps")
    torch.testing.assert_close(eps_model.calculate_denoised(sigma, eps, x), x0, atol=1e-5, rtol=0)
    # v target of the variance-preserving model: alpha * eps - sigma_vp * x0.
    alpha = 1 / (1 + s * s).sqrt()
    v = alpha * eps - (s * alpha) * x0
    v_model = DiscreteSchedule("v")
    torch.testing.assert_close(v_model.calculate_denoised(sigma, v, x), x0, atol=1e-5, rtol=0)


def test_noise_scaling(schedule: DiscreteSchedule) -> None:
    latent = torch.full((2, 1, 2, 2), 0.5)
    noise = torch.ones(2, 1, 2, 2)
    sigma = torch.tensor([2.0, 3.0])
    out = schedule.noise_scaling(sigma, noise, latent)
    assert out[:, 0, 0, 0].tolist() == pytest.approx([2.5, 3.5])
    full = schedule.noise_scaling(sigma, noise, latent, max_denoise=True)
    assert full[:, 0, 0, 0].tolist() == pytest.approx([0.5 + math.sqrt(5), 0.5 + math.sqrt(10)])
    assert schedule.inverse_noise_scaling(sigma, latent) is latent


# --- schedulers -------------------------------------------------------------------------------

STARTS_AT_SIGMA_MAX = ("normal", "karras", "exponential", "simple", "sgm_uniform", "kl_optimal")


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
@pytest.mark.parametrize("steps", [1, 5, 20])
def test_scheduler_shape_order_and_end(schedule: DiscreteSchedule, name: str, steps: int) -> None:
    sigmas = calculate_sigmas(schedule, name, steps)
    assert sigmas.dtype == torch.float32
    assert sigmas.shape == (steps + 1,)
    assert sigmas[-1].item() == 0.0
    assert bool(torch.isfinite(sigmas).all())
    assert bool((sigmas[1:] <= sigmas[:-1]).all())
    assert sigmas[0].item() <= schedule.sigma_max * (1 + 1e-6)
    assert sigmas[:-1].min().item() > 0.0
    torch.testing.assert_close(calculate_sigmas(schedule, name, steps), sigmas, rtol=0, atol=0)


@pytest.mark.parametrize("name", STARTS_AT_SIGMA_MAX + ("beta", "linear_quadratic"))
def test_scheduler_starts_at_sigma_max(schedule: DiscreteSchedule, name: str) -> None:
    sigmas = calculate_sigmas(schedule, name, 12)
    assert sigmas[0].item() == pytest.approx(schedule.sigma_max, rel=1e-5)


def test_zero_steps_is_empty_and_unknown_name_is_typed(schedule: DiscreteSchedule) -> None:
    assert calculate_sigmas(schedule, "karras", 0).shape == (0,)
    with pytest.raises(UnknownSchedulerError, match="no_such"):
        calculate_sigmas(schedule, "no_such", 10)
    assert issubclass(UnknownSchedulerError, ValueError)


def test_karras_formula_spot_check() -> None:
    sigmas = karras_sigmas(4, 0.1, 10.0, rho=7.0)
    top, bottom = 10.0 ** (1 / 7), 0.1 ** (1 / 7)
    expected = [(top + k / 3 * (bottom - top)) ** 7 for k in range(4)] + [0.0]
    assert sigmas.tolist() == pytest.approx(expected, rel=1e-6)


def test_karras_and_exponential_use_the_schedule_range(schedule: DiscreteSchedule) -> None:
    sigmas = calculate_sigmas(schedule, "karras", 8)
    assert sigmas[-2].item() == pytest.approx(schedule.sigma_min, rel=1e-5)
    exp = calculate_sigmas(schedule, "exponential", 8)
    torch.testing.assert_close(exp, exponential_sigmas(8, schedule.sigma_min, schedule.sigma_max))
    ratios = exp[1:-1] / exp[:-2]
    torch.testing.assert_close(ratios, torch.full_like(ratios, ratios[0].item()), rtol=1e-5, atol=0)


def test_normal_and_sgm_uniform_spacing(schedule: DiscreteSchedule) -> None:
    normal = calculate_sigmas(schedule, "normal", 10)
    assert normal[-2].item() == pytest.approx(schedule.sigma_min, rel=1e-4)
    ts = schedule.timestep(normal[:-1])
    torch.testing.assert_close(ts, torch.linspace(999, 0, 10), atol=2e-2, rtol=0)
    sgm = calculate_sigmas(schedule, "sgm_uniform", 10)
    sgm_ts = schedule.timestep(sgm[:-1])
    torch.testing.assert_close(sgm_ts, torch.linspace(999, 0, 11)[:-1], atol=2e-2, rtol=0)
    assert sgm[-2].item() > normal[-2].item()


def test_simple_takes_trained_sigmas(schedule: DiscreteSchedule) -> None:
    sigmas = calculate_sigmas(schedule, "simple", 3)
    expected = schedule.sigmas[[999, 999 - 333, 999 - 666]].tolist() + [0.0]
    assert sigmas.tolist() == expected


def test_ddim_uniform_takes_every_cth_sigma_from_one(schedule: DiscreteSchedule) -> None:
    sigmas = calculate_sigmas(schedule, "ddim_uniform", 20)
    expected = schedule.sigmas[list(range(951, 0, -50))].tolist() + [0.0]
    assert sigmas.tolist() == expected
    # ComfyUI's quirk: a stride that does not divide T yields an extra level.
    assert calculate_sigmas(schedule, "ddim_uniform", 7).shape == (9,)


def test_beta_scheduler_quantiles_and_dedup(schedule: DiscreteSchedule) -> None:
    from scipy.stats import beta

    sigmas = calculate_sigmas(schedule, "beta", 4)
    ts = [round(float(beta.ppf(q, 0.6, 0.6)) * 999) for q in (1.0, 0.75, 0.5, 0.25)]
    assert sigmas.tolist() == schedule.sigmas[ts].tolist() + [0.0]
    many = calculate_sigmas(schedule, "beta", 1000)
    assert many.numel() < 1001
    assert len(set(many.tolist())) == many.numel()


def test_linear_quadratic_ramp(schedule: DiscreteSchedule) -> None:
    steps = 10
    sigmas = calculate_sigmas(schedule, "linear_quadratic", steps)
    smax = schedule.sigma_max
    ramp = 1 - sigmas / smax
    # First half linear to the threshold ...
    linear = [i * 0.025 / 5 for i in range(5)]
    assert ramp[:5].tolist() == pytest.approx(linear, abs=1e-6)
    # ... then a quadratic joined with equal value and slope, reaching 1.
    second_diff = ramp[7:10] - 2 * ramp[6:9] + ramp[5:8]
    assert second_diff.tolist() == pytest.approx([second_diff[0].item()] * 3, abs=1e-5)
    assert ramp[5].item() == pytest.approx(0.025, abs=1e-6)
    assert (ramp[6] - ramp[5]).item() > 0.005
    assert calculate_sigmas(schedule, "linear_quadratic", 1).tolist() == pytest.approx([smax, 0.0])


def test_kl_optimal_uniform_in_arctangent(schedule: DiscreteSchedule) -> None:
    sigmas = calculate_sigmas(schedule, "kl_optimal", 6)
    angles = torch.atan(sigmas[:-1].double())
    expected = torch.linspace(math.atan(schedule.sigma_max), math.atan(schedule.sigma_min), 6)
    torch.testing.assert_close(angles, expected.double(), rtol=0, atol=1e-6)
