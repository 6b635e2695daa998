"""The Stable Diffusion model families a checkpoint can belong to, and what sampling needs to know
about each (prediction type, latent scale, which text encoders feed it).

Kept free of torch so that detection and planning code can use it anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelFamily:
    """What a loaded model needs from the rest of the pipeline.

    default_clip_layer: the text-encoder layer whose output conditions the model; None means the
    last layer, -2 the penultimate one (SD2 and SDXL were trained on penultimate features).
    """

    name: str
    prediction: str
    latent_channels: int
    latent_scale: float
    clip_encoders: tuple[str, ...]
    default_clip_layer: int | None


_SD_SCALE = 0.18215
_SDXL_SCALE = 0.13025

FAMILIES: dict[str, ModelFamily] = {
    f.name: f
    for f in (
        ModelFamily("sd1", "eps", 4, _SD_SCALE, ("l",), None),
        ModelFamily("sd2", "eps", 4, _SD_SCALE, ("h",), -2),
        ModelFamily("sd2_v", "v", 4, _SD_SCALE, ("h",), -2),
        ModelFamily("sdxl", "eps", 4, _SDXL_SCALE, ("l", "g"), -2),
        ModelFamily("sdxl_refiner", "eps", 4, _SDXL_SCALE, ("g",), -2),
    )
}


def clip_family_name(family: ModelFamily) -> str:
    """The text-encoder family (ClipModels.family): v-prediction does not change the encoders."""
    return "sd2" if family.name == "sd2_v" else family.name
