"""`/ws` as a ComfyUI client sees it: hello, feature flags, message order, targeting,
reconnects and preview frames (comfyui-behaviour.md §4, §9.11-13, §10)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conformance.client import (
    PREVIEW_METADATA_FLAGS,
    ComfyClient,
    Frame,
    Run,
    labels,
    parse_preview,
)
from tests.conformance.graph import Graph, NodeRef, unique, unique_int
from tests.server_process import ServerProcess

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def comfy(server: ServerProcess) -> Iterator[ComfyClient]:
    client = ComfyClient(server.url, server.ws_url)
    yield client
    client.close()


def lazy_trace_prompt(prefix: str) -> dict[str, Any]:
    """§4.5's normal run: n4 mixes n1 (weight 1) and n3 (weight 0) by the mask n2."""
    height, width = unique_int(1, 16), unique_int(1, 4096)
    size = {"height": height, "width": width, "batch_size": 1}
    g = Graph()
    n1 = g.node("StubImage", node_id="n1", content="BLACK", **size)
    n2 = g.node("StubMask", node_id="n2", value=0.0, **size)
    n3 = g.node("StubImage", node_id="n3", content="WHITE", **size)
    n4 = g.node("StubLazyMix", node_id="n4", image1=n1.out(0), image2=n3.out(0), mask=n2.out(0))
    g.node("SaveImage", node_id="n5", images=n4.out(0), filename_prefix=prefix)
    return g.prompt()


def sleep_prompt(seconds: float) -> tuple[dict[str, Any], NodeRef]:
    g = Graph()
    v = g.node("StubInt", value=unique_int())
    s = g.node("StubSleep", node_id="s", value=v.out(0), seconds=seconds)
    g.node("StubOutput", value=s.out(0))
    return g.prompt(), s


# --- connecting ----------------------------------------------------------------------------


def test_first_message_is_status_with_the_client_id_as_sid(comfy: ComfyClient) -> None:
    client_id = unique("client")
    with comfy.session(client_id) as ws:
        assert ws.hello.type == "status"
        assert ws.hello.data == {"status": {"exec_info": {"queue_remaining": 0}}, "sid": client_id}


def test_without_client_id_the_sid_is_32_hex(comfy: ComfyClient) -> None:
    with comfy.session() as ws:
        assert ws.hello.type == "status"
        assert re.fullmatch(r"[0-9a-f]{32}", ws.sid), ws.sid
        assert ws.hello.data["status"] == {"exec_info": {"queue_remaining": 0}}


def test_api_ws_path_works_too(comfy: ComfyClient) -> None:
    api = ComfyClient(comfy.base_url, comfy.ws_url.replace("/ws", "/api/ws"))
    try:
        with api.session("api-ws") as ws:
            assert ws.hello.data["sid"] == "api-ws"
    finally:
        api.close()


def test_feature_flags_are_answered_with_the_server_flags(comfy: ComfyClient) -> None:
    with comfy.session(unique("flags"), feature_flags={"supports_preview_metadata": True}) as ws:
        assert ws.server_flags == comfy.get_json("/features")
        assert ws.server_flags["supports_preview_metadata"] is True


def test_only_the_first_client_message_is_read(comfy: ComfyClient) -> None:
    with comfy.session(unique("flags")) as ws:
        ws.send_json({"type": "hello"})
        ws.send_json({"type": "feature_flags", "data": {"supports_preview_metadata": True}})
        assert ws.quiet(0.5) == []


# --- one run, message by message -----------------------------------------------------------


