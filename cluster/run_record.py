"""What a running prompt tells its client and leaves in history.

ComfyUI sends most prompt messages only when the prompt has a client, broadcasts progress and
interrupts when it has none, and keeps `execution_start`, `execution_cached` and the terminal
message in the history entry's `status.messages`. This module holds those rules and the
message shapes; `ActiveRun` decides when each is due.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cluster.dynamic_prompt import DynamicPrompt
from cluster.events import EventSink, now_ms


@dataclass
class RunOutcome:
    status_str: str  # "success" | "error"
    completed: bool
    messages: list[list[Any]]
    outputs: dict[str, dict[str, Any]]
    meta: dict[str, dict[str, Any]]
    interrupted: bool = False


class RunRecord:
    def __init__(
        self,
        prompt_id: str,
        client_id: str | None,
        events: EventSink,
        dynprompt: DynamicPrompt,
    ) -> None:
        self.prompt_id = prompt_id
        self.client_id = client_id
        self._events = events
        self._dynprompt = dynprompt
        self.messages: list[list[Any]] = []
        self.ui_outputs: dict[str, dict[str, Any]] = {}
        self.ui_meta: dict[str, dict[str, Any]] = {}
        self.executed: list[str] = []

    def _to_client(self, type_: str, data: dict[str, Any]) -> None:
        if self.client_id is not None:
            self._events.emit(type_, data, self.client_id)

    def _kept(self, type_: str, data: dict[str, Any]) -> None:
        """A message that also goes into the history entry."""
        self.messages.append([type_, data])
        self._to_client(type_, data)

    def started(self) -> None:
        self._kept("execution_start", {"prompt_id": self.prompt_id, "timestamp": now_ms()})

    def cached(self, nodes: list[str]) -> None:
        self._kept(
            "execution_cached",
            {"nodes": nodes, "prompt_id": self.prompt_id, "timestamp": now_ms()},
        )

    def succeeded(self) -> None:
        self._kept("execution_success", {"prompt_id": self.prompt_id, "timestamp": now_ms()})

    def executing(self, node_id: str) -> None:
        self._to_client(
            "executing",
            {
                "node": node_id,
                "display_node": self._dynprompt.display_node_id(node_id),
                "prompt_id": self.prompt_id,
            },
        )

    def output(self, node_id: str, ui: dict[str, Any]) -> None:
        """A node's UI output: kept for history and sent as `executed`."""
        display = self._dynprompt.display_node_id(node_id)
        self.ui_outputs[node_id] = ui
        self.ui_meta[node_id] = {
            "node_id": node_id,
            "display_node": display,
            "parent_node": self._dynprompt.parent_of(node_id),
            "real_node_id": self._dynprompt.real_node_id(node_id),
        }
        self._to_client(
            "executed",
            {"node": node_id, "display_node": display, "output": ui, "prompt_id": self.prompt_id},
        )

    def blocked(self, node_id: str, class_type: str, message: str) -> None:
        """An ExecutionBlocker with a message reached a node; the run goes on."""
        self._to_client(
            "execution_error",
            {
                "prompt_id": self.prompt_id,
                "node_id": node_id,
                "node_type": class_type,
                "executed": list(self.executed),
                "exception_message": f"Execution Blocked: {message}",
                "exception_type": "ExecutionBlocked",
                "traceback": [],
                "current_inputs": [],
                "current_outputs": [],
            },
        )

    def failed(
        self,
        node_id: str,
        message: str,
        exception_type: str,
        traceback: list[str],
        current_inputs: Mapping[str, Any],
        current_outputs: list[str],
    ) -> None:
        node_type = (
            self._dynprompt.get_node(node_id).get("class_type")
            if self._dynprompt.has_node(node_id)
            else None
        )
        self._kept(
            "execution_error",
            {
                "prompt_id": self.prompt_id,
                "node_id": self._dynprompt.real_node_id(node_id) if node_id else node_id,
                "node_type": node_type,
                "executed": list(self.executed),
                "exception_message": message,
                "exception_type": exception_type,
                "traceback": traceback,
                "current_inputs": dict(current_inputs),
                "current_outputs": current_outputs,
                "timestamp": now_ms(),
            },
        )

    def interrupted(self, node_id: str, class_type: str) -> None:
        data = {
            "prompt_id": self.prompt_id,
            "node_id": self._dynprompt.real_node_id(node_id),
            "node_type": class_type,
            "executed": list(self.executed),
            "timestamp": now_ms(),
        }
        self.messages.append(["execution_interrupted", data])
        # Broadcast when the prompt has no client, as ComfyUI does.
        self._events.emit("execution_interrupted", data, self.client_id)

    def outcome(self) -> RunOutcome:
        terminal = self.messages[-1][0] if self.messages else ""
        success = terminal == "execution_success"
        return RunOutcome(
            status_str="success" if success else "error",
            completed=success,
            messages=self.messages,
            outputs=self.ui_outputs,
            meta=self.ui_meta,
            interrupted=terminal == "execution_interrupted",
        )
