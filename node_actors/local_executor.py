"""A NodeExecutor that runs node steps in this process, on worker threads.

The same engine, runner and node library as on Ray, without Ray: fast engine tests and an
in-process mode for tools. Output handles are plain holders of the output lists.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from node_actors.protocol import (
    ChainStep,
    ExpansionCall,
    NodeResultMeta,
    NodeTask,
    PreviewFrame,
)
from node_actors.worker_core import NodeWorkerImpl


@dataclass
class LocalRef:
    """Outputs of a step; `ready` is set when the step ended (value None: no outputs)."""

    value: Any = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    def set(self, value: Any) -> None:
        self.value = value
        self.ready.set()


@dataclass
class LocalSubmission:
    meta: Any
    outputs: LocalRef


ProgressCallback = Callable[[str, str, float, float, PreviewFrame | None, bool], None]
StepDoneCallback = Callable[[str, str, NodeResultMeta], None]


class LoopReporter:
    """Delivers worker-thread progress into the event loop, in order."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        callback: ProgressCallback,
        step_done: StepDoneCallback | None = None,
    ) -> None:
        self._loop = loop
        self._callback = callback
        self._step_done = step_done

    def report(
        self,
        prompt_id: str,
        node_id: str,
        value: float,
        max_value: float,
        frame: PreviewFrame | None,
        legacy: bool,
    ) -> None:
        self._loop.call_soon_threadsafe(
            self._callback, prompt_id, node_id, value, max_value, frame, legacy
        )

    def step_done(self, prompt_id: str, node_id: str, meta: NodeResultMeta) -> None:
        if self._step_done is not None:
            self._loop.call_soon_threadsafe(self._step_done, prompt_id, node_id, meta)

    def barrier(self, prompt_id: str) -> None:
        done = asyncio.run_coroutine_threadsafe(asyncio.sleep(0), self._loop)
        done.result(timeout=30)


class LocalExecutor:
    def __init__(self, worker: NodeWorkerImpl) -> None:
        self.worker = worker

    def submit(self, task: NodeTask, upstream: list[Any]) -> LocalSubmission:
        ref = LocalRef()

        async def meta() -> NodeResultMeta:
            outputs = None
            try:
                for u in upstream:
                    await u.ready.wait()
                values = [u.value for u in upstream]
                result, outputs = await asyncio.to_thread(self.worker.run_node, task, values)
            finally:
                ref.set(outputs)
            return result

        return LocalSubmission(meta(), ref)

    def submit_chain(self, steps: list[ChainStep], args: list[Any]) -> list[LocalSubmission]:
        refs = [LocalRef() for _ in steps]
        done: asyncio.Future[list[NodeResultMeta]] | None = None

        async def run_all() -> list[NodeResultMeta]:
            metas: list[NodeResultMeta] = []
            outputs: list[Any] = []
            try:
                for u in args:
                    await u.ready.wait()
                values = [u.value for u in args]
                metas, outputs = await asyncio.to_thread(self.worker.run_chain, steps, values)
            finally:
                for index, ref in enumerate(refs):
                    ref.set(outputs[index] if index < len(outputs) else None)
            return metas

        def meta_of(index: int) -> Any:
            async def meta() -> NodeResultMeta:
                nonlocal done
                if done is None:
                    done = asyncio.ensure_future(run_all())
                return (await asyncio.shield(done))[index]

            return meta()

        return [LocalSubmission(meta_of(i), ref) for i, ref in enumerate(refs)]

    def submit_resolve(
        self, task: NodeTask, calls: tuple[ExpansionCall, ...], produced: Mapping[str, Any]
    ) -> LocalSubmission:
        ref = LocalRef()

        async def meta() -> NodeResultMeta:
            outputs = None
            try:
                ids = list(produced)
                values = [produced[i].value for i in ids]
                result, outputs = await asyncio.to_thread(
                    self.worker.resolve_expansion, task, calls, ids, values
                )
            finally:
                ref.set(outputs)
            return result

        return LocalSubmission(meta(), ref)

    async def is_changed(self, prompt_id: str, requests: list[Any]) -> dict[str, Any]:
        payload = [(r.node_id, r.class_type, r.inputs) for r in requests]
        return await asyncio.to_thread(self.worker.is_changed, payload)

    async def validate_inputs(
        self, class_type: str, inputs: dict[str, Any], input_types: dict[str, str] | None
    ) -> list[Any]:
        return await asyncio.to_thread(self.worker.validate_inputs, class_type, inputs, input_types)

    async def interrupt(self, prompt_id: str) -> None:
        self.worker.interrupt(prompt_id)

    async def free(self, unload_models: bool, free_memory: bool) -> None:
        self.worker.free(unload_models, free_memory)
