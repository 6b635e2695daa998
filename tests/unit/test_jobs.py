"""cluster.jobs against §1.3 of the behaviour reference."""

from __future__ import annotations

from typing import Any

import pytest

from cluster import jobs
from cluster.errors import InvalidRequestError
from cluster.jobs import JobsQuery

ALL = "pending, in_progress, completed, failed, cancelled"


def row(number: float, prompt_id: str, create_time: int | None = None, workflow: Any = None):
    extra: dict[str, Any] = {}
    if create_time is not None:
        extra["create_time"] = create_time
    if workflow is not None:
        extra["extra_pnginfo"] = {"workflow": {"id": workflow}}
    return [number, prompt_id, {"1": {"class_type": "X", "inputs": {}}}, extra, ["1"]]


def entry(
    number: float,
    prompt_id: str,
    *,
    create_time: int | None = None,
    status_str: str | None = "success",
    messages: list[Any] | None = None,
    outputs: dict[str, Any] | None = None,
    workflow: Any = None,
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "prompt": row(number, prompt_id, create_time, workflow),
        "outputs": outputs or {},
        "meta": {},
    }
    if status_str is not None:
        result["status"] = {"status_str": status_str, "completed": True, "messages": messages or []}
    return result


def timed(start: int, end: int, end_event: str = "execution_success") -> list[Any]:
    return [
        ["execution_start", {"prompt_id": "p", "timestamp": start}],
        ["execution_cached", {"nodes": [], "prompt_id": "p", "timestamp": start}],
        [end_event, {"prompt_id": "p", "timestamp": end}],
    ]


# --- query parsing ------------------------------------------------------------------------


def test_query_defaults() -> None:
    query = JobsQuery.from_params({})
    assert query == JobsQuery(None, None, "created_at", "desc", None, 0)
    assert query.wants("pending") and query.wants("cancelled")


def test_query_status_is_case_insensitive_comma_list() -> None:
    query = JobsQuery.from_params({"status": " Pending,COMPLETED,, "})
    assert query.statuses == ("pending", "completed")
    assert query.wants("completed") and not query.wants("failed")


