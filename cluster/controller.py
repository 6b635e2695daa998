"""The control plane's brain: queue, running prompts, output cache, event log, history.

`ClusterController` is plain asyncio code over a NodeExecutor; `cluster/dispatch.py` hosts
it in one Ray actor. Every change to the queue or history is journaled before it is
acknowledged, so a restarted controller picks the queue up where it was.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cluster.errors import PromptValidationError, error_dict
from cluster.events import EventLog, PreviewFrame
from cluster.executor import NodeExecutor
from cluster.history import History
from cluster.job_store import JobStore
from cluster.jobs import JobsQuery, job_detail, list_jobs
from cluster.output_cache import OutputCache
from cluster.queue import JobQueue, QueueItem
from cluster.run import ActiveRun, RunRequest
from cluster.run_record import RunOutcome
from cluster.validate import CustomValidator, check_prompt_id, validate_prompt
from node_actors.protocol import NodeDefinition
from storage.journal import JobJournal

logger = logging.getLogger(__name__)

SENSITIVE_KEYS = ("auth_token_comfy_org", "api_key_comfy_org")


@dataclass
class ControllerConfig:
    cache_mode: str = "ram"
    cache_lru_size: int = 0
    max_concurrent_prompts: int = 1
    # ram mode: bytes of node outputs the cache may keep (0: unbounded).
    cache_byte_budget: int = 0


class ClusterController:
    def __init__(
        self,
        definitions: Mapping[str, NodeDefinition],
        executor: NodeExecutor,
        journal: JobJournal | None,
        config: ControllerConfig,
        custom_validator: CustomValidator | None = None,
        refresh_definitions: Callable[[], Any] | None = None,
    ) -> None:
        self.definitions: dict[str, NodeDefinition] = dict(definitions)
        self._executor = executor
        self._config = config
        self._custom_validator = custom_validator
        self._refresh_definitions = refresh_definitions
        self.cache = OutputCache(config.cache_mode, config.cache_lru_size, config.cache_byte_budget)
        self.events = EventLog()
        self.queue = JobQueue()
        self.history = History()
        self._runs: dict[str, ActiveRun] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._store = JobStore(journal, self.queue, self.history)
        self._number = self._store.replay()

    # --- messages ---------------------------------------------------------------------------

    def queue_remaining(self) -> int:
        return self.queue.remaining()

    def _broadcast_status(self) -> None:
        self.events.emit(
            "status", {"status": {"exec_info": {"queue_remaining": self.queue.remaining()}}}, None
        )

    async def events_since(self, seq: int, timeout: float = 10.0) -> list[Any]:
        return await self.events.wait_since(seq, timeout)

    def last_seq(self) -> int:
        return self.events.last_seq

    def running_node_of_client(self, client_id: str) -> str | None:
        for run in self._runs.values():
            if run.client_id == client_id and run.last_node_id is not None:
                return run.last_node_id
        return None

    def node_progress(
        self,
        prompt_id: str,
        node_id: str,
        value: float,
        max_value: float,
        preview: PreviewFrame | None = None,
        legacy: bool = True,
        seq: int = 0,
    ) -> None:
        run = self._runs.get(prompt_id)
        if run is not None:
            run.on_progress(node_id, value, max_value, preview, legacy, seq)

    def step_done(self, prompt_id: str, node_id: str, meta: Any) -> None:
        run = self._runs.get(prompt_id)
        if run is not None:
            run.on_step_done(node_id, meta)

    async def barrier(self, prompt_id: str, last_seqs: dict[str, int]) -> None:
        """Workers call this before returning a node's result: it returns once every
        progress report they numbered up to `last_seqs[node_id]` has been applied."""
        run = self._runs.get(prompt_id)
        if run is None:
            return
        for node_id, last_seq in last_seqs.items():
            await run.progress_delivered(node_id, last_seq, timeout=10.0)

    # --- submitting -------------------------------------------------------------------------

    async def submit(self, body: Any, usage_source: str | None = None) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise PromptValidationError(
                error_dict(
                    "invalid_prompt",
                    "Invalid prompt: the request body must be a JSON object",
                    "body",
                )
            )
        if "number" in body:
            try:
                number: float | int = float(body["number"])
            except (TypeError, ValueError):
                raise PromptValidationError(
                    error_dict(
                        "invalid_prompt",
                        "Invalid number: must be a number",
                        f"number: {body['number']!r}",
                    )
                ) from None
        else:
            number = -self._number if body.get("front") else self._number
            self._number += 1
        if body.get("prompt") is None:
            raise PromptValidationError(
                error_dict("no_prompt", "No prompt provided", "No prompt provided")
            )
        prompt_id = check_prompt_id(body.get("prompt_id")) or str(uuid.uuid4())
        if self.queue.get(prompt_id) is not None:
            raise PromptValidationError(
                error_dict(
                    "invalid_prompt_id",
                    "Invalid prompt_id: a prompt with this id is already queued",
                    f"prompt_id: {prompt_id}",
                )
            )
        extra_data = body.get("extra_data", {})
        if extra_data is None:
            extra_data = {}
        if not isinstance(extra_data, dict):
            raise PromptValidationError(
                error_dict(
                    "invalid_prompt", "Invalid extra_data: must be a JSON object", "extra_data"
                )
            )
        targets = body.get("partial_execution_targets")
        if targets is not None and (
            not isinstance(targets, list) or not all(isinstance(t, str) for t in targets)
        ):
            raise PromptValidationError(
                error_dict(
                    "invalid_prompt",
                    "Invalid partial_execution_targets: must be a list of node ids",
                    "partial_execution_targets",
                )
            )
        validated = await self._validate(body["prompt"], targets)
        extra_data = dict(extra_data)
        if body.get("client_id") is not None:
            extra_data["client_id"] = body["client_id"]
        if usage_source and "comfy_usage_source" not in extra_data:
            extra_data["comfy_usage_source"] = usage_source
        sensitive = {k: extra_data.pop(k) for k in SENSITIVE_KEYS if k in extra_data}
        extra_data["create_time"] = int(time.time() * 1000)
        item = QueueItem(
            number, prompt_id, validated.prompt, extra_data, validated.outputs, sensitive
        )
        self._store.write({"op": "queued", "item": item.to_record()})
        self.queue.put(item)
        logger.info("prompt %s queued as number %s", prompt_id, number)
        self._broadcast_status()
        self._pump()
        return {"prompt_id": prompt_id, "number": number, "node_errors": validated.node_errors}

    async def _validate(self, prompt: Any, targets: list[str] | None) -> Any:
        try:
            return await validate_prompt(prompt, self.definitions, targets, self._custom_validator)
        except PromptValidationError as exc:
            # Combo options list files; a file added since our snapshot deserves a retry.
            if self._refresh_definitions is None or "value_not_in_list" not in repr(
                exc.node_errors
            ):
                raise
        self.definitions = dict(await self._refresh_definitions())
        return await validate_prompt(prompt, self.definitions, targets, self._custom_validator)

    # --- running ----------------------------------------------------------------------------

    def _definition(self, class_type: str) -> NodeDefinition | None:
        return self.definitions.get(class_type)

    def _pump(self) -> None:
        while len(self._runs) < self._config.max_concurrent_prompts:
            item = self.queue.pop()
            if item is None:
                return
            run = ActiveRun(
                RunRequest(
                    item.prompt_id,
                    item.number,
                    item.prompt,
                    item.outputs,
                    item.extra_data,
                    item.sensitive,
                ),
                self._definition,
                self.cache,
                self._executor,
                self.events,
                on_keys=self._retain_live_keys,
            )
            self._runs[item.prompt_id] = run
            self._broadcast_status()
            task = asyncio.get_running_loop().create_task(self._run(item, run))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _retain_live_keys(self) -> None:
        self.cache.retain_only(key for run in self._runs.values() for key in run.cache_keys)

    async def _run(self, item: QueueItem, run: ActiveRun) -> None:
        logger.info("prompt %s started", item.prompt_id)
        try:
            outcome = await run.execute()
        except Exception as exc:  # execute() reports node errors itself; this is a bug
            logger.exception("prompt %s crashed the run loop", item.prompt_id)
            outcome = RunOutcome(
                "error",
                False,
                [["execution_error", {"prompt_id": item.prompt_id, "exception_message": str(exc)}]],
                {},
                {},
            )
        entry = {
            "prompt": item.as_list(),
            "outputs": outcome.outputs,
            "status": {
                "status_str": outcome.status_str,
                "completed": outcome.completed,
                "messages": outcome.messages,
            },
            "meta": outcome.meta,
        }
        try:
            self._store.write({"op": "finished", "prompt_id": item.prompt_id, "entry": entry})
        except Exception:
            logger.exception("prompt %s: could not journal its history", item.prompt_id)
        self.history.add(item.prompt_id, entry)
        self.queue.finish(item.prompt_id)
        self._runs.pop(item.prompt_id, None)
        logger.info("prompt %s finished: %s", item.prompt_id, outcome.status_str)
        self._broadcast_status()
        if run.client_id is not None:
            self.events.emit(
                "executing", {"node": None, "prompt_id": item.prompt_id}, run.client_id
            )
        self._pump()

    def start(self) -> None:
        """Begin running what the journal handed back."""
        self._pump()

    # --- queue, interrupt, history -----------------------------------------------------------

    def get_queue(self) -> dict[str, Any]:
        return {
            "queue_running": [i.as_list() for i in self.queue.running_items()],
            "queue_pending": [i.as_list() for i in self.queue.pending_items()],
        }

    def manage_queue(self, clear: bool = False, delete: list[str] | None = None) -> None:
        removed: list[str] = []
        if clear:
            removed += self.queue.clear()
        if delete:
            removed += self.queue.delete(delete)
        if removed:
            self._store.write({"op": "removed", "ids": removed})
        # ComfyUI announces a wipe always, a delete only when it removed something.
        if clear or removed:
            self._broadcast_status()

    async def interrupt(self, prompt_id: str | None = None) -> bool:
        targets = [prompt_id] if prompt_id is not None else list(self._runs)
        hit = False
        for target in targets:
            run = self._runs.get(target)
            if run is None:
                continue
            hit = True
            logger.info("prompt %s: interrupt requested", target)
            run.interrupt()
            await self._executor.interrupt(target)
        return hit

    async def cancel(self, prompt_id: str) -> bool:
        if prompt_id in self._runs:
            return await self.interrupt(prompt_id)
        if self.queue.delete([prompt_id]):
            self._store.write({"op": "removed", "ids": [prompt_id]})
            self._broadcast_status()
            return True
        return False

    async def free(self, unload_models: bool = False, free_memory: bool = False) -> None:
        """ComfyUI's /free: unload models, and with free_memory also drop every cache
        (the cluster's outputs and the workers' node instances)."""
        if free_memory:
            logger.info("free_memory: dropping the output cache (%d entries)", len(self.cache))
            self.cache.clear()
        if unload_models or free_memory:
            await self._executor.free(unload_models, free_memory)

    def get_history(self, max_items: int | None = None, offset: int = -1) -> dict[str, Any]:
        return self.history.page(max_items, offset)

    def get_history_item(self, prompt_id: str) -> dict[str, Any]:
        entry = self.history.get(prompt_id)
        return {prompt_id: entry} if entry is not None else {}

    def manage_history(self, clear: bool = False, delete: list[str] | None = None) -> None:
        if clear:
            self._store.write({"op": "history_cleared"})
            self.history.clear()
        if delete:
            removed = self.history.delete(delete)
            if removed:
                self._store.write({"op": "history_deleted", "ids": removed})

    def list_jobs(self, query: JobsQuery) -> dict[str, Any]:
        return list_jobs(
            [i.as_list() for i in self.queue.running_items()],
            [i.as_list() for i in self.queue.pending_items()],
            self.history.as_dict(),
            query,
        )

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        return job_detail(
            job_id,
            [i.as_list() for i in self.queue.running_items()],
            [i.as_list() for i in self.queue.pending_items()],
            self.history.as_dict(),
        )

    def jobs_snapshot(self) -> tuple[list[list[Any]], list[list[Any]], dict[str, Any]]:
        return (
            [i.as_list() for i in self.queue.running_items()],
            [i.as_list() for i in self.queue.pending_items()],
            self.history.as_dict(),
        )

    async def shutdown(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        self._store.close()
