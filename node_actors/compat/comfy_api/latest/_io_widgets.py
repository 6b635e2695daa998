"""V3 widget input types (Boolean, Int, Float, String, Combo, MultiCombo).
Re-exported by `comfy_api.latest._io` (`io`)."""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any

from ._io_base import (
    ComfyTypeI,
    ComfyTypeIO,
    FolderType,
    NumberDisplay,
    Output,
    RemoteOptions,
    UploadType,
    WidgetInput,
    _enum_value,
    _pruned,
)


class Boolean(ComfyTypeIO):
    io_type = "BOOLEAN"
    Type = bool

    class Input(WidgetInput):
        def __init__(
            self,
            id: str,  # noqa: A002
            display_name: str | None = None,
            optional: bool = False,
            tooltip: str | None = None,
            lazy: bool | None = None,
            default: bool | None = None,
            label_on: str | None = None,
            label_off: str | None = None,
            socketless: bool | None = None,
            force_input: bool | None = None,
            extra_dict: Mapping[str, Any] | None = None,
            raw_link: bool | None = None,
            advanced: bool | None = None,
        ) -> None:
            super().__init__(
                id, display_name, optional, tooltip, lazy, default, socketless, None,
                force_input, extra_dict, raw_link, advanced,
            )  # fmt: skip
            self.label_on = label_on
            self.label_off = label_off

        def as_dict(self) -> dict[str, Any]:
            return super().as_dict() | _pruned(
                {"label_on": self.label_on, "label_off": self.label_off}
            )


class Int(ComfyTypeIO):
    io_type = "INT"
    Type = int

    class Input(WidgetInput):
        def __init__(
            self,
            id: str,  # noqa: A002
            display_name: str | None = None,
            optional: bool = False,
            tooltip: str | None = None,
            lazy: bool | None = None,
            default: int | None = None,
            min: int | None = None,  # noqa: A002
            max: int | None = None,  # noqa: A002
            step: int | None = None,
            control_after_generate: bool | None = None,
            display_mode: NumberDisplay | None = None,
            socketless: bool | None = None,
            force_input: bool | None = None,
            extra_dict: Mapping[str, Any] | None = None,
            raw_link: bool | None = None,
            advanced: bool | None = None,
        ) -> None:
            super().__init__(
                id, display_name, optional, tooltip, lazy, default, socketless, None,
                force_input, extra_dict, raw_link, advanced,
            )  # fmt: skip
            self.min = min
            self.max = max
            self.step = step
            self.control_after_generate = control_after_generate
            self.display_mode = display_mode

        def as_dict(self) -> dict[str, Any]:
            return super().as_dict() | _pruned(
                {
                    "min": self.min,
                    "max": self.max,
                    "step": self.step,
                    "control_after_generate": self.control_after_generate,
                    "display": _enum_value(self.display_mode),
                }
            )


class Float(ComfyTypeIO):
    io_type = "FLOAT"
    Type = float

    class Input(WidgetInput):
        def __init__(
            self,
            id: str,  # noqa: A002
            display_name: str | None = None,
            optional: bool = False,
            tooltip: str | None = None,
            lazy: bool | None = None,
            default: float | None = None,
            min: float | None = None,  # noqa: A002
            max: float | None = None,  # noqa: A002
            step: float | None = None,
            round: float | None = None,  # noqa: A002
            display_mode: NumberDisplay | None = None,
            socketless: bool | None = None,
            force_input: bool | None = None,
            extra_dict: Mapping[str, Any] | None = None,
            raw_link: bool | None = None,
            advanced: bool | None = None,
        ) -> None:
            super().__init__(
                id, display_name, optional, tooltip, lazy, default, socketless, None,
                force_input, extra_dict, raw_link, advanced,
            )  # fmt: skip
            self.min = min
            self.max = max
            self.step = step
            self.round = round
            self.display_mode = display_mode

        def as_dict(self) -> dict[str, Any]:
            return super().as_dict() | _pruned(
                {
                    "min": self.min,
                    "max": self.max,
                    "step": self.step,
                    "round": self.round,
                    "display": _enum_value(self.display_mode),
                }
            )


