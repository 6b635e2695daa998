"""The jobs view of the queue and history (ComfyUI's `/api/jobs`), as pure functions.

The controller owns the data (running and pending queue rows, history entries); these
functions only turn it into ComfyUI's job objects, filter, sort and page them. No I/O, so the
controller can call them on its own data and unit tests can check every rule directly.

Queue rows are the 5-element lists `[number, prompt_id, prompt, extra_data, outputs]`; history
entries are `{"prompt": <row>, "outputs", "status", "meta"}` as ComfyUI stores them.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cluster.errors import InvalidRequestError
from cluster.job_outputs import normalize_outputs, summarize_outputs

logger = logging.getLogger(__name__)

PENDING = "pending"
IN_PROGRESS = "in_progress"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
JOB_STATUSES: tuple[str, ...] = (PENDING, IN_PROGRESS, COMPLETED, FAILED, CANCELLED)

SORT_BY_CREATED = "created_at"
SORT_BY_DURATION = "execution_duration"
SORT_FIELDS: tuple[str, ...] = (SORT_BY_CREATED, SORT_BY_DURATION)
SORT_ORDERS: tuple[str, ...] = ("asc", "desc")


_END_EVENTS = frozenset({"execution_success", "execution_error", "execution_interrupted"})


class InvalidJobIdsError(InvalidRequestError):
    """`POST /api/jobs/cancel` got ids that are not UUIDs; the 400 body lists them."""

    def __init__(self, invalid_ids: list[Any]) -> None:
        super().__init__("job_ids", "job_ids must contain only valid UUID strings")
        self.invalid_ids = invalid_ids

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.invalid_ids,))


@dataclass(frozen=True)
class JobsQuery:
    """The validated query of `GET /api/jobs`. `statuses=None` means every status."""

    statuses: tuple[str, ...] | None = None
    workflow_id: str | None = None
    sort_by: str = SORT_BY_CREATED
    sort_order: str = "desc"
    limit: int | None = None
    offset: int = 0

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> JobsQuery:
        """Parse query parameters, raising InvalidRequestError with ComfyUI's messages."""
        return cls(
            statuses=_parse_statuses(params.get("status")),
            workflow_id=params.get("workflow_id") or None,
            sort_by=_parse_choice(params, "sort_by", SORT_FIELDS, SORT_BY_CREATED),
            sort_order=_parse_choice(params, "sort_order", SORT_ORDERS, "desc"),
            limit=_parse_limit(params),
            offset=max(parse_int_param(params, "offset") or 0, 0),
        )

    def wants(self, status: str) -> bool:
        return self.statuses is None or status in self.statuses


def _parse_statuses(raw: str | None) -> tuple[str, ...] | None:
    if not raw:
        return None
    wanted = tuple(part.strip().lower() for part in raw.split(",") if part.strip())
    if not wanted:
        return None
    invalid = [s for s in wanted if s not in JOB_STATUSES]
    if invalid:
        raise InvalidRequestError(
            "status",
            f"Invalid status value(s): {', '.join(invalid)}. "
            f"Valid values: {', '.join(JOB_STATUSES)}",
        )
    return wanted


def _parse_choice(
    params: Mapping[str, str], name: str, choices: tuple[str, ...], default: str
) -> str:
    value = params.get(name)
    if value is None:
        return default
    if value not in choices:
        quoted = " or ".join(f"'{c}'" for c in choices)
        raise InvalidRequestError(name, f"{name} must be {quoted}")
    return value


def _parse_limit(params: Mapping[str, str]) -> int | None:
    limit = parse_int_param(params, "limit")
    if limit is not None and limit <= 0:
        raise InvalidRequestError("limit", "limit must be a positive integer")
    return limit


def parse_int_param(params: Mapping[str, str], name: str) -> int | None:
    """An optional integer query parameter; a 400 naming it when it is not one."""
    raw = params.get(name)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise InvalidRequestError(name, f"{name} must be an integer") from None


def parse_cancel_ids(body: Any) -> list[str]:
    """Validate the body of `POST /api/jobs/cancel`: `{"job_ids": [uuid, ...]}`."""
    if not isinstance(body, dict):
        raise InvalidRequestError("body", "Request body must be a JSON object")
    job_ids = body.get("job_ids")
    if not isinstance(job_ids, list):
        raise InvalidRequestError("job_ids", "job_ids must be a list")
    invalid = [job_id for job_id in job_ids if not _is_uuid(job_id)]
    if invalid:
        raise InvalidJobIdsError(invalid)
    return list(job_ids)


