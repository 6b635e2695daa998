"""cluster.events (the sequence-numbered event log) and cluster.progress (progress_state)."""

from __future__ import annotations

import asyncio

from cluster.events import Event, EventLog, now_ms
from cluster.progress import ProgressRegistry
from node_actors.protocol import PreviewFrame

# --- EventLog ------------------------------------------------------------------------------------


def test_emit_numbers_events_from_one() -> None:
    log = EventLog()
    assert log.last_seq == 0 and log.since(0) == []
    log.emit("status", {"a": 1}, None)
    log.emit("executing", {"node": "1"}, "c1")
    events = log.since(0)
    assert [e.seq for e in events] == [1, 2]
    assert events[0] == Event(1, "status", {"a": 1}, None)
    assert events[1].target == "c1" and events[1].type == "executing"
    assert log.last_seq == 2


def test_since_returns_only_newer_events() -> None:
    log = EventLog()
    for i in range(5):
        log.emit("t", {"i": i}, None)
    assert [e.data["i"] for e in log.since(3)] == [3, 4]
    assert log.since(5) == []


def test_a_reader_ahead_of_the_log_gets_everything() -> None:
    """A reader that saw more events than this log holds read a controller's earlier life."""
    log = EventLog()
    for i in range(3):
        log.emit("t", {"i": i}, None)
    assert [e.seq for e in log.since(99)] == [1, 2, 3]


def test_progress_bundle_carries_its_parts() -> None:
    log = EventLog()
    preview = PreviewFrame("image/png", b"png", {"node_id": "3"})
    log.emit(
        "progress_bundle",
        {},
        "c1",
        progress_state={"prompt_id": "p", "nodes": {}},
        progress={"value": 1, "max": 2},
        preview=preview,
    )
    (event,) = log.since(0)
    assert event.progress_state == {"prompt_id": "p", "nodes": {}}
    assert event.progress == {"value": 1, "max": 2}
    assert event.preview is preview


def test_bounded_log_keeps_the_newest_and_a_lagging_reader_gets_what_is_left() -> None:
    log = EventLog(capacity=3)
    for i in range(10):
        log.emit("t", {"i": i}, None)
    assert [e.seq for e in log.since(0)] == [8, 9, 10]
    assert [e.seq for e in log.since(8)] == [9, 10]
    assert log.last_seq == 10


def test_wait_since_returns_at_once_when_events_exist() -> None:
    log = EventLog()
    log.emit("t", {}, None)

    async def scenario() -> list[Event]:
        return await log.wait_since(0, timeout=5)

    assert [e.seq for e in asyncio.run(scenario())] == [1]


def test_wait_since_wakes_on_emit() -> None:
    log = EventLog()

    async def scenario() -> list[Event]:
        waiter = asyncio.create_task(log.wait_since(0, timeout=5))
        await asyncio.sleep(0)
        assert not waiter.done()
        log.emit("t", {"x": 1}, None)
        return await asyncio.wait_for(waiter, 1)

    events = asyncio.run(scenario())
    assert [(e.seq, e.data) for e in events] == [(1, {"x": 1})]


def test_two_waiters_both_wake_and_later_waits_block_again() -> None:
    log = EventLog()

    async def scenario() -> tuple[list[Event], list[Event], list[Event]]:
        first = asyncio.create_task(log.wait_since(0, timeout=5))
        second = asyncio.create_task(log.wait_since(0, timeout=5))
        await asyncio.sleep(0)
        log.emit("t", {}, None)
        a, b = await asyncio.wait_for(asyncio.gather(first, second), 1)
        # The log is caught up: a new wait must not return the old signal.
        c = await log.wait_since(1, timeout=0.01)
        return a, b, c

    a, b, c = asyncio.run(scenario())
    assert [e.seq for e in a] == [1] and [e.seq for e in b] == [1]
    assert c == []


def test_wait_since_times_out_with_nothing() -> None:
    log = EventLog()
    assert asyncio.run(log.wait_since(0, timeout=0.01)) == []


def test_now_ms_is_milliseconds() -> None:
    assert 1_600_000_000_000 < now_ms() < 10_000_000_000_000


# --- ProgressRegistry ----------------------------------------------------------------------------


def test_progress_state_message_shape() -> None:
    registry = ProgressRegistry("p1")
    registry.start("x.0.1", "x", "x", "x")
    registry.update("x.0.1", 3, 10)
    message = registry.message()
    assert message == {
        "prompt_id": "p1",
        "nodes": {
            "x.0.1": {
                "value": 3,
                "max": 10,
                "state": "running",
                "node_id": "x.0.1",
                "prompt_id": "p1",
                "display_node_id": "x",
                "parent_node_id": "x",
                "real_node_id": "x",
            }
        },
    }


def test_progress_lifecycle() -> None:
    registry = ProgressRegistry("p")
    registry.start("1", "1", None, "1")
    assert registry.message()["nodes"]["1"]["value"] == 0.0
    assert registry.message()["nodes"]["1"]["max"] == 1.0
    registry.update("1", 5, 20)
    registry.finish("1", "1", None, "1")
    node = registry.message()["nodes"]["1"]
    assert node["state"] == "finished" and node["value"] == 20 and node["max"] == 20
    registry.start("2", "2", None, "2")
    registry.fail("2")
    assert registry.message()["nodes"]["2"]["state"] == "error"


def test_finish_without_start_records_a_finished_node() -> None:
    registry = ProgressRegistry("p")
    registry.finish("c", "c", None, "c")  # a cached node never starts
    node = registry.message()["nodes"]["c"]
    assert (node["state"], node["value"], node["max"]) == ("finished", 1.0, 1.0)


def test_updates_and_failures_of_unknown_nodes_are_ignored() -> None:
    registry = ProgressRegistry("p")
    registry.update("ghost", 1, 2)
    registry.fail("ghost")
    assert registry.message() == {"prompt_id": "p", "nodes": {}}


def test_the_log_drops_its_oldest_events_past_its_preview_byte_budget() -> None:
    log = EventLog(capacity=100, preview_bytes=250)
    for _ in range(5):
        log.emit("progress_bundle", {}, None, preview=PreviewFrame("image/png", b"x" * 100))
    kept = log.since(0)
    assert [e.seq for e in kept] == [4, 5]
    log.emit("status", {}, None)
    assert [e.seq for e in log.since(3)] == [4, 5, 6]


def test_the_log_keeps_at_most_capacity_events() -> None:
    log = EventLog(capacity=3)
    for i in range(10):
        log.emit("t", {"i": i}, None)
    assert [e.seq for e in log.since(0)] == [8, 9, 10]
