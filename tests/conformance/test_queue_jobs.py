"""Queue, history and jobs endpoints (comfyui-behaviour.md §1.2, §1.3, §2.4, §9.15).

Tests that fill the queue do it with long StubSleep prompts and always empty it again
(clear, then interrupt), so the next test finds an idle server.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conformance.client import RUN_TIMEOUT, ComfyClient
from tests.conformance.graph import Graph, unique, unique_int
from tests.server_process import ServerProcess

MAX_SLEEPERS = 8


@pytest.fixture
def comfy(server: ServerProcess) -> Iterator[ComfyClient]:
    client = ComfyClient(server.url, server.ws_url)
    yield client
    client.close()


@pytest.fixture
def busy(comfy: ComfyClient) -> Iterator[ComfyClient]:
    """The same client; whatever the test queued is cleared and interrupted afterwards."""
    yield comfy
    comfy.drain_queue()


def int_output() -> dict[str, Any]:
    g = Graph()
    g.node("StubOutput", value=g.node("StubInt", value=unique_int()).out(0))
    return g.prompt()


def sleeper(seconds: float = 30.0) -> dict[str, Any]:
    g = Graph()
    v = g.node("StubInt", value=unique_int())
    g.node("StubOutput", value=g.node("StubSleep", value=v.out(0), seconds=seconds).out(0))
    return g.prompt()


def occupy_all_workers(comfy: ComfyClient) -> tuple[list[str], str]:
    """Queue long sleepers until one has to wait; returns (running ids, the pending id)."""
    queued: list[str] = []
    for _ in range(MAX_SLEEPERS):
        queued.append(comfy.queue_prompt(sleeper(), client_id=unique("sleeper"))["prompt_id"])
        running, pending = comfy.queue_ids()
        if pending:
            assert pending == [queued[-1]]
            assert sorted(running) == sorted(queued[:-1])
            return running, pending[0]
    raise AssertionError(f"{MAX_SLEEPERS} sleepers all started; the queue never filled")


def run_finished(comfy: ComfyClient, prompt: dict[str, Any]) -> str:
    prompt_id = comfy.queue_prompt(prompt)["prompt_id"]
    comfy.wait_history(prompt_id)
    return prompt_id


# --- /queue --------------------------------------------------------------------------------


def test_queue_rows_have_five_elements(busy: ComfyClient) -> None:
    running, first_pending = occupy_all_workers(busy)
    behind = [busy.queue_prompt(int_output())["prompt_id"] for _ in range(2)]
    queue = busy.queue()
    assert sorted(row[1] for row in queue["queue_running"]) == sorted(running)
    assert sorted(row[1] for row in queue["queue_pending"]) == sorted([first_pending, *behind])
    for row in queue["queue_running"] + queue["queue_pending"]:
        number, prompt_id, prompt, extra_data, outputs = row
        assert isinstance(number, int | float)
        assert isinstance(prompt, dict) and all("class_type" in n for n in prompt.values())
        assert "create_time" in extra_data
        # The output node: "3" in a sleeper, "2" in int_output().
        assert outputs == (["2"] if prompt_id in behind else ["3"])
    assert busy.get_json("/prompt") == {
        "exec_info": {"queue_remaining": len(running) + 1 + len(behind)}
    }


def test_queue_delete_and_clear_remove_pending_items(busy: ComfyClient) -> None:
    running, first_pending = occupy_all_workers(busy)
    behind = [busy.queue_prompt(int_output())["prompt_id"] for _ in range(2)]
    response = busy.post("/queue", {"delete": [behind[0]]})
    assert response.status_code == 200
    _, pending = busy.queue_ids()
    assert sorted(pending) == sorted([first_pending, behind[1]])
    # A running prompt cannot be deleted through /queue.
    busy.post("/queue", {"delete": [running[0]]})
    assert running[0] in busy.queue_ids()[0]
    assert busy.post("/queue", {"clear": True}).status_code == 200
    now_running, pending = busy.queue_ids()
    assert pending == []
    assert sorted(now_running) == sorted(running)
    assert busy.history_entry(behind[0]) == {}


def test_queue_changes_broadcast_status(busy: ComfyClient) -> None:
    with busy.session(unique("watcher")) as ws:
        running, _ = occupy_all_workers(busy)
        before = ws.until(lambda f: f.label() == f"status {len(running) + 1}", what="status")
        assert {f.type for f in before} == {"status"}
        busy.post("/queue", {"clear": True})
        after = ws.until(lambda f: f.type == "status", what="status after clear")
        assert after[-1].label() == f"status {len(running)}"


# --- /history ------------------------------------------------------------------------------


def test_history_max_items_and_offset(comfy: ComfyClient) -> None:
    for _ in range(3):
        run_finished(comfy, int_output())
    ids = list(comfy.get_json("/history"))
    assert len(ids) >= 3
    assert list(comfy.get_json("/history", max_items=2)) == ids[-2:]
    assert list(comfy.get_json("/history", max_items=2, offset=1)) == ids[1:3]
    assert list(comfy.get_json("/history", offset=len(ids) - 1)) == ids[-1:]
    assert comfy.get_json("/history", offset=len(ids) + 5) == {}
    assert list(comfy.get_json("/api/history", max_items=1)) == ids[-1:]


def test_history_with_a_non_integer_parameter_is_a_400(comfy: ComfyClient) -> None:
    assert comfy.get("/history", max_items="x").status_code == 400
    assert comfy.get("/history", offset="x").status_code == 400


def test_a_prompt_is_always_in_the_queue_or_in_history(comfy: ComfyClient) -> None:
    g = Graph()
    v = g.node("StubInt", value=unique_int())
    g.node("StubOutput", value=g.node("StubSleep", value=v.out(0), seconds=0.5).out(0))
    prompt_id = comfy.queue_prompt(g.prompt())["prompt_id"]
    deadline = time.monotonic() + RUN_TIMEOUT
    polls = 0
    while True:
        polls += 1
        running, pending = comfy.queue_ids()
        if prompt_id in running or prompt_id in pending:
            assert time.monotonic() < deadline, "the prompt never finished"
            continue
        # Gone from the queue, so its history entry must already be there.
        entry = comfy.history_entry(prompt_id)
        assert entry["status"]["completed"] is True
        break
    assert polls > 1


def test_history_of_an_unknown_prompt_is_empty(comfy: ComfyClient) -> None:
    assert comfy.get_json(f"/history/{uuid.uuid4()}") == {}
    assert comfy.get_json("/history/not-even-a-uuid") == {}


def test_history_delete_and_clear(comfy: ComfyClient) -> None:
    kept = run_finished(comfy, int_output())
    dropped = run_finished(comfy, int_output())
    assert comfy.post("/history", {"delete": [dropped]}).status_code == 200
    assert comfy.get_json(f"/history/{dropped}") == {}
    assert kept in comfy.get_json("/history")
    assert comfy.post("/history", {"clear": True}).status_code == 200
    assert comfy.get_json("/history") == {}
    assert comfy.get_json(f"/history/{kept}") == {}


# --- /api/jobs -----------------------------------------------------------------------------


def failing() -> dict[str, Any]:
    g = Graph()
    v = g.node("StubInt", value=unique_int())
    g.node("StubOutput", value=g.node("StubRaise", value=v.out(0), message=unique("x")).out(0))
    return g.prompt()


def interrupted(comfy: ComfyClient) -> str:
    client_id = unique("jobs")
    with comfy.session(client_id) as ws:
        prompt_id = comfy.queue_prompt(sleeper(), client_id=client_id)["prompt_id"]
        ws.until(lambda f: f.type == "progress", what="the sleeper's progress")
        comfy.interrupt(prompt_id)
        ws.until_end_of(prompt_id)
    return prompt_id


@pytest.fixture
def three_jobs(comfy: ComfyClient) -> dict[str, str]:
    return {
        "completed": run_finished(comfy, int_output()),
        "failed": run_finished(comfy, failing()),
        "cancelled": interrupted(comfy),
    }


def job_ids(comfy: ComfyClient, **params: Any) -> list[str]:
    return [job["id"] for job in comfy.get_json("/api/jobs", **params)["jobs"]]


def test_jobs_status_filters(comfy: ComfyClient, three_jobs: dict[str, str]) -> None:
    for status, prompt_id in three_jobs.items():
        ids = job_ids(comfy, status=status)
        assert prompt_id in ids
        others = set(three_jobs.values()) - {prompt_id}
        assert not others & set(ids), status
        job = comfy.get_json(f"/api/jobs/{prompt_id}")
        assert job["status"] == status
    both = job_ids(comfy, status="FAILED,cancelled")
    assert {three_jobs["failed"], three_jobs["cancelled"]} <= set(both)
    assert three_jobs["completed"] not in both
    bad = comfy.get("/api/jobs", status="finished")
    assert bad.status_code == 400
    assert bad.json()["error"].startswith("Invalid status value(s)")


def test_jobs_sort_and_pagination(comfy: ComfyClient, three_jobs: dict[str, str]) -> None:
    newest_first = comfy.get_json("/api/jobs")["jobs"]
    times = [job["create_time"] for job in newest_first]
    assert times == sorted(times, reverse=True)
    oldest_first = comfy.get_json("/api/jobs", sort_order="asc")["jobs"]
    assert [job["create_time"] for job in oldest_first] == sorted(times)
    assert newest_first[0]["id"] == three_jobs["cancelled"]
    total = len(newest_first)
    page = comfy.get_json("/api/jobs", limit=2, offset=1)
    assert [job["id"] for job in page["jobs"]] == [job["id"] for job in newest_first[1:3]]
    assert page["pagination"] == {"offset": 1, "limit": 2, "total": total, "has_more": total > 3}
    everything = comfy.get_json("/api/jobs")["pagination"]
    assert everything == {"offset": 0, "limit": None, "total": total, "has_more": False}
    for params, message in [
        ({"sort_by": "name"}, "sort_by must be 'created_at' or 'execution_duration'"),
        ({"sort_order": "up"}, "sort_order must be 'asc' or 'desc'"),
        ({"limit": 0}, "limit must be a positive integer"),
        ({"limit": "x"}, "limit must be an integer"),
        ({"offset": "x"}, "offset must be an integer"),
    ]:
        response = comfy.get("/api/jobs", **params)
        assert response.status_code == 400, params
        assert response.json() == {"error": message}
    assert comfy.get_json("/api/jobs", offset=-5)["pagination"]["offset"] == 0
    by_duration = comfy.get_json("/api/jobs", sort_by="execution_duration")["jobs"]
    durations = [
        job.get("execution_end_time", 0) - job.get("execution_start_time", 0)
        if "execution_end_time" in job and "execution_start_time" in job
        else 0
        for job in by_duration
    ]
    assert durations == sorted(durations, reverse=True)
    assert len(by_duration) == total


def test_job_detail_and_not_found(comfy: ComfyClient) -> None:
    workflow_id = unique("wf")
    prefix = unique("job")
    g = Graph()
    img = g.node("StubImage", content="WHITE", height=2, width=unique_int(1, 4096), batch_size=1)
    save = g.node("SaveImage", images=img.out(0), filename_prefix=prefix)
    queued = comfy.queue_prompt(
        g.prompt(), extra_data={"extra_pnginfo": {"workflow": {"id": workflow_id}}}
    )
    comfy.wait_history(queued["prompt_id"])
    job = comfy.get_json(f"/api/jobs/{queued['prompt_id']}")
    assert job["id"] == queued["prompt_id"]
    assert job["status"] == "completed"
    assert job["priority"] == queued["number"]
    assert job["workflow_id"] == workflow_id
    image = {"filename": f"{prefix}_00001_.png", "subfolder": "", "type": "output"}
    assert job["outputs"] == {save.node_id: {"images": [image]}}
    assert job["outputs_count"] == 1
    assert job["preview_output"] == {**image, "nodeId": save.node_id, "mediaType": "images"}
    assert job["execution_status"]["status_str"] == "success"
    assert job["workflow"]["prompt"][img.node_id]["class_type"] == "StubImage"
    assert job["workflow"]["extra_data"]["extra_pnginfo"]["workflow"]["id"] == workflow_id
    assert job["execution_start_time"] <= job["execution_end_time"]
    assert job_ids(comfy, workflow_id=workflow_id) == [queued["prompt_id"]]
    missing = comfy.get(f"/api/jobs/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert missing.json() == {"error": "Job not found"}


def test_jobs_live_under_api_only(comfy: ComfyClient) -> None:
    assert comfy.get("/jobs").status_code == 404
    assert comfy.get("/api/api/jobs").status_code == 200
    assert comfy.get("/api/jobs").status_code == 200


def test_queued_and_running_jobs(busy: ComfyClient) -> None:
    running, pending = occupy_all_workers(busy)
    assert busy.get_json(f"/api/jobs/{running[0]}")["status"] == "in_progress"
    job = busy.get_json(f"/api/jobs/{pending}")
    assert job["status"] == "pending"
    assert job["outputs_count"] == 0
    assert set(job_ids(busy, status="in_progress")) == set(running)
    assert job_ids(busy, status="pending") == [pending]


def test_cancel_a_pending_job(busy: ComfyClient) -> None:
    running, pending = occupy_all_workers(busy)
    response = busy.post(f"/api/jobs/{pending}/cancel")
    assert response.status_code == 200
    assert response.json() == {"cancelled": True}
    now_running, now_pending = busy.queue_ids()
    assert sorted(now_running) == sorted(running)
    assert now_pending == []
    assert busy.get(f"/api/jobs/{pending}").status_code == 404
    assert busy.post(f"/api/jobs/{uuid.uuid4()}/cancel").json() == {"cancelled": False}


def test_cancel_several_jobs(busy: ComfyClient) -> None:
    running, pending = occupy_all_workers(busy)
    behind = busy.queue_prompt(int_output())["prompt_id"]
    response = busy.post("/api/jobs/cancel", {"job_ids": [pending, behind]})
    assert response.status_code == 200
    assert response.json() == {"cancelled": True}
    assert busy.queue_ids()[1] == []
    assert busy.post("/api/jobs/cancel", {"job_ids": [str(uuid.uuid4())]}).json() == {
        "cancelled": False
    }
    bad = busy.post("/api/jobs/cancel", {"job_ids": ["nope", pending]})
    assert bad.status_code == 400
    assert bad.json()["invalid_ids"] == ["nope"]
    assert "error" in bad.json()
    assert busy.post("/api/jobs/cancel", {"job_ids": "nope"}).status_code == 400


def test_interrupt_naming_a_pending_prompt_does_nothing(busy: ComfyClient) -> None:
    running, pending = occupy_all_workers(busy)
    busy.interrupt(pending)
    assert busy.history_entry(pending) == {}
    now_running, now_pending = busy.queue_ids()
    assert sorted(now_running) == sorted(running)
    assert now_pending == [pending]


def test_front_prompt_runs_before_earlier_pending_ones(busy: ComfyClient) -> None:
    client_id = unique("front")
    with busy.session(client_id) as ws:
        occupy_all_workers(busy)
        busy.post("/queue", {"clear": True})
        back = busy.queue_prompt(int_output(), client_id=client_id)["prompt_id"]
        front = busy.queue_prompt(int_output(), client_id=client_id, front=True)["prompt_id"]
        busy.interrupt()
        starts = []
        while len(starts) < 2:
            frames = ws.until(lambda f: f.type == "execution_start", what="execution_start")
            starts.append(frames[-1].prompt_id)
    assert starts == [front, back]


def test_free_answers_an_empty_200(comfy: ComfyClient) -> None:
    response = comfy.post("/free", {"unload_models": True})
    assert response.status_code == 200
    assert response.content == b""
