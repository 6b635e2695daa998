"""`comfy.comfy_types.node_typing`: type names and helper bases custom packs import."""

from __future__ import annotations

from abc import ABC
from enum import StrEnum
from typing import Any, ClassVar, Literal, TypedDict

__all__ = [
    "IO",
    "CheckLazyMixin",
    "ComfyNodeABC",
    "FileLocator",
    "InputTypeDict",
    "StrEnum",
]


def _type_set(type_name: str) -> frozenset[str]:
    return frozenset(part.strip() for part in type_name.split(","))


class IO(StrEnum):
    """Socket type names.

    `!=` is overridden because ComfyUI's link type check is written as `a != b`: ANY ("*")
    matches everything, and comma types match when one side's set contains the other's.
    `==` stays plain string equality.
    """

    STRING = "STRING"
    IMAGE = "IMAGE"
    MASK = "MASK"
    LATENT = "LATENT"
    BOOLEAN = "BOOLEAN"
    INT = "INT"
    FLOAT = "FLOAT"
    COMBO = "COMBO"
    CONDITIONING = "CONDITIONING"
    SAMPLER = "SAMPLER"
    SIGMAS = "SIGMAS"
    GUIDER = "GUIDER"
    NOISE = "NOISE"
    CLIP = "CLIP"
    CONTROL_NET = "CONTROL_NET"
    VAE = "VAE"
    MODEL = "MODEL"
    LORA_MODEL = "LORA_MODEL"
    LOSS_MAP = "LOSS_MAP"
    CLIP_VISION = "CLIP_VISION"
    CLIP_VISION_OUTPUT = "CLIP_VISION_OUTPUT"
    STYLE_MODEL = "STYLE_MODEL"
    GLIGEN = "GLIGEN"
    UPSCALE_MODEL = "UPSCALE_MODEL"
    AUDIO = "AUDIO"
    WEBCAM = "WEBCAM"
    POINT = "POINT"
    FACE_ANALYSIS = "FACE_ANALYSIS"
    BBOX = "BBOX"
    SEGS = "SEGS"
    VIDEO = "VIDEO"
    ANY = "*"
    NUMBER = "FLOAT,INT"
    PRIMITIVE = "STRING,FLOAT,INT,BOOLEAN"

    def __ne__(self, value: object) -> bool:
        if self.value == "*" or value == "*":
            return False
        if not isinstance(value, str):
            return True
        mine, theirs = _type_set(self.value), _type_set(value)
        return not (mine <= theirs or theirs <= mine)

    # Keep enum members hashable after overriding a comparison operator.
    __hash__ = StrEnum.__hash__


class FileLocator(TypedDict):
    filename: str
    subfolder: str
    type: Literal["input", "output", "temp"]


InputTypeDict = dict[str, Any]
"""`INPUT_TYPES()` return shape: {"required": {...}, "optional": {...}, "hidden": {...}}."""


class ComfyNodeABC(ABC):  # noqa: B024 - a typing base with no abstract methods, as ComfyUI's
    """Optional base documenting the V1 node contract; nothing here is enforced."""

    DESCRIPTION: ClassVar[str]
    CATEGORY: ClassVar[str]
    EXPERIMENTAL: ClassVar[bool]
    DEPRECATED: ClassVar[bool]
    RETURN_TYPES: ClassVar[tuple[Any, ...]]
    RETURN_NAMES: ClassVar[tuple[str, ...]]
    OUTPUT_TOOLTIPS: ClassVar[tuple[str, ...]]
    FUNCTION: ClassVar[str]
    OUTPUT_NODE: ClassVar[bool]
    INPUT_IS_LIST: ClassVar[bool]
    OUTPUT_IS_LIST: ClassVar[tuple[bool, ...]]

    @classmethod
    def INPUT_TYPES(cls) -> InputTypeDict:  # noqa: N802 - ComfyUI's public name
        return {"required": {}}


class CheckLazyMixin:
    """check_lazy_status that asks for every lazy input not evaluated yet."""

    def check_lazy_status(self, **kwargs: Any) -> list[str]:
        return [name for name, value in kwargs.items() if value is None]
