"""One prompt in flight: ComfyUI's execution semantics as a small state machine.

`ActiveRun.execute()` stages ready nodes from the ExecutionList, submits them through the
NodeExecutor (several at once: independent branches run on different workers), and folds
each step's result back in: outputs into the cluster-wide cache, lazy requests and
expansions into new strong links, UI into `executed` messages, failures and interrupts
into ComfyUI's terminal messages. It knows nothing of Ray.

Nodes are handed to the executor ahead of their turn and in chains (run_submission.py);
messages still follow ComfyUI's order: such a node is announced (`executing`) only when it
would have been staged, and its result is folded in only after that.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cluster.cache_keys import CacheKeyer
from cluster.dynamic_prompt import DynamicPrompt, is_link
from cluster.events import EventSink, PreviewFrame
from cluster.execution_list import ExecutionList
from cluster.executor import IsChangedRequest, NodeExecutor, Submission
from cluster.output_cache import CacheEntry, OutputCache
from cluster.run_progress import ProgressRelay
from cluster.run_record import RunOutcome, RunRecord
from cluster.run_submission import RunSubmission
from node_actors.protocol import (
    ExpansionCall,
    NodeDefinition,
    NodeResultMeta,
)

logger = logging.getLogger(__name__)


@dataclass
class RunRequest:
    prompt_id: str
    number: float | int
    prompt: dict[str, Any]
    outputs: list[str]
    extra_data: dict[str, Any]
    sensitive: dict[str, Any] = field(default_factory=dict)

    @property
    def client_id(self) -> str | None:
        return self.extra_data.get("client_id")


class _Stop(Exception):
    """Ends the loop with a terminal message already recorded."""


class ActiveRun(RunSubmission):
    def __init__(
        self,
        request: RunRequest,
        definitions: Callable[[str], NodeDefinition | None],
        cache: OutputCache,
        executor: NodeExecutor,
        events: EventSink,
        on_keys: Callable[[], None] | None = None,
    ) -> None:
        """`on_keys` runs once this run's cache keys are known (classic eviction)."""
        self.request = request
        self._on_keys = on_keys
        self._definition_of = definitions
        self._cache = cache
        self._executor = executor
        self._events = events
        self.prompt_id = request.prompt_id
        self.client_id = request.client_id
        self.dynprompt = DynamicPrompt(request.prompt)
        self.progress = ProgressRelay(self.prompt_id, self.client_id, events, self._ids)
        self.record = RunRecord(self.prompt_id, self.client_id, events, self.dynprompt)
        self.last_node_id: str | None = None
        self.interrupted = False
        self._available: dict[str, CacheEntry] = {}
        self._in_flight: dict[asyncio.Future[Any], tuple[str, Submission]] = {}
        # node id -> its submission, from submit until its result is folded in.
        self._submitted: dict[str, Submission] = {}
        # Submitted ahead of their turn, not yet announced; results that came back early.
        self._ahead: set[str] = set()
        # Nodes to submit at the end of this pass of the loop, in dependency order.
        self._round: dict[str, None] = {}
        self._consumer_counts: dict[str, int] | None = None
        # Chain steps report completion before their chain call returns.
        self._step_done: dict[str, asyncio.Future[NodeResultMeta]] = {}
        self._early: dict[str, NodeResultMeta] = {}
        self._expansions: dict[str, tuple[ExpansionCall, ...]] = {}
        self._keyer: CacheKeyer | None = None
        self.cache_keys: set[str] = set()

    # --- messages ---------------------------------------------------------------------------

    def _ids(self, node_id: str) -> tuple[str, str | None, str]:
        return (
            self.dynprompt.display_node_id(node_id),
            self.dynprompt.parent_of(node_id),
            self.dynprompt.real_node_id(node_id),
        )

    def on_progress(
        self,
        node_id: str,
        value: float,
        max_value: float,
        preview: PreviewFrame | None,
        legacy: bool,
        seq: int = 0,
    ) -> None:
        """A worker reported progress (ProgressBar, set_progress) for a node of this run."""
        self.progress.report(node_id, value, max_value, preview, legacy, seq)

    async def progress_delivered(self, node_id: str, last_seq: int, timeout: float) -> None:
        await self.progress.delivered(node_id, last_seq, timeout)

    # --- the loop ---------------------------------------------------------------------------

    def interrupt(self) -> None:
        self.interrupted = True

    async def execute(self) -> RunOutcome:
        self.record.started()
        try:
            await self._prepare()
            await self._loop()
        except _Stop:
            pass
        except Exception as exc:  # an engine bug must not take the queue down with it
            logger.exception("prompt %s: engine error", self.prompt_id)
            try:
                self._fail_with(
                    next(iter(self.request.outputs), ""), str(exc), type(exc).__name__, [], {}
                )
            except _Stop:
                pass
        finally:
            await self._drain()
        return self.record.outcome()

    async def _prepare(self) -> None:
        is_changed = await self._is_changed_values()
        self._keyer = CacheKeyer(self.dynprompt, self._definition_of, is_changed)
        keys = {node_id: self._keyer.key(node_id) for node_id in self.request.prompt}
        self.cache_keys = set(keys.values())
        if self._on_keys is not None:
            self._on_keys()
        cached: list[str] = []
        for node_id, key in keys.items():
            entry = self._cache.get(key)
            if entry is not None:
                self._available[node_id] = entry
                cached.append(node_id)
        self.record.cached(cached)

    async def _is_changed_values(self) -> dict[str, Any]:
        requests: list[IsChangedRequest] = []
        for node_id, node in self.request.prompt.items():
            definition = self._definition_of(node.get("class_type", ""))
            if definition is None or not definition.has_is_changed:
                continue
            constants = {
                name: (None if is_link(value) else value)
                for name, value in node.get("inputs", {}).items()
            }
            requests.append(IsChangedRequest(node_id, node["class_type"], constants))
        if not requests:
            return {}
        return await self._executor.is_changed(self.prompt_id, requests)

    def _is_available(self, node_id: str) -> bool:
        if node_id in self._available:
            return True
        if self._keyer is None or not self.dynprompt.has_node(node_id):
            return False
        entry = self._cache.get(self._keyer.key(node_id))
        if entry is None:
            return False
        self._available[node_id] = entry
        return True

    def _is_lazy_input(self, node_id: str, name: str) -> bool:
        definition = self._definition_of(self.dynprompt.get_node(node_id).get("class_type", ""))
        return definition is not None and name in definition.lazy_inputs

    async def _loop(self) -> None:
        elist = ExecutionList(self.dynprompt, self._is_available, self._is_lazy_input)
        self._elist = elist
        for output_id in self.request.outputs:
            elist.add_node(output_id)
        while True:
            staged = False
            for node_id in elist.ready():
                if node_id in self._submitted or node_id in self._round:
                    if node_id in self._ahead:
                        staged = True
                        self._announce_ahead(node_id)
                    continue
                staged = True
                if node_id in self._available and node_id not in self._expansions:
                    self._complete_cached(node_id)
                else:
                    self._start(node_id)
            if staged:
                self._submit_ahead()
                self._flush_round()
                continue
            if elist.is_empty() and not self._in_flight:
                break
            if not self._in_flight:
                self._dependency_cycle(elist.cycle_nodes())
            done, _ = await asyncio.wait(list(self._in_flight), return_when=asyncio.FIRST_COMPLETED)
            for future in done:
                node_id, submission = self._in_flight.pop(future)
                meta = future.result()
                if node_id in self._ahead and meta.status != "retry":
                    self._early[node_id] = meta
                else:
                    self._handle(node_id, submission, meta)
        self.record.succeeded()

    def _announce(self, node_id: str) -> None:
        """`progress_state` running and `executing`: the node's turn has come."""
        if self.interrupted:
            self._interrupted_at(node_id, self.dynprompt.get_node(node_id).get("class_type", ""))
        self.progress.start(node_id)
        self.record.executing(node_id)
        self.last_node_id = node_id

    def _announce_ahead(self, node_id: str) -> None:
        self._ahead.discard(node_id)
        self._announce(node_id)
        self.progress.release(node_id)
        meta = self._early.pop(node_id, None)
        if meta is not None:
            self._handle(node_id, self._submitted[node_id], meta)

    def _complete_cached(self, node_id: str) -> None:
        self._finish_node(node_id, self._available[node_id].ui)

    def _finish_node(self, node_id: str, ui: dict[str, Any] | None) -> None:
        """A node's outputs exist (run now, or found in the cache): report and unblock."""
        if ui:
            self.record.output(node_id, ui)
        self.progress.finish(node_id)
        self._elist.complete(node_id)

    def _start(self, node_id: str) -> None:
        if node_id in self._expansions:
            # A node resumed after its expansion ran is not announced again, as in ComfyUI.
            if self.interrupted:
                self._interrupted_at(node_id, self.dynprompt.get_node(node_id)["class_type"])
            task, _ = self._task_for(node_id)
            produced = {
                link_node: self._available[link_node].outputs
                for call in self._expansions[node_id]
                for link_node in _link_sources(call)
                if link_node in self._available
            }
            self._track(
                node_id, self._executor.submit_resolve(task, self._expansions[node_id], produced)
            )
            return
        self._announce(node_id)
        self._submit(node_id)

    def _handle(self, node_id: str, submission: Submission, meta: NodeResultMeta) -> None:
        self._submitted.pop(node_id, None)
        if meta.status == "retry":
            # Ran ahead, but an upstream step ended without outputs: stage it in its turn.
            self._ahead.discard(node_id)
            return
        node = self.dynprompt.get_node(node_id)
        class_type = node.get("class_type", "")
        for notice in meta.blocked:
            self.record.blocked(node_id, class_type, notice.message)
        if meta.status == "done":
            self._expansions.pop(node_id, None)
            entry = CacheEntry(submission.outputs, meta.ui, meta.output_lengths, meta.output_bytes)
            self._available[node_id] = entry
            if self._keyer is not None:
                self._cache.put(self._keyer.key(node_id), entry)
            self.record.executed.append(node_id)
            self._finish_node(node_id, meta.ui)
        elif meta.status == "lazy":
            for name in meta.needed_inputs:
                self._elist.make_input_strong_link(node_id, name)
        elif meta.status == "expand":
            self._expand(node_id, meta.expansion)
        elif meta.status == "interrupted":
            self._interrupted_at(node_id, class_type)
        else:
            failure = meta.failure
            self.progress.fail(node_id)
            self._fail_with(
                node_id,
                failure.exception_message if failure else "unknown failure",
                failure.exception_type if failure else "RuntimeError",
                failure.traceback if failure else [],
                failure.current_inputs if failure else {},
            )

    def _expand(self, node_id: str, calls: tuple[ExpansionCall, ...]) -> None:
        display = self.dynprompt.display_node_id(node_id)
        new_outputs: list[str] = []
        for call in calls:
            for new_id, new_node in (call.graph or {}).items():
                node_display = new_node.get("override_display_id", display)
                self.dynprompt.add_ephemeral_node(new_id, new_node, node_id, node_display)
                definition = self._definition_of(new_node.get("class_type", ""))
                if definition is not None and definition.output_node:
                    new_outputs.append(new_id)
        self._expansions[node_id] = calls
        self._consumer_counts = None
        for new_id in new_outputs:
            self._elist.add_node(new_id)
        for call in calls:
            if call.graph is None or call.result is None:
                continue
            for value in call.result:
                if is_link(value):
                    self._elist.add_strong_link(value[0], int(value[1]), node_id)

    def _fail_with(
        self,
        node_id: str,
        message: str,
        exception_type: str,
        traceback: list[str],
        current_inputs: Mapping[str, Any],
    ) -> None:
        current_outputs = [n for n in self.request.prompt if n in self._available]
        self.record.failed(
            node_id, message, exception_type, traceback, current_inputs, current_outputs
        )
        raise _Stop()

    def _interrupted_at(self, node_id: str, class_type: str) -> None:
        self.interrupted = True
        self.record.interrupted(node_id, class_type)
        raise _Stop()

    def _dependency_cycle(self, nodes: list[str]) -> None:
        node_id = nodes[0] if nodes else ""
        for candidate in nodes:
            if self.dynprompt.display_node_id(candidate) != candidate:
                node_id = candidate
                break
        self._fail_with(node_id, "Dependency cycle detected", "graph.DependencyCycleError", [], {})

    async def _drain(self) -> None:
        """Stop what is still running for this prompt; its results no longer matter."""
        if not self._in_flight:
            return
        try:
            await self._executor.interrupt(self.prompt_id)
        except Exception:
            logger.warning("prompt %s: interrupting leftover nodes failed", self.prompt_id)
        for future in list(self._in_flight):
            future.cancel()
        self._in_flight.clear()


def _link_sources(call: ExpansionCall) -> list[str]:
    if call.graph is None or call.result is None:
        return []
    return [v[0] for v in call.result if is_link(v)]
