"""ClusterController's queue, history, jobs and journal rules (§1.2, §2.2, §2.4, §9), through
the in-process engine harness (no Ray)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from cluster.controller import ClusterController, ControllerConfig
from cluster.errors import PromptValidationError
from cluster.jobs import JobsQuery
from node_actors.local_executor import LocalExecutor, LoopReporter
from storage.journal import JobJournal
from tests.engine.harness import Harness, make_harness, shared_worker

SECRETS = {"auth_token_comfy_org": "tok-SECRET-1", "api_key_comfy_org": "key-SECRET-2"}


def tiny(value: int) -> dict[str, Any]:
    return {
        "v": {"class_type": "StubInt", "inputs": {"value": value}},
        "o": {"class_type": "StubOutput", "inputs": {"value": ["v", 0]}},
    }


def failing() -> dict[str, Any]:
    return {
        "v": {"class_type": "StubInt", "inputs": {"value": 1}},
        "r": {"class_type": "StubRaise", "inputs": {"value": ["v", 0], "message": "boom"}},
        "o": {"class_type": "StubOutput", "inputs": {"value": ["r", 0]}},
    }


def unknown_class() -> dict[str, Any]:
    return {"x": {"class_type": "NoSuchNode", "inputs": {}}}


def pending_ids(h: Harness) -> list[str]:
    return [row[1] for row in h.controller.get_queue()["queue_pending"]]


def statuses(events: list[tuple[Any, str, dict[str, Any]]]) -> list[int]:
    return [d["status"]["exec_info"]["queue_remaining"] for _, t, d in events if t == "status"]


async def submit(h: Harness, prompt: dict[str, Any], **body: Any) -> dict[str, Any]:
    return await h.controller.submit({"prompt": prompt, "client_id": "c1", **body})


async def harness_on(base: Path, journal: JobJournal, concurrent: int) -> Harness:
    """make_harness with a journal we configure (a small compaction threshold)."""
    worker = shared_worker(base)
    executor = LocalExecutor(worker)
    controller = ClusterController(
        worker.definitions(),
        executor,
        journal,
        ControllerConfig("none", 0, concurrent),
        custom_validator=executor.validate_inputs,
    )
    worker.reporter = LoopReporter(
        asyncio.get_running_loop(), controller.node_progress, controller.step_done
    )
    controller.start()
    return Harness(controller, worker)


# --- submission ----------------------------------------------------------------------------------


def test_number_counter_front_explicit_and_rejected(engine_base: Path, arun) -> None:
    async def scenario() -> None:
        h = await make_harness(engine_base, concurrent=0)
        assert (await submit(h, tiny(1)))["number"] == 0
        assert (await submit(h, tiny(2)))["number"] == 1
        assert (await submit(h, tiny(3), front=True))["number"] == -2
        explicit = await submit(h, tiny(4), number=5)
        assert explicit["number"] == 5.0 and isinstance(explicit["number"], float)
        # An explicit number does not advance the counter.
        assert (await submit(h, tiny(5)))["number"] == 3
        # A rejected prompt still uses up its number (§9.1), however it fails.
        with pytest.raises(PromptValidationError):
            await submit(h, unknown_class())
        with pytest.raises(PromptValidationError) as no_prompt:
            await h.controller.submit({"client_id": "c1"})
        assert no_prompt.value.error["type"] == "no_prompt"
        assert (await submit(h, tiny(6)))["number"] == 6
        # A malformed explicit number is rejected without using one.
        with pytest.raises(PromptValidationError) as bad:
            await submit(h, tiny(7), number="soon")
        assert bad.value.error["type"] == "invalid_prompt"
        assert (await submit(h, tiny(8)))["number"] == 7
        numbers = sorted(row[0] for row in h.controller.get_queue()["queue_pending"])
        assert numbers == [-2, 0, 1, 3, 5.0, 6, 7]
        assert h.controller.get_queue()["queue_running"] == []

    arun(scenario())


def test_response_and_queue_row(engine_base: Path, arun) -> None:
    async def scenario() -> None:
        h = await make_harness(engine_base, concurrent=0)
        chosen = str(uuid.uuid4())
        before = int(time.time() * 1000)
        result = await submit(h, tiny(1), prompt_id=chosen, extra_data={"extra_pnginfo": {"a": 1}})
        assert result == {"prompt_id": chosen, "number": 0, "node_errors": {}}
        (row,) = h.controller.get_queue()["queue_pending"]
        number, prompt_id, prompt, extra, outputs = row
        assert (number, prompt_id, outputs) == (0, chosen, ["o"])
        assert prompt["v"]["inputs"] == {"value": 1}
        assert extra["client_id"] == "c1" and extra["extra_pnginfo"] == {"a": 1}
        assert isinstance(extra["create_time"], int)
        assert before <= extra["create_time"] <= int(time.time() * 1000)
        assert h.controller.queue_remaining() == 1
        # A minted id is a canonical uuid4.
        minted = (await submit(h, tiny(2)))["prompt_id"]
        assert str(uuid.UUID(minted)) == minted

    arun(scenario())


def test_duplicate_pending_prompt_id_is_rejected(engine_base: Path, arun) -> None:
    async def scenario() -> None:
        h = await make_harness(engine_base, concurrent=0)
        chosen = str(uuid.uuid4())
        await submit(h, tiny(1), prompt_id=chosen)
        with pytest.raises(PromptValidationError) as dup:
            await submit(h, tiny(2), prompt_id=chosen)
        assert dup.value.error["type"] == "invalid_prompt_id"
        assert chosen in dup.value.error["details"]
        with pytest.raises(PromptValidationError) as bad:
            await submit(h, tiny(3), prompt_id=chosen.upper())
        assert bad.value.error["type"] == "invalid_prompt_id"
        assert pending_ids(h) == [chosen]
        (row,) = h.controller.get_queue()["queue_pending"]
        assert row[2]["v"]["inputs"]["value"] == 1  # the first one stays

    arun(scenario())


def test_usage_source_header_fills_extra_data_unless_set(engine_base: Path, arun) -> None:
    async def scenario() -> None:
        h = await make_harness(engine_base, concurrent=0)
        await h.controller.submit({"prompt": tiny(1)}, usage_source="comfy-cli")
        await h.controller.submit(
            {"prompt": tiny(2), "extra_data": {"comfy_usage_source": "body"}},
            usage_source="header",
        )
        await h.controller.submit({"prompt": tiny(3), "extra_data": None})
        rows = sorted(h.controller.get_queue()["queue_pending"], key=lambda r: r[0])
        assert rows[0][3]["comfy_usage_source"] == "comfy-cli"
        assert rows[1][3]["comfy_usage_source"] == "body"
        assert "comfy_usage_source" not in rows[2][3] and "client_id" not in rows[2][3]
        with pytest.raises(PromptValidationError):
            await h.controller.submit({"prompt": tiny(4), "extra_data": ["no"]})

    arun(scenario())


def test_sensitive_keys_never_reach_queue_rows_history_or_journal(
    engine_base: Path, tmp_path: Path, arun
) -> None:
    journal = tmp_path / "jobs.jsonl"

    async def scenario() -> None:
        h = await make_harness(engine_base, concurrent=0, journal=journal)
        extra = {"extra_pnginfo": {"w": 1}, **SECRETS}
        queued = (await submit(h, tiny(1), extra_data=extra))["prompt_id"]
        (row,) = h.controller.get_queue()["queue_pending"]
        assert not set(SECRETS) & set(row[3])
        assert row[3]["extra_pnginfo"] == {"w": 1}
        assert extra == {"extra_pnginfo": {"w": 1}, **SECRETS}  # the caller's dict is untouched
        # Kept aside for the run itself.
        assert h.controller.queue.get(queued)[1].sensitive == SECRETS
        assert h.controller.get_job(queued) is not None
        await h.controller.shutdown()

        h = await make_harness(engine_base, concurrent=1, journal=journal)
        ran = (await submit(h, tiny(2), extra_data=dict(SECRETS)))["prompt_id"]
        entry = await h.wait(ran)
        await h.wait(queued)
        for prompt_id in (queued, ran):
            history_row = h.controller.get_history_item(prompt_id)[prompt_id]["prompt"]
            assert not set(SECRETS) & set(history_row[3])
            detail = h.controller.get_job(prompt_id)
            assert "SECRET" not in json.dumps(detail)
        assert entry["status"]["status_str"] == "success"
        await h.controller.shutdown()
        assert "SECRET" not in journal.read_text()

    arun(scenario())


# --- queue management ----------------------------------------------------------------------------


def test_queue_delete_and_clear_of_pending_prompts_broadcast_status(
    engine_base: Path, arun
) -> None:
    async def scenario() -> None:
        h = await make_harness(engine_base, concurrent=0)
        ids = [(await submit(h, tiny(i)))["prompt_id"] for i in range(4)]
        assert statuses(h.drain_events()) == [1, 2, 3, 4]
        h.controller.manage_queue(delete=[ids[1], "not-there"])
        assert sorted(pending_ids(h)) == sorted([ids[0], ids[2], ids[3]])
        assert statuses(h.drain_events()) == [3]
        h.controller.manage_queue()
        assert h.drain_events() == []
        h.controller.manage_queue(clear=True)
        assert pending_ids(h) == [] and h.controller.queue_remaining() == 0
        assert statuses(h.drain_events()) == [0]

    arun(scenario())


def test_cancel_of_a_pending_job(engine_base: Path, arun) -> None:
    async def scenario() -> None:
        h = await make_harness(engine_base, concurrent=0)
        keep = (await submit(h, tiny(1)))["prompt_id"]
        drop = (await submit(h, tiny(2)))["prompt_id"]
        h.drain_events()
        assert await h.controller.cancel(drop) is True
        assert pending_ids(h) == [keep]
        assert statuses(h.drain_events()) == [1]
        assert h.controller.get_job(drop) is None
        assert await h.controller.cancel(drop) is False
        assert await h.controller.cancel(str(uuid.uuid4())) is False
        assert h.drain_events() == []
        # Nothing is running, so an interrupt hits nothing.
        assert await h.controller.interrupt(keep) is False

    arun(scenario())


# --- jobs ----------------------------------------------------------------------------------------


def test_jobs_list_and_get(engine_base: Path, tmp_path: Path, arun) -> None:
    journal = tmp_path / "jobs.jsonl"

    async def scenario() -> None:
        h = await make_harness(engine_base, cache_mode="none", journal=journal)
        done_id, done_entry, _ = await h.run(tiny(1))
        failed_id, failed_entry, _ = await h.run(failing())
        assert failed_entry["status"]["status_str"] == "error"
        await h.controller.shutdown()

        h = await make_harness(engine_base, concurrent=0, journal=journal)
        pending_id = (await submit(h, tiny(2)))["prompt_id"]
        listing = h.controller.list_jobs(JobsQuery())
        by_id = {job["id"]: job for job in listing["jobs"]}
        assert by_id[done_id]["status"] == "completed"
        assert by_id[failed_id]["status"] == "failed"
        assert by_id[failed_id]["execution_error"]["exception_message"].startswith("boom")
        assert by_id[pending_id]["status"] == "pending"
        assert listing["pagination"] == {"offset": 0, "limit": None, "total": 3, "has_more": False}
        assert listing["jobs"][0]["id"] == pending_id  # newest first

        only_pending = h.controller.list_jobs(JobsQuery(statuses=("pending",)))
        assert [j["id"] for j in only_pending["jobs"]] == [pending_id]
        page = h.controller.list_jobs(JobsQuery(limit=1, offset=1))
        assert len(page["jobs"]) == 1 and page["pagination"]["has_more"] is True

        detail = h.controller.get_job(done_id)
        assert detail["status"] == "completed"
        assert detail["outputs"] == {"o": {"text": ["1"]}}
        assert detail["workflow"]["prompt"] == done_entry["prompt"][2]
        assert detail["execution_status"]["status_str"] == "success"
        short = h.controller.get_job(pending_id)
        assert short["status"] == "pending" and "outputs" not in short
        assert h.controller.get_job("no-such-job") is None

        running, pending, history = h.controller.jobs_snapshot()
        assert running == [] and [r[1] for r in pending] == [pending_id]
        assert list(history) == [done_id, failed_id]
        await h.controller.shutdown()

    arun(scenario())


# --- history -------------------------------------------------------------------------------------


def test_history_max_items_offset_delete_clear(engine_base: Path, arun) -> None:
    async def scenario() -> None:
        h = await make_harness(engine_base, cache_mode="none")
        ids = [(await h.run(tiny(i)))[0] for i in range(4)]
        assert list(h.controller.get_history()) == ids
        assert list(h.controller.get_history(max_items=2)) == ids[2:]
        assert list(h.controller.get_history(max_items=2, offset=1)) == ids[1:3]
        assert list(h.controller.get_history(offset=3)) == ids[3:]
        assert h.controller.get_history(max_items=1, offset=10) == {}
        item = h.controller.get_history_item(ids[0])
        assert list(item) == [ids[0]] and item[ids[0]]["outputs"] == {"o": {"text": ["0"]}}
        assert h.controller.get_history_item("unknown") == {}
        h.controller.manage_history(delete=[ids[1], "unknown"])
        assert list(h.controller.get_history()) == [ids[0], ids[2], ids[3]]
        h.controller.manage_history(clear=True)
        assert h.controller.get_history() == {}

    arun(scenario())


# --- the job journal -----------------------------------------------------------------------------


def test_pending_prompts_run_after_a_restart(engine_base: Path, tmp_path: Path, arun) -> None:
    journal = tmp_path / "jobs.jsonl"

    async def scenario() -> None:
        h = await make_harness(engine_base, concurrent=0, journal=journal)
        first = (await submit(h, tiny(10)))["prompt_id"]
        front = (await submit(h, tiny(11), front=True))["prompt_id"]
        await h.controller.shutdown()

        h = await make_harness(engine_base, cache_mode="none", concurrent=1, journal=journal)
        first_entry = await h.wait(first)
        front_entry = await h.wait(front)
        assert first_entry["status"]["status_str"] == "success"
        assert first_entry["outputs"] == {"o": {"text": ["10"]}}
        assert front_entry["outputs"] == {"o": {"text": ["11"]}}
        assert (first_entry["prompt"][0], front_entry["prompt"][0]) == (0, -1)
        # The front prompt ran first.
        started = [d["prompt_id"] for _, t, d in h.drain_events() if t == "execution_start"]
        assert started == [front, first]
        # The counter carries on past the numbers the journal held.
        third = await submit(h, tiny(12))
        assert third["number"] == 2
        await h.wait(third["prompt_id"])
        await h.controller.shutdown()

        h = await make_harness(engine_base, concurrent=0, journal=journal)
        assert pending_ids(h) == []
        assert list(h.controller.get_history()) == [front, first, third["prompt_id"]]
        await h.controller.shutdown()

    arun(scenario())


def test_history_and_removals_survive_a_restart(engine_base: Path, tmp_path: Path, arun) -> None:
    journal = tmp_path / "jobs.jsonl"

    async def scenario() -> None:
        h = await make_harness(engine_base, cache_mode="none", journal=journal)
        ran = [(await h.run(tiny(i)))[0] for i in range(3)]
        h.controller.manage_history(delete=[ran[0]])
        before = h.controller.get_history()
        await h.controller.shutdown()

        h = await make_harness(engine_base, concurrent=0, journal=journal)
        assert h.controller.get_history() == before
        a = (await submit(h, tiny(20)))["prompt_id"]
        b = (await submit(h, tiny(21)))["prompt_id"]
        c = (await submit(h, tiny(22)))["prompt_id"]
        h.controller.manage_queue(delete=[a])
        assert await h.controller.cancel(b) is True
        await h.controller.shutdown()

        h = await make_harness(engine_base, concurrent=0, journal=journal)
        assert pending_ids(h) == [c]
        assert list(h.controller.get_history()) == ran[1:]
        h.controller.manage_queue(clear=True)
        h.controller.manage_history(clear=True)
        await h.controller.shutdown()

        h = await make_harness(engine_base, concurrent=0, journal=journal)
        assert pending_ids(h) == [] and h.controller.get_history() == {}
        await h.controller.shutdown()

    arun(scenario())


def test_torn_last_journal_line_is_skipped(engine_base: Path, tmp_path: Path, arun) -> None:
    journal = tmp_path / "jobs.jsonl"

    async def scenario() -> None:
        h = await make_harness(engine_base, concurrent=0, journal=journal)
        a = (await submit(h, tiny(1)))["prompt_id"]
        b = (await submit(h, tiny(2)))["prompt_id"]
        await h.controller.shutdown()
        with journal.open("a", encoding="utf-8") as handle:
            handle.write('{"op":"queued","item":{"number":7,"prompt_id":"torn-')

        h = await make_harness(engine_base, concurrent=0, journal=journal)
        assert sorted(pending_ids(h)) == sorted([a, b])
        c = (await submit(h, tiny(3)))["prompt_id"]
        await h.controller.shutdown()
        # The restart rewrote the file, so every line reads again.
        lines = journal.read_text().splitlines()
        assert lines and all(json.loads(line)["op"] for line in lines)

        h = await make_harness(engine_base, concurrent=0, journal=journal)
        assert sorted(pending_ids(h)) == sorted([a, b, c])
        await h.controller.shutdown()

    arun(scenario())


def test_compaction_keeps_the_live_state(engine_base: Path, tmp_path: Path, arun) -> None:
    path = tmp_path / "jobs.jsonl"

    def journal() -> JobJournal:
        # Compact on nearly every write, so every kind of change meets a compaction.
        return JobJournal(path, compact_after=1)

    async def scenario() -> None:
        # Each phase ends on one kind of write, then a restart checks what the file holds.
        h = await harness_on(engine_base, journal(), concurrent=1)
        ran = [(await h.run(tiny(i)))[0] for i in range(3)]  # ends on "finished"
        await h.controller.shutdown()

        h = await harness_on(engine_base, journal(), concurrent=0)
        assert list(h.controller.get_history()) == ran
        assert pending_ids(h) == []
        queued = [(await submit(h, tiny(30 + i)))["prompt_id"] for i in range(3)]
        await h.controller.shutdown()

        h = await harness_on(engine_base, journal(), concurrent=0)
        assert sorted(pending_ids(h)) == sorted(queued)
        assert await h.controller.cancel(queued[0]) is True
        h.controller.manage_history(delete=[ran[0]])
        await h.controller.shutdown()

        h = await harness_on(engine_base, journal(), concurrent=0)
        assert sorted(pending_ids(h)) == sorted(queued[1:])
        assert list(h.controller.get_history()) == ran[1:]
        h.controller.manage_history(clear=True)
        await h.controller.shutdown()

        h = await harness_on(engine_base, journal(), concurrent=0)
        assert h.controller.get_history() == {}
        assert sorted(pending_ids(h)) == sorted(queued[1:])
        await h.controller.shutdown()
        # Compacted: one line per live record (two queued prompts).
        assert len(path.read_text().splitlines()) == 2

    arun(scenario())
