"""An in-memory `ComfyBackend`: the HTTP edge without a cluster, for tests and API demos.

It queues prompts without validating or running them; `finish` moves one into history
the way the controller would. Jobs views come from `cluster.jobs`, as in the real backend.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from cluster import jobs
from cluster.errors import PromptValidationError, error_dict

logger = logging.getLogger(__name__)

DEFAULT_FEATURES: dict[str, Any] = {
    "supports_preview_metadata": True,
    "supports_model_type_tags": True,
    "max_upload_size": 100 * 1024 * 1024,
    "extension": {"manager": {"supports_v4": True}},
    "node_replacements": True,
    "assets": False,
}


def _canonical_uuid(value: Any) -> bool:
    try:
        return isinstance(value, str) and str(uuid.UUID(value)) == value
    except ValueError:
        return False


class InMemoryBackend:
    """Queue, history and catalogue held in dicts; every call is recorded in `calls`."""

    def __init__(
        self,
        *,
        node_info: dict[str, dict[str, Any]] | None = None,
        model_files: dict[str, list[str]] | None = None,
        embeddings: list[str] | None = None,
        system_stats: dict[str, Any] | None = None,
    ) -> None:
        self.running: list[list[Any]] = []
        self.pending: list[list[Any]] = []
        self.history: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.node_info = node_info or {}
        self.model_files = model_files or {}
        self.embedding_names = embeddings or []
        self.model_previews: dict[tuple[str, int, str], bytes] = {}
        self.model_metadata: dict[tuple[str, str], dict[str, Any]] = {}
        self.pack_web_directories: dict[str, str] = {}
        self.stats = system_stats or {"system": {}, "devices": []}
        self.feature_flags = dict(DEFAULT_FEATURES)
        self._counter = 0

    def _record(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))

    # --- prompt and queue ---------------------------------------------------------------

    def _next_number(self, body: dict[str, Any]) -> float | int:
        if "number" in body:
            return float(body["number"])
        number = -self._counter if body.get("front") else self._counter
        self._counter += 1
        return number

    async def submit_prompt(self, body: dict[str, Any], usage_source: str | None) -> dict:
        self._record("submit_prompt", body, usage_source)
        number = self._next_number(body)
        if "prompt" not in body:
            message = "No prompt provided"
            raise PromptValidationError(error_dict("no_prompt", message, message))
        prompt_id = body.get("prompt_id")
        if prompt_id is None:
            prompt_id = str(uuid.uuid4())
        elif not _canonical_uuid(prompt_id):
            message = "Invalid prompt_id: must be a canonical lowercase UUID"
            raise PromptValidationError(error_dict("invalid_prompt_id", message, str(prompt_id)))
        extra_data = dict(body.get("extra_data") or {})
        if "client_id" in body:
            extra_data["client_id"] = body["client_id"]
        if usage_source is not None:
            extra_data.setdefault("comfy_usage_source", usage_source)
        extra_data["create_time"] = int(time.time() * 1000)
        prompt = body["prompt"]
        self.pending.append([number, prompt_id, prompt, extra_data, list(prompt)])
        logger.debug("prompt %s queued as %s", prompt_id, number)
        return {"prompt_id": prompt_id, "number": number, "node_errors": {}}

    def start(self, prompt_id: str) -> None:
        """Move a pending prompt to running."""
        row = next(r for r in self.pending if r[1] == prompt_id)
        self.pending.remove(row)
        self.running.append(row)

    def finish(
        self,
        prompt_id: str,
        outputs: dict[str, Any] | None = None,
        messages: list[list[Any]] | None = None,
        status_str: str = "success",
    ) -> None:
        """Move a queued prompt into history with the given outputs and status messages."""
        row = next(r for r in self.running + self.pending if r[1] == prompt_id)
        for rows in (self.running, self.pending):
            if row in rows:
                rows.remove(row)
        status = {
            "status_str": status_str,
            "completed": status_str == "success",
            "messages": messages or [],
        }
        self.history[prompt_id] = {
            "prompt": row,
            "outputs": outputs or {},
            "status": status,
            "meta": {},
        }

    async def queue_remaining(self) -> int:
        return len(self.running) + len(self.pending)

    async def get_queue(self) -> dict:
        return {"queue_running": list(self.running), "queue_pending": list(self.pending)}

    async def manage_queue(self, clear: bool, delete: list[str]) -> None:
        self._record("manage_queue", clear, delete)
        if clear:
            self.pending.clear()
        self.pending = [row for row in self.pending if row[1] not in delete]

    async def interrupt(self, prompt_id: str | None) -> None:
        self._record("interrupt", prompt_id)

    async def free(self, unload_models: bool, free_memory: bool) -> None:
        self._record("free", unload_models, free_memory)

    # --- history ------------------------------------------------------------------------

    async def get_history(self, max_items: int | None, offset: int) -> dict:
        self._record("get_history", max_items, offset)
        items = list(self.history.items())
        if offset < 0 and max_items is not None:
            offset = len(items) - max_items
        start = max(offset, 0)
        end = None if max_items is None else start + max_items
        return dict(items[start:end])

    async def get_history_item(self, prompt_id: str) -> dict | None:
        return self.history.get(prompt_id)

    async def manage_history(self, clear: bool, delete: list[str]) -> None:
        self._record("manage_history", clear, delete)
        if clear:
            self.history.clear()
        for prompt_id in delete:
            self.history.pop(prompt_id, None)

    # --- jobs ---------------------------------------------------------------------------

    async def list_jobs(self, query: jobs.JobsQuery) -> dict:
        self._record("list_jobs", query)
        return jobs.list_jobs(self.running, self.pending, self.history, query)

    async def get_job(self, job_id: str) -> dict | None:
        return jobs.job_detail(job_id, self.running, self.pending, self.history)

    async def cancel_job(self, job_id: str) -> bool:
        self._record("cancel_job", job_id)
        if any(row[1] == job_id for row in self.running):
            await self.interrupt(job_id)
            return True
        before = len(self.pending)
        self.pending = [row for row in self.pending if row[1] != job_id]
        return len(self.pending) < before

    async def cancel_jobs(self, job_ids: list[str]) -> bool:
        results = [await self.cancel_job(job_id) for job_id in job_ids]
        return any(results)

    # --- catalogue ----------------------------------------------------------------------

    async def object_info(self) -> dict:
        return dict(self.node_info)

    async def object_info_for(self, node_class: str) -> dict | None:
        return self.node_info.get(node_class)

    async def embeddings(self) -> list[str]:
        return list(self.embedding_names)

    async def model_folders(self) -> list[str]:
        return list(self.model_files)

    async def models_in(self, folder: str) -> list[str] | None:
        files = self.model_files.get(folder)
        return None if files is None else sorted(files)

    async def experiment_models(self) -> list[dict]:
        return [{"name": folder, "folders": [f"/models/{folder}"]} for folder in self.model_files]

    async def experiment_models_in(self, folder: str) -> list[dict] | None:
        files = self.model_files.get(folder)
        if files is None:
            return None
        return [{"name": name, "pathIndex": 0} for name in sorted(files)]

    async def model_preview(
        self, folder: str, path_index: int, filename: str
    ) -> tuple[int, bytes | str]:
        preview = self.model_previews.get((folder, path_index, filename))
        return (200, preview) if preview is not None else (404, "No preview found")

    async def view_metadata(self, folder: str, filename: str) -> dict | None:
        return self.model_metadata.get((folder, filename))

    async def folder_paths(self) -> dict[str, list[str]]:
        return {folder: [f"/models/{folder}"] for folder in self.model_files}

    async def web_directories(self) -> dict[str, str]:
        return dict(self.pack_web_directories)

    async def system_stats(self) -> dict:
        return self.stats

    async def features(self) -> dict:
        return dict(self.feature_flags)
