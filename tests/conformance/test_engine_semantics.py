"""ComfyUI's execution semantics, seen through HTTP and WS only (comfyui-behaviour.md §3, §4.5).

Every prompt uses values of its own, so no test depends on what an earlier one left cached.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conformance.client import ComfyClient, Frame, labels
from tests.conformance.graph import Graph, NodeRef, image, unique, unique_int
from tests.server_process import ServerProcess


@pytest.fixture
def comfy(server: ServerProcess) -> Iterator[ComfyClient]:
    client = ComfyClient(server.url, server.ws_url)
    yield client
    client.close()


def lazy_prompt(mix_class: str, mask_value: float) -> dict[str, Any]:
    size = {"height": unique_int(1, 16), "width": unique_int(1, 4096), "batch_size": 1}
    g = Graph()
    n1 = g.node("StubImage", node_id="n1", content="BLACK", **size)
    n2 = g.node("StubMask", node_id="n2", value=mask_value, **size)
    n3 = g.node("StubImage", node_id="n3", content="WHITE", **size)
    n4 = g.node(mix_class, node_id="n4", image1=n1.out(0), image2=n3.out(0), mask=n2.out(0))
    g.node("SaveImage", node_id="n5", images=n4.out(0), filename_prefix=unique("lazy"))
    return g.prompt()


def text_of(run: Any, node: NodeRef) -> list[str]:
    return run.outputs[node.node_id]["text"]


# --- lazy inputs ---------------------------------------------------------------------------


def test_lazy_input_runs_only_what_the_node_asks_for(comfy: ComfyClient) -> None:
    run = comfy.run(lazy_prompt("StubLazyMix", 1.0))
    assert run.executing_nodes() == ["n2", "n4", "n3", "n4", "n5"]
    assert run.status["status_str"] == "success"


@pytest.mark.parametrize("mask_value", [0.0, 1.0])
def test_async_lazy_check_and_async_function(comfy: ComfyClient, mask_value: float) -> None:
    run = comfy.run(lazy_prompt("StubLazyMixAsync", mask_value))
    needed, skipped = ("n1", "n3") if mask_value == 0.0 else ("n3", "n1")
    ran = run.executing_nodes()
    assert needed in ran and skipped not in ran
    assert ran.count("n4") == 2
    assert run.status["status_str"] == "success"


def test_lazy_node_needing_both_inputs(comfy: ComfyClient) -> None:
    run = comfy.run(lazy_prompt("StubLazyMix", 0.5))
    ran = run.executing_nodes()
    assert {"n1", "n3"} <= set(ran)
    assert ran.count("n4") == 2
    assert ran[-1] == "n5"


# --- expansion -----------------------------------------------------------------------------


def test_expansion_runs_ephemeral_nodes_under_the_parent(comfy: ComfyClient) -> None:
    g = Graph()
    x = g.node("StubExpand", node_id="x", image=image(g).out(0), count=3)
    g.node("SaveImage", images=x.out(0), filename_prefix=unique("expand"))
    run = comfy.run(g.prompt())
    assert run.status["status_str"] == "success"
    running = [d for d in run.of_type("executing") if d["node"] is not None]
    ephemeral = [d for d in running if d["node"].startswith("x.")]
    assert [d["node"] for d in ephemeral] == ["x.0.0.1", "x.0.0.2", "x.0.0.3"]
    assert {d["display_node"] for d in ephemeral} == {"x"}
    # The expanding node is announced once, not again when it resumes.
    assert run.executing_nodes().count("x") == 1


def test_nested_expansion(comfy: ComfyClient) -> None:
    g = Graph()
    x = g.node("StubExpandNested", node_id="x", image=image(g).out(0), count=2)
    g.node("SaveImage", images=x.out(0), filename_prefix=unique("nested"))
    run = comfy.run(g.prompt())
    assert run.status["status_str"] == "success"
    ephemeral = [d for d in run.of_type("executing") if (d["node"] or "").startswith("x.")]
    # StubExpand, its two inverts (expanded a level deeper) and the outer invert.
    assert len(ephemeral) == 4
    assert all(re.fullmatch(r"x(\.\d+\.\d+\.\d+)+", d["node"]) for d in ephemeral)
    assert any(re.fullmatch(r"x(\.\d+\.\d+\.\d+){2}", d["node"]) for d in ephemeral)
    assert {d["display_node"] for d in ephemeral} == {"x"}


def test_expansion_of_zero_nodes_returns_its_input(comfy: ComfyClient) -> None:
    g = Graph()
    x = g.node("StubExpand", node_id="x", image=image(g).out(0), count=0)
    g.node("SaveImage", images=x.out(0), filename_prefix=unique("expand0"))
    run = comfy.run(g.prompt())
    assert run.status["status_str"] == "success"
    assert not [n for n in run.executing_nodes() if n.startswith("x.")]


# --- lists and blockers --------------------------------------------------------------------


def test_list_outputs_map_over_downstream_nodes(comfy: ComfyClient) -> None:
    count = unique_int(3, 6)
    g = Graph()
    listed = g.node("StubListOut", count=count)
    each = g.node("StubOutput", value=g.node("StubIntToString", value=listed.out(0)).out(0))
    total = g.node("StubOutput", value=g.node("StubListSum", values=listed.out(0)).out(0))
    run = comfy.run(g.prompt())
    assert text_of(run, each) == [str(i) for i in range(count)]
    assert text_of(run, total) == [str(sum(range(count)))]
    # StubIntToString runs once per element, but is announced once.
    assert run.executing_nodes().count("2") == 1


def test_shorter_lists_repeat_their_last_element(comfy: ComfyClient) -> None:
    count, offset = unique_int(3, 6), unique_int(100, 10**6)
    g = Graph()
    listed = g.node("StubListOut", count=count)
    total = g.node(
        "StubVariadicSum", first=listed.out(0), other=g.node("StubInt", value=offset).out(0)
    )
    out = g.node("StubOutput", value=total.out(0))
    run = comfy.run(g.prompt())
    assert text_of(run, out) == [str(offset + i) for i in range(count)]


def test_execution_blocker_with_message(comfy: ComfyClient) -> None:
    message = unique("stop here")
    value = unique_int()
    g = Graph()
    v = g.node("StubInt", value=value)
    b = g.node("StubBlocker", value=v.out(0), block=True, message=message)
    blocked = g.node("StubOutput", node_id="blocked", value=b.out(0))
    free = g.node("StubOutput", node_id="free", value=v.out(0))
    run = comfy.run(g.prompt())
    error = run.one("execution_error")
    assert error["exception_type"] == "ExecutionBlocked"
    assert error["exception_message"] == f"Execution Blocked: {message}"
    assert error["node_id"] == blocked.node_id
    assert error["node_type"] == "StubOutput"
    assert error["prompt_id"] == run.prompt_id
    assert error["traceback"] == [] and error["current_outputs"] == []
    assert "timestamp" not in error
    assert run.status["status_str"] == "success"
    assert "execution_success" in run.labels()
    assert run.status_message_types() == [
        "execution_start",
        "execution_cached",
        "execution_success",
    ]
    assert blocked.node_id not in run.outputs
    assert run.outputs[free.node_id] == {"text": [str(value)]}


def test_silent_execution_blocker(comfy: ComfyClient) -> None:
    g = Graph()
    v = g.node("StubInt", value=unique_int())
    b = g.node("StubBlocker", value=v.out(0), block=True, message="")
    blocked = g.node("StubOutput", value=b.out(0))
    run = comfy.run(g.prompt())
    assert run.of_type("execution_error") == []
    assert run.status["status_str"] == "success"
    assert blocked.node_id not in run.outputs
    assert blocked.node_id not in run.executed()


def test_blockers_apply_per_list_element(comfy: ComfyClient) -> None:
    count = unique_int(5, 9)
    g = Graph()
    listed = g.node("StubListOut", count=count)
    evens = g.node("StubBlockElement", values=listed.out(0))
    out = g.node("StubOutput", value=g.node("StubIntToString", value=evens.out(0)).out(0))
    run = comfy.run(g.prompt())
    assert text_of(run, out) == [str(i) for i in range(0, count, 2)]
    assert run.of_type("execution_error") == []


# --- inputs --------------------------------------------------------------------------------


def test_hidden_inputs(comfy: ComfyClient) -> None:
    workflow = {"id": unique("workflow")}
    g = Graph()
    v = g.node("StubInt", value=unique_int())
    h = g.node("StubHidden", node_id="hidden.1", value=v.out(0))
    out = g.node("StubOutput", value=h.out(0))
    prompt = g.prompt()
    run = comfy.run(prompt, extra_data={"extra_pnginfo": {"workflow": workflow}})
    echoed = json.loads(text_of(run, out)[0])
    assert echoed["unique_id"] == "hidden.1"
    assert echoed["extra_pnginfo"] == {"workflow": workflow}
    assert echoed["prompt"]["hidden.1"]["class_type"] == "StubHidden"
    assert echoed["prompt"][out.node_id]["inputs"] == {"value": ["hidden.1", 0]}


def test_undeclared_linked_inputs_arrive_as_kwargs(comfy: ComfyClient) -> None:
    a, b = unique_int(1, 1000), unique_int(1, 1000)
    g = Graph()
    total = g.node(
        "StubVariadicSum",
        first=1,
        extra_a=g.node("StubInt", value=a).out(0),
        extra_b=g.node("StubInt", value=b).out(0),
        junk=100,  # an undeclared constant is dropped
    )
    out = g.node("StubOutput", value=total.out(0))
    run = comfy.run(g.prompt())
    assert text_of(run, out) == [str(1 + a + b)]


# --- concurrency and caching ---------------------------------------------------------------


def test_async_branches_run_concurrently(comfy: ComfyClient) -> None:
    g = Graph()
    v = g.node("StubInt", value=unique_int())
    a = g.node("StubAsyncSleep", node_id="a", value=v.out(0), seconds=1.0)
    b = g.node("StubAsyncSleep", node_id="b", value=v.out(0), seconds=1.0)
    g.node("StubOutput", node_id="oa", value=a.out(0))
    g.node("StubOutput", node_id="ob", value=b.out(0))
    run = comfy.run(g.prompt())
    assert run.status["status_str"] == "success"
    order = run.labels(progress=False)
    first_output = min(order.index("executed oa"), order.index("executed ob"))
    assert {"executing a", "executing b"} <= set(order[:first_output])


def test_is_changed_nan_reruns_and_constant_caches(comfy: ComfyClient) -> None:
    g = Graph()
    always = g.node("StubIsChangedAlways", node_id="a", value=unique_int())
    const = g.node("StubIsChangedConst", node_id="c", value=unique_int())
    g.node("StubOutput", node_id="oa", value=always.out(0))
    g.node("StubOutput", node_id="oc", value=const.out(0))
    prompt = g.prompt()
    first = comfy.run(prompt)
    assert set(first.executing_nodes()) == {"a", "c", "oa", "oc"}
    second = comfy.run(prompt)
    assert set(second.executing_nodes()) == {"a", "oa"}
    assert set(second.one("execution_cached")["nodes"]) == {"c", "oc"}
    # The cached output node still reports its UI.
    assert second.executed()["oc"] == first.executed()["oc"]


def test_cache_is_shared_across_clients(comfy: ComfyClient) -> None:
    height, width = unique_int(1, 16), unique_int(1, 4096)
    size = {"content": "NOISE", "height": height, "width": width, "batch_size": 1}

    def chain(tag: str) -> dict[str, Any]:
        g = Graph()
        img = g.node("StubImage", node_id=f"{tag}-image", **size)
        inv = g.node("StubImageInvert", node_id=f"{tag}-invert", image=img.out(0))
        g.node("SaveImage", node_id=f"{tag}-save", images=inv.out(0), filename_prefix=unique(tag))
        return g.prompt()

    first = comfy.run(chain("a"), client_id=unique("alice"))
    assert first.executing_nodes() == ["a-image", "a-invert", "a-save"]
    second = comfy.run(chain("b"), client_id=unique("bob"))
    assert sorted(second.one("execution_cached")["nodes"]) == ["b-image", "b-invert"]
    assert second.executing_nodes() == ["b-save"]


def test_partial_execution_targets(comfy: ComfyClient) -> None:
    g = Graph()
    v = g.node("StubInt", node_id="v", value=unique_int())
    g.node("StubOutput", node_id="o1", value=v.out(0))
    g.node("StubOutput", node_id="o2", value=v.out(0))
    run = comfy.run(g.prompt(), partial_execution_targets=["o2", "v"])
    assert run.executing_nodes() == ["v", "o2"]
    assert list(run.outputs) == ["o2"]
    assert run.history["prompt"][4] == ["o2"]


# --- V3 ------------------------------------------------------------------------------------


def test_v3_node_runs(comfy: ComfyClient) -> None:
    a, b = unique_int(0, 500), unique_int(0, 500)
    g = Graph()
    add = g.node("StubV3Add", node_id="add", a=a, b=b)
    out = g.node("StubOutput", value=add.out(0))
    run = comfy.run(g.prompt())
    assert run.status["status_str"] == "success"
    assert text_of(run, out) == [str(a + b)]
    assert run.executed()["add"] == {"text": [f"add: {a + b}"]}


# --- failures ------------------------------------------------------------------------------


def test_runtime_error_is_reported_and_the_server_stays_healthy(comfy: ComfyClient) -> None:
    message = unique("boom")
    g = Graph()
    v = g.node("StubInt", node_id="v", value=unique_int())
    r = g.node("StubRaise", node_id="r", value=v.out(0), message=message)
    g.node("StubOutput", node_id="o", value=r.out(0))
    run = comfy.run(g.prompt())
    error = run.one("execution_error")
    assert error["prompt_id"] == run.prompt_id
    assert error["node_id"] == "r" and error["node_type"] == "StubRaise"
    assert error["exception_type"] == "RuntimeError"
    assert error["exception_message"].startswith(message)
    assert error["executed"] == ["v"]
    assert error["traceback"] and all(isinstance(line, str) for line in error["traceback"])
    assert error["current_inputs"]["message"] == [message]
    assert "timestamp" in error
    assert run.labels(progress=False)[-3:] == ["execution_error", "status 0", "executing None"]
    assert "execution_success" not in run.labels()
    assert run.status["status_str"] == "error"
    assert run.status["completed"] is False
    assert run.status_message_types()[-1] == "execution_error"
    after = comfy.run(int_output_prompt())
    assert after.status["status_str"] == "success"


def int_output_prompt() -> dict[str, Any]:
    g = Graph()
    g.node("StubOutput", value=g.node("StubInt", value=unique_int()).out(0))
    return g.prompt()


def sleeper(seconds: float) -> tuple[dict[str, Any], str]:
    g = Graph()
    v = g.node("StubInt", node_id="v", value=unique_int())
    s = g.node("StubSleep", node_id="s", value=v.out(0), seconds=seconds)
    g.node("StubOutput", node_id="o", value=s.out(0))
    return g.prompt(), s.node_id


def wait_running(frames_of: Any, node_id: str) -> list[Frame]:
    """Frames up to the first `progress` of the sleeping node: it is surely running."""
    return frames_of.until(
        lambda f: f.type == "progress" and f.data["node"] == node_id, what=f"progress of {node_id}"
    )


def test_interrupt_stops_the_running_prompt(comfy: ComfyClient) -> None:
    prompt, node_id = sleeper(20.0)
    client_id = unique("interrupt")
    with comfy.session(client_id) as ws:
        queued = comfy.queue_prompt(prompt, client_id=client_id)
        before = wait_running(ws, node_id)
        comfy.interrupt()
        after = ws.until_end_of(queued["prompt_id"])
    order = [
        label for label in labels(before + after) if label not in ("progress", "progress_state")
    ]
    assert order[-3:] == ["execution_interrupted", "status 0", "executing None"]
    assert "execution_success" not in order and "execution_error" not in order
    interrupted = next(f.data for f in after if f.type == "execution_interrupted")
    assert interrupted["prompt_id"] == queued["prompt_id"]
    assert (interrupted["node_id"], interrupted["node_type"]) == (node_id, "StubSleep")
    assert interrupted["executed"] == ["v"]
    assert "timestamp" in interrupted
    entry = comfy.history_entry(queued["prompt_id"])
    assert entry["status"]["status_str"] == "error"
    assert entry["status"]["completed"] is False
    assert entry["status"]["messages"][-1][0] == "execution_interrupted"
    job = comfy.get_json(f"/api/jobs/{queued['prompt_id']}")
    assert job["status"] == "cancelled"


def test_interrupt_naming_another_prompt_does_nothing(comfy: ComfyClient) -> None:
    prompt, node_id = sleeper(20.0)
    client_id = unique("interrupt")
    with comfy.session(client_id) as ws:
        queued = comfy.queue_prompt(prompt, client_id=client_id)
        try:
            wait_running(ws, node_id)
            comfy.interrupt(str(uuid.uuid4()))
            # The sleeper keeps going: more progress arrives, and nothing ends the run.
            later = ws.until(
                lambda f: f.type == "progress" and f.data["value"] >= 10,
                what="more progress after the interrupt",
            )
            assert not [f for f in later if f.type in ("execution_interrupted", "executing")]
            running, _ = comfy.queue_ids()
            assert queued["prompt_id"] in running
        finally:
            comfy.interrupt(queued["prompt_id"])
        rest = ws.until_end_of(queued["prompt_id"])
    assert "execution_interrupted" in labels(rest)


def test_cancel_a_running_job(comfy: ComfyClient) -> None:
    prompt, node_id = sleeper(20.0)
    client_id = unique("cancel")
    with comfy.session(client_id) as ws:
        queued = comfy.queue_prompt(prompt, client_id=client_id)
        wait_running(ws, node_id)
        response = comfy.post(f"/api/jobs/{queued['prompt_id']}/cancel")
        assert response.status_code == 200
        assert response.json() == {"cancelled": True}
        rest = ws.until_end_of(queued["prompt_id"])
    assert "execution_interrupted" in labels(rest)
    assert comfy.get_json(f"/api/jobs/{queued['prompt_id']}")["status"] == "cancelled"
    again = comfy.post(f"/api/jobs/{queued['prompt_id']}/cancel")
    assert again.json() == {"cancelled": False}
