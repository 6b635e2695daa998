"""The Ray Serve ingress: ComfyUI's HTTP routes and `/ws` in a Serve deployment.

The only module of `serve_app` that makes Ray calls. `deploy(settings)` (the factory that
`comfyray serve` calls) starts the controller actor, which starts the node workers, and
runs the ingress application; each replica builds its FastAPI app, finds the controller by
name and forwards to it.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import platform
import sys
from typing import Any

import ray
from fastapi import FastAPI, WebSocket
from ray import serve
from ray.exceptions import RayTaskError

from cluster.controller import ControllerConfig
from cluster.dispatch import ClusterSpec, get_controller, start_controller
from cluster.jobs import JobsQuery
from serve_app.edge import DEFAULT_MAX_UPLOAD_BYTES, EdgeConfig, EdgeServices, edge_config
from serve_app.http.app import APP_VERSION, build_app
from serve_app.log_buffer import LogBuffer, install_log_buffer
from serve_app.ws_hub import ReleaseAfterReply, WebSocketHub

logger = logging.getLogger(__name__)

APP_NAME = "comfyray"


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def server_features(max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES) -> dict[str, Any]:
    return {
        "supports_preview_metadata": True,
        "supports_model_type_tags": True,
        "max_upload_size": max_upload_bytes,
        "extension": {"manager": {"supports_v4": True}},
        "node_replacements": True,
        "assets": False,
    }


async def _call(method: Any, *args: Any) -> Any:
    """Await an actor call, re-raising our own typed errors as themselves."""
    try:
        return await method.remote(*args)
    except RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, Exception):
            raise cause from None
        raise


class RayBackend:
    """`ComfyBackend` over the controller actor."""

    def __init__(
        self,
        controller: Any,
        hub: WebSocketHub | None = None,
        max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    ) -> None:
        self._controller = controller
        self.hub = hub
        self._max_upload_bytes = max_upload_bytes
        self._web_directories: dict[str, str] | None = None

    # events, for the hub
    async def events_since(self, seq: int, timeout: float) -> list[Any]:
        return await _call(self._controller.events_since, seq, timeout)

    async def last_seq(self) -> int:
        return await _call(self._controller.last_seq)

    async def running_node_of_client(self, client_id: str) -> str | None:
        return await _call(self._controller.running_node_of_client, client_id)

    # prompts and queue
    async def submit_prompt(self, body: dict[str, Any], usage_source: str | None) -> dict:
        client_id = body.get("client_id") if isinstance(body.get("client_id"), str) else None
        if self.hub is not None:
            self.hub.pause_until_reply(client_id)
        return await _call(self._controller.submit, body, usage_source)

    async def queue_remaining(self) -> int:
        return await _call(self._controller.queue_remaining)

    async def get_queue(self) -> dict:
        return await _call(self._controller.get_queue)

    async def manage_queue(self, clear: bool, delete: list[str]) -> None:
        await _call(self._controller.manage_queue, clear, delete)

    async def interrupt(self, prompt_id: str | None) -> None:
        await _call(self._controller.interrupt, prompt_id)

    async def free(self, unload_models: bool, free_memory: bool) -> None:
        await _call(self._controller.free, unload_models, free_memory)

    async def get_history(self, max_items: int | None, offset: int) -> dict:
        return await _call(self._controller.get_history, max_items, offset)

    async def get_history_item(self, prompt_id: str) -> dict | None:
        found = await _call(self._controller.get_history_item, prompt_id)
        return found.get(prompt_id) if found else None

    async def manage_history(self, clear: bool, delete: list[str]) -> None:
        await _call(self._controller.manage_history, clear, delete)

    # jobs
    async def list_jobs(self, query: JobsQuery) -> dict:
        return await _call(self._controller.list_jobs, query)

    async def get_job(self, job_id: str) -> dict | None:
        return await _call(self._controller.get_job, job_id)

    async def cancel_job(self, job_id: str) -> bool:
        return await _call(self._controller.cancel, job_id)

    async def cancel_jobs(self, job_ids: list[str]) -> bool:
        results = [await _call(self._controller.cancel, job_id) for job_id in job_ids]
        return any(results)

    # nodes and models
    async def object_info(self) -> dict:
        return await _call(self._controller.object_info)

    async def object_info_for(self, node_class: str) -> dict | None:
        found = await _call(self._controller.object_info_for, node_class)
        return found or None

    async def embeddings(self) -> list[str]:
        return await _call(self._controller.models_query, "embeddings", None)

    async def model_folders(self) -> list[str]:
        return await _call(self._controller.models_query, "folders", None)

    async def models_in(self, folder: str) -> list[str] | None:
        return await _call(self._controller.models_query, "files", folder)

    async def experiment_models(self) -> list[dict]:
        return await _call(self._controller.models_query, "experiment", None)

    async def experiment_models_in(self, folder: str) -> list[dict] | None:
        return await _call(self._controller.models_query, "experiment_files", folder)

    async def model_preview(
        self, folder: str, path_index: int, filename: str
    ) -> tuple[int, bytes | str]:
        return await _call(self._controller.models_query, "preview", folder, (path_index, filename))

    async def view_metadata(self, folder: str, filename: str) -> dict | None:
        return await _call(self._controller.models_query, "metadata", folder, filename)

    async def folder_paths(self) -> dict[str, list[str]]:
        return await _call(self._controller.models_query, "folder_paths", None)

    async def web_directories(self) -> dict[str, str]:
        # Asked on every /extensions/... file the frontend loads at boot, and workers_info
        # calls every worker; packs load once per worker from the same folders, so the
        # first answer stays true.
        if self._web_directories is None:
            workers = await _call(self._controller.workers_info)
            if not workers:
                return {}
            self._web_directories = dict(workers[0].get("web_directories", {}))
        return dict(self._web_directories)

    async def system_stats(self) -> dict:
        workers = await _call(self._controller.workers_info)
        head = workers[0] if workers else {}
        devices = [device for info in workers for device in info.get("devices", [])]
        return {
            "system": {
                "os": sys.platform,
                "ram_total": head.get("ram_total", 0),
                "ram_free": head.get("ram_free", 0),
                "comfyui_version": APP_VERSION,
                # We serve the installed frontend, so it is the one required.
                "required_frontend_version": _package_version("comfyui-frontend-package"),
                "installed_templates_version": _package_version("comfyui-workflow-templates"),
                "required_templates_version": None,
                # The frontend iterates it as a list of {name, installed, required}.
                "comfy_package_versions": [],
                "python_version": sys.version,
                "pytorch_version": head.get("pytorch_version", ""),
                "embedded_python": False,
                "deploy_environment": "comfyray",
                "argv": sys.argv,
                "ray_version": ray.__version__,
                "machine": platform.machine(),
            },
            "devices": devices,
        }

    async def features(self) -> dict:
        return server_features(self._max_upload_bytes)


def build_replica_app() -> FastAPI:
    """Runs inside each ingress replica: the app, wired to the named controller."""
    # This replica's own log lines for /internal/logs; the workers' go to Ray's log files.
    logs = install_log_buffer(LogBuffer())
    controller = get_controller()
    config: EdgeConfig = ray.get(controller.edge_config.remote())
    edge = EdgeServices.open(config)
    backend = RayBackend(controller, max_upload_bytes=config.max_upload_bytes)

    async def features() -> dict:
        return server_features(config.max_upload_bytes)

    hub = WebSocketHub(backend, features, logs=logs)
    backend.hub = hub
    app = build_app(backend, edge)
    app.state.log_buffer = logs

    async def websocket_endpoint(websocket: WebSocket) -> None:
        await hub.serve(websocket)

    app.add_middleware(ReleaseAfterReply, hub=hub)
    app.add_api_websocket_route("/ws", websocket_endpoint)
    app.add_api_websocket_route("/api/ws", websocket_endpoint)
    logger.info("ingress replica ready (pid %d)", os.getpid())
    return app


@serve.deployment(
    name="ComfyIngress",
    num_replicas=1,
    ray_actor_options={"num_cpus": 0},
    max_ongoing_requests=10_000,
)
@serve.ingress(build_replica_app)
class ComfyIngress:
    """The HTTP/WS edge; its app comes from build_replica_app."""


def _default_model_cache(workers: int, gpus: float) -> int:
    """0 lets a GPU worker take half its own VRAM; CPU workers share half of this machine's RAM."""
    if gpus >= workers and gpus > 0:
        return 0
    from node_actors.devices import memory

    return int(memory()[0] // (2 * max(1, workers)))


def cluster_spec(settings: Any) -> ClusterSpec:
    from node_actors.worker_core import WorkerConfig

    custom_dirs = [str(settings.custom_nodes_directory)] if settings.custom_nodes_directory else []
    worker_config = WorkerConfig(
        base_dir=str(settings.base_directory),
        output_dir=str(settings.output_directory),
        input_dir=str(settings.input_directory),
        temp_dir=str(settings.temp_directory),
        user_dir=str(settings.user_directory),
        models_dir=str(settings.models_directory) if settings.models_directory else None,
        extra_model_paths=[str(p) for p in settings.extra_model_paths_configs],
        custom_node_dirs=custom_dirs,
        cpu_only=settings.cpu,
        keep_instances=settings.cache_mode != "none",
        pinned_models=list(settings.pinned_models),
        area_uris=edge_config(settings).area_uris,
    )
    gpus = 0.0 if settings.cpu else float(ray.cluster_resources().get("GPU", 0))
    workers = int(settings.workers or 1)
    worker_config.model_cache_bytes = settings.model_cache_bytes or _default_model_cache(
        workers, gpus
    )
    return ClusterSpec(
        worker_count=workers,
        worker_config=worker_config,
        gpus_per_worker=1.0 if gpus >= workers and gpus > 0 else 0.0,
        journal_path=str(settings.state_dir / "jobs.jsonl") if settings.state_dir else None,
        edge=edge_config(settings),
        controller=ControllerConfig(
            cache_mode=settings.cache_mode,
            cache_lru_size=settings.cache_lru_size,
            max_concurrent_prompts=max(1, workers),
            # Half the object store: the rest is for the prompts running now.
            cache_byte_budget=int(ray.cluster_resources().get("object_store_memory", 0) // 2),
        ),
    )


def deploy(settings: Any) -> None:
    """Start the controller and workers, then the ingress application."""
    _, started = start_controller(cluster_spec(settings))
    # The ingress replica starts while the workers import torch and the node library.
    serve.run(ComfyIngress.bind(), name=APP_NAME, route_prefix="/")
    workers = ray.get(started)
    logger.info("comfyray app deployed with %d node workers", workers)