def _is_uuid(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def prune_none(values: Mapping[str, Any]) -> dict[str, Any]:
    """Drop keys whose value is None; zeros and empty values stay."""
    return {key: value for key, value in values.items() if value is not None}


def _row_fields(row: Any) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """(number, prompt, extra_data) of a queue row, tolerating short or odd rows."""
    items = list(row) if isinstance(row, list | tuple) else []
    number = items[0] if len(items) > 0 else None
    prompt = items[2] if len(items) > 2 and isinstance(items[2], dict) else {}
    extra = items[3] if len(items) > 3 and isinstance(items[3], dict) else {}
    return number, prompt, extra


def workflow_id_of(extra_data: Mapping[str, Any]) -> Any:
    """`extra_data.extra_pnginfo.workflow.id`: the UI workflow the prompt came from."""
    pnginfo = extra_data.get("extra_pnginfo")
    workflow = pnginfo.get("workflow") if isinstance(pnginfo, dict) else None
    return workflow.get("id") if isinstance(workflow, dict) else None


def job_from_queue_item(item: Sequence[Any], status: str) -> dict[str, Any]:
    """The short job object of a running (`in_progress`) or `pending` queue row."""
    number, _prompt, extra = _row_fields(item)
    return prune_none(
        {
            "id": item[1] if len(item) > 1 else None,
            "status": status,
            "priority": number,
            "create_time": extra.get("create_time"),
            "outputs_count": 0,
            "previewable_outputs_count": 0,
            "workflow_id": workflow_id_of(extra),
        }
    )


@dataclass(frozen=True)
class _Timeline:
    start: Any = None
    end: Any = None
    error: dict[str, Any] | None = None
    interrupted: bool = False


def _timeline(status: Mapping[str, Any]) -> _Timeline:
    start = end = error = None
    interrupted = False
    for message in status.get("messages") or []:
        if not isinstance(message, list | tuple) or len(message) < 2:
            continue
        event, data = message[0], message[1]
        if not isinstance(data, dict):
            continue
        if event == "execution_start":
            start = data.get("timestamp")
        elif event in _END_EVENTS:
            end = data.get("timestamp")
            if event == "execution_error":
                error = data
            elif event == "execution_interrupted":
                interrupted = True
    return _Timeline(start, end, error, interrupted)


def history_status(status: Mapping[str, Any] | None) -> str:
    """Map a history `status` dict to a job status; a missing status counts as completed."""
    status_str = status.get("status_str") if status else None
    if status_str == "error":
        return CANCELLED if _timeline(status or {}).interrupted else FAILED
    return COMPLETED


def job_from_history(
    prompt_id: str, entry: Mapping[str, Any], *, detailed: bool = False
) -> dict[str, Any]:
    """The job object of a finished prompt; `detailed` adds outputs, status and workflow."""
    number, prompt, extra = _row_fields(entry.get("prompt"))
    status = entry.get("status") if isinstance(entry.get("status"), dict) else {}
    outputs = entry.get("outputs") if isinstance(entry.get("outputs"), dict) else {}
    timeline = _timeline(status)
    summary = summarize_outputs(outputs)
    job = prune_none(
        {
            "id": prompt_id,
            "status": history_status(status),
            "priority": number,
            "create_time": extra.get("create_time"),
            "execution_start_time": timeline.start,
            "execution_end_time": timeline.end,
            "execution_error": timeline.error,
            "outputs_count": summary.count,
            "previewable_outputs_count": summary.previewable_count,
            "preview_output": summary.preview,
            "workflow_id": workflow_id_of(extra),
        }
    )
    if detailed:
        job["outputs"] = normalize_outputs(outputs)
        job["execution_status"] = status
        job["workflow"] = {"prompt": prompt, "extra_data": extra}
    return job


def _duration(job: Mapping[str, Any]) -> float:
    start, end = job.get("execution_start_time"), job.get("execution_end_time")
    return end - start if start is not None and end is not None else 0


def _created(job: Mapping[str, Any]) -> float:
    return job.get("create_time") or 0


def sort_jobs(jobs: list[dict[str, Any]], sort_by: str, sort_order: str) -> list[dict[str, Any]]:
    """Stable sort, so equal keys keep running -> pending -> history order."""
    key = _duration if sort_by == SORT_BY_DURATION else _created
    return sorted(jobs, key=key, reverse=sort_order == "desc")


def list_jobs(
    running_items: Iterable[Sequence[Any]],
    pending_items: Iterable[Sequence[Any]],
    history: Mapping[str, Mapping[str, Any]],
    query: JobsQuery,
) -> dict[str, Any]:
    """`GET /api/jobs` body: `{"jobs": [...], "pagination": {offset, limit, total, has_more}}`."""
    jobs: list[dict[str, Any]] = []
    if query.wants(IN_PROGRESS):
        jobs.extend(job_from_queue_item(item, IN_PROGRESS) for item in running_items)
    if query.wants(PENDING):
        jobs.extend(job_from_queue_item(item, PENDING) for item in pending_items)
    for prompt_id, entry in history.items():
        job = job_from_history(prompt_id, entry)
        if query.wants(job["status"]):
            jobs.append(job)
    if query.workflow_id is not None:
        jobs = [job for job in jobs if job.get("workflow_id") == query.workflow_id]
    jobs = sort_jobs(jobs, query.sort_by, query.sort_order)
    total = len(jobs)
    end = None if query.limit is None else query.offset + query.limit
    page = jobs[query.offset : end]
    return {
        "jobs": page,
        "pagination": {
            "offset": query.offset,
            "limit": query.limit,
            "total": total,
            "has_more": query.offset + len(page) < total,
        },
    }


def job_detail(
    job_id: str,
    running_items: Iterable[Sequence[Any]],
    pending_items: Iterable[Sequence[Any]],
    history: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any] | None:
    """`GET /api/jobs/{id}` body, or None when the id is unknown.

    History wins over the queue: a prompt that just finished may still be listed as running
    for a moment, and its detailed record is the more useful answer.
    """
    entry = history.get(job_id)
    if entry is not None:
        return job_from_history(job_id, entry, detailed=True)
    for status, items in ((IN_PROGRESS, running_items), (PENDING, pending_items)):
        for item in items:
            if len(item) > 1 and item[1] == job_id:
                return job_from_queue_item(item, status)
    logger.debug("job %s not found", job_id)
    return None
