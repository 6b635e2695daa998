"""Prompt validation with ComfyUI's rules and error shapes (`validate_prompt`, `validate_inputs`).

Clients match error types, messages, details and extra_info byte for byte, so those follow
ComfyUI. Where ComfyUI answers 500 (a prompt, node or `inputs` that is not an object, a
non-string node id, a `partial_execution_targets` that is not a list, absurd nesting) we answer
400 `invalid_prompt` (`cluster/prompt_format.py`).

Any list value of a declared input is read as a link, as in ComfyUI (constant lists are wrapped
as `{"__value__": [...]}`). A link to an unknown node id raises `KeyError(id)` and a bad slot
`IndexError`/`TypeError` (see `slot_index`), which surface as ComfyUI's §9.5 shapes:
`exception_during_validation` on the output holding the link, `exception_during_inner_validation`
on an intermediate node holding it.

Deliberate differences: `dependent_outputs` lists only the failed outputs that depend on the
node (ComfyUI adds every later failed output to every earlier failed node); outputs are
validated in prompt order (ComfyUI iterates a set); the walk keeps an explicit stack, so long
chains cannot hit Python's recursion limit.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cluster.errors import PromptValidationError, error_dict
from cluster.prompt_format import (
    check_prompt_shape,
    check_targets,
    copy_prompt,
    is_output_node,
)
from cluster.validate_walk import CustomValidator, GraphWalk
from node_actors.protocol import NodeDefinition

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ValidatedPrompt:
    prompt: dict[str, Any]  # coerced and unwrapped deep copy; the caller's prompt is untouched
    outputs: list[str]  # good output node ids, in prompt order
    node_errors: dict[str, Any]  # errors of failed outputs when at least one output is good


def check_prompt_id(value: Any) -> str | None:
    """None for absent/null (the caller mints a uuid4); the id itself when it is a canonical
    lowercase hyphenated UUID; otherwise 400 `invalid_prompt_id`."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            if str(uuid.UUID(value)) == value:
                return value
        except ValueError:
            pass
    raise PromptValidationError(
        error_dict(
            "invalid_prompt_id",
            "prompt_id must be a valid UUID",
            "prompt_id must be a UUID string in canonical lowercase hyphenated form; "
            "omit it to let the server generate one",
        )
    )


async def validate_prompt(
    prompt: Any,
    definitions: Mapping[str, NodeDefinition],
    partial_execution_targets: list[str] | None = None,
    custom_validator: CustomValidator | None = None,
    *,
    prompt_id: str | None = None,
) -> ValidatedPrompt:
    """Validate an API-format prompt; raise PromptValidationError for every 400 case.

    Error types raised: `no_prompt` (prompt is None), `invalid_prompt` (bad JSON shape, ours),
    `missing_node_type`, `prompt_no_outputs`, `prompt_outputs_failed_validation`. `prompt_id`
    is only used in log lines.
    """
    if prompt is None:
        raise PromptValidationError(
            error_dict("no_prompt", "No prompt provided", "No prompt provided")
        )
    check_prompt_shape(prompt, definitions)
    targets = check_targets(partial_execution_targets)
    outputs = [
        node_id
        for node_id, node in prompt.items()
        if is_output_node(definitions[node["class_type"]])
        and (targets is None or node_id in targets)
    ]
    if not outputs:
        raise PromptValidationError(error_dict("prompt_no_outputs", "Prompt has no outputs", ""))

    work = copy_prompt(prompt)
    walk = GraphWalk(work, definitions, custom_validator, prompt_id)
    good: list[str] = []
    failed_errors: list[dict[str, Any]] = []
    node_errors: dict[str, Any] = {}
    for output_id in outputs:
        result = await walk.validate_output(output_id)
        if result.valid:
            good.append(output_id)
            continue
        logger.warning(
            "prompt %s: output %s (%s) failed validation and will be ignored",
            prompt_id,
            output_id,
            work[output_id]["class_type"],
        )
        failed_errors.extend(result.errors)
        for node_id in walk.failing_upstream(output_id):
            entry = node_errors.get(node_id)
            if entry is None:
                entry = node_errors[node_id] = {
                    "errors": list(walk.validated[node_id].errors),
                    "dependent_outputs": [],
                    "class_type": work[node_id]["class_type"],
                }
            entry["dependent_outputs"].append(output_id)

    if not good:
        details = "\n".join(f"{e['message']}: {e['details']}" for e in failed_errors)
        raise PromptValidationError(
            error_dict(
                "prompt_outputs_failed_validation", "Prompt outputs failed validation", details
            ),
            node_errors,
        )
    return ValidatedPrompt(prompt=work, outputs=good, node_errors=node_errors)
