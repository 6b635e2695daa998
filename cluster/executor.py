"""The seam between a running prompt and whatever runs its nodes.

`cluster/dispatch.py` implements it over Ray worker actors; tests implement it in-process.
Output handles are opaque here (object references on Ray): the control plane passes them
from producer to consumer and keeps them in the output cache, never looking inside.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from node_actors.protocol import ChainStep, ExpansionCall, NodeResultMeta, NodeTask


@dataclass
class Submission:
    meta: Awaitable[NodeResultMeta]
    outputs: Any  # handle of the step's output lists, valid once meta says "done"


@dataclass(frozen=True)
class IsChangedRequest:
    node_id: str
    class_type: str
    inputs: dict[str, Any]  # constants; linked inputs are None


class NodeExecutor(Protocol):
    def submit(self, task: NodeTask, upstream: list[Any]) -> Submission: ...

    def submit_chain(self, steps: list[ChainStep], args: list[Any]) -> list[Submission]:
        """Run the steps one after another in one worker call; one Submission per step."""
        ...

    def submit_resolve(
        self,
        task: NodeTask,
        calls: tuple[ExpansionCall, ...],
        produced: Mapping[str, Any],
    ) -> Submission:
        """Merge an expanding node's outputs from the outputs its graph produced."""
        ...

    async def is_changed(self, prompt_id: str, requests: list[IsChangedRequest]) -> dict[str, Any]:
        """IS_CHANGED / fingerprint_inputs per node id (NaN when it raised)."""
        ...

    async def interrupt(self, prompt_id: str) -> None: ...

    async def free(self, unload_models: bool, free_memory: bool) -> None:
        """Unload models on every worker; with free_memory drop their node instances too."""
        ...
