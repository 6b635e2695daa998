"""The control plane's Ray calls: the controller actor and the executor over NodeWorkers.

Everything else in `cluster/` is plain Python; this module is where it meets Ray.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import ray

from cluster.controller import ClusterController, ControllerConfig
from cluster.executor import IsChangedRequest, Submission
from cluster.placement import Placement
from node_actors.protocol import (
    ChainStep,
    ExpansionCall,
    NodeDefinition,
    NodeFailure,
    NodeResultMeta,
    NodeTask,
    PreviewFrame,
)
from storage.journal import JobJournal

logger = logging.getLogger(__name__)

CONTROLLER_NAME = "comfyray_controller"
NAMESPACE = "comfyray"


@dataclass
class ClusterSpec:
    """What the controller needs to build the cluster's data plane."""

    worker_count: int
    worker_config: Any  # node_actors.worker.WorkerConfig
    gpus_per_worker: float = 0.0
    journal_path: str | None = None
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    # What every ingress replica needs besides the controller (serve_app.edge.EdgeConfig):
    # the content store areas, upload limit, user mode. Opaque to the control plane.
    edge: Any = None


def _failure_meta(exc: BaseException) -> NodeResultMeta:
    return NodeResultMeta(
        status="failed",
        failure=NodeFailure(
            exception_message=f"{exc}\n",
            exception_type=type(exc).__qualname__,
            traceback=[],
            current_inputs={},
        ),
    )


class RayExecutor:
    """Sends node steps to workers, weighing each worker's queued steps against the inputs
    it already holds."""

    def __init__(self, workers: Sequence[Any]) -> None:
        from ray.util.metrics import Counter

        self._workers = list(workers)
        self._placement = Placement(len(self._workers))
        self._load = self._placement.load
        # Exported with Ray's metrics (its Prometheus endpoint); hit rate = hits / placements.
        self._placements_metric = Counter(
            "comfyray_model_placements",
            description="steps placed whose inputs carry models",
        )
        self._hits_metric = Counter(
            "comfyray_model_placement_hits",
            description="steps placed on a worker already holding their models",
        )

    def _pick(self, upstream: Sequence[Any]) -> int:
        stats = self._placement.stats
        before = (stats.placements_with_models, stats.model_hits)
        worker = self._placement.pick([ref.hex() for ref in upstream if hasattr(ref, "hex")])
        if stats.placements_with_models > before[0]:
            self._placements_metric.inc()
            if stats.model_hits > before[1]:
                self._hits_metric.inc()
            logger.debug("model placement hit rate %.2f", stats.hit_rate or 0.0)
        return worker

    def _track(self, ref: Any, worker: int) -> None:
        self._placement.produced(worker, [ref.hex()])

    def _record(self, worker: int, ref: Any, meta: NodeResultMeta) -> None:
        self._placement.result(worker, ref.hex(), meta.model_keys, meta.held_models)

    def placement_stats(self) -> dict[str, Any]:
        stats = self._placement.stats
        return {
            "placements_with_models": stats.placements_with_models,
            "model_hits": stats.model_hits,
            "hit_rate": stats.hit_rate,
        }

    def _submission(self, worker: int, meta_ref: Any, out_ref: Any, task: NodeTask) -> Submission:
        self._load[worker] += 1
        self._track(out_ref, worker)

        async def meta() -> NodeResultMeta:
            try:
                result: NodeResultMeta = await meta_ref
                self._record(worker, out_ref, result)
                return result
            except Exception as exc:  # the worker died or the call broke
                logger.warning(
                    "prompt %s node %s: worker %d call failed: %s",
                    task.prompt_id,
                    task.node_id,
                    worker,
                    exc,
                )
                return _failure_meta(exc)
            finally:
                self._load[worker] -= 1

        return Submission(meta(), out_ref)

    def submit(self, task: NodeTask, upstream: list[Any]) -> Submission:
        worker = self._pick(upstream)
        meta_ref, out_ref = self._workers[worker].run_node.remote(task, *upstream)
        return self._submission(worker, meta_ref, out_ref, task)

    def submit_chain(self, steps: list[ChainStep], args: list[Any]) -> list[Submission]:
        worker = self._pick(args)
        refs = (
            self._workers[worker].run_chain.options(num_returns=1 + len(steps)).remote(steps, *args)
        )
        metas_ref, out_refs = refs[0], refs[1:]
        self._load[worker] += 1
        for ref in out_refs:
            self._track(ref, worker)
        shared: asyncio.Future[list[NodeResultMeta]] | None = None

        async def all_metas() -> list[NodeResultMeta]:
            try:
                metas: list[NodeResultMeta] = await metas_ref
                for ref, result in zip(out_refs, metas, strict=False):
                    self._record(worker, ref, result)
                return metas
            except Exception as exc:  # the worker died or the call broke
                logger.warning(
                    "prompt %s: chain of %d steps on worker %d failed: %s",
                    steps[0].task.prompt_id,
                    len(steps),
                    worker,
                    exc,
                )
                return [_failure_meta(exc)] * len(steps)
            finally:
                self._load[worker] -= 1

        def meta_of(index: int) -> Any:
            async def meta() -> NodeResultMeta:
                nonlocal shared
                if shared is None:
                    shared = asyncio.ensure_future(all_metas())
                return (await asyncio.shield(shared))[index]

            return meta()

        return [Submission(meta_of(i), ref) for i, ref in enumerate(out_refs)]

    def submit_resolve(
        self, task: NodeTask, calls: tuple[ExpansionCall, ...], produced: Mapping[str, Any]
    ) -> Submission:
        ids = list(produced)
        refs = [produced[i] for i in ids]
        worker = self._pick(refs)
        meta_ref, out_ref = self._workers[worker].resolve_expansion.remote(task, calls, ids, *refs)
        return self._submission(worker, meta_ref, out_ref, task)

    async def is_changed(self, prompt_id: str, requests: list[IsChangedRequest]) -> dict[str, Any]:
        worker = min(range(len(self._workers)), key=lambda i: self._load[i])
        payload = [(r.node_id, r.class_type, r.inputs) for r in requests]
        return await self._workers[worker].is_changed.remote(payload)

    async def validate_inputs(
        self, class_type: str, inputs: dict[str, Any], input_types: dict[str, str] | None
    ) -> list[Any]:
        worker = min(range(len(self._workers)), key=lambda i: self._load[i])
        return await self._workers[worker].validate_inputs.remote(class_type, inputs, input_types)

    async def free(self, unload_models: bool, free_memory: bool) -> None:
        await asyncio.gather(
            *(w.free.remote(unload_models, free_memory) for w in self._workers),
            return_exceptions=True,
        )
        if unload_models or free_memory:
            self._placement.forget_models()

    async def interrupt(self, prompt_id: str) -> None:
        await asyncio.gather(
            *(w.interrupt.remote(prompt_id) for w in self._workers), return_exceptions=True
        )


