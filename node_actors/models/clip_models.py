"""The text encoders of one CLIP object (what CLIPLoader / CheckpointLoader hand to CLIPTextEncode)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class ClipModels:
    """The loaded text encoder(s) of a model family, as transformers modules in eval mode.

    family: "sd1" (l), "sd2" (h), "sdxl" (l and g), "sdxl_refiner" (g).
    l: OpenAI CLIP ViT-L/14 text model (transformers CLIPTextModel, quick_gelu).
    h: OpenCLIP ViT-H/14 text model (CLIPTextModel, gelu), SD2.x.
    g: OpenCLIP ViT-bigG/14 text model with its projection (CLIPTextModelWithProjection, gelu).
    """

    family: str
    l: Any | None = None  # noqa: E741 - CLIP-L, the name every SD tool uses
    h: Any | None = None
    g: Any | None = None

    def encoders(self) -> dict[str, Any]:
        return {
            name: m for name, m in (("l", self.l), ("h", self.h), ("g", self.g)) if m is not None
        }