def test_normal_run_message_order(comfy: ComfyClient) -> None:
    prefix = unique("trace")
    run = comfy.run(lazy_trace_prompt(prefix))
    assert run.labels() == [
        "status 1",
        "status 1",
        "execution_start",
        "execution_cached",
        "progress_state",
        "executing n2",
        "progress_state",
        "progress_state",
        "executing n4",
        "progress_state",
        "executing n1",
        "progress_state",
        "progress_state",
        "executing n4",
        "progress_state",
        "progress_state",
        "executing n5",
        "executed n5",
        "progress_state",
        "execution_success",
        "status 0",
        "executing None",
    ]
    assert run.one("execution_cached")["nodes"] == []
    for message in run.json_messages():
        assert message.type == "status" or message.prompt_id == run.prompt_id, message
    executing = [d for d in run.of_type("executing") if d["node"] is not None]
    assert all(d["display_node"] == d["node"] for d in executing)
    assert run.of_type("executing")[-1] == {"node": None, "prompt_id": run.prompt_id}
    image = {"filename": f"{prefix}_00001_.png", "subfolder": "", "type": "output"}
    assert run.executed()["n5"] == {"images": [image]}
    assert run.binary() == []
    states = run.of_type("progress_state")
    assert states[-1]["nodes"]["n5"] == {
        "value": 1.0,
        "max": 1.0,
        "state": "finished",
        "node_id": "n5",
        "prompt_id": run.prompt_id,
        "display_node_id": "n5",
        "parent_node_id": None,
        "real_node_id": "n5",
    }
    assert "n3" not in states[-1]["nodes"]
    assert run.history["meta"] == {
        "n5": {"node_id": "n5", "display_node": "n5", "parent_node": None, "real_node_id": "n5"}
    }


def test_identical_resubmission_is_served_from_cache(comfy: ComfyClient) -> None:
    prefix = unique("resubmit")
    prompt = lazy_trace_prompt(prefix)
    first = comfy.run(prompt)
    second = comfy.run(prompt)
    assert second.labels() == [
        "status 1",
        "status 1",
        "execution_start",
        "execution_cached",
        "executed n5",
        "progress_state",
        "execution_success",
        "status 0",
        "executing None",
    ]
    assert sorted(second.one("execution_cached")["nodes"]) == ["n1", "n2", "n4", "n5"]
    assert second.executed()["n5"] == first.executed()["n5"]
    state = second.one("progress_state")["nodes"]["n5"]
    assert (state["state"], state["value"], state["max"]) == ("finished", 1, 1)
    assert second.outputs == first.outputs


def test_history_entry_exists_when_executing_null_arrives(comfy: ComfyClient) -> None:
    g = Graph()
    g.node("StubOutput", value=g.node("StubInt", value=unique_int()).out(0))
    run = comfy.run(g.prompt())
    # Client.run reads the history right after `executing null`, without waiting.
    assert run.status == {
        "status_str": "success",
        "completed": True,
        "messages": run.status["messages"],
    }
    assert run.status_message_types() == [
        "execution_start",
        "execution_cached",
        "execution_success",
    ]
    assert all("timestamp" in data for _, data in run.status["messages"])
    assert run.outputs
    assert run.history["prompt"][1] == run.prompt_id


def test_history_exists_when_queue_remaining_reaches_zero(comfy: ComfyClient) -> None:
    client_id = unique("status")
    g = Graph()
    g.node("StubOutput", value=g.node("StubInt", value=unique_int()).out(0))
    with comfy.session(client_id) as ws:
        queued = comfy.queue_prompt(g.prompt(), client_id=client_id)
        ws.until(lambda f: f.label() == "status 0", what="status 0")
        assert comfy.history_entry(queued["prompt_id"])["status"]["completed"] is True
        ws.until_end_of(queued["prompt_id"])


def test_status_zero_comes_before_the_final_executing_null(comfy: ComfyClient) -> None:
    g = Graph()
    g.node("StubOutput", value=g.node("StubInt", value=unique_int()).out(0))
    run = comfy.run(g.prompt())
    assert run.labels()[-2:] == ["status 0", "executing None"]


# --- who gets what -------------------------------------------------------------------------


