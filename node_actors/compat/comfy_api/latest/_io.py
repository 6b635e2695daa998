"""`comfy_api.latest.io`: the V3 node API surface, written for comfyray.

A V3 node subclasses `ComfyNode`, describes itself in `define_schema()` and runs in the
classmethod `execute()`. The worker never calls `execute` on the registered class: it calls
it on a per-call clone (`PREPARE_CLASS_CLONE`) whose `hidden` holds that call's hidden
values, so concurrent calls of one class cannot see each other's prompt or node id.
The input/output types live in `_io_base` and `_io_widgets` and are re-exported here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from node_actors.context import ExecutionBlocker

from ._io_base import (  # noqa: F401 - re-exported as io.*
    AnyType,
    Audio,
    Clip,
    ClipVision,
    ClipVisionOutput,
    ComfyTypeI,
    ComfyTypeIO,
    Conditioning,
    ControlNet,
    Custom,
    FolderType,
    Guider,
    Image,
    Input,
    Latent,
    Mask,
    Model,
    Noise,
    NumberDisplay,
    Output,
    RemoteOptions,
    Sampler,
    Sigmas,
    StyleModel,
    UploadType,
    UpscaleModel,
    Vae,
    Video,
    WidgetInput,
    _enum_value,
)
from ._io_widgets import (  # noqa: F401 - re-exported as io.*
    Boolean,
    Combo,
    Float,
    Int,
    MultiCombo,
    String,
)

__all__ = [
    "AnyType",
    "Audio",
    "Boolean",
    "Clip",
    "ClipVision",
    "ClipVisionOutput",
    "Combo",
    "ComfyNode",
    "ComfyTypeI",
    "ComfyTypeIO",
    "Conditioning",
    "ControlNet",
    "Custom",
    "ExecutionBlocker",
    "Float",
    "FolderType",
    "Guider",
    "Hidden",
    "HiddenHolder",
    "Image",
    "Input",
    "Int",
    "Latent",
    "Mask",
    "Model",
    "MultiCombo",
    "NodeOutput",
    "Noise",
    "NumberDisplay",
    "Output",
    "RemoteOptions",
    "Sampler",
    "Schema",
    "Sigmas",
    "String",
    "StyleModel",
    "UploadType",
    "UpscaleModel",
    "Vae",
    "Video",
    "WidgetInput",
]


# --------------------------------------------------------------------------- hidden


class Hidden(StrEnum):
    """Hidden values a V3 node asks for; the value is the kind name the worker supplies."""

    unique_id = "UNIQUE_ID"
    prompt = "PROMPT"
    extra_pnginfo = "EXTRA_PNGINFO"
    dynprompt = "DYNPROMPT"
    auth_token_comfy_org = "AUTH_TOKEN_COMFY_ORG"
    api_key_comfy_org = "API_KEY_COMFY_ORG"
    comfy_usage_source = "COMFY_USAGE_SOURCE"


class HiddenHolder:
    """`cls.hidden` of a V3 node: one attribute per Hidden member, None when not supplied."""

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        values = values or {}
        for member in Hidden:
            setattr(self, member.name, values.get(member.value))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> HiddenHolder:
        """Build from a mapping of kind name (or Hidden member) to value."""
        return cls({_enum_value(kind): value for kind, value in (values or {}).items()})

    def __getattr__(self, name: str) -> Any:
        # Only reached for names that are not Hidden members: unknown hidden is None.
        return None


# --------------------------------------------------------------------------- schema


@dataclass
class Schema:
    node_id: str
    display_name: str | None = None
    category: str = "sd"
    inputs: list[Input] = field(default_factory=list)
    outputs: list[Output] = field(default_factory=list)
    hidden: list[Hidden] = field(default_factory=list)
    description: str = ""
    search_aliases: list[str] = field(default_factory=list)
    is_input_list: bool = False
    is_output_node: bool = False
    is_deprecated: bool = False
    is_experimental: bool = False
    is_dev_only: bool = False
    is_api_node: bool = False
    price_badge: Any = None
    not_idempotent: bool = False
    enable_expand: bool = False
    accept_all_inputs: bool = False
    essentials_category: str | None = None
    has_intermediate_output: bool = False

    def validate(self) -> None:
        """Ids must be unique among inputs, among outputs, and between the two."""
        input_ids = [i.id for i in self.inputs]
        output_ids = [o.id for o in self.outputs]
        problems = []
        for kind, ids in (("Input", input_ids), ("Output", output_ids)):
            duplicated = [item for item, count in Counter(ids).items() if count > 1]
            if duplicated:
                problems.append(f"{kind} ids must be unique, but {duplicated} are not.")
        shared = set(input_ids) & set(output_ids)
        if shared:
            problems.append(f"Ids must be unique between inputs and outputs, but {shared} are not.")
        if problems:
            raise ValueError(f"{self.node_id}: " + " ".join(problems))
        for item in (*self.inputs, *self.outputs):
            item.validate()

    def finalize(self) -> None:
        """Add the hidden values implied by the flags and give unnamed outputs ids."""
        self.inputs = list(self.inputs or [])
        self.outputs = list(self.outputs or [])
        self.hidden = list(self.hidden or [])
        implied: list[Hidden] = []
        if self.is_api_node:
            implied += [Hidden.auth_token_comfy_org, Hidden.api_key_comfy_org]
        if self.is_output_node:
            implied += [Hidden.prompt, Hidden.extra_pnginfo]
        for member in implied:
            if member not in self.hidden:
                self.hidden.append(member)
        for index, output in enumerate(self.outputs):
            if output.id is None:
                output.id = f"_{index}_{output.get_io_type()}_"

    def v1_inputs(self) -> dict[str, dict[str, Any]]:
        """The schema's inputs in the V1 `INPUT_TYPES()` shape (hidden as `(KIND,)`)."""
        sections: dict[str, dict[str, Any]] = {"required": {}}
        for item in self.inputs:
            section = "optional" if item.optional else "required"
            sections.setdefault(section, {})[item.id] = (item.get_io_type(), item.as_dict())
        for member in self.hidden:
            member = Hidden(member)
            sections.setdefault("hidden", {})[member.name] = (member.value,)
        return sections

    def price_badge_dict(self) -> dict[str, Any] | None:
        badge = self.price_badge
        if badge is None or isinstance(badge, dict):
            return badge
        return badge.as_dict(self.inputs) if hasattr(badge, "as_dict") else None


