"""An in-process cluster for engine tests: the real controller, runner and node library
over a LocalExecutor (worker threads instead of Ray actors)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cluster.controller import ClusterController, ControllerConfig
from node_actors.local_executor import LocalExecutor, LoopReporter
from node_actors.worker_core import NodeWorkerImpl, WorkerConfig
from storage.journal import JobJournal

STUB_PACKS = Path(__file__).resolve().parent.parent / "stub_pack"

_WORKERS: dict[str, NodeWorkerImpl] = {}


def shared_worker(base_dir: Path) -> NodeWorkerImpl:
    """One worker per base dir: importing the node library and packs is the slow part."""
    key = str(base_dir)
    if key not in _WORKERS:
        _WORKERS[key] = NodeWorkerImpl(
            0, WorkerConfig(base_dir=str(base_dir), custom_node_dirs=[str(STUB_PACKS)])
        )
    return _WORKERS[key]


@dataclass
class Harness:
    controller: ClusterController
    worker: NodeWorkerImpl
    seq: int = 0
    messages: list[tuple[str | None, str, dict[str, Any]]] = field(default_factory=list)

    def drain_events(self) -> list[tuple[str | None, str, dict[str, Any]]]:
        """Every event since the last call, progress bundles expanded, as (target, type, data)."""
        out = []
        for event in self.controller.events.since(self.seq):
            self.seq = event.seq
            if event.type == "progress_bundle":
                if event.progress_state is not None:
                    out.append((event.target, "progress_state", event.progress_state))
                if event.progress is not None:
                    out.append((event.target, "progress", event.progress))
                if event.preview is not None:
                    out.append((event.target, "preview", {"image_type": event.preview.image_type}))
            else:
                out.append((event.target, event.type, event.data))
        self.messages.extend(out)
        return out

    async def submit(
        self, prompt: dict[str, Any], client_id: str | None = "c1", **body: Any
    ) -> str:
        payload: dict[str, Any] = {"prompt": prompt, **body}
        if client_id is not None:
            payload["client_id"] = client_id
        result = await self.controller.submit(payload)
        return result["prompt_id"]

    async def wait(self, prompt_id: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout
        while prompt_id not in self.controller.history:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"prompt {prompt_id} did not finish")
            await asyncio.sleep(0.005)
        return self.controller.history.get(prompt_id)

    async def run(self, prompt: dict[str, Any], client_id: str | None = "c1", **body: Any):
        prompt_id = await self.submit(prompt, client_id, **body)
        entry = await self.wait(prompt_id)
        return prompt_id, entry, self.drain_events()


async def make_harness(
    base_dir: Path,
    cache_mode: str = "classic",
    lru: int = 0,
    concurrent: int = 1,
    journal: Path | None = None,
) -> Harness:
    worker = shared_worker(base_dir)
    executor = LocalExecutor(worker)
    controller = ClusterController(
        worker.definitions(),
        executor,
        JobJournal(journal) if journal else None,
        ControllerConfig(cache_mode, lru, concurrent),
        custom_validator=executor.validate_inputs,
    )
    worker.reporter = LoopReporter(
        asyncio.get_running_loop(), controller.node_progress, controller.step_done
    )
    controller.start()
    return Harness(controller, worker)


def new_id() -> str:
    return str(uuid.uuid4())