def test_prompt_messages_go_only_to_their_client(comfy: ComfyClient) -> None:
    with comfy.session(unique("owner")) as owner, comfy.session(unique("other")) as other:
        g = Graph()
        g.node("StubOutput", value=g.node("StubInt", value=unique_int()).out(0))
        run = comfy.run(g.prompt(), ws=owner)
        assert "executed 2" in run.labels()
        seen = other.until(lambda f: f.label() == "status 0", what="status 0") + other.quiet()
        assert {f.type for f in seen} == {"status"}, labels(seen)


def test_prompt_without_client_id_is_broadcast(comfy: ComfyClient) -> None:
    with comfy.session(unique("a")) as first, comfy.session(unique("b")) as second:
        g = Graph()
        p = g.node("StubPreviewProgress", steps=unique_int(5, 9))
        queued = comfy.queue_prompt(g.prompt())
        for ws in (first, second):
            frames = ws.until(lambda f: f.label() == "status 0", what="status 0") + ws.quiet()
            progress = [f.data for f in frames if f.type == "progress"]
            assert progress and all(d["prompt_id"] == queued["prompt_id"] for d in progress)
            assert all(d["node"] == p.node_id for d in progress)
            assert any(f.type == "progress_state" for f in frames)
            assert any(f.is_binary for f in frames)
            # Lifecycle messages are sent only to a client, never broadcast.
            private = {"executing", "executed", "execution_start", "execution_success"}
            assert not [f for f in frames if f.type in private], labels(frames)
        assert comfy.history_entry(queued["prompt_id"])["status"]["status_str"] == "success"


def test_interrupt_of_a_prompt_without_client_id_is_broadcast(comfy: ComfyClient) -> None:
    prompt, sleeper = sleep_prompt(20.0)
    with comfy.session(unique("a")) as first, comfy.session(unique("b")) as second:
        queued = comfy.queue_prompt(prompt)
        first.until(lambda f: f.type == "progress", what="the sleeper's progress")
        comfy.interrupt()
        for ws in (first, second):
            frames = ws.until(lambda f: f.label() == "status 0", what="status 0") + ws.quiet()
            interrupted = [f.data for f in frames if f.type == "execution_interrupted"]
            assert len(interrupted) == 1
            assert interrupted[0]["prompt_id"] == queued["prompt_id"]
            assert interrupted[0]["node_id"] == sleeper.node_id
            assert "executing" not in {f.type for f in frames}


def test_messages_for_a_client_without_a_socket_are_not_replayed(comfy: ComfyClient) -> None:
    client_id = unique("absent")
    g = Graph()
    g.node("StubOutput", value=g.node("StubInt", value=unique_int()).out(0))
    queued = comfy.queue_prompt(g.prompt(), client_id=client_id)
    comfy.wait_history(queued["prompt_id"])
    with comfy.session(client_id) as ws:
        assert ws.hello.data["sid"] == client_id
        assert ws.quiet() == []


def test_reconnect_during_a_run_keeps_receiving_it(comfy: ComfyClient) -> None:
    client_id = unique("reconnect")
    prompt, sleeper = sleep_prompt(3.0)
    with comfy.session(client_id) as first:
        queued = comfy.queue_prompt(prompt, client_id=client_id)
        first.until(lambda f: f.label() == f"executing {sleeper.node_id}", what="the sleeper")
        with comfy.session(client_id) as second:
            assert second.hello.data["sid"] == client_id
            assert second.hello.data["status"] == {"exec_info": {"queue_remaining": 1}}
            resumed = second.recv()
            assert (resumed.type, resumed.data) == ("executing", {"node": sleeper.node_id})
            rest = second.until_end_of(queued["prompt_id"])
    kinds = [f.label() for f in rest]
    assert "execution_success" in kinds
    assert [f.data["prompt_id"] for f in rest if f.type == "executed"] == [queued["prompt_id"]]
    assert comfy.history_entry(queued["prompt_id"])["status"]["status_str"] == "success"


# --- previews ------------------------------------------------------------------------------


