"""`NodeWorker`: the Ray actor that runs nodes (one per GPU; a configured count on CPU).

The only module of `node_actors` that touches Ray. Node code runs in the "run" concurrency
group's threads; interrupts, health and info calls run in the "control" group so a long
node never blocks them.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Any

import ray

from node_actors.protocol import (
    ChainStep,
    ExpansionCall,
    NodeDefinition,
    NodeResultMeta,
    NodeTask,
    PreviewFrame,
)
from node_actors.worker_core import (
    MAX_TRACKED_PROMPTS,
    NodeWorkerImpl,
    WorkerConfig,
)

__all__ = ["ControllerReporter", "NodeWorker", "NodeWorkerImpl", "WorkerConfig"]

logger = logging.getLogger(__name__)


class ControllerReporter:
    """Progress to the controller actor: fire-and-forget calls, one blocking barrier."""

    def __init__(self, controller: Any) -> None:
        self._controller = controller
        # An async actor may run calls out of order: reports are numbered per node and the
        # controller puts them back in order.
        self._lock = threading.Lock()
        self._seqs: OrderedDict[str, dict[str, int]] = OrderedDict()

    def report(
        self,
        prompt_id: str,
        node_id: str,
        value: float,
        max_value: float,
        frame: PreviewFrame | None,
        legacy: bool,
    ) -> None:
        with self._lock:
            seqs = self._seqs.get(prompt_id)
            if seqs is None:
                seqs = self._seqs[prompt_id] = {}
                while len(self._seqs) > MAX_TRACKED_PROMPTS:
                    self._seqs.popitem(last=False)
            seq = seqs[node_id] = seqs.get(node_id, 0) + 1
        self._controller.node_progress.remote(
            prompt_id, node_id, value, max_value, frame, legacy, seq
        )

    def step_done(self, prompt_id: str, node_id: str, meta: NodeResultMeta) -> None:
        self._controller.step_done.remote(prompt_id, node_id, meta)

    def barrier(self, prompt_id: str) -> None:
        with self._lock:
            last = dict(self._seqs.get(prompt_id, {}))
        ray.get(self._controller.barrier.remote(prompt_id, last))


@ray.remote(concurrency_groups={"control": 4, "run": 8})
class NodeWorker:
    def __init__(self, index: int, config: WorkerConfig, controller: Any) -> None:
        logging.basicConfig(level=logging.INFO)
        self._impl = NodeWorkerImpl(index, config, ControllerReporter(controller))

    @ray.method(concurrency_group="control")
    def ping(self) -> int:
        return self._impl.index

    @ray.method(concurrency_group="control")
    def info(self) -> dict[str, Any]:
        return self._impl.info()

    @ray.method(concurrency_group="control")
    def interrupt(self, prompt_id: str) -> None:
        self._impl.interrupt(prompt_id)

    @ray.method(concurrency_group="control")
    def free(self, unload_models: bool, free_memory: bool) -> None:
        self._impl.free(unload_models, free_memory)

    @ray.method(concurrency_group="control")
    def definitions(self) -> dict[str, NodeDefinition]:
        return self._impl.definitions()

    @ray.method(concurrency_group="control")
    def object_info(self) -> dict[str, Any]:
        return self._impl.object_info()

    @ray.method(concurrency_group="control")
    def object_info_for(self, class_type: str) -> dict[str, Any]:
        return self._impl.object_info_for(class_type)

    @ray.method(concurrency_group="control")
    def models_query(self, what: str, folder: str | None, detail: Any = None) -> Any:
        return self._impl.models_query(what, folder, detail)

    @ray.method(concurrency_group="run", num_returns=2)
    def run_node(self, task: NodeTask, *upstream: Any) -> tuple[Any, Any]:
        return self._impl.run_node(task, upstream)

    @ray.method(concurrency_group="run")
    def run_chain(self, steps: list[ChainStep], *args: Any) -> tuple[Any, ...]:
        """Returns the list of metas, then each step's outputs (num_returns set per call)."""
        metas, outputs = self._impl.run_chain(steps, args)
        return (metas, *outputs)

    @ray.method(concurrency_group="run", num_returns=2)
    def resolve_expansion(
        self,
        task: NodeTask,
        calls: tuple[ExpansionCall, ...],
        produced_ids: list[str],
        *produced: Any,
    ) -> tuple[Any, Any]:
        return self._impl.resolve_expansion(task, calls, produced_ids, produced)

    @ray.method(concurrency_group="run")
    def is_changed(self, requests: list[tuple[str, str, dict[str, Any]]]) -> dict[str, Any]:
        return self._impl.is_changed(requests)

    @ray.method(concurrency_group="run")
    def validate_inputs(
        self, class_type: str, inputs: dict[str, Any], input_types: dict[str, str] | None
    ) -> list[Any]:
        return self._impl.validate_inputs(class_type, inputs, input_types)
