"""The graph walk behind `validate_prompt`: validates each output's upstream nodes once,
with an explicit stack (no recursion limit on long chains), recording ComfyUI's per-node
errors, dependency cycles and exceptions raised while validating."""

from __future__ import annotations

import copy
import logging
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from cluster.errors import error_dict
from cluster.prompt_format import (
    input_section,
    safe_text,
    slot_index,
    split_spec,
    validator_inputs,
)
from cluster.types_match import (
    bad_link_error,
    check_constant,
    custom_validation_errors,
    input_config,
    missing_input_error,
    type_mismatch_error,
    types_match,
)
from node_actors.protocol import NodeDefinition

logger = logging.getLogger(__name__)


class CustomValidator(Protocol):
    """Calls a node class's VALIDATE_INPUTS / validate_inputs (node code runs elsewhere).

    `inputs`: constants as values and linked inputs as None (the names the function declares,
    or all inputs when it takes **kwargs); `input_types`: `{input_name: received_type}` of the
    linked inputs when the function declares `input_types`, else None. Returns one result per
    list-mapped call: True for success, anything else is a failure (False, or a message).
    An ExecutionBlocker result must be reported as True.
    """

    async def __call__(
        self, class_type: str, inputs: dict[str, Any], input_types: dict[str, str] | None
    ) -> list[Any]: ...


def _full_type_name(klass: type) -> str:
    if klass.__module__ == "builtins":
        return klass.__qualname__
    return f"{klass.__module__}.{klass.__qualname__}"


@dataclass
class _Result:
    valid: bool
    errors: list[dict[str, Any]]


@dataclass
class _Frame:
    """One node being validated; `index` is the declared input to look at next."""

    node_id: str
    started: bool = False
    class_type: str = ""
    definition: NodeDefinition | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    specs: dict[str, tuple[str, Any]] = field(default_factory=dict)
    index: int = 0
    valid: bool = True
    errors: list[dict[str, Any]] = field(default_factory=list)
    received_types: dict[str, Any] = field(default_factory=dict)
    # (input name, link, input config) of the upstream node being validated for this one.
    pending: tuple[str, Any, Any] | None = None


