"""Runs one step of one node inside a worker: ComfyUI's list mapping, lazy checks,
ExecutionBlocker handling, result merging and expansion resolution.

Pure Python over the adapter: no Ray here, so every rule is unit-testable in-process.
Outputs are carried as ComfyUI carries them: one list of per-item values per output slot.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import traceback
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from node_actors.adapter import NodeAdapter, NodeReturn
from node_actors.context import ExecutionBlocker, InterruptProcessingException
from node_actors.protocol import (
    BlockedNotice,
    ConstInput,
    ExpansionCall,
    LinkInput,
    MissingInput,
    NodeFailure,
    NodeResultMeta,
    NodeTask,
    is_link,
)

logger = logging.getLogger(__name__)

NodeOutputs = list[list[Any]]


def resolve_inputs(task: NodeTask, upstream: list[NodeOutputs | None]) -> dict[str, list[Any]]:
    """Every input as a list of items: constants become [v], links the upstream slot's list."""
    values: dict[str, list[Any]] = {}
    for name, source in task.inputs.items():
        if isinstance(source, ConstInput):
            values[name] = [source.value]
        elif isinstance(source, LinkInput):
            outputs = upstream[source.arg_index]
            if outputs is None or source.slot >= len(outputs):
                values[name] = [None]
            else:
                values[name] = outputs[source.slot]
        elif isinstance(source, MissingInput):
            values[name] = [None]
    return values


async def _await_all(results: list[Any]) -> list[Any]:
    """Await the awaitable items concurrently (async nodes over a list run together)."""
    pending = [(i, r) for i, r in enumerate(results) if inspect.isawaitable(r)]
    if pending:
        done = await asyncio.gather(*(r for _, r in pending))
        for (i, _), value in zip(pending, done, strict=True):
            results[i] = value
    return results


async def map_over_list(
    input_is_list: bool,
    inputs: Mapping[str, list[Any]],
    call: Callable[[dict[str, Any], int], Any],
    on_blocker: Callable[[ExecutionBlocker], ExecutionBlocker] | None = None,
) -> list[Any]:
    """Call `call` once per item index (or once with whole lists), as ComfyUI maps nodes.

    A call whose arguments hold an ExecutionBlocker is skipped and yields the blocker
    (after `on_blocker`, which turns a blocker with a message into a silent one).
    """
    if input_is_list:
        batches: list[dict[str, Any]] = [dict(inputs)]
    elif not inputs:
        batches = [{}]
    else:
        count = max(len(v) for v in inputs.values())
        batches = [
            {k: (v[i] if len(v) > i else v[-1]) if v else None for k, v in inputs.items()}
            for i in range(count)
        ]
    results: list[Any] = []
    for index, args in enumerate(batches):
        blocker = _find_blocker(args, input_is_list)
        if blocker is not None:
            results.append(on_blocker(blocker) if on_blocker else blocker)
        else:
            results.append(call(args, index))
    return await _await_all(results)


def _find_blocker(args: Mapping[str, Any], input_is_list: bool) -> ExecutionBlocker | None:
    for value in args.values():
        if input_is_list and isinstance(value, list):
            for item in value:
                if isinstance(item, ExecutionBlocker):
                    return item
        elif isinstance(value, ExecutionBlocker):
            return value
    return None


def merge_outputs(
    returns: list[tuple[Any, ...] | ExecutionBlocker], output_is_list: tuple[bool, ...], slots: int
) -> NodeOutputs:
    """Per slot: concatenate OUTPUT_IS_LIST lists, else one value per call."""
    merged: NodeOutputs = [[] for _ in range(slots)]
    for ret in returns:
        for i in range(slots):
            if isinstance(ret, ExecutionBlocker):
                merged[i].append(ret)
                continue
            value = ret[i]
            if i < len(output_is_list) and output_is_list[i] and isinstance(value, list):
                merged[i].extend(value)
            else:
                merged[i].append(value)
    return merged


