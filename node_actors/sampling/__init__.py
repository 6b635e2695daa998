"""Sampling core: the trained noise schedule, sigma schedulers and samplers (pure torch)."""

from node_actors.sampling.model_sampling import DiscreteSchedule
from node_actors.sampling.noise import NoiseSource, initial_noise, make_noise_source
from node_actors.sampling.samplers import (
    SAMPLER_NAMES,
    Denoiser,
    SamplerFn,
    StepCallback,
    UnknownSamplerError,
    get_sampler,
)
from node_actors.sampling.schedulers import (
    SCHEDULER_NAMES,
    UnknownSchedulerError,
    calculate_sigmas,
    exponential_sigmas,
    karras_sigmas,
)

__all__ = [
    "SAMPLER_NAMES",
    "SCHEDULER_NAMES",
    "Denoiser",
    "DiscreteSchedule",
    "NoiseSource",
    "SamplerFn",
    "StepCallback",
    "UnknownSamplerError",
    "UnknownSchedulerError",
    "calculate_sigmas",
    "exponential_sigmas",
    "get_sampler",
    "initial_noise",
    "karras_sigmas",
    "make_noise_source",
]