def preview_run(comfy: ComfyClient, steps: int, flags: dict[str, Any] | None) -> tuple[Run, str]:
    g = Graph()
    # An undeclared constant is never passed to the node but is part of its cache key (as in
    # ComfyUI): two runs with the same `steps` in a row would otherwise be a cache hit, and a
    # cached node sends no progress.
    node = g.node("StubPreviewProgress", steps=steps, run_nonce=uuid.uuid4().hex)
    return comfy.run(g.prompt(), feature_flags=flags), node.node_id


def node_frames(run: Run, node_id: str) -> list[Frame]:
    """Frames from `executing node_id` up to (not including) execution_success."""
    start = run.labels().index(f"executing {node_id}")
    end = run.labels().index("execution_success")
    return run.messages[start + 1 : end]


def test_previews_without_flags_are_type_1_png_frames(comfy: ComfyClient) -> None:
    steps = unique_int(10, 30)
    run, node_id = preview_run(comfy, steps, None)
    frames = node_frames(run, node_id)
    assert labels(frames) == ["progress_state", "progress", "binary 1"] * steps + ["progress_state"]
    for frame in frames:
        if frame.is_binary:
            preview = parse_preview(frame)
            assert preview.image_format == 2
            assert preview.image.startswith(PNG_MAGIC)
    progress = run.of_type("progress")
    # Their order is checked by test_progress_values_arrive_in_order.
    assert sorted(p["value"] for p in progress) == list(range(1, steps + 1))
    assert all(p["max"] == steps and p["node"] == node_id for p in progress)


def test_previews_with_metadata_flag_are_type_4_frames(comfy: ComfyClient) -> None:
    steps = unique_int(31, 50)
    run, node_id = preview_run(comfy, steps, PREVIEW_METADATA_FLAGS)
    frames = node_frames(run, node_id)
    assert labels(frames) == ["progress_state", "binary 4", "progress"] * steps + ["progress_state"]
    for frame in frames:
        if frame.is_binary:
            preview = parse_preview(frame)
            assert preview.metadata == {
                "node_id": node_id,
                "prompt_id": run.prompt_id,
                "display_node_id": node_id,
                "parent_node_id": None,
                "real_node_id": node_id,
                "image_type": "image/png",
            }
            assert preview.image.startswith(PNG_MAGIC)


def test_progress_values_arrive_in_order(comfy: ComfyClient) -> None:
    for _ in range(6):
        steps = unique_int(61, 100)
        run, _ = preview_run(comfy, steps, PREVIEW_METADATA_FLAGS)
        assert [p["value"] for p in run.of_type("progress")] == list(range(1, steps + 1))


def test_no_binary_frames_without_previews(comfy: ComfyClient) -> None:
    prompt, _ = sleep_prompt(0.2)
    run = comfy.run(prompt, feature_flags=PREVIEW_METADATA_FLAGS)
    assert run.binary() == []
    assert run.of_type("progress")


def test_binary_frame_header_layout(comfy: ComfyClient) -> None:
    run, _ = preview_run(comfy, unique_int(51, 60), PREVIEW_METADATA_FLAGS)
    raw = run.binary()[0].raw
    assert raw is not None
    length = int.from_bytes(raw[4:8], "big")
    assert raw[:4] == b"\x00\x00\x00\x04"
    assert json.loads(raw[8 : 8 + length])["prompt_id"] == run.prompt_id
    assert raw[8 + length :].startswith(PNG_MAGIC)


def test_client_ids_do_not_leak_between_runs(comfy: ComfyClient) -> None:
    """A second client's run carries only its own prompt id."""
    g = Graph()
    g.node("StubOutput", value=g.node("StubInt", value=unique_int()).out(0))
    run = comfy.run(g.prompt(), client_id=str(uuid.uuid4()))
    ids = {m.prompt_id for m in run.json_messages() if m.type != "status"}
    assert ids == {run.prompt_id}
