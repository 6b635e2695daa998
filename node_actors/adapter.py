"""One calling convention for V1 and V3 node classes.

The worker never looks at whether a class is V1 (INPUT_TYPES / FUNCTION) or V3
(ComfyNode schema / execute): it creates instances, calls the node's functions and reads
the normalized return through a NodeAdapter.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from node_actors.context import ExecutionBlocker
from node_actors.object_info import build_definition, is_v3_class, v3_io
from node_actors.protocol import NodeDefinition

logger = logging.getLogger(__name__)


@dataclass
class NodeReturn:
    """One call's return, normalized."""

    result: tuple[Any, ...] | None  # values per output slot; None when only ui was returned
    ui: dict[str, list[Any]] | None
    expand: dict[str, Any] | None  # prompt-format graph of the expansion
    blocker: ExecutionBlocker | None  # the whole call returned an ExecutionBlocker


class NodeAdapter:
    def __init__(
        self,
        class_type: str,
        cls: type,
        *,
        display_name: str | None = None,
        python_module: str = "nodes",
    ) -> None:
        self.class_type = class_type
        self.cls = cls
        self.display_name = display_name
        self.python_module = python_module
        self.is_v3 = is_v3_class(cls)
        self._definition: NodeDefinition | None = None

    # ------------------------------------------------------------------ definition

    @property
    def definition(self) -> NodeDefinition:
        """The last built definition (built on first use). Call build_definition() for a
        fresh one whose combos list the files present now."""
        if self._definition is None:
            return self.build_definition()
        return self._definition

    def build_definition(self) -> NodeDefinition:
        self._definition = build_definition(
            self.cls, self.class_type, self.display_name, self.python_module
        )
        return self._definition

    # ------------------------------------------------------------------ calls

    def new_instance(self) -> Any:
        return self.cls()

    def call_function(
        self, instance: Any, kwargs: dict[str, Any], hidden: Mapping[str, Any]
    ) -> Any:
        """Run the node's FUNCTION (V1) or execute (V3). May return an awaitable.

        V1 hidden inputs arrive in kwargs under their declared names; `hidden` (kind ->
        value) is only used for V3, whose class clone exposes it as `cls.hidden`.
        """
        if self.is_v3:
            return self._clone(hidden).execute(**self._v3_kwargs(kwargs))
        return getattr(instance, self.cls.FUNCTION)(**kwargs)

    def call_is_changed(self, kwargs: dict[str, Any]) -> Any:
        if self.is_v3:
            return self._clone({}).fingerprint_inputs(**self._v3_kwargs(kwargs))
        return self.cls.IS_CHANGED(**kwargs)

    def call_validate_inputs(self, kwargs: dict[str, Any]) -> Any:
        if self.is_v3:
            return self._clone({}).validate_inputs(**self._v3_kwargs(kwargs))
        return self.cls.VALIDATE_INPUTS(**kwargs)

    def call_check_lazy_status(
        self, instance: Any, kwargs: dict[str, Any], hidden: Mapping[str, Any]
    ) -> Any:
        if self.is_v3:
            return self._clone(hidden).check_lazy_status(**self._v3_kwargs(kwargs))
        return instance.check_lazy_status(**kwargs)

    def _clone(self, hidden: Mapping[str, Any]) -> Any:
        # Only the kinds the schema declares are visible, as in ComfyUI.
        declared = set(self.definition.hidden_inputs.values())
        return self.cls.PREPARE_CLASS_CLONE(
            {kind: value for kind, value in hidden.items() if kind in declared}
        )

    def _v3_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        # V3 reads hidden values from cls.hidden, never as arguments.
        hidden_names = self.definition.hidden_inputs
        if not hidden_names:
            return kwargs
        return {name: value for name, value in kwargs.items() if name not in hidden_names}

    # ------------------------------------------------------------------ returns

    def normalize_return(self, value: Any) -> NodeReturn:
        if value is None:
            return NodeReturn(None, None, None, None)
        if isinstance(value, ExecutionBlocker):
            return NodeReturn(None, None, None, value)
        if self._is_node_output(value):
            if value.block_execution is not None:
                return NodeReturn(
                    None, self._ui(value.ui), None, ExecutionBlocker(value.block_execution)
                )
            return NodeReturn(
                self._result(value.result), self._ui(value.ui), self._expand(value.expand), None
            )
        if isinstance(value, Mapping):
            result = value.get("result")
            if isinstance(result, ExecutionBlocker):
                result = (result,) * self._output_count()
            return NodeReturn(
                self._result(result),
                self._ui(value.get("ui")),
                self._expand(value.get("expand")),
                None,
            )
        if isinstance(value, (tuple, list)):
            return NodeReturn(self._result(value), None, None, None)
        raise TypeError(
            f"node {self.class_type} ({self._qualname()}) returned {type(value).__name__}; "
            "expected a tuple, a dict with ui/result/expand, an ExecutionBlocker or None"
        )

    def _is_node_output(self, value: Any) -> bool:
        return isinstance(value, v3_io().NodeOutput)

    def _output_count(self) -> int:
        return len(self.definition.info.get("output", []))

    def _result(self, result: Any) -> tuple[Any, ...] | None:
        if result is None:
            return None
        if not isinstance(result, (tuple, list)):
            raise TypeError(
                f"node {self.class_type} ({self._qualname()}) returned result of type "
                f"{type(result).__name__}; expected a tuple"
            )
        expected = self._output_count()
        if len(result) != expected:
            raise TypeError(
                f"node {self.class_type} ({self._qualname()}) returned {len(result)} values "
                f"but declares {expected} outputs"
            )
        return tuple(result)

    def _ui(self, ui: Any) -> dict[str, list[Any]] | None:
        if ui is None:
            return None
        if hasattr(ui, "as_dict"):  # V3 ui helpers
            ui = ui.as_dict()
        if not isinstance(ui, Mapping):
            raise TypeError(
                f"node {self.class_type} ({self._qualname()}) returned ui of type "
                f"{type(ui).__name__}; expected a dict of lists"
            )
        return dict(ui)

    def _expand(self, expand: Any) -> dict[str, Any] | None:
        if expand is None:
            return None
        if hasattr(expand, "finalize"):  # a GraphBuilder passed as is
            expand = expand.finalize()
        if not isinstance(expand, Mapping):
            raise TypeError(
                f"node {self.class_type} ({self._qualname()}) returned expand of type "
                f"{type(expand).__name__}; expected a prompt-format dict"
            )
        return dict(expand)

    def _qualname(self) -> str:
        return f"{self.cls.__module__}.{self.cls.__qualname__}"