class GraphWalk:
    """Depth-first validation of the nodes outputs depend on, memoized per node id."""

    def __init__(
        self,
        prompt: dict[str, Any],
        definitions: Mapping[str, NodeDefinition],
        validator: CustomValidator | None,
        prompt_id: str | None,
    ) -> None:
        self.prompt = prompt
        self.definitions = definitions
        self.validator = validator
        self.prompt_id = prompt_id
        self.validated: dict[str, _Result] = {}
        # Node id -> the upstream ids its links lead to, for dependent_outputs.
        self.upstream: dict[str, list[str]] = {}

    async def validate_output(self, output_id: str) -> _Result:
        if output_id in self.validated:
            return self.validated[output_id]
        stack = [_Frame(output_id)]
        on_stack = {output_id}
        while stack:
            frame = stack[-1]
            try:
                child = self._advance(frame, stack, on_stack)
                if child is None:
                    await self._finish(frame)
            except Exception as exc:
                stack.pop()
                on_stack.discard(frame.node_id)
                self._record_exception(frame, stack[-1] if stack else None, exc)
                continue
            if child is not None:
                stack.append(_Frame(child))
                on_stack.add(child)
                continue
            stack.pop()
            on_stack.discard(frame.node_id)
            if stack:
                parent = stack[-1]
                if not self.validated[frame.node_id].valid:
                    parent.valid = False
                parent.pending = None
                parent.index += 1
        return self.validated[output_id]

    def failing_upstream(self, output_id: str) -> list[str]:
        """Ids (in validation order) of nodes with their own errors that the output reaches."""
        reached = {output_id}
        todo = [output_id]
        while todo:
            for source_id in self.upstream.get(todo.pop(), ()):
                if source_id not in reached:
                    reached.add(source_id)
                    todo.append(source_id)
        return [
            node_id
            for node_id, result in self.validated.items()
            if node_id in reached and not result.valid and result.errors
        ]

    def _start(self, frame: _Frame) -> None:
        node = self.prompt[frame.node_id]
        frame.class_type = node["class_type"]
        frame.definition = self.definitions[frame.class_type]
        frame.inputs = node["inputs"]
        info = frame.definition.info
        for section in ("required", "optional"):
            for name, spec in input_section(info, section).items():
                frame.specs.setdefault(name, (section, spec))
        frame.started = True

    def _advance(self, frame: _Frame, stack: list[_Frame], on_stack: set[str]) -> str | None:
        """Check inputs until one needs an upstream node validated first (its id is returned)
        or all are done (None)."""
        if not frame.started:
            self._start(frame)
        names = list(frame.specs)
        while frame.index < len(names):
            child = self._check_input(frame, names[frame.index], stack, on_stack)
            if child is not None:
                return child
            frame.index += 1
        return None

    def _check_input(
        self, frame: _Frame, name: str, stack: list[_Frame], on_stack: set[str]
    ) -> str | None:
        section, spec = frame.specs[name]
        input_type, options = split_spec(spec)
        if name not in frame.inputs:
            if section == "required":
                frame.errors.append(missing_input_error(name))
            return None
        value = frame.inputs[name]
        if isinstance(value, list):
            if len(value) != 2:
                frame.errors.append(bad_link_error(name, value, input_type, options))
                return None
            return self._check_link(frame, name, value, input_type, options, stack, on_stack)
        self._check_constant(frame, name, value, input_type, options)
        return None

    def _check_link(
        self,
        frame: _Frame,
        name: str,
        value: list[Any],
        input_type: Any,
        options: dict[str, Any],
        stack: list[_Frame],
        on_stack: set[str],
    ) -> str | None:
        source_id, slot = value
        if not isinstance(source_id, str) or source_id not in self.prompt:
            raise KeyError(source_id)
        upstream = self.definitions[self.prompt[source_id]["class_type"]]
        return_types = upstream.info.get("output")
        if not isinstance(return_types, list | tuple):
            return_types = []
        index = slot_index(slot, len(return_types))
        link = [source_id, index]
        frame.inputs[name] = link
        received = return_types[index]
        frame.received_types[name] = received
        definition = frame.definition
        assert definition is not None
        takes_types = definition.has_validate_inputs and definition.validate_takes_input_types
        if not takes_types and not types_match(received, input_type):
            frame.errors.append(type_mismatch_error(name, link, received, input_type, options))
            return None
        self.upstream.setdefault(frame.node_id, []).append(source_id)
        if source_id in self.validated:
            if not self.validated[source_id].valid:
                frame.valid = False
            return None
        if source_id in on_stack:
            ids = [f.node_id for f in stack]
            self._mark_cycle(ids[ids.index(source_id) :] + [source_id])
            frame.valid = False
            return None
        frame.pending = (name, list(link), input_config(input_type, options))
        return source_id

    def _mark_cycle(self, path: list[str]) -> None:
        cycle_nodes = list(dict.fromkeys(path))
        details = " -> ".join(
            f"{node_id} ({self.prompt[node_id]['class_type']})" for node_id in path
        )
        logger.warning("prompt %s: dependency cycle %s", self.prompt_id, details)
        for node_id in cycle_nodes:
            self.validated[node_id] = _Result(
                False,
                [
                    error_dict(
                        "dependency_cycle",
                        "Dependency cycle detected",
                        details,
                        {"node_id": node_id, "cycle_nodes": list(cycle_nodes)},
                    )
                ],
            )

    def _check_constant(
        self, frame: _Frame, name: str, value: Any, input_type: Any, options: dict[str, Any]
    ) -> None:
        definition = frame.definition
        assert definition is not None
        # VALIDATE_INPUTS owns the range and option checks of the inputs it takes.
        owned = definition.has_validate_inputs and (
            definition.validate_takes_kwargs or name in definition.validate_inputs_params
        )
        stored, error = check_constant(name, value, input_type, options, not owned)
        frame.inputs[name] = stored
        if error is not None:
            frame.errors.append(error)

    async def _finish(self, frame: _Frame) -> None:
        definition = frame.definition
        assert definition is not None
        if definition.has_validate_inputs:
            await self._custom_validation(frame, definition)
        previous = self.validated.get(frame.node_id, _Result(True, []))
        # A cycle found below this node may already have put errors on it: join them.
        errors = previous.errors + [e for e in frame.errors if e not in previous.errors]
        valid = previous.valid and frame.valid and not frame.errors
        self.validated[frame.node_id] = _Result(valid, errors)

    async def _custom_validation(self, frame: _Frame, definition: NodeDefinition) -> None:
        if self.validator is None:
            logger.warning(
                "prompt %s: node %s (%s) has VALIDATE_INPUTS but no validator was given",
                self.prompt_id,
                frame.node_id,
                frame.class_type,
            )
            return
        values = validator_inputs(frame.node_id, frame.inputs, definition)
        names = [
            name
            for name in values
            if definition.validate_takes_kwargs or name in definition.validate_inputs_params
        ]
        filtered = {name: values[name] for name in names if name != "input_types"}
        input_types = None
        if definition.validate_takes_input_types:
            input_types = dict(frame.received_types)
            if "input_types" not in names:
                names.append("input_types")
        results = await self.validator(frame.class_type, copy.deepcopy(filtered), input_types)
        frame.errors.extend(custom_validation_errors(names, results))

    def _record_exception(self, frame: _Frame, parent: _Frame | None, exc: Exception) -> None:
        message = safe_text(exc)
        exception_type = _full_type_name(type(exc))
        trace = traceback.format_tb(exc.__traceback__)
        logger.warning(
            "prompt %s: exception while validating node %s: %s: %s",
            self.prompt_id,
            frame.node_id,
            exception_type,
            message,
        )
        if parent is None or parent.pending is None:
            error = error_dict(
                "exception_during_validation",
                "Exception when validating node",
                message,
                {"exception_type": exception_type, "traceback": trace},
            )
        else:
            input_name, link, config = parent.pending
            error = error_dict(
                "exception_during_inner_validation",
                "Exception when validating inner node",
                message,
                {
                    "input_name": input_name,
                    "input_config": config,
                    "exception_message": message,
                    "exception_type": exception_type,
                    "traceback": trace,
                    "linked_node": link,
                },
            )
            parent.valid = False
            parent.pending = None
            parent.index += 1
        self.validated[frame.node_id] = _Result(False, [error])
