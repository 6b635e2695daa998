"""The shape of an API-format prompt, checked before any node is validated.

A prompt is `{node_id: {"class_type": str, "inputs": {name: value}, "_meta"?: {"title"}}}`.
ComfyUI answers a prompt that is not an object, a node that is not an object or `inputs` that
is not an object with a 500 (its code trips over the value); we answer 400 with the error type
`invalid_prompt` and a message that names the node and the field. Unknown or missing classes
keep ComfyUI's own `missing_node_type` shapes.

Also here: the wire forms the validator reads (links, link slots, object_info input specs,
the hidden values VALIDATE_INPUTS is offered) and error-text helpers that never raise.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from typing import Any

from cluster.errors import PromptValidationError, error_dict
from node_actors.protocol import NodeDefinition, is_link

logger = logging.getLogger(__name__)

INVALID_PROMPT = "invalid_prompt"


def json_type_name(value: Any) -> str:
    """The JSON name of a value's type, for messages a client can act on."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def safe_text(value: Any) -> str:
    """`str(value)`, or a placeholder when the value cannot be printed (ints over Python's
    digit limit, objects whose `__str__` raises): error text must never raise itself."""
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


def safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


def invalid_prompt(message: str, details: str, **extra_info: Any) -> PromptValidationError:
    """Our 400 for a prompt whose JSON shape is wrong (ComfyUI would answer 500)."""
    return PromptValidationError(error_dict(INVALID_PROMPT, message, details, extra_info))


def node_title(node: Mapping[str, Any], default: Any) -> Any:
    """`_meta.title`, or `default` when `_meta` has none (a non-object `_meta` counts as none)."""
    meta = node.get("_meta")
    if not isinstance(meta, dict):
        return default
    return meta.get("title", default)


def check_prompt_shape(prompt: Any, definitions: Mapping[str, NodeDefinition]) -> None:
    """Raise PromptValidationError for the prompt-level problems, first hit wins.

    ComfyUI checks every node's class before looking at any node's inputs, so a missing class
    anywhere wins over a malformed `inputs` earlier in the prompt; we keep that priority.
    """
    if not isinstance(prompt, dict):
        raise invalid_prompt(
            "Invalid prompt: 'prompt' must be a JSON object",
            f"'prompt' must be an object mapping node ids to nodes, got {json_type_name(prompt)}",
            field="prompt",
        )
    for node_id, node in prompt.items():
        _check_node_class(node_id, node, definitions)
    for node_id, node in prompt.items():
        inputs = node.get("inputs")
        if not isinstance(inputs, dict):
            got = "nothing" if "inputs" not in node else json_type_name(inputs)
            raise invalid_prompt(
                f"Invalid prompt: node '{node_id}' has no 'inputs' object",
                f"prompt['{node_id}']['inputs'] must be an object, got {got}",
                node_id=node_id,
                class_type=node["class_type"],
                field="inputs",
            )


def _check_node_class(node_id: Any, node: Any, definitions: Mapping[str, NodeDefinition]) -> None:
    if not isinstance(node_id, str):
        raise invalid_prompt(
            "Invalid prompt: node ids must be strings",
            f"node id {safe_repr(node_id)} is a {json_type_name(node_id)}",
            node_id=safe_text(node_id),
            field="prompt",
        )
    if not isinstance(node, dict):
        raise invalid_prompt(
            f"Invalid prompt: node '{node_id}' must be a JSON object",
            f"prompt['{node_id}'] must be an object with 'class_type' and 'inputs', "
            f"got {json_type_name(node)}",
            node_id=node_id,
            field=node_id,
        )
    if "class_type" not in node:
        title = node_title(node, None)
        raise PromptValidationError(
            error_dict(
                "missing_node_type",
                f"Node '{safe_text(title or f'ID #{node_id}')}' has no class_type. The workflow "
                "may be corrupted or a custom node is missing.",
                f"Node ID '#{node_id}'",
                {"node_id": node_id, "class_type": None, "node_title": title},
            )
        )
    class_type = node["class_type"]
    # A non-string class (a number, a list) is reported like an unknown one; ComfyUI does the
    # same for hashable values and answers 500 for the others.
    if isinstance(class_type, str) and class_type in definitions:
        return
    title = node_title(node, class_type)
    raise PromptValidationError(
        error_dict(
            "missing_node_type",
            f"Node '{safe_text(title)}' not found. The custom node may not be installed.",
            f"Node ID '#{node_id}'",
            {"node_id": node_id, "class_type": class_type, "node_title": title},
        )
    )


