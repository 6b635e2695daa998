"""The discrete DDPM noise schedule of SD1.x/2.x/SDXL, expressed in sigma (variance-exploding) form.

The networks were trained on 1000 discrete timesteps with a beta schedule; the samplers work on a
continuous noise level sigma with x = x0 + sigma * eps. This module converts between the two and
turns a network output (eps or v) into a prediction of the clean sample.
"""

from __future__ import annotations

import logging
import math
from typing import Literal

import torch
from torch import Tensor

logger = logging.getLogger(__name__)

# ComfyUI's stand-in for "infinite noise" when a start percent is 0 or below.
_SIGMA_INFINITY = 999999999.9

Prediction = Literal["eps", "v"]


class UnknownBetaScheduleError(ValueError):
    """The beta schedule name is not one this module knows."""


class UnknownPredictionError(ValueError):
    """The prediction type is neither "eps" nor "v"."""


def make_betas(
    beta_schedule: str, linear_start: float, linear_end: float, timesteps: int
) -> Tensor:
    """Per-step betas in float64 (the cumulative product is sensitive to rounding)."""
    if beta_schedule == "scaled_linear":
        root = torch.linspace(
            math.sqrt(linear_start), math.sqrt(linear_end), timesteps, dtype=torch.float64
        )
        return root * root
    if beta_schedule == "linear":
        return torch.linspace(linear_start, linear_end, timesteps, dtype=torch.float64)
    raise UnknownBetaScheduleError(f"unknown beta schedule {beta_schedule!r}")


def broadcast_sigma(sigma: Tensor, x: Tensor) -> Tensor:
    """Reshape a per-sample sigma ([B] or scalar) so it broadcasts against x ([B, ...])."""
    sigma = torch.as_tensor(sigma).to(x.device)
    return sigma.reshape(sigma.shape + (1,) * (x.ndim - sigma.ndim))


class DiscreteSchedule:
    """The 1000-step DDPM schedule SD1.x/2.x/SDXL were trained with, in sigma (k-diffusion) form."""

    def __init__(
        self,
        prediction: Prediction = "eps",
        *,
        beta_schedule: str = "scaled_linear",
        linear_start: float = 0.00085,
        linear_end: float = 0.012,
        timesteps: int = 1000,
    ) -> None:
        if prediction not in ("eps", "v"):
            raise UnknownPredictionError(f"unknown prediction type {prediction!r}")
        if timesteps < 2:
            raise ValueError(f"a schedule needs at least 2 timesteps, got {timesteps}")
        self.prediction: str = prediction
        self.timesteps: int = timesteps
        betas = make_betas(beta_schedule, linear_start, linear_end, timesteps)
        acp = torch.cumprod(1.0 - betas, dim=0)
        sigmas = ((1.0 - acp) / acp).sqrt()
        self.alphas_cumprod: Tensor = acp.to(torch.float32)
        self.sigmas: Tensor = sigmas.to(torch.float32)
        # Interpolation happens in log space, where the schedule is close to linear in t.
        self.log_sigmas: Tensor = sigmas.log().to(torch.float32)
        self.sigma_min: float = float(self.sigmas[0])
        self.sigma_max: float = float(self.sigmas[-1])

    def __repr__(self) -> str:
        return (
            f"DiscreteSchedule(prediction={self.prediction!r}, timesteps={self.timesteps}, "
            f"sigma_min={self.sigma_min:.4f}, sigma_max={self.sigma_max:.4f})"
        )

    def timestep(self, sigma: Tensor) -> Tensor:
        """Continuous timestep for sigma: linear interpolation between neighbouring log-sigmas."""
        sigma = torch.as_tensor(sigma)
        log_table = self.log_sigmas.to(sigma.device)
        log_sigma = sigma.to(torch.float32).log()
        # Index of the table entry at or below log_sigma, kept inside so idx + 1 exists.
        idx = torch.searchsorted(log_table, log_sigma.reshape(-1), right=True) - 1
        idx = idx.clamp(0, self.timesteps - 2)
        low = log_table[idx]
        high = log_table[idx + 1]
        weight = ((log_sigma.reshape(-1) - low) / (high - low)).clamp(0.0, 1.0)
        return (idx.to(torch.float32) + weight).reshape(sigma.shape)

    def sigma(self, timestep: Tensor) -> Tensor:
        """Sigma at a (possibly fractional) timestep: interpolate log-sigmas, then exponentiate."""
        timestep = torch.as_tensor(timestep)
        log_table = self.log_sigmas.to(timestep.device)
        t = timestep.to(torch.float32).clamp(0.0, float(self.timesteps - 1))
        low = t.floor().long()
        high = t.ceil().long()
        frac = t - low.to(torch.float32)
        return ((1.0 - frac) * log_table[low] + frac * log_table[high]).exp()

    def percent_to_sigma(self, percent: float) -> float:
        """Sigma at a fraction of the sampling run (0 = start, pure noise; 1 = end, clean)."""
        if percent <= 0.0:
            return _SIGMA_INFINITY
        if percent >= 1.0:
            return 0.0
        t = (1.0 - percent) * (self.timesteps - 1)
        return float(self.sigma(torch.tensor(t, dtype=torch.float32)))

    def calculate_input(self, sigma: Tensor, x: Tensor) -> Tensor:
        """Scale a noised sample to the unit-variance input the network was trained on."""
        s = broadcast_sigma(sigma, x)
        return x / (s * s + 1.0).sqrt()

    def calculate_denoised(self, sigma: Tensor, model_output: Tensor, x: Tensor) -> Tensor:
        """Prediction of the clean sample from the network output."""
        s = broadcast_sigma(sigma, x)
        if self.prediction == "eps":
            return x - model_output * s
        # v-prediction with sigma_data = 1 (the VP model's data scale in VE coordinates).
        total = s * s + 1.0
        return x / total - model_output * s / total.sqrt()

    def noise_scaling(
        self, sigma: Tensor, noise: Tensor, latent: Tensor, max_denoise: bool = False
    ) -> Tensor:
        """Noise a latent to sigma; at full denoise the VP prior's variance (1 + sigma^2) is used."""
        s = broadcast_sigma(sigma, noise)
        scale = (s * s + 1.0).sqrt() if max_denoise else s
        return latent + noise * scale

    def inverse_noise_scaling(self, sigma: Tensor, latent: Tensor) -> Tensor:
        """The latent needs no rescaling after sampling for these models."""
        return latent