class String(ComfyTypeIO):
    io_type = "STRING"
    Type = str

    class Input(WidgetInput):
        def __init__(
            self,
            id: str,  # noqa: A002
            display_name: str | None = None,
            optional: bool = False,
            tooltip: str | None = None,
            lazy: bool | None = None,
            multiline: bool = False,
            placeholder: str | None = None,
            default: str | None = None,
            dynamic_prompts: bool | None = None,
            socketless: bool | None = None,
            force_input: bool | None = None,
            extra_dict: Mapping[str, Any] | None = None,
            raw_link: bool | None = None,
            advanced: bool | None = None,
        ) -> None:
            super().__init__(
                id, display_name, optional, tooltip, lazy, default, socketless, None,
                force_input, extra_dict, raw_link, advanced,
            )  # fmt: skip
            self.multiline = multiline
            self.placeholder = placeholder
            self.dynamic_prompts = dynamic_prompts

        def as_dict(self) -> dict[str, Any]:
            return super().as_dict() | _pruned(
                {
                    "multiline": self.multiline,
                    "placeholder": self.placeholder,
                    "dynamicPrompts": self.dynamic_prompts,
                }
            )


class Combo(ComfyTypeIO):
    io_type = "COMBO"
    Type = str

    class Input(WidgetInput):
        def __init__(
            self,
            id: str,  # noqa: A002
            options: list[Any] | type[Enum] | None = None,
            display_name: str | None = None,
            optional: bool = False,
            tooltip: str | None = None,
            lazy: bool | None = None,
            default: Any = None,
            control_after_generate: bool | None = None,
            upload: UploadType | None = None,
            image_folder: FolderType | None = None,
            remote: RemoteOptions | None = None,
            socketless: bool | None = None,
            extra_dict: Mapping[str, Any] | None = None,
            raw_link: bool | None = None,
            advanced: bool | None = None,
        ) -> None:
            if isinstance(options, type) and issubclass(options, Enum):
                options = [member.value for member in options]
            super().__init__(
                id, display_name, optional, tooltip, lazy, _enum_value(default), socketless,
                None, None, extra_dict, raw_link, advanced,
            )  # fmt: skip
            self.options = list(options) if options is not None else None
            self.multiselect = False
            self.control_after_generate = control_after_generate
            self.upload = upload
            self.image_folder = image_folder
            self.remote = remote

        def as_dict(self) -> dict[str, Any]:
            upload = {_enum_value(self.upload): True} if self.upload is not None else {}
            return super().as_dict() | _pruned(
                {
                    "multiselect": self.multiselect,
                    "options": self.options,
                    "control_after_generate": self.control_after_generate,
                    **upload,
                    "image_folder": _enum_value(self.image_folder),
                    "remote": self.remote.as_dict() if self.remote is not None else None,
                }
            )

    class Output(Output):
        def __init__(
            self,
            id: str | None = None,  # noqa: A002
            display_name: str | None = None,
            options: list[str] | None = None,
            tooltip: str | None = None,
            is_output_list: bool = False,
        ) -> None:
            super().__init__(id, display_name, tooltip, is_output_list)
            self.options = list(options or [])


class MultiCombo(ComfyTypeI):
    io_type = "COMBO"
    Type = list

    class Input(Combo.Input):
        def __init__(
            self,
            id: str,  # noqa: A002
            options: list[Any],
            display_name: str | None = None,
            optional: bool = False,
            tooltip: str | None = None,
            lazy: bool | None = None,
            default: list[Any] | None = None,
            placeholder: str | None = None,
            chip: bool | None = None,
            control_after_generate: bool | None = None,
            socketless: bool | None = None,
            extra_dict: Mapping[str, Any] | None = None,
            raw_link: bool | None = None,
            advanced: bool | None = None,
        ) -> None:
            super().__init__(
                id, options, display_name, optional, tooltip, lazy, default,
                control_after_generate, socketless=socketless, extra_dict=extra_dict,
                raw_link=raw_link, advanced=advanced,
            )  # fmt: skip
            self.multiselect = True
            self.placeholder = placeholder
            self.chip = chip

        def as_dict(self) -> dict[str, Any]:
            return super().as_dict() | _pruned({"placeholder": self.placeholder, "chip": self.chip})
