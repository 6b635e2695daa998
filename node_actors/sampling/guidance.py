"""From a UNet and ComfyUI conditioning lists to the denoiser the samplers call.

CONDITIONING is ComfyUI's list of `[cond_tensor, extras]`: extras may carry `pooled_output`,
`area` (h, w, y, x in latent cells), `strength`, `mask` (+ `mask_strength`,
`set_area_to_bounds`) and SDXL's size fields. Each entry predicts x0 over its region; the
predictions are averaged with their weights, then classifier-free guidance mixes positive and
negative: `uncond + cfg * (cond - uncond)` (the negative is skipped when cfg is 1).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from node_actors.sampling.model_sampling import DiscreteSchedule

logger = logging.getLogger(__name__)

Conditioning = Sequence[Sequence[Any]]

# SDXL refiner conditioning: the aesthetic score ComfyUI uses when a prompt does not set one.
DEFAULT_AESTHETIC_SCORE = 6.0


@dataclass(frozen=True)
class _Region:
    y: int
    x: int
    h: int
    w: int


def _added_cond(unet: Any, extras: dict[str, Any], batch: int, latent_hw: tuple[int, int]) -> Any:
    """SDXL's pooled text embeddings and size ids (None for SD1/SD2 UNets)."""
    config = unet.config
    if getattr(config, "addition_embed_type", None) != "text_time":
        return None
    pooled = extras.get("pooled_output")
    time_dim = int(config.addition_time_embed_dim)
    total = int(config.projection_class_embeddings_input_dim)
    if pooled is None:
        pooled_dim = total - 6 * time_dim if total - 6 * time_dim > 0 else total - 5 * time_dim
        pooled = torch.zeros((1, pooled_dim))
    n_ids = (total - pooled.shape[-1]) // time_dim
    height, width = latent_hw[0] * 8, latent_hw[1] * 8
    if n_ids == 5:  # the refiner: original size, crop, aesthetic score
        ids = [
            extras.get("height", height),
            extras.get("width", width),
            extras.get("crop_h", 0),
            extras.get("crop_w", 0),
            extras.get("aesthetic_score", DEFAULT_AESTHETIC_SCORE),
        ]
    else:
        ids = [
            extras.get("height", height),
            extras.get("width", width),
            extras.get("crop_h", 0),
            extras.get("crop_w", 0),
            extras.get("target_height", height),
            extras.get("target_width", width),
        ]
    time_ids = torch.tensor([ids], dtype=torch.float32).repeat(batch, 1)
    return {"text_embeds": pooled.reshape(1, -1).repeat(batch, 1), "time_ids": time_ids}