def check_targets(targets: Any) -> list[Any] | None:
    """`partial_execution_targets` must be absent/null or a list of node ids."""
    if targets is None:
        return None
    if isinstance(targets, list | tuple):
        return list(targets)
    raise invalid_prompt(
        "Invalid prompt: 'partial_execution_targets' must be a list of node ids",
        f"'partial_execution_targets' must be an array, got {json_type_name(targets)}",
        field="partial_execution_targets",
    )


def is_output_node(definition: NodeDefinition) -> bool:
    return definition.output_node is True or definition.info.get("output_node") is True


def split_spec(spec: Any) -> tuple[Any, dict[str, Any]]:
    """(type, options) of an object_info input spec: `["INT", {...}]`, `[[...]]`, `["IMAGE"]`."""
    if isinstance(spec, list | tuple) and spec:
        options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
        return spec[0], options
    return spec, {}


def input_section(info: Mapping[str, Any], section: str) -> dict[str, Any]:
    """`info["input"][section]`, or {} when the definition lacks it."""
    inputs = info.get("input")
    found = inputs.get(section) if isinstance(inputs, dict) else None
    return found if isinstance(found, dict) else {}


# Hidden values VALIDATE_INPUTS sees in ComfyUI, which calls it without a prompt, extra data or
# execution list: the prompt is {}, the unique id is the node's, the others are None.
_HIDDEN_AT_VALIDATION = frozenset(
    {
        "PROMPT",
        "DYNPROMPT",
        "EXECUTION_LIST",
        "EXTRA_PNGINFO",
        "UNIQUE_ID",
        "AUTH_TOKEN_COMFY_ORG",
        "API_KEY_COMFY_ORG",
        "COMFY_USAGE_SOURCE",
    }
)


def validator_inputs(
    node_id: str, inputs: Mapping[str, Any], definition: NodeDefinition
) -> dict[str, Any]:
    """What VALIDATE_INPUTS is offered, before filtering to the names it declares.

    Linked inputs are None (a declared rawLink input gets the link itself), declared constants
    (undeclared ones too for a V3 `accept_all_inputs` node) are passed as they are, then the
    hidden values known without running the prompt.
    """
    info = definition.info
    declared: dict[str, Any] = {}
    for section in ("hidden", "optional", "required"):
        declared.update(input_section(info, section))
    values: dict[str, Any] = {}
    for name, value in inputs.items():
        raw_link = name in declared and (
            name in definition.raw_link_inputs
            or bool(split_spec(declared[name])[1].get("rawLink", False))
        )
        if is_link(value) and not raw_link:
            values[name] = None
        elif name in declared or definition.accept_all_inputs:
            values[name] = value
    for name, kind in input_section(info, "hidden").items():
        kind = kind[0] if isinstance(kind, list | tuple) and kind else kind
        if isinstance(kind, str) and kind in _HIDDEN_AT_VALIDATION:
            values[name] = {} if kind == "PROMPT" else node_id if kind == "UNIQUE_ID" else None
    return values


def copy_prompt(prompt: dict[str, Any]) -> dict[str, Any]:
    """A deep copy to validate and coerce, so the caller's prompt is never mutated."""
    try:
        return copy.deepcopy(prompt)
    except Exception as exc:  # RecursionError on absurd nesting; non-JSON objects
        raise invalid_prompt(
            "Invalid prompt: the prompt is not plain JSON data",
            f"the prompt could not be copied ({type(exc).__name__}); "
            "values may be nested too deeply",
            field="prompt",
        ) from exc


def slot_index(slot: Any, count: int) -> int:
    """The upstream output index a link's slot names, or ComfyUI-like errors.

    Out of range raises `IndexError("tuple index out of range")` (ComfyUI's text, from indexing
    RETURN_TYPES); negative slots count as out of range (Python indexing would wrap). A slot
    that is not an integer (bool, string, 0.5) raises TypeError; an integral float (1.0) names
    that output and the prompt stores it as an int.
    """
    if isinstance(slot, bool) or not isinstance(slot, int | float):
        raise TypeError(f"link slot must be an integer, got {json_type_name(slot)}")
    if isinstance(slot, float):
        if not slot.is_integer():
            raise TypeError(f"link slot must be an integer, got {slot!r}")
        slot = int(slot)
    if not 0 <= slot < count:
        raise IndexError("tuple index out of range")
    return slot
