"""Plain data shared by the control plane and the workers.

This module must stay importable without torch or the node library: `cluster/` reads
node definitions and task results through it and nothing else from `node_actors`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def is_link(value: Any) -> bool:
    """A link is exactly `[str node_id, int|float slot]` (bools are not slots)."""
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int | float)
        and not isinstance(value[1], bool)
    )


@dataclass(frozen=True)
class NodeDefinition:
    """What the control plane knows about one node class.

    `info` is the class's `/object_info` entry exactly as served (keys `input`,
    `input_order`, `output`, `output_is_list`, `output_name`, `name`, `display_name`,
    `description`, `python_module`, `category`, `output_node`, ...). The flags below are the
    parts of the Python class that validation, caching and scheduling need and that
    object_info does not carry.
    """

    class_type: str
    info: dict[str, Any]
    input_is_list: bool = False
    output_is_list: tuple[bool, ...] = ()
    output_node: bool = False
    not_idempotent: bool = False
    has_intermediate_output: bool = False
    # IS_CHANGED (V1) / fingerprint_inputs (V3) is defined on the class.
    has_is_changed: bool = False
    # VALIDATE_INPUTS (V1) / validate_inputs (V3) is defined on the class.
    has_validate_inputs: bool = False
    # Names of the parameters VALIDATE_INPUTS declares (excluding cls/self and **kwargs).
    validate_inputs_params: tuple[str, ...] = ()
    validate_takes_kwargs: bool = False
    validate_takes_input_types: bool = False
    has_check_lazy_status: bool = False
    # FUNCTION (or V3 execute) is a coroutine function.
    is_async: bool = False
    # Hidden input name -> kind (PROMPT, UNIQUE_ID, ...); plain hidden inputs map to "".
    hidden_inputs: dict[str, str] = field(default_factory=dict)
    lazy_inputs: frozenset[str] = frozenset()
    raw_link_inputs: frozenset[str] = frozenset()
    # The V3 schema's accept_all_inputs: undeclared constants are passed too.
    accept_all_inputs: bool = False

    @property
    def return_types(self) -> list[Any]:
        return list(self.info.get("output", []))

    def input_spec(self, name: str) -> tuple[str, Any] | None:
        """(section, spec) of a declared input, searching required, optional, hidden."""
        inputs = self.info.get("input", {})
        for section in ("required", "optional", "hidden"):
            spec = inputs.get(section, {}).get(name)
            if spec is not None:
                return section, spec
        return None

    @property
    def takes_unique_id(self) -> bool:
        return "UNIQUE_ID" in self.hidden_inputs.values()


# --- what the control plane sends to a worker, and what comes back -----------------------------


@dataclass(frozen=True)
class ConstInput:
    """A constant input value (already coerced by validation), carried as one item."""

    value: Any


@dataclass(frozen=True)
class LinkInput:
    """An input fed by output `slot` of the upstream outputs passed as argument `arg_index`."""

    arg_index: int
    slot: int


@dataclass(frozen=True)
class MissingInput:
    """A lazy input whose upstream has not been evaluated (the node sees None)."""


InputSource = ConstInput | LinkInput | MissingInput


@dataclass(frozen=True)
class NodeTask:
    """One step of one node of one prompt, as a worker runs it."""

    prompt_id: str
    node_id: str  # the unique id (ephemeral ids for expanded nodes)
    display_node_id: str
    real_node_id: str
    parent_node_id: str | None
    class_type: str
    inputs: dict[str, InputSource]
    # Values of hidden kinds the node declares: PROMPT, EXTRA_PNGINFO, UNIQUE_ID, DYNPROMPT, ...
    hidden: dict[str, Any] = field(default_factory=dict)
    # Run check_lazy_status first (the node declares it and has lazy inputs not yet evaluated).
    check_lazy: bool = False
    # GraphBuilder id prefix root for expansions made by this step.
    expansion_prefix: str = ""


@dataclass(frozen=True)
class ExpansionCall:
    """What one list-mapped call of an expanding node returned."""

    graph: dict[str, Any] | None  # prompt-format nodes, None when this call did not expand
    # Per output slot: a value, or a link [node_id, slot] into the expanded graph.
    result: tuple[Any, ...] | None


@dataclass(frozen=True)
class BlockedNotice:
    """An ExecutionBlocker with a message reached this node: report it, then go on."""

    message: str


@dataclass(frozen=True)
class NodeFailure:
    exception_message: str
    exception_type: str
    traceback: list[str]
    current_inputs: dict[str, list[str]]


@dataclass(frozen=True)
class NodeResultMeta:
    """The small part of a step's result; outputs travel separately as an object ref.

    status: "done" (outputs ready), "lazy" (re-run once `needed_inputs` are evaluated),
    "expand" (run `expansion` first, then resolve), "failed", "interrupted".
    """

    status: str
    ui: dict[str, list[Any]] | None = None
    needed_inputs: tuple[str, ...] = ()
    expansion: tuple[ExpansionCall, ...] = ()
    blocked: tuple[BlockedNotice, ...] = ()
    failure: NodeFailure | None = None
    # Number of items per output slot (lets the control plane report without fetching outputs).
    output_lengths: tuple[int, ...] = ()
    # Approximate size of the outputs (tensor and array bytes), for the cache's memory budget.
    output_bytes: int = 0
    # Cache keys of the models (ModelRefs) inside the outputs: the scheduler sends the steps
    # that take these outputs to a worker already holding those models.
    model_keys: tuple[str, ...] = ()
    # The models the worker's cache holds after this step (None: not reported).
    held_models: tuple[str, ...] | None = None


@dataclass(frozen=True)
class PreviewFrame:
    """An encoded preview image and the ids that type-4 frames carry."""

    image_type: str  # "image/jpeg" | "image/png"
    data: bytes
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChainStep:
    """One step of a chain run by a single worker call.

    `sources[i]` says where the task's upstream argument i comes from: ("arg", k) is
    argument k of the chain call, ("step", j) the outputs of step j of this chain.
    """

    task: NodeTask
    sources: tuple[tuple[str, int], ...]
