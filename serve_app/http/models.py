"""Typed request and response bodies, named and shaped after the spec's components.

Responses are built by the backend as plain dicts and sent as they are (so numbers, key
order and extra keys stay byte-for-byte ComfyUI's); these models document them in the
generated OpenAPI and type-check request bodies.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    """A body that may carry more keys than documented (ComfyUI adds some over time)."""

    model_config = ConfigDict(extra="allow")


# --- prompt ---------------------------------------------------------------------------------


class PromptRequest(_Open):
    """A workflow submission: the prompt graph plus optional routing and priority fields."""

    prompt: dict[str, Any] = Field(
        description="The graph: node id -> {class_type, inputs, _meta?}."
    )
    number: float | None = Field(None, description="Explicit queue priority (lower runs first).")
    front: bool | None = Field(None, description="Queue ahead of everything pending.")
    extra_data: dict[str, Any] | None = Field(
        None, description="Per-prompt data, e.g. extra_pnginfo with the UI workflow."
    )
    client_id: str | None = Field(None, description="WebSocket client that receives progress.")
    prompt_id: str | None = Field(
        None, description="Client-chosen prompt id: a canonical lowercase UUID."
    )
    partial_execution_targets: list[str] | None = Field(
        None, description="Run only these output nodes (and what they need)."
    )


class PromptError(_Open):
    """One ComfyUI error object."""

    type: str
    message: str
    details: str = ""
    extra_info: dict[str, Any] = Field(default_factory=dict)


class NodeError(BaseModel):
    """The validation errors attached to one node."""

    errors: list[PromptError]
    dependent_outputs: list[str] = Field(description="Output node ids this node feeds.")
    class_type: str


class PromptResponse(BaseModel):
    """The answer to an accepted prompt."""

    prompt_id: str
    number: float = Field(description="Queue priority; an int unless the client sent one.")
    node_errors: dict[str, NodeError] = Field(
        description="Errors of outputs that were dropped while others passed."
    )
    error: str | PromptError | None = Field(
        None, description="Never set on a 200; listed because the API description has it."
    )


class PromptErrorResponse(_Open):
    """A rejected prompt: `{"error": {...}, "node_errors": {...}}`."""

    error: PromptError
    node_errors: dict[str, NodeError]


class ExecInfo(BaseModel):
    queue_remaining: int = Field(description="Pending plus running prompts.")


class PromptInfo(BaseModel):
    exec_info: ExecInfo


# --- queue ----------------------------------------------------------------------------------


class QueueInfo(BaseModel):
    """Running and pending rows `[number, prompt_id, prompt, extra_data, outputs_to_execute]`."""

    queue_running: list[list[Any]]
    queue_pending: list[list[Any]] = Field(description="In heap order, not sorted.")


class QueueManageRequest(BaseModel):
    clear: bool | None = Field(None, description="Empty the pending queue.")
    delete: list[str] | None = Field(None, description="Pending prompt ids to remove.")


class InterruptRequest(BaseModel):
    prompt_id: str | None = Field(
        None, description="Interrupt only if this prompt is running; absent: interrupt all."
    )


class FreeRequest(BaseModel):
    unload_models: bool = Field(False, description="Unload every model.")
    free_memory: bool = Field(False, description="Unload models and drop all caches.")


# --- history --------------------------------------------------------------------------------


class HistoryEntry(_Open):
    prompt: list[Any] = Field(
        default_factory=list,
        description="[number, prompt_id, prompt, extra_data, outputs_to_execute]",
    )
    outputs: dict[str, Any] = Field(default_factory=dict, description="node id -> UI output")
    status: dict[str, Any] | None = Field(None, description="{status_str, completed, messages}")
    meta: dict[str, Any] = Field(default_factory=dict)


class HistoryManageRequest(BaseModel):
    clear: bool | None = Field(None, description="Delete all history.")
    delete: list[str] | None = Field(None, description="Prompt ids to delete from history.")


# --- jobs -----------------------------------------------------------------------------------


class ExecutionError(_Open):
    """The data of the `execution_error` message of a failed prompt."""

    node_id: str | None = None
    node_type: str | None = None
    exception_message: str | None = None
    exception_type: str | None = None
    traceback: list[str] | None = None
    current_inputs: Any = None
    current_outputs: Any = None


class JobEntry(BaseModel):
    """A job in list form; absent values are omitted, never null."""

    id: str
    status: str = Field(description="pending, in_progress, completed, failed or cancelled")
    priority: float | None = None
    create_time: int | None = Field(None, description="Milliseconds since the epoch.")
    execution_start_time: int | None = None
    execution_end_time: int | None = None
    execution_error: ExecutionError | None = None
    outputs_count: int | None = None
    previewable_outputs_count: int | None = None
    preview_output: dict[str, Any] | None = None
    workflow_id: str | None = None


class JobDetailResponse(JobEntry):
    """A job in full: finished jobs add outputs, execution_status and workflow."""

    workflow: dict[str, Any] | None = Field(None, description="{prompt, extra_data}")
    outputs: dict[str, Any] | None = None
    execution_status: dict[str, Any] | None = None
    update_time: float | None = Field(None, description="Not sent by the local server.")
    execution_meta: dict[str, Any] | None = Field(None, description="Not sent by the local server.")


class PaginationInfo(BaseModel):
    offset: int
    limit: int | None = Field(description="null when the request set no limit.")
    total: int
    has_more: bool


class JobsListResponse(BaseModel):
    jobs: list[JobEntry]
    pagination: PaginationInfo


class CancelJobsRequest(BaseModel):
    job_ids: list[str] = Field(description="UUIDs of the jobs to cancel.")


class CancelResponse(BaseModel):
    cancelled: bool


# --- errors ---------------------------------------------------------------------------------


class ErrorResponse(BaseModel):
    error: str


class InvalidIdsResponse(BaseModel):
    error: str
    invalid_ids: list[Any]


# --- system ---------------------------------------------------------------------------------


class SystemInfo(_Open):
    os: str
    python_version: str
    embedded_python: bool
    comfyui_version: str
    pytorch_version: str
    argv: list[str]
    ram_total: int = Field(description="Bytes.")
    ram_free: int = Field(description="Bytes.")
    required_frontend_version: str | None = None
    installed_templates_version: str | None = None
    required_templates_version: str | None = None
    comfy_package_versions: Any = None
    deploy_environment: str | None = None


class DeviceStats(_Open):
    name: str
    type: str
    index: int | None
    vram_total: int | None = None
    vram_free: int | None = None
    torch_vram_total: int | None = None
    torch_vram_free: int | None = None


class SystemStatsResponse(BaseModel):
    system: SystemInfo
    devices: list[DeviceStats] = Field(description="The primary device first.")


class FeaturesResponse(_Open):
    """Server feature flags; `--feature-flag` adds more keys."""

    supports_preview_metadata: bool
    supports_model_type_tags: bool
    max_upload_size: int = Field(description="Bytes.")
    extension: dict[str, Any]
    node_replacements: bool
    assets: bool


class NodeInfo(_Open):
    """One node class definition, as `object_info` lists it."""

    input: dict[str, Any] | None = None
    input_order: dict[str, list[str]] | None = None
    output: list[Any] | None = None
    output_is_list: list[bool] | None = None
    output_name: list[str] | None = None
    name: str | None = None
    display_name: str | None = None
    description: str | None = None
    python_module: str | None = None
    category: str | None = None
    output_node: bool | None = None
    output_tooltips: list[Any] | None = None
    deprecated: bool | None = None
    experimental: bool | None = None
    api_node: bool | None = None
    is_input_list: bool | None = None
    dev_only: bool | None = None
    has_intermediate_output: bool | None = None
    search_aliases: list[str] | None = None
    essentials_category: str | None = None


class ModelFolder(BaseModel):
    name: str
    folders: list[str] = Field(description="Absolute folder paths.")
    extensions: list[str] | None = Field(None, description="Sorted file extensions.")


class ModelFile(BaseModel):
    name: str = Field(description="Path relative to the folder.")
    pathIndex: int = Field(description="Index into the folder's paths.")  # noqa: N815
    modified: float | None = None
    created: float | None = None
    size: int | None = None


# Bodies the routes read themselves: their schemas are added to the OpenAPI components.
REQUEST_MODELS: tuple[type[BaseModel], ...] = (
    PromptRequest,
    QueueManageRequest,
    InterruptRequest,
    FreeRequest,
    HistoryManageRequest,
    CancelJobsRequest,
)
