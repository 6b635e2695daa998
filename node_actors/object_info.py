"""Builds a node class's `/object_info` entry and its NodeDefinition flags.

V1 classes: the entry is INPUT_TYPES() as JSON plus class attributes, in ComfyUI's key
order, with the optional keys present only when the class sets them. V3 classes: every key
of ComfyUI's NodeInfoV1 record, with null/false instead of omission.

INPUT_TYPES() (and a V3 schema) is evaluated on every build and never cached: combos that
list files (LoadImage, checkpoint loaders) must show the files present now.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from enum import Enum
from typing import Any

from node_actors.compat_path import install_compat_path
from node_actors.protocol import NodeDefinition

HIDDEN_KINDS = frozenset(
    {
        "PROMPT",
        "DYNPROMPT",
        "EXTRA_PNGINFO",
        "UNIQUE_ID",
        "AUTH_TOKEN_COMFY_ORG",
        "API_KEY_COMFY_ORG",
        "COMFY_USAGE_SOURCE",
    }
)

_INPUT_SECTIONS = ("required", "optional")


def v3_io() -> Any:
    """The compat `comfy_api.latest._io` module (V3 base classes)."""
    install_compat_path()
    from comfy_api.latest import _io

    return _io


def is_v3_class(cls: Any) -> bool:
    return isinstance(cls, type) and issubclass(cls, v3_io().ComfyNode)


def to_json_data(value: Any) -> Any:
    """Tuples become lists and str/int enums plain values, as JSON would show them."""
    if isinstance(value, Enum):
        return to_json_data(value.value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Mapping):
        return {str(key): to_json_data(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_data(item) for item in value]
    return value


# --------------------------------------------------------------------------- V1


def v1_node_info(
    cls: type, class_type: str, display_name: str | None, python_module: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(object_info entry, raw INPUT_TYPES()) of a V1 class."""
    input_types = cls.INPUT_TYPES()
    if not isinstance(input_types, Mapping):
        raise TypeError(
            f"{class_type}.INPUT_TYPES() returned {type(input_types).__name__}, not a dict"
        )
    return_types = list(cls.RETURN_TYPES)
    output = to_json_data(return_types)
    info: dict[str, Any] = {
        "input": to_json_data(input_types),
        "input_order": {
            section: list(entries.keys())
            for section, entries in input_types.items()
            if isinstance(entries, Mapping)
        },
        "is_input_list": bool(getattr(cls, "INPUT_IS_LIST", False)),
        "output": output,
        "output_is_list": (
            [bool(flag) for flag in cls.OUTPUT_IS_LIST]
            if hasattr(cls, "OUTPUT_IS_LIST")
            else [False] * len(return_types)
        ),
        "output_name": (
            to_json_data(list(cls.RETURN_NAMES)) if hasattr(cls, "RETURN_NAMES") else list(output)
        ),
        "name": class_type,
        "display_name": display_name or class_type,
        "description": getattr(cls, "DESCRIPTION", ""),
        "python_module": python_module,
        "category": getattr(cls, "CATEGORY", "sd"),
        "output_node": bool(getattr(cls, "OUTPUT_NODE", False)),
        "has_intermediate_output": bool(getattr(cls, "HAS_INTERMEDIATE_OUTPUT", False)),
    }
    if hasattr(cls, "OUTPUT_TOOLTIPS"):
        info["output_tooltips"] = to_json_data(list(cls.OUTPUT_TOOLTIPS))
    for attribute, key in (
        ("DEPRECATED", "deprecated"),
        ("EXPERIMENTAL", "experimental"),
        ("DEV_ONLY", "dev_only"),
    ):
        if getattr(cls, attribute, False):
            info[key] = True
    if hasattr(cls, "API_NODE"):
        info["api_node"] = cls.API_NODE
    info["search_aliases"] = to_json_data(list(getattr(cls, "SEARCH_ALIASES", [])))
    if hasattr(cls, "ESSENTIALS_CATEGORY"):
        info["essentials_category"] = cls.ESSENTIALS_CATEGORY
    return info, dict(input_types)


def _validate_signature(func: Any) -> tuple[tuple[str, ...], bool]:
    """(declared parameter names, takes **kwargs) of a VALIDATE_INPUTS-like callable."""
    params = list(inspect.signature(func).parameters.values())
    # A plain function reached through the class still lists its cls/self parameter.
    if not inspect.ismethod(func) and params and params[0].name in ("cls", "self", "s"):
        params = params[1:]
    names = tuple(
        p.name
        for p in params
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY, p.POSITIONAL_ONLY)
    )
    takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params)
    return names, takes_kwargs


def _option_inputs(input_types: Mapping[str, Any], option: str) -> frozenset[str]:
    names = set()
    for section in _INPUT_SECTIONS:
        for name, spec in (input_types.get(section) or {}).items():
            if (
                isinstance(spec, (list, tuple))
                and len(spec) > 1
                and isinstance(spec[1], Mapping)
                and spec[1].get(option) is True
            ):
                names.add(name)
    return frozenset(names)


