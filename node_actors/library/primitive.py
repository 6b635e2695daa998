"""Primitive value nodes from ComfyUI's comfy_extras/nodes_primitive.py.

Each passes its `value` widget through unchanged, so a workflow can wire one constant
into several inputs.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

logger = logging.getLogger(__name__)

PYTHON_MODULE = "comfy_extras.nodes_primitive"

_CATEGORY = "utils/primitive"


class _Primitive:
    FUNCTION = "execute"
    CATEGORY = _CATEGORY

    def execute(self, value: Any) -> tuple[Any]:
        return (value,)


class PrimitiveString(_Primitive):
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"value": ("STRING", {})}}

    RETURN_TYPES = ("STRING",)
    SEARCH_ALIASES = ["text", "string", "text box", "prompt"]


class PrimitiveStringMultiline(_Primitive):
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"value": ("STRING", {"multiline": True})}}

    RETURN_TYPES = ("STRING",)
    ESSENTIALS_CATEGORY = "Basics"


class PrimitiveInt(_Primitive):
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "value": (
                    "INT",
                    {"min": -sys.maxsize, "max": sys.maxsize, "control_after_generate": "fixed"},
                )
            }
        }

    RETURN_TYPES = ("INT",)


class PrimitiveFloat(_Primitive):
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {"value": ("FLOAT", {"min": -sys.maxsize, "max": sys.maxsize, "step": 0.1})}
        }

    RETURN_TYPES = ("FLOAT",)


class PrimitiveBoolean(_Primitive):
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"value": ("BOOLEAN", {})}}

    RETURN_TYPES = ("BOOLEAN",)


NODE_CLASS_MAPPINGS = {
    "PrimitiveString": PrimitiveString,
    "PrimitiveStringMultiline": PrimitiveStringMultiline,
    "PrimitiveInt": PrimitiveInt,
    "PrimitiveFloat": PrimitiveFloat,
    "PrimitiveBoolean": PrimitiveBoolean,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "PrimitiveString": "String",
    "PrimitiveStringMultiline": "String (Multiline)",
    "PrimitiveInt": "Int",
    "PrimitiveFloat": "Float",
    "PrimitiveBoolean": "Boolean",
}
