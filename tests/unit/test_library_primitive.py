"""Primitive value nodes."""

from __future__ import annotations

import sys

import pytest

from node_actors.library import primitive


@pytest.mark.parametrize(
    ("name", "value", "return_type"),
    [
        ("PrimitiveInt", -17, "INT"),
        ("PrimitiveFloat", -0.0, "FLOAT"),
        ("PrimitiveString", "héllo", "STRING"),
        ("PrimitiveStringMultiline", "a\nb", "STRING"),
        ("PrimitiveBoolean", False, "BOOLEAN"),
    ],
)
def test_primitives_pass_their_value_through(name: str, value: object, return_type: str) -> None:
    cls = primitive.NODE_CLASS_MAPPINGS[name]
    (out,) = getattr(cls(), cls.FUNCTION)(value=value)
    assert out is value
    assert cls.RETURN_TYPES == (return_type,)
    assert list(cls.INPUT_TYPES()["required"]) == ["value"]
    assert cls.CATEGORY == "utils/primitive"


def test_primitive_specs_and_registration() -> None:
    assert primitive.PYTHON_MODULE == "comfy_extras.nodes_primitive"
    int_spec = primitive.PrimitiveInt.INPUT_TYPES()["required"]["value"]
    assert int_spec[0] == "INT"
    assert (int_spec[1]["min"], int_spec[1]["max"]) == (-sys.maxsize, sys.maxsize)
    assert primitive.PrimitiveStringMultiline.INPUT_TYPES()["required"]["value"] == (
        "STRING",
        {"multiline": True},
    )
    assert primitive.NODE_DISPLAY_NAME_MAPPINGS == {
        "PrimitiveString": "String",
        "PrimitiveStringMultiline": "String (Multiline)",
        "PrimitiveInt": "Int",
        "PrimitiveFloat": "Float",
        "PrimitiveBoolean": "Boolean",
    }
