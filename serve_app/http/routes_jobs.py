"""`/api/jobs` and its cancel routes (§1.3): declared with their /api path, never bare."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import Response

from cluster.errors import JobNotFoundError
from cluster.jobs import JOB_STATUSES, SORT_FIELDS, SORT_ORDERS, JobsQuery, parse_cancel_ids
from serve_app.http.backend import BackendDep
from serve_app.http.bodies import read_json_object
from serve_app.http.models import (
    CancelJobsRequest,
    CancelResponse,
    ErrorResponse,
    InvalidIdsResponse,
    JobDetailResponse,
    JobsListResponse,
)
from serve_app.http.openapi_contract import documented, query_param
from serve_app.http.responses import json_response

logger = logging.getLogger(__name__)

LIST_PARAMS = [
    query_param(
        "status",
        {"type": "string"},
        f"Comma-separated statuses, any of: {', '.join(JOB_STATUSES)} (case-insensitive)",
    ),
    query_param("workflow_id", {"type": "string"}, "Only jobs of this UI workflow id"),
    query_param("sort_by", {"type": "string", "enum": list(SORT_FIELDS)}, "Sort field"),
    query_param("sort_order", {"type": "string", "enum": list(SORT_ORDERS)}, "Sort direction"),
    query_param("limit", {"type": "integer", "minimum": 1}, "Page size (default: no limit)"),
    query_param("offset", {"type": "integer", "default": 0}, "Jobs to skip; negative is 0"),
]


async def list_jobs(request: Request, backend: BackendDep) -> Response:
    query = JobsQuery.from_params(request.query_params)
    return json_response(await backend.list_jobs(query))


async def get_job(job_id: str, backend: BackendDep) -> Response:
    job = await backend.get_job(job_id)
    if job is None:
        raise JobNotFoundError(job_id)
    return json_response(job)


async def cancel_job(job_id: str, backend: BackendDep) -> Response:
    cancelled = await backend.cancel_job(job_id)
    logger.info("cancel of job %s: %s", job_id, "done" if cancelled else "nothing to cancel")
    return json_response({"cancelled": cancelled})


async def cancel_jobs(request: Request, backend: BackendDep) -> Response:
    job_ids = parse_cancel_ids(await read_json_object(request))
    cancelled = await backend.cancel_jobs(job_ids)
    logger.info("cancel of jobs %s: %s", job_ids, cancelled)
    return json_response({"cancelled": cancelled})


def build_jobs_router() -> APIRouter:
    """Routes declared at /api/jobs...; mount them with RouteFamily.API."""
    router = APIRouter()
    bad_request = {400: {"model": ErrorResponse, "description": "Invalid parameter"}}
    not_found = {404: {"model": ErrorResponse, "description": '{"error": "Job not found"}'}}
    router.add_api_route(
        "/api/jobs",
        list_jobs,
        methods=["GET"],
        operation_id="listJobs",
        tags=["queue"],
        summary="List jobs with filtering and pagination",
        description="Running jobs, then pending, then finished ones, filtered and then "
        "sorted (default: newest first) and paged.",
        response_model=JobsListResponse,
        responses=bad_request,
        openapi_extra=documented(params=LIST_PARAMS),
    )
    router.add_api_route(
        "/api/jobs/cancel",
        cancel_jobs,
        methods=["POST"],
        operation_id="cancelJobs",
        tags=["queue"],
        summary="Cancel several jobs",
        description="Interrupts the running ones and dequeues the pending ones; "
        "`cancelled` is true if any was cancelled.",
        response_model=CancelResponse,
        responses={400: {"model": InvalidIdsResponse, "description": "Malformed body or ids"}},
        openapi_extra=documented(body=CancelJobsRequest),
    )
    router.add_api_route(
        "/api/jobs/{job_id}",
        get_job,
        methods=["GET"],
        operation_id="getJob",
        tags=["queue"],
        summary="Get a single job by ID",
        description="Finished jobs come with outputs, execution_status and workflow; queued "
        "and running ones in list form.",
        response_model=JobDetailResponse,
        responses=not_found,
    )
    router.add_api_route(
        "/api/jobs/{job_id}/cancel",
        cancel_job,
        methods=["POST"],
        operation_id="cancelJob",
        tags=["queue"],
        summary="Cancel a running or pending job",
        description="Always 200; `cancelled` is false for finished or unknown jobs.",
        response_model=CancelResponse,
    )
    return router
