"""`comfy_execution.graph` names custom packs import.

ExecutionBlocker is re-exported from node_actors.context so that a blocker a pack creates
is recognised by the worker with a plain isinstance check.
"""

from __future__ import annotations

from typing import Any, Protocol

from node_actors.context import ExecutionBlocker

__all__ = ["DynamicPrompt", "ExecutionBlocker"]


class DynamicPrompt(Protocol):
    """Only a type name here: the worker passes its own prompt view for DYNPROMPT."""

    def get_node(self, node_id: str) -> dict[str, Any]: ...

    def has_node(self, node_id: str) -> bool: ...

    def get_original_prompt(self) -> dict[str, Any]: ...