# --------------------------------------------------------------------------- nodes


class NodeOutput:
    """What a V3 `execute` returns: output values plus optional ui/expand/blocker."""

    def __init__(
        self,
        *args: Any,
        ui: Any = None,
        expand: dict[str, Any] | None = None,
        block_execution: str | None = None,
    ) -> None:
        self.args = args
        self.ui = ui
        self.expand = expand
        self.block_execution = block_execution

    @property
    def result(self) -> tuple[Any, ...] | None:
        return self.args if self.args else None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NodeOutput:
        result = data.get("result") or ()
        return cls(*result, ui=data.get("ui"), expand=data.get("expand"))


class _ClassProperty:
    def __init__(self, getter: Any) -> None:
        self._getter = getter

    def __get__(self, instance: Any, owner: type) -> Any:
        return self._getter(owner)


class ComfyNode:
    """Base class of V3 nodes. Subclasses implement define_schema and execute (both
    classmethods), and optionally validate_inputs, fingerprint_inputs, check_lazy_status."""

    hidden: ClassVar[HiddenHolder] = HiddenHolder()

    @classmethod
    def define_schema(cls) -> Schema:
        raise NotImplementedError(f"{cls.__name__}.define_schema")

    @classmethod
    def execute(cls, **kwargs: Any) -> NodeOutput:
        raise NotImplementedError(f"{cls.__name__}.execute")

    @classmethod
    def GET_SCHEMA(cls) -> Schema:  # noqa: N802 - ComfyUI's public name
        schema = cls.define_schema()
        schema.finalize()
        schema.validate()
        return schema

    @classmethod
    def PREPARE_CLASS_CLONE(cls, hidden: Mapping[str, Any] | None = None) -> type[ComfyNode]:  # noqa: N802
        """A throwaway subclass whose `hidden` holds this call's hidden values."""
        clone = type(cls.__name__, (cls,), {"hidden": HiddenHolder.from_dict(hidden)})
        clone.__qualname__ = cls.__qualname__
        clone.__module__ = cls.__module__
        return clone

    # V1-style views, for code that introspects node classes the old way.
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, dict[str, Any]]:  # noqa: N802
        return cls.GET_SCHEMA().v1_inputs()

    RETURN_TYPES = _ClassProperty(lambda c: tuple(o.get_io_type() for o in c.GET_SCHEMA().outputs))
    RETURN_NAMES = _ClassProperty(
        lambda c: tuple(o.display_name or o.get_io_type() for o in c.GET_SCHEMA().outputs)
    )
    OUTPUT_IS_LIST = _ClassProperty(
        lambda c: tuple(o.is_output_list for o in c.GET_SCHEMA().outputs)
    )
    OUTPUT_NODE = _ClassProperty(lambda c: c.GET_SCHEMA().is_output_node)
    INPUT_IS_LIST = _ClassProperty(lambda c: c.GET_SCHEMA().is_input_list)
    NOT_IDEMPOTENT = _ClassProperty(lambda c: c.GET_SCHEMA().not_idempotent)
    CATEGORY = _ClassProperty(lambda c: c.GET_SCHEMA().category)
    DESCRIPTION = _ClassProperty(lambda c: c.GET_SCHEMA().description)
    FUNCTION = "execute"
