"""What every sampler shares: one run's step loop and denoiser calls, and the two step rules
(first-order ODE step, ancestral noise split) several samplers build on."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from node_actors.sampling.noise import NoiseSource

Denoiser = Callable[[Tensor, Tensor], Tensor]
StepCallback = Callable[[int, Tensor, Tensor, int], None]
SamplerFn = Callable[..., Tensor]


class Run:
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


def step_to(x: Tensor, denoised: Tensor, sigma: float, sigma_to: float) -> Tensor:
    """First-order step along the ODE from sigma to sigma_to (Euler = DDIM = DPM-Solver++ 1).

    Written as a blend towards the prediction so a step to 0 returns it exactly.
    """
    if sigma_to == 0.0:
        return denoised
    return denoised + (x - denoised) * (sigma_to / sigma)


def ancestral_split(sigma: float, sigma_next: float, eta: float = 1.0) -> tuple[float, float]:
    """Split the step to sigma_next into a deterministic part (down) and fresh noise (up).

    Chosen so that down^2 + up^2 = sigma_next^2; eta = 1 matches the DDPM posterior variance.
    """
    if sigma_next == 0.0:
        return 0.0, 0.0
    up = eta * math.sqrt(max(sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2, 0.0))
    up = min(up, sigma_next)
    down = math.sqrt(sigma_next**2 - up**2)
    return down, up
