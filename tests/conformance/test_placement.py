"""Independent branches of one prompt, and different prompts, run on different workers
(the session server has 2). Each branch sleeps, then reports its worker's process id."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conformance.client import ComfyClient
from tests.conformance.graph import Graph, unique_int
from tests.server_process import ServerProcess


@pytest.fixture
def comfy(server: ServerProcess) -> Iterator[ComfyClient]:
    client = ComfyClient(server.url, server.ws_url)
    yield client
    client.close()


def branch(g: Graph, seconds: float) -> str:
    value = g.node("StubInt", value=unique_int())
    slept = g.node("StubSleep", value=value.out(0), seconds=seconds)
    pid = g.node("StubWorkerPid", value=slept.out(0))
    return g.node("StubOutput", value=pid.out(0)).node_id


def pid_of(entry: dict[str, Any], output_id: str) -> str:
    return entry["outputs"][output_id]["text"][0]


def test_independent_branches_of_one_prompt_run_on_different_workers(
    comfy: ComfyClient,
) -> None:
    g = Graph()
    first, second = branch(g, 1.0), branch(g, 1.0)
    run = comfy.run(g.prompt(), client_id=str(uuid.uuid4()))
    assert run.history["status"]["status_str"] == "success"
    assert pid_of(run.history, first) != pid_of(run.history, second)


def test_two_prompts_run_at_the_same_time_on_different_workers(comfy: ComfyClient) -> None:
    g1, g2 = Graph(), Graph()
    out1, out2 = branch(g1, 1.0), branch(g2, 1.0)
    id1 = comfy.queue_prompt(g1.prompt())["prompt_id"]
    id2 = comfy.queue_prompt(g2.prompt())["prompt_id"]
    running, pending = comfy.queue_ids()
    assert not pending and set(running) <= {id1, id2}
    first, second = comfy.wait_history(id1), comfy.wait_history(id2)
    assert pid_of(first, out1) != pid_of(second, out2)
