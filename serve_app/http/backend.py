"""The seam between the HTTP edge and the cluster: routes call only this protocol.

An implementation over Ray (the ingress deployment) talks to the controller; tests use an
in-memory fake. Every method returns plain JSON-ready data in ComfyUI's shapes; "not found"
is `None` where ComfyUI answers 404 or an empty object, so the edge chooses the response.
"""

from __future__ import annotations

from typing import Annotated, Any, Protocol, runtime_checkable

from fastapi import Depends, Request

from cluster.jobs import JobsQuery
from serve_app.http.errors import BackendUnavailableError


@runtime_checkable
class ComfyBackend(Protocol):
    async def submit_prompt(self, body: dict[str, Any], usage_source: str | None) -> dict:
        """Queue a prompt body as sent; returns `{"prompt_id", "number", "node_errors"}`.

        Owns everything after JSON parsing (§2.2): on_prompt hooks, the `number` counter,
        `no_prompt`, `invalid_prompt_id` and validation; rejects with PromptValidationError.
        """
        ...

    async def queue_remaining(self) -> int:
        """Pending plus running prompts."""
        ...

    async def get_queue(self) -> dict:
        """`{"queue_running": [row], "queue_pending": [row]}` with 5-element rows."""
        ...

    async def manage_queue(self, clear: bool, delete: list[str]) -> None:
        """Clear pending prompts and/or delete the given pending ids."""
        ...

    async def interrupt(self, prompt_id: str | None) -> None:
        """Interrupt that prompt if it is running, or everything when None."""
        ...

    async def free(self, unload_models: bool, free_memory: bool) -> None: ...

    async def get_history(self, max_items: int | None, offset: int) -> dict:
        """`{prompt_id: entry}`; ComfyUI's offset rule (-1 with max_items: the last N)."""
        ...

    async def get_history_item(self, prompt_id: str) -> dict | None:
        """One history entry, or None if unknown."""
        ...

    async def manage_history(self, clear: bool, delete: list[str]) -> None: ...

    async def list_jobs(self, query: JobsQuery) -> dict:
        """`{"jobs", "pagination"}`, e.g. from `cluster.jobs.list_jobs`."""
        ...

    async def get_job(self, job_id: str) -> dict | None:
        """The job detail, e.g. from `cluster.jobs.job_detail`; None if unknown."""
        ...

    async def cancel_job(self, job_id: str) -> bool:
        """True if the job was running or pending and is now being cancelled."""
        ...

    async def cancel_jobs(self, job_ids: list[str]) -> bool:
        """True if at least one of the jobs was cancelled."""
        ...

    async def object_info(self) -> dict:
        """`{class_name: node_info}` for every node class."""
        ...

    async def object_info_for(self, node_class: str) -> dict | None:
        """The node_info of one class, or None if unknown."""
        ...

    async def embeddings(self) -> list[str]: ...

    async def model_folders(self) -> list[str]: ...

    async def models_in(self, folder: str) -> list[str] | None:
        """Sorted relative file names, or None for an unknown folder."""
        ...

    async def experiment_models(self) -> list[dict]: ...

    async def experiment_models_in(self, folder: str) -> list[dict] | None:
        """`[{"name", "pathIndex", "modified", "created", "size"}]`, or None if unknown."""
        ...

    async def model_preview(
        self, folder: str, path_index: int, filename: str
    ) -> tuple[int, bytes | str]:
        """(200, WebP bytes) or (4xx status, message)."""
        ...

    async def view_metadata(self, folder: str, filename: str) -> dict | None:
        """The safetensors `__metadata__` of a model file; None when absent (404)."""
        ...

    async def folder_paths(self) -> dict[str, list[str]]:
        """Model folder name -> the absolute folders searched for it (on the workers)."""
        ...

    async def web_directories(self) -> dict[str, str]:
        """Custom node pack name -> its WEB_DIRECTORY folder (absolute), as the workers loaded them."""
        ...

    async def system_stats(self) -> dict: ...

    async def features(self) -> dict: ...


def get_backend(request: Request) -> ComfyBackend:
    """FastAPI dependency: the backend a Serve replica attached to `app.state.backend`."""
    backend = getattr(request.app.state, "backend", None)
    if backend is None:
        raise BackendUnavailableError()
    return backend


# Route parameter type: `backend: BackendDep` injects the app's backend.
BackendDep = Annotated[ComfyBackend, Depends(get_backend)]
