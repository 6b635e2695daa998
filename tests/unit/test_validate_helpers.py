"""Hand-built node definitions (object_info form) and helpers shared by the validation tests."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from cluster.errors import PromptValidationError
from cluster.validate import ValidatedPrompt, validate_prompt
from node_actors.protocol import NodeDefinition


class AnyType(str):
    """A node pack's wildcard socket type: never unequal to anything."""

    def __ne__(self, other: object) -> bool:
        return False

    __hash__ = str.__hash__


def definition(
    class_type: str,
    required: dict[str, Any] | None = None,
    optional: dict[str, Any] | None = None,
    hidden: dict[str, Any] | None = None,
    output: tuple[Any, ...] = (),
    output_node: bool = False,
    **flags: Any,
) -> NodeDefinition:
    """A NodeDefinition whose `info` is shaped like a V1 `/object_info` entry."""
    inputs: dict[str, Any] = {"required": required or {}}
    order: dict[str, list[str]] = {"required": list(required or {})}
    if optional:
        inputs["optional"] = optional
        order["optional"] = list(optional)
    if hidden:
        inputs["hidden"] = hidden
        order["hidden"] = list(hidden)
    info = {
        "input": inputs,
        "input_order": order,
        "is_input_list": False,
        "output": list(output),
        "output_is_list": [False] * len(output),
        "output_name": list(output),
        "name": class_type,
        "display_name": class_type,
        "description": "",
        "python_module": "nodes",
        "category": "test",
        "output_node": output_node,
        "has_intermediate_output": False,
        "search_aliases": [],
    }
    hidden_kinds = {k: v if isinstance(v, str) else "" for k, v in (hidden or {}).items()}
    return NodeDefinition(
        class_type=class_type,
        info=info,
        output_node=output_node,
        hidden_inputs=hidden_kinds,
        **flags,
    )


MODELS = [f"m{i}.safetensors" for i in range(25)]

DEFS: dict[str, NodeDefinition] = {
    d.class_type: d
    for d in (
        definition(
            "LoadImage",
            {"image": [["a.png", "b.png"], {"image_upload": True}]},
            output=("IMAGE", "MASK"),
        ),
        definition(
            "SolidMask",
            {
                "value": ["FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01}],
                "width": ["INT", {"default": 512, "min": 1, "max": 16384}],
            },
            output=("MASK",),
        ),
        definition(
            "SaveImage",
            {"images": ["IMAGE", {"tooltip": "x"}], "filename_prefix": ["STRING", {}]},
            hidden={"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"},
            output=("IMAGE",),
            output_node=True,
        ),
        definition("Sink", {"value": ["*"]}, output_node=True),
        definition("ShowNumber", {"v": ["INT", {}]}, output_node=True),
        definition("ShowFlag", {"flag": ["BOOLEAN"], "text": ["STRING"]}, output_node=True),
        definition(
            "Options",
            {
                "sampler": [["euler", "ddim"]],
                "scheduler": ["COMBO", {"options": ["simple", "karras"]}],
            },
            optional={
                "tags": ["COMBO", {"options": ["a", "b", "c"], "multiselect": True}],
                "model": ["COMBO", {"options": MODELS}],
            },
            output=("STRING",),
        ),
        definition("Pass", {"image": ["IMAGE"]}, output=("IMAGE",)),
        definition("Blend", {"x": ["IMAGE,MASK"]}, output=("FLOAT,INT",)),
        definition("ComboOut", {}, output=(["euler", "ddim"],)),
        definition("AnyOut", {}, output=(AnyType("ANYOUT"),)),
        definition("Wild", {"value": [AnyType("WILD")]}, output_node=True),
        definition(
            "CheckFile",
            {"image": [["a.png"], {}], "count": ["INT", {"min": 1, "max": 10}]},
            optional={"mask": ["MASK"]},
            hidden={"unique_id": "UNIQUE_ID"},
            output=("IMAGE", "MASK"),
            has_validate_inputs=True,
            validate_inputs_params=("image", "mask", "unique_id"),
        ),
        definition(
            "CheckAll",
            {"image": [["a.png"]], "count": ["INT", {"min": 1}]},
            output=("IMAGE",),
            has_validate_inputs=True,
            validate_takes_kwargs=True,
        ),
        definition(
            "CheckTypes",
            {"pixels": ["IMAGE"], "strength": ["FLOAT", {"min": 0.0}]},
            output=("IMAGE",),
            has_validate_inputs=True,
            validate_inputs_params=("input_types", "strength"),
            validate_takes_input_types=True,
        ),
    )
}


class FakeValidator:
    """Stands in for VALIDATE_INPUTS running on a worker; records every call."""

    def __init__(
        self,
        results: dict[str, list[Any]] | None = None,
        raises: dict[str, Exception] | None = None,
    ) -> None:
        self.results = results or {}
        self.raises = raises or {}
        self.calls: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []

    async def __call__(
        self, class_type: str, inputs: dict[str, Any], input_types: dict[str, str] | None
    ) -> list[Any]:
        self.calls.append((class_type, inputs, input_types))
        if class_type in self.raises:
            raise self.raises[class_type]
        return self.results.get(class_type, [True])


def run(
    prompt: Any,
    targets: list[str] | None = None,
    validator: FakeValidator | None = None,
    defs: dict[str, NodeDefinition] | None = None,
) -> ValidatedPrompt:
    return asyncio.run(validate_prompt(prompt, defs or DEFS, targets, validator))


def reject(
    prompt: Any,
    targets: Any = None,
    validator: FakeValidator | None = None,
) -> PromptValidationError:
    """Run a prompt that must be refused, checking the caller's prompt is left untouched."""
    before = copy.deepcopy(prompt)
    with pytest.raises(PromptValidationError) as caught:
        run(prompt, targets, validator)
    assert prompt == before
    return caught.value


def node(class_type: str, title: str | None = None, **inputs: Any) -> dict[str, Any]:
    built: dict[str, Any] = {"class_type": class_type, "inputs": inputs}
    if title is not None:
        built["_meta"] = {"title": title}
    return built


def strip_tracebacks(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Error dicts with `traceback` checked to be a list of str and then dropped."""
    out = []
    for error in errors:
        error = copy.deepcopy(error)
        trace = error["extra_info"].pop("traceback")
        assert isinstance(trace, list) and all(isinstance(line, str) for line in trace)
        out.append(error)
    return out
