"""One prompt in flight: ComfyUI's execution semantics as a small state machine.

`ActiveRun.execute()` stages ready nodes from the ExecutionList, submits them through the
NodeExecutor (several at once: independent branches run on different workers), and folds
each step's result back in: outputs into the cluster-wide cache, lazy requests and
expansions into new strong links, UI into `executed` messages, failures and interrupts
into ComfyUI's terminal messages. It knows nothing of Ray.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cluster.cache_keys import CacheKeyer
from cluster.dynamic_prompt import DynamicPrompt, is_link
from cluster.events import EventSink, PreviewFrame, now_ms
from cluster.execution_list import ExecutionList
from cluster.executor import IsChangedRequest, NodeExecutor, Submission
from cluster.output_cache import CacheEntry, OutputCache
from cluster.progress import ProgressRegistry
from node_actors.protocol import (
    ConstInput,
    ExpansionCall,
    InputSource,
    LinkInput,
    MissingInput,
    NodeDefinition,
    NodeResultMeta,
    NodeTask,
)

logger = logging.getLogger(__name__)

SENSITIVE_HIDDEN = {
    "AUTH_TOKEN_COMFY_ORG": "auth_token_comfy_org",
    "API_KEY_COMFY_ORG": "api_key_comfy_org",
    "COMFY_USAGE_SOURCE": "comfy_usage_source",
}


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


@dataclass
class RunOutcome:
    status_str: str  # "success" | "error"
    completed: bool
    messages: list[list[Any]]
    outputs: dict[str, dict[str, Any]]
    meta: dict[str, dict[str, Any]]
    interrupted: bool = False


class _Stop(Exception):
    """Ends the loop with a terminal message already recorded."""


class ActiveRun:
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
        self.progress = ProgressRegistry(self.prompt_id)
        self.messages: list[list[Any]] = []
        self.ui_outputs: dict[str, dict[str, Any]] = {}
        self.ui_meta: dict[str, dict[str, Any]] = {}
        self.executed: list[str] = []
        self.last_node_id: str | None = None
        self.interrupted = False
        self._available: dict[str, CacheEntry] = {}
        self._in_flight: dict[asyncio.Future[Any], tuple[str, Submission]] = {}
        self._expansions: dict[str, tuple[ExpansionCall, ...]] = {}
        self._keyer: CacheKeyer | None = None
        self._progress_next: dict[str, int] = {}
        self._progress_early: dict[str, dict[int, tuple[Any, ...]]] = {}
        self._progress_waiters: dict[str, tuple[int, asyncio.Event]] = {}
        self.cache_keys: set[str] = set()

    # --- messages ---------------------------------------------------------------------------

    def _send_client(self, type_: str, data: dict[str, Any]) -> None:
        """Messages ComfyUI sends only when the prompt has a client."""
        if self.client_id is not None:
            self._events.emit(type_, data, self.client_id)

    def _send_or_broadcast(self, type_: str, data: dict[str, Any]) -> None:
        self._events.emit(type_, data, self.client_id)

    def _record(self, type_: str, data: dict[str, Any]) -> None:
        self.messages.append([type_, data])

    def _send_progress_state(self) -> None:
        self._events.emit(
            "progress_bundle", {}, self.client_id, progress_state=self.progress.message()
        )

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
        """A worker reported progress (ProgressBar, set_progress) for a node of this run.

        Reports can overtake each other between processes; `seq` numbers them per node
        (1, 2, ...), and early ones wait here until the gap before them is filled.
        """
        if not seq:
            self._apply_progress(node_id, value, max_value, preview, legacy)
            return
        expected = self._progress_next.get(node_id, 1)
        if seq < expected:
            return
        buffered = self._progress_early.setdefault(node_id, {})
        buffered[seq] = (value, max_value, preview, legacy)
        while expected in buffered:
            self._apply_progress(node_id, *buffered.pop(expected))
            expected += 1
        self._progress_next[node_id] = expected
        waiter = self._progress_waiters.get(node_id)
        if waiter is not None and expected > waiter[0]:
            waiter[1].set()

    async def progress_delivered(self, node_id: str, last_seq: int, timeout: float) -> None:
        """Return once report `last_seq` of the node (and all before it) was applied."""
        if self._progress_next.get(node_id, 1) > last_seq:
            return
        event = asyncio.Event()
        self._progress_waiters[node_id] = (last_seq, event)
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            logger.warning(
                "prompt %s node %s: progress reports up to %d did not all arrive",
                self.prompt_id,
                node_id,
                last_seq,
            )
        finally:
            self._progress_waiters.pop(node_id, None)

    def _apply_progress(
        self,
        node_id: str,
        value: float,
        max_value: float,
        preview: PreviewFrame | None,
        legacy: bool,
    ) -> None:
        if not self.progress.update(node_id, value, max_value):
            return
        legacy_data = (
            {"value": value, "max": max_value, "prompt_id": self.prompt_id, "node": node_id}
            if legacy
            else None
        )
        if preview is not None:
            display, parent, real = self._ids(node_id)
            preview = PreviewFrame(
                preview.image_type,
                preview.data,
                {
                    "node_id": node_id,
                    "prompt_id": self.prompt_id,
                    "display_node_id": display,
                    "parent_node_id": parent,
                    "real_node_id": real,
                    "image_type": preview.image_type,
                },
            )
        self._events.emit(
            "progress_bundle",
            {},
            self.client_id,
            progress_state=self.progress.message(),
            progress=legacy_data,
            preview=preview,
        )

    # --- the loop ---------------------------------------------------------------------------

    def interrupt(self) -> None:
        self.interrupted = True

    async def execute(self) -> RunOutcome:
        start = {"prompt_id": self.prompt_id, "timestamp": now_ms()}
        self._record("execution_start", start)
        self._send_client("execution_start", start)
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
        return self._outcome()

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
        data = {"nodes": cached, "prompt_id": self.prompt_id, "timestamp": now_ms()}
        self._record("execution_cached", data)
        self._send_client("execution_cached", data)

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
                if any(n == node_id for n, _ in self._in_flight.values()):
                    continue
                staged = True
                if node_id in self._available and node_id not in self._expansions:
                    self._complete_cached(node_id)
                else:
                    self._start(node_id)
            if staged:
                continue
            if elist.is_empty() and not self._in_flight:
                break
            if not self._in_flight:
                self._dependency_cycle(elist.cycle_nodes())
            done, _ = await asyncio.wait(list(self._in_flight), return_when=asyncio.FIRST_COMPLETED)
            for future in done:
                node_id, submission = self._in_flight.pop(future)
                self._handle(node_id, submission, future.result())
        data = {"prompt_id": self.prompt_id, "timestamp": now_ms()}
        self._record("execution_success", data)
        self._send_client("execution_success", data)

    def _complete_cached(self, node_id: str) -> None:
        self._finish_node(node_id, self._available[node_id].ui)

    def _finish_node(self, node_id: str, ui: dict[str, Any] | None) -> None:
        """A node's outputs exist (run now, or found in the cache): report and unblock."""
        display, parent, real = self._ids(node_id)
        if ui:
            self._store_ui(node_id, ui)
            self._send_client(
                "executed",
                {
                    "node": node_id,
                    "display_node": display,
                    "output": ui,
                    "prompt_id": self.prompt_id,
                },
            )
        self.progress.finish(node_id, display, parent, real)
        self._send_progress_state()
        self._elist.complete(node_id)

    def _store_ui(self, node_id: str, ui: dict[str, Any]) -> None:
        display, parent, real = self._ids(node_id)
        self.ui_outputs[node_id] = ui
        self.ui_meta[node_id] = {
            "node_id": node_id,
            "display_node": display,
            "parent_node": parent,
            "real_node_id": real,
        }

    def _start(self, node_id: str) -> None:
        node = self.dynprompt.get_node(node_id)
        class_type = node.get("class_type", "")
        if self.interrupted:
            self._interrupted_at(node_id, class_type)
        display, parent, real = self._ids(node_id)
        resuming = node_id in self._expansions
        if not resuming:
            # A node resumed after its expansion ran is not announced again, as in ComfyUI.
            self.progress.start(node_id, display, parent, real)
            self._send_progress_state()
            self._send_client(
                "executing",
                {"node": node_id, "display_node": display, "prompt_id": self.prompt_id},
            )
            self.last_node_id = node_id
        task, upstream = self._task_for(node_id, node, display, parent, real)
        if resuming:
            produced = {
                link_node: self._available[link_node].outputs
                for call in self._expansions[node_id]
                for link_node in _link_sources(call)
                if link_node in self._available
            }
            submission = self._executor.submit_resolve(task, self._expansions[node_id], produced)
        else:
            submission = self._executor.submit(task, upstream)
        future = asyncio.ensure_future(submission.meta)
        self._in_flight[future] = (node_id, submission)

    def _task_for(
        self, node_id: str, node: dict[str, Any], display: str, parent: str | None, real: str
    ) -> tuple[NodeTask, list[Any]]:
        class_type = node.get("class_type", "")
        definition = self._definition_of(class_type)
        inputs: dict[str, InputSource] = {}
        upstream: list[Any] = []
        arg_of: dict[str, int] = {}
        missing_lazy = False
        for name, value in node.get("inputs", {}).items():
            declared = definition is not None and definition.input_spec(name) is not None
            if is_link(value):
                source = value[0]
                if source in self._available:
                    if source not in arg_of:
                        arg_of[source] = len(upstream)
                        upstream.append(self._available[source].outputs)
                    inputs[name] = LinkInput(arg_of[source], int(value[1]))
                else:
                    inputs[name] = MissingInput()
                    missing_lazy = True
            elif declared or (definition is not None and definition.accept_all_inputs):
                inputs[name] = ConstInput(value)
            # Undeclared constants are dropped, as ComfyUI does.
        hidden = self._hidden_values(node_id, definition)
        task = NodeTask(
            prompt_id=self.prompt_id,
            node_id=node_id,
            display_node_id=display,
            real_node_id=real,
            parent_node_id=parent,
            class_type=class_type,
            inputs=inputs,
            hidden=hidden,
            check_lazy=missing_lazy and definition is not None and definition.has_check_lazy_status,
            expansion_prefix=node_id,
        )
        return task, upstream

    def _hidden_values(self, node_id: str, definition: NodeDefinition | None) -> dict[str, Any]:
        if definition is None or not definition.hidden_inputs:
            return {}
        extra = self.request.extra_data
        values: dict[str, Any] = {}
        for kind in set(definition.hidden_inputs.values()):
            if kind == "PROMPT":
                values[kind] = self.request.prompt
            elif kind == "EXTRA_PNGINFO":
                values[kind] = extra.get("extra_pnginfo")
            elif kind == "UNIQUE_ID":
                values[kind] = node_id
            elif kind == "DYNPROMPT":
                values[kind] = self.dynprompt.as_dict()
            elif kind in SENSITIVE_HIDDEN:
                key = SENSITIVE_HIDDEN[kind]
                values[kind] = self.request.sensitive.get(key, extra.get(key))
        return values

    # --- results ----------------------------------------------------------------------------

    def _handle(self, node_id: str, submission: Submission, meta: NodeResultMeta) -> None:
        node = self.dynprompt.get_node(node_id)
        class_type = node.get("class_type", "")
        for notice in meta.blocked:
            self._send_client(
                "execution_error",
                {
                    "prompt_id": self.prompt_id,
                    "node_id": node_id,
                    "node_type": class_type,
                    "executed": list(self.executed),
                    "exception_message": f"Execution Blocked: {notice.message}",
                    "exception_type": "ExecutionBlocked",
                    "traceback": [],
                    "current_inputs": [],
                    "current_outputs": [],
                },
            )
        if meta.status == "done":
            self._expansions.pop(node_id, None)
            entry = CacheEntry(submission.outputs, meta.ui, meta.output_lengths)
            self._available[node_id] = entry
            if self._keyer is not None:
                self._cache.put(self._keyer.key(node_id), entry)
            self.executed.append(node_id)
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
        node_type = (
            self.dynprompt.get_node(node_id).get("class_type")
            if self.dynprompt.has_node(node_id)
            else None
        )
        data = {
            "prompt_id": self.prompt_id,
            "node_id": self.dynprompt.real_node_id(node_id) if node_id else node_id,
            "node_type": node_type,
            "executed": list(self.executed),
            "exception_message": message,
            "exception_type": exception_type,
            "traceback": traceback,
            "current_inputs": dict(current_inputs),
            "current_outputs": [n for n in self.request.prompt if n in self._available],
            "timestamp": now_ms(),
        }
        self._record("execution_error", data)
        self._send_client("execution_error", data)
        raise _Stop()

    def _interrupted_at(self, node_id: str, class_type: str) -> None:
        data = {
            "prompt_id": self.prompt_id,
            "node_id": self.dynprompt.real_node_id(node_id),
            "node_type": class_type,
            "executed": list(self.executed),
            "timestamp": now_ms(),
        }
        self.interrupted = True
        self._record("execution_interrupted", data)
        self._send_or_broadcast("execution_interrupted", data)
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

    def _outcome(self) -> RunOutcome:
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


def _link_sources(call: ExpansionCall) -> list[str]:
    if call.graph is None or call.result is None:
        return []
    return [v[0] for v in call.result if is_link(v)]
