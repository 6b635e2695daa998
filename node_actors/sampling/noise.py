"""Seeded noise for sampling.

All noise is drawn from a CPU torch.Generator in float32 and only then moved to the sample's
device and dtype: the same seed gives the same image on any GPU, CPU or machine.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

import torch
from torch import Tensor

logger = logging.getLogger(__name__)


class NoiseSource(Protocol):
    """Fresh standard-normal noise shaped like the sample, for the step sigma -> sigma_next."""

    def __call__(self, sigma: Tensor, sigma_next: Tensor) -> Tensor: ...


class _GeneratorNoise:
    """A NoiseSource over one seeded CPU generator; each call advances the stream."""

    def __init__(self, like: Tensor, seed: int) -> None:
        self._shape = tuple(like.shape)
        self._device = like.device
        self._dtype = like.dtype
        self._generator = torch.Generator("cpu")
        self._generator.manual_seed(seed)

    def __call__(self, sigma: Tensor, sigma_next: Tensor) -> Tensor:
        noise = torch.randn(self._shape, generator=self._generator, dtype=torch.float32)
        return noise.to(self._device, self._dtype)


def make_noise_source(like: Tensor, seed: int) -> NoiseSource:
    """Noise for ancestral and SDE samplers, reproducible from `seed` on every device."""
    return _GeneratorNoise(like, seed)


def initial_noise(
    shape: Sequence[int], seed: int, batch_index: Sequence[int] | None = None
) -> Tensor:
    """The starting noise of a KSampler run, float32 on the CPU.

    With batch_index, each latent gets the noise it would get at that position of a batch made
    one sample at a time, so latent k of a batch can be regenerated alone.
    """
    generator = torch.Generator("cpu")
    generator.manual_seed(seed)
    shape = tuple(int(d) for d in shape)
    if batch_index is None:
        return torch.randn(shape, generator=generator, dtype=torch.float32)
    indices = [int(i) for i in batch_index]
    if not indices:
        return torch.zeros((0, *shape[1:]), dtype=torch.float32)
    if min(indices) < 0:
        raise ValueError(f"batch_index entries must be >= 0, got {indices}")
    single = (1, *shape[1:])
    # Draw in order up to the largest index so position k always gets the k-th draw.
    wanted = set(indices)
    draws: dict[int, Tensor] = {}
    for position in range(max(indices) + 1):
        noise = torch.randn(single, generator=generator, dtype=torch.float32)
        if position in wanted:
            draws[position] = noise
    return torch.cat([draws[i] for i in indices], dim=0)