@ray.remote(num_cpus=0, max_concurrency=10_000, max_restarts=-1)
class ControllerActor:
    """Hosts the ClusterController; owns the NodeWorkers it creates.

    Ray restarts it if its process dies; its workers die with it. The restarted controller
    starts again on the first call it gets and replays the job journal, so queued and
    interrupted prompts run again and history is kept.
    """

    def __init__(self, spec: ClusterSpec) -> None:
        logging.basicConfig(level=logging.INFO)
        self._spec = spec
        self._workers: list[Any] = []
        self._core: ClusterController | None = None
        self._starting: asyncio.Task[int] | None = None

    async def start(self) -> int:
        if self._starting is None:
            self._starting = asyncio.get_running_loop().create_task(self._start())
        return await asyncio.shield(self._starting)

    async def _ready(self) -> ClusterController:
        """Ingress calls wait here while the workers are (re)starting."""
        await self.start()
        if self._core is None:
            raise RuntimeError("controller failed to start")
        return self._core

    async def _start(self) -> int:
        from node_actors.worker import NodeWorker

        spec = self._spec
        me = ray.get_runtime_context().current_actor
        for index in range(spec.worker_count):
            # Steps are submitted ahead of their inputs; a step still waiting for them must not
            # hold back the calls behind it (interrupts, other prompts).
            options: dict[str, Any] = {
                "num_cpus": 0,
                "max_restarts": 2,
                "allow_out_of_order_execution": True,
            }
            if spec.gpus_per_worker:
                options["num_gpus"] = spec.gpus_per_worker
            self._workers.append(
                NodeWorker.options(**options).remote(index, spec.worker_config, me)
            )
        await asyncio.gather(*(w.ping.remote() for w in self._workers))
        executor = RayExecutor(self._workers)
        definitions = await self._workers[0].definitions.remote()

        async def refresh() -> dict[str, NodeDefinition]:
            return await self._workers[0].definitions.remote()

        journal = JobJournal(_path(spec.journal_path)) if spec.journal_path else None
        self._core = ClusterController(
            definitions,
            executor,
            journal,
            spec.controller,
            custom_validator=executor.validate_inputs,
            refresh_definitions=refresh,
        )
        self._core.start()
        return len(self._workers)

    @property
    def core(self) -> ClusterController:
        if self._core is None:
            raise RuntimeError("controller not started")
        return self._core

    # --- called by ingress replicas ---------------------------------------------------------

    async def submit(self, body: Any, usage_source: str | None) -> dict[str, Any]:
        return await (await self._ready()).submit(body, usage_source)

    async def queue_remaining(self) -> int:
        return (await self._ready()).queue_remaining()

    async def get_queue(self) -> dict[str, Any]:
        return (await self._ready()).get_queue()

    async def manage_queue(self, clear: bool, delete: list[str]) -> None:
        (await self._ready()).manage_queue(clear, delete)

    async def interrupt(self, prompt_id: str | None) -> bool:
        return await (await self._ready()).interrupt(prompt_id)

    async def cancel(self, prompt_id: str) -> bool:
        return await (await self._ready()).cancel(prompt_id)

    async def free(self, unload_models: bool, free_memory: bool) -> None:
        await (await self._ready()).free(unload_models, free_memory)

    async def get_history(self, max_items: int | None, offset: int) -> dict[str, Any]:
        return (await self._ready()).get_history(max_items, offset)

    async def get_history_item(self, prompt_id: str) -> dict[str, Any]:
        return (await self._ready()).get_history_item(prompt_id)

    async def manage_history(self, clear: bool, delete: list[str]) -> None:
        (await self._ready()).manage_history(clear, delete)

    async def jobs_snapshot(self) -> tuple[list[list[Any]], list[list[Any]], dict[str, Any]]:
        return (await self._ready()).jobs_snapshot()

    async def events_since(self, seq: int, timeout: float) -> list[Any]:
        return await (await self._ready()).events_since(seq, timeout)

    async def last_seq(self) -> int:
        return (await self._ready()).last_seq()

    async def running_node_of_client(self, client_id: str) -> str | None:
        return (await self._ready()).running_node_of_client(client_id)

    async def object_info(self) -> dict[str, Any]:
        await self._ready()
        return await self._workers[0].object_info.remote()

    async def object_info_for(self, class_type: str) -> dict[str, Any]:
        await self._ready()
        return await self._workers[0].object_info_for.remote(class_type)

    async def list_jobs(self, query: Any) -> dict[str, Any]:
        return (await self._ready()).list_jobs(query)

    async def get_job(self, job_id: str) -> dict[str, Any] | None:
        return (await self._ready()).get_job(job_id)

    async def models_query(self, what: str, folder: str | None, detail: Any = None) -> Any:
        await self._ready()
        return await self._workers[0].models_query.remote(what, folder, detail)

    async def edge_config(self) -> Any:
        """Handed to each ingress replica as it starts; needs no running workers."""
        return self._spec.edge

    async def workers_info(self) -> list[dict[str, Any]]:
        await self._ready()
        return list(await asyncio.gather(*(w.info.remote() for w in self._workers)))

    # --- called by workers ------------------------------------------------------------------

    async def node_progress(
        self,
        prompt_id: str,
        node_id: str,
        value: float,
        max_value: float,
        preview: PreviewFrame | None,
        legacy: bool,
        seq: int = 0,
    ) -> None:
        self.core.node_progress(prompt_id, node_id, value, max_value, preview, legacy, seq)

    async def step_done(self, prompt_id: str, node_id: str, meta: NodeResultMeta) -> None:
        self.core.step_done(prompt_id, node_id, meta)

    async def barrier(self, prompt_id: str, last_seqs: dict[str, int]) -> None:
        await self.core.barrier(prompt_id, last_seqs)


def _path(value: str) -> Any:
    from pathlib import Path

    return Path(value)


def start_controller(spec: ClusterSpec) -> tuple[Any, Any]:
    """Create the named controller actor and have it start the workers.

    Returns (handle, started): `started` resolves to the worker count; the caller can deploy
    the ingress meanwhile, whose calls wait until the controller is ready.
    """
    try:
        previous = ray.get_actor(CONTROLLER_NAME, namespace=NAMESPACE)
    except ValueError:
        previous = None
    if previous is not None:
        # Left by an earlier `comfyray serve` on a long-lived cluster: its state is in the
        # journal, and its workers die with it.
        logger.info("replacing the controller left by an earlier server")
        ray.kill(previous, no_restart=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                ray.get_actor(CONTROLLER_NAME, namespace=NAMESPACE)
            except ValueError:
                break
            time.sleep(0.1)
    handle = ControllerActor.options(
        name=CONTROLLER_NAME, namespace=NAMESPACE, lifetime="detached"
    ).remote(spec)
    return handle, handle.start.remote()


def get_controller() -> Any:
    return ray.get_actor(CONTROLLER_NAME, namespace=NAMESPACE)
