"""Turns a node of a running prompt into the NodeTask a worker runs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from cluster.dynamic_prompt import DynamicPrompt, is_link
from node_actors.protocol import (
    ConstInput,
    InputSource,
    LinkInput,
    MissingInput,
    NodeDefinition,
    NodeTask,
)

SENSITIVE_HIDDEN = {
    "AUTH_TOKEN_COMFY_ORG": "auth_token_comfy_org",
    "API_KEY_COMFY_ORG": "api_key_comfy_org",
    "COMFY_USAGE_SOURCE": "comfy_usage_source",
}


def hidden_values(
    node_id: str,
    definition: NodeDefinition | None,
    prompt: dict[str, Any],
    dynprompt: DynamicPrompt,
    extra_data: Mapping[str, Any],
    sensitive: Mapping[str, Any],
) -> dict[str, Any]:
    """Values of the hidden kinds a node declares (PROMPT, UNIQUE_ID, ...)."""
    if definition is None or not definition.hidden_inputs:
        return {}
    values: dict[str, Any] = {}
    for kind in set(definition.hidden_inputs.values()):
        if kind == "PROMPT":
            values[kind] = prompt
        elif kind == "EXTRA_PNGINFO":
            values[kind] = extra_data.get("extra_pnginfo")
        elif kind == "UNIQUE_ID":
            values[kind] = node_id
        elif kind == "DYNPROMPT":
            values[kind] = dynprompt.as_dict()
        elif kind in SENSITIVE_HIDDEN:
            key = SENSITIVE_HIDDEN[kind]
            values[kind] = sensitive.get(key, extra_data.get(key))
    return values


def build_task(
    prompt_id: str,
    node_id: str,
    dynprompt: DynamicPrompt,
    definition: NodeDefinition | None,
    outputs_of: Callable[[str], Any | None],
    hidden: dict[str, Any],
) -> tuple[NodeTask, list[Any]]:
    """The task and its upstream output handles (passed to the worker as arguments).

    `outputs_of(node_id)` is the handle of a node's outputs, or None when they will not
    exist before this step runs (an unevaluated lazy input: the node sees None).
    """
    node = dynprompt.get_node(node_id)
    class_type = node.get("class_type", "")
    inputs: dict[str, InputSource] = {}
    upstream: list[Any] = []
    arg_of: dict[str, int] = {}
    missing = False
    for name, value in node.get("inputs", {}).items():
        if is_link(value):
            source = value[0]
            handle = outputs_of(source)
            if handle is None:
                inputs[name] = MissingInput()
                missing = True
                continue
            if source not in arg_of:
                arg_of[source] = len(upstream)
                upstream.append(handle)
            inputs[name] = LinkInput(arg_of[source], int(value[1]))
        elif definition is not None and (
            definition.input_spec(name) is not None or definition.accept_all_inputs
        ):
            inputs[name] = ConstInput(value)
        # Undeclared constants are dropped, as ComfyUI does.
    task = NodeTask(
        prompt_id=prompt_id,
        node_id=node_id,
        display_node_id=dynprompt.display_node_id(node_id),
        real_node_id=dynprompt.real_node_id(node_id),
        parent_node_id=dynprompt.parent_of(node_id),
        class_type=class_type,
        inputs=inputs,
        hidden=hidden,
        check_lazy=missing and definition is not None and definition.has_check_lazy_status,
        expansion_prefix=node_id,
    )
    return task, upstream