def test_query_empty_status_means_all() -> None:
    assert JobsQuery.from_params({"status": ""}).statuses is None
    assert JobsQuery.from_params({"status": " , "}).statuses is None


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        (
            {"status": "done,pending,bad"},
            "status",
            f"Invalid status value(s): done, bad. Valid values: {ALL}",
        ),
        ({"sort_by": "name"}, "sort_by", "sort_by must be 'created_at' or 'execution_duration'"),
        ({"sort_order": "up"}, "sort_order", "sort_order must be 'asc' or 'desc'"),
        ({"limit": "0"}, "limit", "limit must be a positive integer"),
        ({"limit": "-3"}, "limit", "limit must be a positive integer"),
        ({"limit": "ten"}, "limit", "limit must be an integer"),
        ({"limit": "1.5"}, "limit", "limit must be an integer"),
        ({"offset": "x"}, "offset", "offset must be an integer"),
    ],
)
def test_query_errors_have_comfyui_messages(params: dict, field: str, message: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        JobsQuery.from_params(params)
    assert info.value.field == field
    assert info.value.message == message


def test_query_negative_offset_is_clamped_and_values_parsed() -> None:
    query = JobsQuery.from_params(
        {"offset": "-5", "limit": "7", "sort_by": "execution_duration", "sort_order": "asc"}
    )
    assert (query.offset, query.limit, query.sort_by, query.sort_order) == (
        0,
        7,
        "execution_duration",
        "asc",
    )
    assert JobsQuery.from_params({"workflow_id": "wf"}).workflow_id == "wf"


# --- queue and history job objects --------------------------------------------------------


def test_queue_job_prunes_none_and_keeps_zeros() -> None:
    job = jobs.job_from_queue_item(row(3, "a", create_time=1000, workflow="wf-1"), "pending")
    assert job == {
        "id": "a",
        "status": "pending",
        "priority": 3,
        "create_time": 1000,
        "outputs_count": 0,
        "previewable_outputs_count": 0,
        "workflow_id": "wf-1",
    }
    bare = jobs.job_from_queue_item(row(1, "b"), "in_progress")
    assert "create_time" not in bare and "workflow_id" not in bare
    assert bare["status"] == "in_progress"


@pytest.mark.parametrize(
    ("status_str", "end_event", "expected"),
    [
        ("success", "execution_success", "completed"),
        ("error", "execution_error", "failed"),
        ("error", "execution_interrupted", "cancelled"),
        (None, None, "completed"),
        ("weird", "execution_success", "completed"),
    ],
)
def test_history_status_mapping(status_str: Any, end_event: Any, expected: str) -> None:
    messages = timed(10, 20, end_event) if end_event else None
    job = jobs.job_from_history("p", entry(1, "p", status_str=status_str, messages=messages))
    assert job["status"] == expected


def test_history_times_error_and_workflow() -> None:
    error_data = {"prompt_id": "p", "node_id": "3", "exception_message": "boom", "timestamp": 250}
    messages = [["execution_start", {"timestamp": 100}], ["execution_error", error_data]]
    job = jobs.job_from_history(
        "p", entry(4, "p", create_time=90, status_str="error", messages=messages, workflow="w")
    )
    assert job == {
        "id": "p",
        "status": "failed",
        "priority": 4,
        "create_time": 90,
        "execution_start_time": 100,
        "execution_end_time": 250,
        "execution_error": error_data,
        "outputs_count": 0,
        "previewable_outputs_count": 0,
        "workflow_id": "w",
    }


def test_history_ignores_malformed_messages() -> None:
    messages = [["execution_start"], "junk", ["execution_start", "not a dict"]]
    job = jobs.job_from_history("p", entry(1, "p", messages=messages))
    assert "execution_start_time" not in job and "execution_end_time" not in job


def image(name: str, kind: str = "output") -> dict[str, str]:
    return {"filename": name, "subfolder": "", "type": kind}


def test_outputs_count_and_output_preview_preferred_over_temp() -> None:
    outputs = {
        "9": {"images": [image("t.png", "temp")], "animated": [True]},
        "10": {"images": [image("a.png"), image("b.png")], "latents": [image("l.latent")]},
    }
    summary = jobs.summarize_outputs(outputs)
    assert summary.count == 4
    assert summary.previewable_count == 3
    assert summary.preview == {**image("a.png"), "nodeId": "10", "mediaType": "images"}


def test_temp_preview_used_when_no_output_item() -> None:
    outputs = {"5": {"images": [image("t.png", "temp")]}}
    assert jobs.summarize_outputs(outputs).preview == {
        **image("t.png", "temp"),
        "nodeId": "5",
        "mediaType": "images",
    }


def test_media_beats_text_file_which_beats_raw_text() -> None:
    text_file = image("notes.txt")
    raw = {"1": {"text": ["hello"]}}
    with_file = {**raw, "2": {"files": [text_file]}}
    with_media = {**with_file, "3": {"audio": [image("a.flac", "temp")]}}
    assert jobs.summarize_outputs(raw).preview == {
        "content": "hello",
        "nodeId": "1",
        "mediaType": "text",
    }
    assert jobs.summarize_outputs(with_file).preview == {
        **text_file,
        "nodeId": "2",
        "mediaType": "files",
    }
    assert jobs.summarize_outputs(with_media).preview["filename"] == "a.flac"


def test_raw_text_preview_is_truncated_to_1024_chars() -> None:
    preview = jobs.summarize_outputs({"1": {"text": ["x" * 2000]}}).preview
    assert preview is not None
    assert preview["content"] == "x" * 1024 and preview["truncated"] is True


def test_video_format_and_3d_names_are_previewable() -> None:
    gif = {"filename": "v.mp4", "subfolder": "", "type": "output", "format": "video/h264-mp4"}
    summary = jobs.summarize_outputs({"4": {"gifs": [gif]}})
    assert summary.previewable_count == 1 and summary.preview["nodeId"] == "4"
    mesh = jobs.summarize_outputs({"7": {"result": ["mesh.GLB", {"camera": 1}, None]}})
    assert mesh.count == 2  # the mesh file and the camera dict; None is not an item
    assert mesh.preview == {
        "filename": "mesh.GLB",
        "type": "output",
        "subfolder": "",
        "mediaType": "3d",
        "nodeId": "7",
    }


def test_non_list_and_non_dict_outputs_are_ignored() -> None:
    summary = jobs.summarize_outputs({"1": {"images": "nope"}, "2": "junk", "3": {"text": 5}})
    assert (summary.count, summary.previewable_count, summary.preview) == (0, 0, None)


def test_history_job_counts_and_detail_form() -> None:
    outputs = {"9": {"images": [image("a.png")], "result": ["m.obj"]}}
    history_entry = entry(2, "p", create_time=5, outputs=outputs, messages=timed(10, 20))
    short = jobs.job_from_history("p", history_entry)
    assert short["outputs_count"] == 2 and short["previewable_outputs_count"] == 2
    assert "outputs" not in short and "workflow" not in short
    detail = jobs.job_from_history("p", history_entry, detailed=True)
    assert detail["outputs"] == {
        "9": {
            "images": [image("a.png")],
            "result": [{"filename": "m.obj", "type": "output", "subfolder": "", "mediaType": "3d"}],
        }
    }
    assert detail["execution_status"] == history_entry["status"]
    assert detail["workflow"] == {
        "prompt": history_entry["prompt"][2],
        "extra_data": history_entry["prompt"][3],
    }


# --- listing ------------------------------------------------------------------------------


def sample() -> tuple[list, list, dict]:
    running = [row(5, "run", create_time=500)]
    pending = [row(7, "pend2", create_time=700), row(6, "pend1", create_time=600)]
    history = {
        "h1": entry(1, "h1", create_time=100, messages=timed(100, 400), workflow="w"),
        "h2": entry(
            2,
            "h2",
            create_time=200,
            status_str="error",
            messages=timed(200, 250, "execution_error"),
        ),
        "h3": entry(
            3,
            "h3",
            create_time=300,
            status_str="error",
            messages=timed(300, 310, "execution_interrupted"),
        ),
    }
    return running, pending, history


def ids(result: dict) -> list[str]:
    return [job["id"] for job in result["jobs"]]


def test_list_sorts_by_create_time_desc_by_default() -> None:
    result = jobs.list_jobs(*sample(), JobsQuery())
    assert ids(result) == ["pend2", "pend1", "run", "h3", "h2", "h1"]
    assert result["pagination"] == {"offset": 0, "limit": None, "total": 6, "has_more": False}
    statuses = {job["id"]: job["status"] for job in result["jobs"]}
    assert statuses == {
        "pend2": "pending",
        "pend1": "pending",
        "run": "in_progress",
        "h3": "cancelled",
        "h2": "failed",
        "h1": "completed",
    }


def test_list_ascending_and_ties_keep_running_pending_history_order() -> None:
    running = [row(1, "r")]
    pending = [row(2, "p")]
    history = {"h": entry(0, "h")}
    for order in ("asc", "desc"):
        query = JobsQuery(sort_order=order)
        assert ids(jobs.list_jobs(running, pending, history, query)) == ["r", "p", "h"]
    asc = jobs.list_jobs(*sample(), JobsQuery(sort_order="asc"))
    assert ids(asc) == ["h1", "h2", "h3", "run", "pend1", "pend2"]


def test_list_sorts_by_duration_with_unknown_as_zero() -> None:
    result = jobs.list_jobs(*sample(), JobsQuery(sort_by="execution_duration"))
    # h1 300 ms, h2 50, h3 10; queued jobs have no times and count as 0 (stable order).
    assert ids(result) == ["h1", "h2", "h3", "run", "pend2", "pend1"]


def test_list_filters_by_status_and_workflow() -> None:
    query = JobsQuery(statuses=("pending", "failed"))
    assert ids(jobs.list_jobs(*sample(), query)) == ["pend2", "pend1", "h2"]
    assert ids(jobs.list_jobs(*sample(), JobsQuery(statuses=("in_progress",)))) == ["run"]
    assert ids(jobs.list_jobs(*sample(), JobsQuery(workflow_id="w"))) == ["h1"]


def test_list_pagination() -> None:
    page = jobs.list_jobs(*sample(), JobsQuery(limit=2, offset=1))
    assert ids(page) == ["pend1", "run"]
    assert page["pagination"] == {"offset": 1, "limit": 2, "total": 6, "has_more": True}
    last = jobs.list_jobs(*sample(), JobsQuery(limit=2, offset=4))
    assert last["pagination"]["has_more"] is False and ids(last) == ["h2", "h1"]
    beyond = jobs.list_jobs(*sample(), JobsQuery(offset=10))
    assert beyond["jobs"] == [] and beyond["pagination"]["has_more"] is False


def test_job_detail_prefers_history_then_queue() -> None:
    running, pending, history = sample()
    assert jobs.job_detail("h1", running, pending, history)["workflow"]["prompt"] is not None
    assert jobs.job_detail("run", running, pending, history)["status"] == "in_progress"
    assert jobs.job_detail("pend1", running, pending, history)["status"] == "pending"
    assert "outputs" not in jobs.job_detail("pend1", running, pending, history)
    assert jobs.job_detail("nope", running, pending, history) is None
    history["run"] = entry(5, "run")
    assert jobs.job_detail("run", running, pending, history)["status"] == "completed"


# --- cancel body --------------------------------------------------------------------------

UUID_A = "0b7d1f0e-5c1e-4c36-9d4e-3c1c1d0a9f11"


def test_parse_cancel_ids() -> None:
    assert jobs.parse_cancel_ids({"job_ids": [UUID_A]}) == [UUID_A]
    assert jobs.parse_cancel_ids({"job_ids": []}) == []
    for body, field in (([UUID_A], "body"), ({"job_ids": UUID_A}, "job_ids"), ({}, "job_ids")):
        with pytest.raises(InvalidRequestError) as info:
            jobs.parse_cancel_ids(body)
        assert info.value.field == field
    with pytest.raises(jobs.InvalidJobIdsError) as bad:
        jobs.parse_cancel_ids({"job_ids": [UUID_A, "nope", 7]})
    assert bad.value.invalid_ids == ["nope", 7]
