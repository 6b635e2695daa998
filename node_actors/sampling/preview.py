"""Latent previews: a cheap linear projection of a 4-channel latent to RGB.

The factors are the widely used per-family least-squares fits of each VAE's decoded colours
against its latent channels (scaled latents, as the sampler sees them); good enough to see the
composition forming while a sampler runs, at no cost next to a UNet call.
"""

from __future__ import annotations

import torch
from PIL import Image

_SD1_FACTORS = (
    (0.3512, 0.2297, 0.3227),
    (0.3250, 0.4974, 0.2350),
    (-0.2829, 0.1762, 0.2721),
    (-0.2120, -0.2616, -0.7177),
)
_SDXL_FACTORS = (
    (0.3651, 0.4232, 0.4341),
    (-0.2533, -0.0042, 0.1068),
    (0.1076, 0.1111, -0.0362),
    (-0.3165, -0.2492, -0.2188),
)
_SDXL_BIAS = (0.1084, -0.0175, -0.0011)


def latent_to_image(latent: torch.Tensor, family: str) -> Image.Image:
    """[C,h,w] (scaled) -> an RGB PIL image of the same h x w."""
    sdxl = family.startswith("sdxl")
    factors = torch.tensor(_SDXL_FACTORS if sdxl else _SD1_FACTORS, dtype=torch.float32)
    bias = torch.tensor(_SDXL_BIAS if sdxl else (0.0, 0.0, 0.0), dtype=torch.float32)
    latent = latent.detach().float().cpu()[: factors.shape[0]]
    if latent.shape[0] < factors.shape[0]:
        factors = factors[: latent.shape[0]]
    rgb = torch.einsum("chw,cr->hwr", latent, factors) + bias
    pixels = ((rgb + 1.0) / 2.0).clamp(0.0, 1.0).mul(255.0).to(torch.uint8).numpy()
    return Image.fromarray(pixels, mode="RGB")