class GuidedDenoiser:
    """denoiser(x, sigma) -> x0, with CFG over positive and negative conditioning."""

    def __init__(
        self,
        unet: Any,
        schedule: DiscreteSchedule,
        positive: Conditioning,
        negative: Conditioning,
        cfg: float,
        *,
        check_interrupted: Callable[[], None] | None = None,
        concat: torch.Tensor | None = None,
    ) -> None:
        self.unet = unet
        # Inpainting UNets take 5 more input channels: the mask and the masked image's latent.
        self.concat = concat
        self.schedule = schedule
        self.positive = list(positive)
        self.negative = list(negative)
        self.cfg = float(cfg)
        self._check = check_interrupted
        self._param = next(unet.parameters())

    def _model_input(
        self, x: torch.Tensor, sigma: torch.Tensor, region: _Region | None = None
    ) -> torch.Tensor:
        x_in = self.schedule.calculate_input(sigma, x)
        if self.concat is None:
            return x_in
        concat = self.concat
        if region is not None:
            concat = concat[:, :, region.y : region.y + region.h, region.x : region.x + region.w]
        if concat.shape[0] != x.shape[0]:
            concat = concat.repeat(x.shape[0] // concat.shape[0], 1, 1, 1)
        return torch.cat([x_in, concat.to(x_in.dtype)], dim=1)

    def _predict(
        self,
        x: torch.Tensor,
        sigma: torch.Tensor,
        cond: torch.Tensor,
        extras: dict[str, Any],
        region: _Region | None = None,
    ) -> torch.Tensor:
        batch = x.shape[0]
        dtype, device = self._param.dtype, self._param.device
        x_in = self._model_input(x, sigma, region)
        timestep = self.schedule.timestep(sigma)
        context = cond.to(device, dtype)
        if context.shape[0] != batch:
            context = context[:1].expand(batch, -1, -1)
        added = _added_cond(self.unet, extras, batch, (x.shape[-2], x.shape[-1]))
        if added is not None:
            added = {k: v.to(device, dtype) for k, v in added.items()}
        out = self.unet(
            x_in.to(device, dtype),
            timestep.to(device, dtype),
            encoder_hidden_states=context,
            added_cond_kwargs=added,
        ).sample
        return self.schedule.calculate_denoised(sigma, out.to(x.dtype).to(x.device), x)

    def _region(self, extras: dict[str, Any], x: torch.Tensor) -> _Region:
        height, width = x.shape[-2], x.shape[-1]
        area = extras.get("area")
        if area is None:
            return _Region(0, 0, height, width)
        h, w, y, xo = (int(v) for v in area[:4])
        y, xo = min(y, height - 1), min(xo, width - 1)
        return _Region(y, xo, max(1, min(h, height - y)), max(1, min(w, width - xo)))

    def _weight(self, extras: dict[str, Any], x: torch.Tensor, region: _Region) -> torch.Tensor:
        weight = torch.full(
            (x.shape[0], 1, region.h, region.w), float(extras.get("strength", 1.0)), dtype=x.dtype
        )
        mask = extras.get("mask")
        if mask is not None:
            mask = mask.to(x.dtype)
            if mask.ndim == 2:
                mask = mask.unsqueeze(0)
            full = F.interpolate(mask.unsqueeze(1), size=x.shape[-2:], mode="bilinear")
            full = full[:, :, region.y : region.y + region.h, region.x : region.x + region.w]
            if full.shape[0] != x.shape[0]:
                full = full[:1].expand(x.shape[0], -1, -1, -1)
            weight = weight * full * float(extras.get("mask_strength", 1.0))
        return weight

    def _combined(
        self, x: torch.Tensor, sigma: torch.Tensor, conditioning: Conditioning
    ) -> torch.Tensor:
        if len(conditioning) == 1 and "area" not in conditioning[0][1]:
            cond, extras = conditioning[0][0], conditioning[0][1]
            if "mask" not in extras and float(extras.get("strength", 1.0)) == 1.0:
                return self._predict(x, sigma, cond, extras)
        total = torch.zeros_like(x)
        weights = torch.zeros((x.shape[0], 1, *x.shape[-2:]), dtype=x.dtype)
        for cond, extras in conditioning:
            region = self._region(extras, x)
            crop = x[:, :, region.y : region.y + region.h, region.x : region.x + region.w]
            pred = self._predict(crop, sigma, cond, extras, region)
            weight = self._weight(extras, x, region)
            total[:, :, region.y : region.y + region.h, region.x : region.x + region.w] += (
                pred * weight
            )
            weights[:, :, region.y : region.y + region.h, region.x : region.x + region.w] += weight
        # Cells no entry covers keep the input (as if predicted exactly).
        covered = weights > 0
        return torch.where(covered, total / weights.clamp_min(1e-37), x)

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        if self._check is not None:
            self._check()
        with torch.no_grad():
            if self.cfg == 1.0 or not self.negative:
                return self._combined(x, sigma, self.positive)
            if _batchable(self.positive, self.negative):
                return self._batched_cfg(x, sigma)
            cond = self._combined(x, sigma, self.positive)
            uncond = self._combined(x, sigma, self.negative)
            return uncond + (cond - uncond) * self.cfg

    def _batched_cfg(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """One UNet call for both halves when both are a single plain entry of equal length."""
        (pos, pos_extras), (neg, neg_extras) = self.positive[0], self.negative[0]
        batch = x.shape[0]
        both_x = torch.cat([x, x])
        both_sigma = torch.cat([sigma, sigma])
        context = torch.cat([pos[:1].expand(batch, -1, -1), neg[:1].expand(batch, -1, -1)])
        dtype, device = self._param.dtype, self._param.device
        added_pos = _added_cond(self.unet, pos_extras, batch, (x.shape[-2], x.shape[-1]))
        added = None
        if added_pos is not None:
            added_neg = _added_cond(self.unet, neg_extras, batch, (x.shape[-2], x.shape[-1]))
            assert added_neg is not None
            added = {
                k: torch.cat([added_pos[k], added_neg[k]]).to(device, dtype) for k in added_pos
            }
        out = self.unet(
            self._model_input(both_x, both_sigma).to(device, dtype),
            self.schedule.timestep(both_sigma).to(device, dtype),
            encoder_hidden_states=context.to(device, dtype),
            added_cond_kwargs=added,
        ).sample
        denoised = self.schedule.calculate_denoised(
            both_sigma, out.to(x.dtype).to(x.device), both_x
        )
        cond, uncond = denoised[:batch], denoised[batch:]
        return uncond + (cond - uncond) * self.cfg


def _plain(entry: Sequence[Any]) -> bool:
    extras = entry[1]
    return (
        "area" not in extras and "mask" not in extras and float(extras.get("strength", 1.0)) == 1.0
    )


def _batchable(positive: Conditioning, negative: Conditioning) -> bool:
    return (
        len(positive) == 1
        and len(negative) == 1
        and _plain(positive[0])
        and _plain(negative[0])
        and positive[0][0].shape[1:] == negative[0][0].shape[1:]
    )


class InpaintDenoiser:
    """Keeps the unmasked part of the latent: ComfyUI's noise_mask semantics.

    Before each model call, the cells outside the mask are replaced by the source latent noised
    to the current sigma; after it, the prediction there is the source latent itself.
    """

    def __init__(
        self,
        inner: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        latent: torch.Tensor,
        noise: torch.Tensor,
        mask: torch.Tensor,
    ) -> None:
        self.inner = inner
        self.latent = latent
        self.noise = noise
        self.mask = mask

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        s = sigma.reshape(-1, *([1] * (x.ndim - 1)))
        keep = 1.0 - self.mask
        x = x * self.mask + (self.latent + self.noise * s) * keep
        return self.inner(x, sigma) * self.mask + self.latent * keep


def prepare_mask(mask: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
    """A noise mask ([B,H,W], [H,W] or [B,1,H,W], any size) as [B,1,h,w] at the latent's size."""
    mask = mask.to(latent.dtype)
    if mask.ndim == 2:
        mask = mask.unsqueeze(0)
    if mask.ndim == 3:
        mask = mask.unsqueeze(1)
    mask = F.interpolate(mask, size=latent.shape[-2:], mode="bilinear")
    if mask.shape[0] < latent.shape[0]:
        repeats = -(-latent.shape[0] // mask.shape[0])
        mask = mask.repeat(repeats, 1, 1, 1)[: latent.shape[0]]
    return mask.clamp(0.0, 1.0)
