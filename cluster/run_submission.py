"""How a running prompt hands its nodes to the executor: ahead of their turn, in chains.

A node whose inputs all come from nodes already submitted goes to a worker at once, with
their output handles as arguments, so the executor starts it the moment its inputs exist
instead of after a round trip through the run loop. The nodes of one pass of the loop are
grouped into chains (`cluster/chains.py`), each one worker call. A chain step reports its
result before the chain returns when the step after it takes a while, so the next node is
announced in time. `ActiveRun` mixes this in; the state it uses is set in its constructor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cluster.chains import partition_chains
from cluster.dynamic_prompt import DynamicPrompt, is_link
from cluster.execution_list import ExecutionList
from cluster.executor import NodeExecutor, Submission
from cluster.output_cache import CacheEntry
from cluster.run_progress import ProgressRelay
from cluster.task_builder import build_task, hidden_values
from node_actors.protocol import ChainStep, ExpansionCall, NodeDefinition, NodeResultMeta, NodeTask


class RunSubmission:
    # Set by ActiveRun.__init__ (and _loop for _elist).
    prompt_id: str
    request: Any
    dynprompt: DynamicPrompt
    progress: ProgressRelay
    interrupted: bool
    _definition_of: Callable[[str], NodeDefinition | None]
    _executor: NodeExecutor
    _elist: ExecutionList
    _available: dict[str, CacheEntry]
    _expansions: dict[str, tuple[ExpansionCall, ...]]
    _in_flight: dict[asyncio.Future[Any], tuple[str, Submission]]
    _submitted: dict[str, Submission]
    _ahead: set[str]
    _round: dict[str, None]
    _consumer_counts: dict[str, int] | None
    _step_done: dict[str, asyncio.Future[NodeResultMeta]]

    def _can_run_ahead(self, node_id: str) -> bool:
        if node_id in self._submitted or node_id in self._round or node_id in self._expansions:
            return False
        if node_id in self._available:
            return False
        node = self.dynprompt.get_node(node_id)
        definition = self._definition_of(node.get("class_type", ""))
        if definition is None or definition.lazy_inputs:
            return False
        for value in node.get("inputs", {}).values():
            if is_link(value) and not (
                value[0] in self._available
                or value[0] in self._round
                or (value[0] in self._submitted and value[0] not in self._expansions)
            ):
                return False
        return True

    def _submit_ahead(self) -> None:
        """Submit every pending node whose inputs are all available or on their way."""
        progressed = True
        while progressed and not self.interrupted:
            progressed = False
            for node_id in list(self._elist.pending):
                if self._can_run_ahead(node_id):
                    self._ahead.add(node_id)
                    self.progress.hold(node_id)
                    self._round[node_id] = None
                    progressed = True

    def _submit(self, node_id: str) -> None:
        self._round[node_id] = None

    def _in_round_inputs(self, node_id: str) -> set[str]:
        return {
            value[0]
            for value in self.dynprompt.get_node(node_id).get("inputs", {}).values()
            if is_link(value) and value[0] in self._round
        }

    def _consumers(self, node_id: str) -> int:
        if self._consumer_counts is None:
            counts: dict[str, set[str]] = {}
            for other in self.dynprompt.all_node_ids():
                for value in self.dynprompt.get_node(other).get("inputs", {}).values():
                    if is_link(value):
                        counts.setdefault(value[0], set()).add(other)
            self._consumer_counts = {k: len(v) for k, v in counts.items()}
        return self._consumer_counts.get(node_id, 0)

    def _flush_round(self) -> None:
        """Submit this pass's nodes: each chain of them as one worker call."""
        if not self._round:
            return
        chains = partition_chains(list(self._round), self._in_round_inputs, self._consumers)
        for chain in chains:
            position = {node_id: index for index, node_id in enumerate(chain)}
            args: list[Any] = []
            steps: list[ChainStep] = []
            for node_id in chain:
                task, upstream = self._task_for(node_id, position)
                sources: list[tuple[str, int]] = []
                for handle in upstream:
                    if isinstance(handle, _StepRef):
                        sources.append(("step", handle.index))
                    else:
                        sources.append(("arg", len(args)))
                        args.append(handle)
                steps.append(ChainStep(task, tuple(sources)))
            if len(steps) == 1:
                self._track(chain[0], self._executor.submit(steps[0].task, args))
                continue
            for node_id, submission in zip(
                chain, self._executor.submit_chain(steps, args), strict=True
            ):
                early: asyncio.Future[NodeResultMeta] = asyncio.get_running_loop().create_future()
                self._step_done[node_id] = early
                self._track(node_id, submission, early)
        self._round.clear()

    def _track(
        self,
        node_id: str,
        submission: Submission,
        early: asyncio.Future[NodeResultMeta] | None = None,
    ) -> None:
        self._submitted[node_id] = submission
        meta = submission.meta if early is None else _first_of(early, submission.meta)
        future = asyncio.ensure_future(meta)
        self._in_flight[future] = (node_id, submission)

    def on_step_done(self, node_id: str, meta: NodeResultMeta) -> None:
        """A step of a chain finished; the rest of the chain may still be running."""
        early = self._step_done.pop(node_id, None)
        if early is not None and not early.done():
            early.set_result(meta)

    def _outputs_of(self, node_id: str) -> Any | None:
        if node_id in self._available:
            return self._available[node_id].outputs
        submission = self._submitted.get(node_id)
        return submission.outputs if submission is not None else None

    def _task_for(
        self, node_id: str, chain: Mapping[str, int] | None = None
    ) -> tuple[NodeTask, list[Any]]:
        """The task; upstream handles are _StepRef for outputs of the same chain."""

        def outputs_of(source: str) -> Any | None:
            if chain is not None and source in chain:
                return _StepRef(chain[source])
            return self._outputs_of(source)

        definition = self._definition_of(self.dynprompt.get_node(node_id).get("class_type", ""))
        hidden = hidden_values(
            node_id,
            definition,
            self.request.prompt,
            self.dynprompt,
            self.request.extra_data,
            self.request.sensitive,
        )
        return build_task(self.prompt_id, node_id, self.dynprompt, definition, outputs_of, hidden)

    # --- results ----------------------------------------------------------------------------


async def _first_of(
    early: asyncio.Future[NodeResultMeta], whole: Awaitable[NodeResultMeta]
) -> NodeResultMeta:
    """A chain step's result: its own report, or the chain's return, whichever is first."""
    late = asyncio.ensure_future(whole)
    done, _ = await asyncio.wait({early, late}, return_when=asyncio.FIRST_COMPLETED)
    if early in done:
        late.cancel()
        return early.result()
    early.cancel()
    return late.result()


@dataclass(frozen=True)
class _StepRef:
    """Outputs of step `index` of the chain being built."""

    index: int