def _v1_hidden_kinds(input_types: Mapping[str, Any]) -> dict[str, str]:
    hidden = input_types.get("hidden") or {}
    return {
        name: (str(kind) if isinstance(kind, str) and str(kind) in HIDDEN_KINDS else "")
        for name, kind in hidden.items()
    }


def v1_definition(
    cls: type, class_type: str, display_name: str | None, python_module: str
) -> NodeDefinition:
    info, input_types = v1_node_info(cls, class_type, display_name, python_module)
    outputs = len(info["output"])
    declared = [bool(flag) for flag in getattr(cls, "OUTPUT_IS_LIST", ())][:outputs]
    validate = getattr(cls, "VALIDATE_INPUTS", None)
    params, takes_kwargs = _validate_signature(validate) if validate is not None else ((), False)
    function = getattr(cls, cls.FUNCTION)
    return NodeDefinition(
        class_type=class_type,
        info=info,
        input_is_list=info["is_input_list"],
        output_is_list=tuple(declared + [False] * (outputs - len(declared))),
        output_node=info["output_node"],
        not_idempotent=bool(getattr(cls, "NOT_IDEMPOTENT", False)),
        has_intermediate_output=info["has_intermediate_output"],
        has_is_changed=hasattr(cls, "IS_CHANGED"),
        has_validate_inputs=validate is not None,
        validate_inputs_params=params,
        validate_takes_kwargs=takes_kwargs,
        validate_takes_input_types="input_types" in params,
        has_check_lazy_status=hasattr(cls, "check_lazy_status"),
        is_async=inspect.iscoroutinefunction(function),
        hidden_inputs=_v1_hidden_kinds(input_types),
        lazy_inputs=_option_inputs(input_types, "lazy"),
        raw_link_inputs=_option_inputs(input_types, "rawLink"),
    )


# --------------------------------------------------------------------------- V3


def v3_node_info(
    schema: Any, class_type: str, display_name: str | None, python_module: str
) -> dict[str, Any]:
    inputs = schema.v1_inputs()
    outputs = list(schema.outputs)
    return {
        "input": to_json_data(inputs),
        "input_order": {section: list(entries.keys()) for section, entries in inputs.items()},
        "is_input_list": bool(schema.is_input_list),
        "output": [str(o.get_io_type()) for o in outputs],
        "output_is_list": [bool(o.is_output_list) for o in outputs],
        "output_name": [o.display_name or str(o.get_io_type()) for o in outputs],
        "output_tooltips": [o.tooltip or None for o in outputs],
        "output_matchtypes": None,
        "name": class_type,
        "display_name": schema.display_name if schema.display_name is not None else display_name,
        "description": schema.description,
        "python_module": python_module,
        "category": schema.category,
        "output_node": bool(schema.is_output_node),
        "deprecated": bool(schema.is_deprecated),
        "experimental": bool(schema.is_experimental),
        "dev_only": bool(schema.is_dev_only),
        "api_node": bool(schema.is_api_node),
        "price_badge": to_json_data(schema.price_badge_dict()),
        "search_aliases": list(schema.search_aliases) if schema.search_aliases else None,
        "essentials_category": schema.essentials_category,
        "has_intermediate_output": bool(schema.has_intermediate_output),
    }


def v3_definition(
    cls: Any, class_type: str, display_name: str | None, python_module: str
) -> NodeDefinition:
    schema = cls.GET_SCHEMA()
    info = v3_node_info(schema, class_type, display_name, python_module)
    validate = getattr(cls, "validate_inputs", None)
    params, takes_kwargs = _validate_signature(validate) if validate is not None else ((), False)
    io = v3_io()
    return NodeDefinition(
        class_type=class_type,
        info=info,
        input_is_list=bool(schema.is_input_list),
        output_is_list=tuple(bool(o.is_output_list) for o in schema.outputs),
        output_node=bool(schema.is_output_node),
        not_idempotent=bool(schema.not_idempotent),
        has_intermediate_output=bool(schema.has_intermediate_output),
        has_is_changed=hasattr(cls, "fingerprint_inputs"),
        has_validate_inputs=validate is not None,
        validate_inputs_params=params,
        validate_takes_kwargs=takes_kwargs,
        validate_takes_input_types="input_types" in params,
        has_check_lazy_status=hasattr(cls, "check_lazy_status"),
        is_async=inspect.iscoroutinefunction(cls.execute),
        hidden_inputs={io.Hidden(h).name: io.Hidden(h).value for h in schema.hidden},
        lazy_inputs=frozenset(i.id for i in schema.inputs if i.lazy),
        raw_link_inputs=frozenset(i.id for i in schema.inputs if i.raw_link),
        accept_all_inputs=bool(schema.accept_all_inputs),
    )


def build_definition(
    cls: type, class_type: str, display_name: str | None, python_module: str
) -> NodeDefinition:
    if is_v3_class(cls):
        return v3_definition(cls, class_type, display_name, python_module)
    return v1_definition(cls, class_type, display_name, python_module)
