"""Base pieces of the V3 io surface: enums, Input/Output bases, ComfyType bases and the
plain socket types. Re-exported by `comfy_api.latest._io` (`io`)."""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum, StrEnum
from typing import Any, ClassVar, Literal


def _pruned(options: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in options.items() if value is not None}


def _enum_value(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


class FolderType(StrEnum):
    input = "input"
    output = "output"
    temp = "temp"


class UploadType(StrEnum):
    image = "image_upload"
    audio = "audio_upload"
    video = "video_upload"
    model = "file_upload"


class NumberDisplay(StrEnum):
    number = "number"
    slider = "slider"


class RemoteOptions:
    """Where the frontend fetches a combo's options from."""

    def __init__(
        self,
        route: str,
        refresh_button: bool,
        control_after_refresh: Literal["first", "last"] = "first",
        timeout: int | None = None,
        max_retries: int | None = None,
        refresh: int | None = None,
    ) -> None:
        self.route = route
        self.refresh_button = refresh_button
        self.control_after_refresh = control_after_refresh
        self.timeout = timeout
        self.max_retries = max_retries
        self.refresh = refresh

    def as_dict(self) -> dict[str, Any]:
        return _pruned(
            {
                "route": self.route,
                "refresh_button": self.refresh_button,
                "control_after_refresh": self.control_after_refresh,
                "timeout": self.timeout,
                "max_retries": self.max_retries,
                "refresh": self.refresh,
            }
        )


# --------------------------------------------------------------------------- inputs/outputs


class Input:
    """A declared input socket or widget. `io_type` is bound by the owning ComfyType."""

    io_type: ClassVar[str] = "*"

    def __init__(
        self,
        id: str,  # noqa: A002 - ComfyUI's keyword
        display_name: str | None = None,
        optional: bool = False,
        tooltip: str | None = None,
        lazy: bool | None = None,
        extra_dict: Mapping[str, Any] | None = None,
        raw_link: bool | None = None,
        advanced: bool | None = None,
    ) -> None:
        self.id = id
        self.display_name = display_name
        self.optional = optional
        self.tooltip = tooltip
        self.lazy = lazy
        self.extra_dict = dict(extra_dict or {})
        self.raw_link = raw_link
        self.advanced = advanced

    def get_io_type(self) -> str:
        return self.io_type

    def as_dict(self) -> dict[str, Any]:
        """The options dict of the V1 `[TYPE, {opts}]` form (without `optional`)."""
        return _pruned(
            {
                "display_name": self.display_name,
                "tooltip": self.tooltip,
                "lazy": self.lazy,
                "rawLink": self.raw_link,
                "advanced": self.advanced,
            }
        ) | _pruned(self.extra_dict)

    def validate(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"input id must be a non-empty string, got {self.id!r}")


class WidgetInput(Input):
    def __init__(
        self,
        id: str,  # noqa: A002
        display_name: str | None = None,
        optional: bool = False,
        tooltip: str | None = None,
        lazy: bool | None = None,
        default: Any = None,
        socketless: bool | None = None,
        widget_type: str | None = None,
        force_input: bool | None = None,
        extra_dict: Mapping[str, Any] | None = None,
        raw_link: bool | None = None,
        advanced: bool | None = None,
    ) -> None:
        super().__init__(id, display_name, optional, tooltip, lazy, extra_dict, raw_link, advanced)
        self.default = default
        self.socketless = socketless
        self.widget_type = widget_type
        self.force_input = force_input

    def get_io_type(self) -> str:
        return self.widget_type if self.widget_type is not None else self.io_type

    def as_dict(self) -> dict[str, Any]:
        return super().as_dict() | _pruned(
            {
                "default": self.default,
                "socketless": self.socketless,
                "widgetType": self.widget_type,
                "forceInput": self.force_input,
            }
        )


class Output:
    io_type: ClassVar[str] = "*"

    def __init__(
        self,
        id: str | None = None,  # noqa: A002
        display_name: str | None = None,
        tooltip: str | None = None,
        is_output_list: bool = False,
    ) -> None:
        self.id = id
        self.display_name = display_name
        self.tooltip = tooltip
        self.is_output_list = is_output_list

    def get_io_type(self) -> str:
        return self.io_type

    def validate(self) -> None:
        pass


# --------------------------------------------------------------------------- types


class ComfyTypeI:
    """A type usable as an input. Subclasses get their own Input bound to their io_type."""

    io_type: ClassVar[str] = "*"
    Type: ClassVar[Any] = Any
    Input: ClassVar[type[Input]] = Input

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Subclass the nested classes per type, so two types sharing the default Input
        # class never overwrite each other's io_type.
        for attr in ("Input", "Output"):
            nested = cls.__dict__.get(attr) or getattr(cls, attr, None)
            if isinstance(nested, type):
                bound = type(nested.__name__, (nested,), {"io_type": cls.io_type})
                bound.__qualname__ = f"{cls.__qualname__}.{nested.__name__}"
                bound.__module__ = cls.__module__
                setattr(cls, attr, bound)


class ComfyTypeIO(ComfyTypeI):
    """A type usable as an input and as an output."""

    Output: ClassVar[type[Output]] = Output


def Custom(io_type: str) -> type[ComfyTypeIO]:  # noqa: N802 - ComfyUI's public name
    """A ComfyType for a pack's own socket type name."""
    return type(f"Custom_{io_type}", (ComfyTypeIO,), {"io_type": io_type})


def _socket_type(name: str, io_type: str) -> type[ComfyTypeIO]:
    return type(name, (ComfyTypeIO,), {"io_type": io_type, "__module__": __name__})


Image = _socket_type("Image", "IMAGE")
Mask = _socket_type("Mask", "MASK")
Latent = _socket_type("Latent", "LATENT")
Conditioning = _socket_type("Conditioning", "CONDITIONING")
Model = _socket_type("Model", "MODEL")
Clip = _socket_type("Clip", "CLIP")
Vae = _socket_type("Vae", "VAE")
Sampler = _socket_type("Sampler", "SAMPLER")
Sigmas = _socket_type("Sigmas", "SIGMAS")
Noise = _socket_type("Noise", "NOISE")
Guider = _socket_type("Guider", "GUIDER")
ControlNet = _socket_type("ControlNet", "CONTROL_NET")
ClipVision = _socket_type("ClipVision", "CLIP_VISION")
ClipVisionOutput = _socket_type("ClipVisionOutput", "CLIP_VISION_OUTPUT")
StyleModel = _socket_type("StyleModel", "STYLE_MODEL")
UpscaleModel = _socket_type("UpscaleModel", "UPSCALE_MODEL")
Audio = _socket_type("Audio", "AUDIO")
Video = _socket_type("Video", "VIDEO")
AnyType = _socket_type("AnyType", "*")