def approx_bytes(value: Any, depth: int = 0) -> int:
    """Bytes held by tensors, arrays and byte strings inside outputs (other objects: 0).
    Models and other opaque objects do not count; they are not what fills a cache."""
    if depth > 6:
        return 0
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    if hasattr(value, "element_size") and hasattr(value, "nelement"):
        return int(value.element_size() * value.nelement())
    if isinstance(value, bytes | bytearray):
        return len(value)
    if isinstance(value, list | tuple):
        return sum(approx_bytes(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return sum(approx_bytes(v, depth + 1) for v in value.values())
    return 0


def merge_ui(parts: list[dict[str, Any] | None]) -> dict[str, list[Any]] | None:
    """Concatenate per-call UI lists key-wise. The result goes to clients and history as
    JSON, so values that are not JSON (a tensor a node put there) become their str()."""
    merged: dict[str, list[Any]] = {}
    for ui in parts:
        if not ui:
            continue
        for key, value in ui.items():
            items = value if isinstance(value, list) else [value]
            merged.setdefault(str(key), []).extend(items)
    if not merged:
        return None
    return json.loads(json.dumps(merged, default=str))


def _format_input(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= 200 else text[:197] + "..."


def _exception_type(exc: BaseException) -> str:
    cls = type(exc)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def describe_failure(exc: BaseException, inputs: Mapping[str, list[Any]]) -> NodeFailure:
    return NodeFailure(
        exception_message=f"{exc}\n",
        exception_type=_exception_type(exc),
        traceback=traceback.format_tb(exc.__traceback__),
        current_inputs={k: [_format_input(x) for x in v] for k, v in inputs.items()},
    )


def _is_v3(adapter: NodeAdapter) -> bool:
    return bool(getattr(adapter, "is_v3", hasattr(adapter.cls, "define_schema")))


def _v1_hidden_kwargs(adapter: NodeAdapter, task: NodeTask) -> dict[str, Any]:
    """V1 nodes receive hidden kinds as keyword arguments under their declared names;
    V3 nodes read them from `cls.hidden`, which the adapter sets."""
    if _is_v3(adapter):
        return {}
    return {
        name: task.hidden.get(kind)
        for name, kind in adapter.definition.hidden_inputs.items()
        if kind and name not in task.inputs
    }


class StepRunner:
    """Runs NodeTasks against node adapters; one per worker.

    `instances` keeps node instances per (node_id, class_type) across prompts, as ComfyUI's
    objects cache does (LoraLoader and friends rely on it).
    """

    def __init__(
        self,
        adapter_for: Callable[[str], NodeAdapter],
        keep_instances: bool = True,
        on_call_start: Callable[[str, int], None] | None = None,
    ) -> None:
        """`on_call_start(prefix_root, call_index)` runs before each FUNCTION call; the
        worker uses it to set GraphBuilder's id prefix for expansions."""
        self._adapter_for = adapter_for
        self._on_call_start = on_call_start
        self._keep_instances = keep_instances
        self._instances: dict[tuple[str, str], Any] = {}

    def _instance(self, adapter: NodeAdapter, node_id: str) -> Any:
        key = (node_id, adapter.class_type)
        instance = self._instances.get(key) if self._keep_instances else None
        if instance is None:
            instance = adapter.new_instance()
            if self._keep_instances:
                self._instances[key] = instance
        return instance

    def forget_instances(self) -> None:
        self._instances.clear()

    async def run(
        self, task: NodeTask, upstream: list[NodeOutputs | None]
    ) -> tuple[NodeResultMeta, NodeOutputs | None]:
        inputs = resolve_inputs(task, upstream)
        try:
            adapter = self._adapter_for(task.class_type)
            return await self._run(adapter, task, inputs)
        except InterruptProcessingException:
            logger.info("prompt %s node %s interrupted", task.prompt_id, task.node_id)
            return NodeResultMeta(status="interrupted"), None
        except Exception as exc:  # a node's failure is a result, not a worker crash
            logger.warning(
                "prompt %s node %s (%s) failed: %s",
                task.prompt_id,
                task.node_id,
                task.class_type,
                exc,
            )
            return NodeResultMeta(status="failed", failure=describe_failure(exc, inputs)), None

    async def _run(
        self, adapter: NodeAdapter, task: NodeTask, inputs: dict[str, list[Any]]
    ) -> tuple[NodeResultMeta, NodeOutputs | None]:
        definition = adapter.definition
        instance = self._instance(adapter, task.node_id)
        if task.check_lazy and definition.has_check_lazy_status:
            needed = await self._lazy_needs(adapter, instance, task, inputs)
            if needed:
                return NodeResultMeta(status="lazy", needed_inputs=tuple(needed)), None

        notices: list[BlockedNotice] = []

        def on_blocker(blocker: ExecutionBlocker) -> ExecutionBlocker:
            if blocker.message is not None:
                notices.append(BlockedNotice(blocker.message))
                return ExecutionBlocker(None)
            return blocker

        hidden_kwargs = _v1_hidden_kwargs(adapter, task)

        def call(kwargs: dict[str, Any], index: int) -> Awaitable[Any] | Any:
            if self._on_call_start is not None:
                self._on_call_start(task.expansion_prefix or task.node_id, index)
            return adapter.call_function(instance, {**kwargs, **hidden_kwargs}, task.hidden)

        raw = await map_over_list(definition.input_is_list, inputs, call, on_blocker)
        returns: list[NodeReturn | ExecutionBlocker] = [
            r if isinstance(r, ExecutionBlocker) else adapter.normalize_return(r) for r in raw
        ]
        slots = len(definition.return_types)
        if any(isinstance(r, NodeReturn) and r.expand is not None for r in returns):
            calls = tuple(
                ExpansionCall(graph=None, result=(r,) * slots)
                if isinstance(r, ExecutionBlocker)
                else ExpansionCall(graph=r.expand, result=r.result)
                for r in returns
            )
            return NodeResultMeta(status="expand", expansion=calls, blocked=tuple(notices)), None

        values: list[tuple[Any, ...] | ExecutionBlocker] = []
        uis: list[dict[str, Any] | None] = []
        for r in returns:
            if isinstance(r, ExecutionBlocker):
                values.append(r)
            elif r.blocker is not None:
                values.append(on_blocker(r.blocker))
            else:
                uis.append(r.ui)
                values.append(r.result if r.result is not None else (None,) * slots)
        outputs = merge_outputs(values, definition.output_is_list, slots)
        return (
            NodeResultMeta(
                status="done",
                ui=merge_ui(uis),
                blocked=tuple(notices),
                output_lengths=tuple(len(o) for o in outputs),
                output_bytes=approx_bytes(outputs),
            ),
            outputs,
        )

    async def _lazy_needs(
        self, adapter: NodeAdapter, instance: Any, task: NodeTask, inputs: dict[str, list[Any]]
    ) -> list[str]:
        missing = {n for n, s in task.inputs.items() if isinstance(s, MissingInput)}
        # check_lazy_status sees every declared input; unevaluated ones as None.
        lazy_inputs = dict(inputs)
        for name in adapter.definition.lazy_inputs:
            lazy_inputs.setdefault(name, [None])

        hidden_kwargs = _v1_hidden_kwargs(adapter, task)

        def call(kwargs: dict[str, Any], index: int) -> Any:
            return adapter.call_check_lazy_status(
                instance, {**kwargs, **hidden_kwargs}, task.hidden
            )

        results = await map_over_list(adapter.definition.input_is_list, lazy_inputs, call)
        needed: list[str] = []
        for result in results:
            if isinstance(result, ExecutionBlocker) or not result:
                continue
            for name in result if isinstance(result, list | tuple) else [result]:
                if name in missing and name not in needed:
                    needed.append(name)
        return needed


def resolve_expansion(
    calls: tuple[ExpansionCall, ...],
    produced: Mapping[str, NodeOutputs | None],
    output_is_list: tuple[bool, ...],
    slots: int,
) -> NodeOutputs:
    """The expanding node's outputs once its graph ran: links read the producers' lists.

    A link resolves to the producer's whole item list for that slot, so a call contributes
    one item per item of the expanded node (one in the common case).
    """
    merged: NodeOutputs = [[] for _ in range(slots)]
    for expansion in calls:
        result = expansion.result or (None,) * slots
        for i in range(slots):
            value = result[i] if i < len(result) else None
            if isinstance(value, ExecutionBlocker):
                merged[i].append(value)
            elif expansion.graph is not None and is_link(value):
                outputs = produced.get(value[0])
                items = outputs[int(value[1])] if outputs is not None else [None]
                merged[i].extend(items)
            elif i < len(output_is_list) and output_is_list[i] and isinstance(value, list):
                merged[i].extend(value)
            else:
                merged[i].append(value)
    return merged
