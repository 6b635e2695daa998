"""What a node worker does, without Ray: loads the node library and custom packs, runs
node steps and chains of steps, answers IS_CHANGED / VALIDATE_INPUTS, holds interrupt flags.

`node_actors/worker.py` hosts it in the `NodeWorker` Ray actor; tests use it in-process.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import io
import logging
import math
import os
import socket
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from node_actors.context import (
    ExecutionContext,
    InterruptFlag,
    Preview,
    reset_current,
    set_current,
)
from node_actors.protocol import (
    ChainStep,
    ExpansionCall,
    LinkInput,
    NodeDefinition,
    NodeResultMeta,
    NodeTask,
    PreviewFrame,
)
from node_actors.store_sync import StoreSync, StoreSyncError

logger = logging.getLogger(__name__)

MAX_TRACKED_PROMPTS = 1024
# A chain step running longer than this gets the steps before it reported as done.
STEP_REPORT_DELAY_S = 0.01


@dataclass
class WorkerConfig:
    base_dir: str
    output_dir: str | None = None
    input_dir: str | None = None
    temp_dir: str | None = None
    user_dir: str | None = None
    models_dir: str | None = None
    extra_model_paths: list[str] = field(default_factory=list)
    custom_node_dirs: list[str] = field(default_factory=list)
    cpu_only: bool = True
    keep_instances: bool = True
    # The model cache's memory budget (RAM on CPU, VRAM on GPU); 0 picks half of the device's.
    model_cache_bytes: int = 0
    # Models that stay loaded whatever the budget: "folder/file" names, e.g. "checkpoints/x.safetensors".
    pinned_models: list[str] = field(default_factory=list)
    # The content store areas the API replicas serve (EdgeConfig.area_uris); None: this
    # worker's directories are the only copy (single machine, no store URI).
    area_uris: dict[str, str] | None = None


def _model_runtime(folders: Any, config: WorkerConfig) -> Any:
    from node_actors.models import runtime

    budget = config.model_cache_bytes
    device = "cpu" if config.cpu_only else _accelerator()
    if budget <= 0:
        budget = _device_memory(device) // 2
    models = runtime.ModelRuntime(
        folders, budget_bytes=budget, device=device, pinned=config.pinned_models
    )
    runtime.install(models)
    return models


def _accelerator() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _device_memory(device: str) -> int:
    if device == "cuda":
        import torch

        return int(torch.cuda.get_device_properties(0).total_memory)
    from node_actors.devices import memory

    return int(memory()[0])


def encode_preview(preview: Preview) -> tuple[str, bytes]:
    """Resize to fit max_size and encode (JPEG q95 or PNG level 1), as ComfyUI sends them."""
    from PIL import ImageOps

    image = preview.image
    if preview.max_size is not None:
        image = ImageOps.contain(image, (preview.max_size, preview.max_size))
    buffer = io.BytesIO()
    if preview.image_format.upper() == "PNG":
        image.save(buffer, format="PNG", compress_level=1)
        return "image/png", buffer.getvalue()
    image.convert("RGB").save(buffer, format="JPEG", quality=95)
    return "image/jpeg", buffer.getvalue()


class ProgressReporter(Protocol):
    def report(
        self,
        prompt_id: str,
        node_id: str,
        value: float,
        max_value: float,
        frame: PreviewFrame | None,
        legacy: bool,
    ) -> None: ...

    def barrier(self, prompt_id: str) -> None:
        """Return once every report sent before for this prompt has been applied."""
        ...

    def step_done(self, prompt_id: str, node_id: str, meta: NodeResultMeta) -> None:
        """A step of a chain finished (sent after its barrier, so after its reports)."""
        ...


class NodeWorkerImpl:
    """Everything a worker does, without the Ray decorator (tests use it in-process)."""

    def __init__(
        self, index: int, config: WorkerConfig, reporter: ProgressReporter | None = None
    ) -> None:
        from node_actors.compat_path import install_compat_path
        from node_actors.folders import FolderPaths, install
        from node_actors.registry import build_default_registry
        from node_actors.runner import StepRunner

        install_compat_path()
        from comfy_execution.graph_utils import GraphBuilder  # type: ignore[import-not-found]

        self.index = index
        self.config = config
        self.reporter = reporter
        folders = FolderPaths(
            Path(config.base_dir),
            output_dir=Path(config.output_dir) if config.output_dir else None,
            input_dir=Path(config.input_dir) if config.input_dir else None,
            temp_dir=Path(config.temp_dir) if config.temp_dir else None,
            user_dir=Path(config.user_dir) if config.user_dir else None,
            models_dir=Path(config.models_dir) if config.models_dir else None,
        )
        custom_dirs = [Path(d) for d in config.custom_node_dirs]
        for yaml_path in config.extra_model_paths:
            custom_dirs += folders.load_extra_model_paths(Path(yaml_path))
        default_custom = folders.base_dir / "custom_nodes"
        if default_custom.is_dir() and default_custom not in custom_dirs:
            custom_dirs.insert(0, default_custom)
        self.sync: StoreSync | None = None
        if config.area_uris is not None:
            folders.sync = self.sync = StoreSync.open(
                config.area_uris,
                {
                    "input": folders.input_dir,
                    "output": folders.output_dir,
                    "temp": folders.temp_dir,
                },
            )
        install(folders)
        self.folders = folders
        self.models = _model_runtime(folders, config)
        self.registry, failures = build_default_registry(folders, custom_dirs)
        self.load_failures = [f"{f.path}: {f.error}" for f in failures]
        self.runner = StepRunner(
            self.registry.adapter,
            keep_instances=config.keep_instances,
            on_call_start=lambda prefix, index: GraphBuilder.set_default_prefix(prefix, index, 0),
        )
        self._flags: OrderedDict[str, InterruptFlag] = OrderedDict()
        self._thread_state = threading.local()
        logger.info(
            "worker %d ready: %d node classes, %d packs failed",
            index,
            len(self.registry.definitions()),
            len(failures),
        )

    def _run_async(self, coro: Any) -> Any:
        """Run a coroutine on this thread's own event loop (kept: a new loop per node step
        costs more than many nodes do)."""
        runner = getattr(self._thread_state, "runner", None)
        if runner is None:
            runner = self._thread_state.runner = asyncio.Runner()
        # The runner would otherwise run every coroutine in the context it was created in;
        # node code must see the execution context set for this call.
        return runner.run(coro, context=contextvars.copy_context())

    # --- control ----------------------------------------------------------------------------

    def flag(self, prompt_id: str) -> InterruptFlag:
        flag = self._flags.get(prompt_id)
        if flag is None:
            flag = InterruptFlag()
            self._flags[prompt_id] = flag
            while len(self._flags) > MAX_TRACKED_PROMPTS:
                self._flags.popitem(last=False)
        return flag

    def interrupt(self, prompt_id: str) -> None:
        self.flag(prompt_id).set()

    def free(self, unload_models: bool, free_memory: bool) -> None:
        if unload_models or free_memory:
            self.models.free()
            logger.info("worker %d: models unloaded", self.index)
        if free_memory:
            self.runner.forget_instances()
            logger.info("worker %d: node instances dropped (free_memory)", self.index)

    def definitions(self) -> dict[str, NodeDefinition]:
        return self.registry.definitions()

    def object_info(self) -> dict[str, Any]:
        return self.registry.object_info()

    def object_info_for(self, class_type: str) -> dict[str, Any]:
        return self.registry.object_info_for(class_type)

    def info(self) -> dict[str, Any]:
        from node_actors.devices import devices, memory, runtime_versions

        total, available = memory()
        return {
            **runtime_versions(),
            "devices": devices(self.config.cpu_only),
            "ram_total": total,
            "ram_free": available,
            "index": self.index,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "load_failures": self.load_failures,
            "web_directories": {k: str(v) for k, v in self.registry.web_directories.items()},
        }

    def models_query(self, what: str, folder: str | None, detail: Any = None) -> Any:
        from node_actors.model_listing import models_query

        return models_query(self.folders, what, folder, detail)

    # --- running ----------------------------------------------------------------------------

    def _context(self, task: NodeTask, reported: list[bool]) -> ExecutionContext:
        def progress(
            node_id: str, value: float, max_value: float, preview: Preview | None, legacy: bool
        ) -> None:
            if self.reporter is None:
                return
            frame = None
            if preview is not None:
                frame = PreviewFrame(*encode_preview(preview))
            reported[0] = True
            self.reporter.report(
                task.prompt_id, node_id or task.node_id, value, max_value, frame, legacy
            )

        return ExecutionContext(
            prompt_id=task.prompt_id,
            node_id=task.node_id,
            display_node_id=task.display_node_id,
            real_node_id=task.real_node_id,
            parent_node_id=task.parent_node_id,
            progress=progress,
            interrupt=self.flag(task.prompt_id),
        )

    def _barrier(self, task: NodeTask, reported: list[bool]) -> None:
        # Progress reports are fire-and-forget; make sure they land before the result does.
        if reported[0] and self.reporter is not None:
            self.reporter.barrier(task.prompt_id)

    def run_node(
        self, task: NodeTask, upstream: Sequence[Any]
    ) -> tuple[NodeResultMeta, list[list[Any]] | None]:
        if any(
            isinstance(source, LinkInput) and upstream[source.arg_index] is None
            for source in task.inputs.values()
        ):
            # Submitted ahead of an upstream step that ended without outputs.
            return NodeResultMeta(status="retry"), None
        reported = [False]
        ctx = self._context(task, reported)
        flag = ctx.interrupt
        if flag.is_set():
            return NodeResultMeta(status="interrupted"), None
        token = set_current(ctx)
        try:
            meta, outputs = self._run_async(self.runner.run(task, list(upstream)))
        finally:
            reset_current(token)
        self._barrier(task, reported)
        if meta.status == "done" and meta.ui:
            # Before the result returns, so a client reacting to `executed` can /view the
            # files from any replica.
            failure = self._upload_ui_files(task, meta)
            if failure is not None:
                return failure, None
        return self._with_models(meta, outputs), outputs

    def _upload_ui_files(self, task: NodeTask, meta: NodeResultMeta) -> NodeResultMeta | None:
        """Send the files the node's UI names to the store; a failed result if that fails."""
        if self.sync is None:
            return None
        from node_actors.runner import describe_failure

        try:
            self.sync.upload_ui_files(meta.ui)
        except StoreSyncError as exc:
            logger.warning(
                "%s: prompt %s node %s: its output files could not be stored: %s",
                task.class_type,
                task.prompt_id,
                task.node_id,
                exc,
            )
            error = StoreSyncError(f"{task.class_type} output files could not be stored: {exc}")
            failure = describe_failure(error.with_traceback(exc.__traceback__), {})
            return NodeResultMeta(status="failed", failure=failure)
        return None

    def _with_models(self, meta: NodeResultMeta, outputs: list[list[Any]] | None) -> NodeResultMeta:
        from node_actors.models.model_ref import model_keys_in

        keys = tuple(sorted(model_keys_in(outputs))) if outputs is not None else ()
        held = self.models.held_keys()
        if not keys and not held:
            return meta
        return dataclasses.replace(meta, model_keys=keys, held_models=held)

    def run_chain(
        self, steps: Sequence[ChainStep], args: Sequence[Any]
    ) -> tuple[list[NodeResultMeta], list[list[list[Any]] | None]]:
        """Run steps in order; a step reads the call's arguments or earlier steps' outputs.

        The chain's return carries every result. When a step takes a while, the results of
        the steps before it are reported at once, so the controller announces it (and shows
        its progress) while it runs; a chain of quick steps sends no extra message.
        """
        metas: list[NodeResultMeta] = []
        outputs: list[list[list[Any]] | None] = []
        unreported: list[tuple[str, str, NodeResultMeta]] = []
        lock = threading.Lock()

        def report_finished_steps() -> None:
            with lock:
                items = list(unreported)
                unreported.clear()
            for prompt_id, node_id, meta in items:
                if self.reporter is not None:
                    self.reporter.step_done(prompt_id, node_id, meta)

        for index, step in enumerate(steps):
            timer = None
            if unreported and self.reporter is not None:
                timer = threading.Timer(STEP_REPORT_DELAY_S, report_finished_steps)
                timer.daemon = True
                timer.start()
            upstream = [args[i] if kind == "arg" else outputs[i] for kind, i in step.sources]
            meta, produced = self.run_node(step.task, upstream)
            if timer is not None:
                timer.cancel()
            metas.append(meta)
            outputs.append(produced)
            if index < len(steps) - 1:
                with lock:
                    unreported.append((step.task.prompt_id, step.task.node_id, meta))
        return metas, outputs

    def resolve_expansion(
        self,
        task: NodeTask,
        calls: tuple[ExpansionCall, ...],
        produced_ids: Sequence[str],
        produced: Sequence[Any],
    ) -> tuple[NodeResultMeta, list[list[Any]] | None]:
        from node_actors.runner import approx_bytes, resolve_expansion

        definition = self.registry.adapter(task.class_type).definition
        slots = len(definition.return_types)
        outputs = resolve_expansion(
            calls, dict(zip(produced_ids, produced, strict=True)), definition.output_is_list, slots
        )
        return (
            NodeResultMeta(
                status="done",
                output_lengths=tuple(len(o) for o in outputs),
                output_bytes=approx_bytes(outputs),
            ),
            outputs,
        )

    def is_changed(self, requests: Sequence[tuple[str, str, Mapping[str, Any]]]) -> dict[str, Any]:
        from node_actors.runner import map_over_list

        values: dict[str, Any] = {}
        for node_id, class_type, inputs in requests:
            try:
                adapter = self.registry.adapter(class_type)

                async def compute(
                    adapter: Any = adapter, inputs: Mapping[str, Any] = inputs
                ) -> Any:
                    lists = {k: [v] for k, v in inputs.items()}
                    return await map_over_list(
                        adapter.definition.input_is_list,
                        lists,
                        lambda kw, _i: adapter.call_is_changed(kw),
                    )

                values[node_id] = self._run_async(compute())
            except Exception as exc:
                logger.info("IS_CHANGED of node %s (%s) raised: %s", node_id, class_type, exc)
                values[node_id] = math.nan
        return values

    def validate_inputs(
        self, class_type: str, inputs: Mapping[str, Any], input_types: Mapping[str, str] | None
    ) -> list[Any]:
        adapter = self.registry.adapter(class_type)
        kwargs = dict(inputs)
        if input_types is not None:
            kwargs["input_types"] = dict(input_types)

        async def call() -> Any:
            result = adapter.call_validate_inputs(kwargs)
            if asyncio.iscoroutine(result):
                result = await result
            return result

        return [self._run_async(call())]
