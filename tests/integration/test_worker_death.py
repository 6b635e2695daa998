"""A worker process that dies mid-prompt fails that prompt with an execution_error; the
server stays healthy, and Ray restarts the worker for the prompts after it."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import httpx

from tests.server_process import start_server


def pid_prompt(tag: str, seconds: float) -> dict:
    return {
        "v": {"class_type": "StubString", "inputs": {"value": tag}},
        "s": {"class_type": "StubSleep", "inputs": {"value": ["v", 0], "seconds": seconds}},
        "p": {"class_type": "StubWorkerPid", "inputs": {"value": ["s", 0]}},
        "o": {"class_type": "StubOutput", "inputs": {"value": ["p", 0]}},
    }


def run(url: str, prompt: dict, timeout: float = 60) -> dict:
    prompt_id = str(uuid.uuid4())
    r = httpx.post(f"{url}/prompt", json={"prompt": prompt, "prompt_id": prompt_id}, timeout=10)
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entry = httpx.get(f"{url}/history/{prompt_id}", timeout=10).json()
        if prompt_id in entry:
            return entry[prompt_id]
        time.sleep(0.2)
    raise TimeoutError(f"prompt {prompt_id} did not finish")


def test_a_killed_worker_fails_its_prompt_and_the_server_recovers(tmp_path: Path) -> None:
    server = start_server(tmp_path / "base", "--workers", "1", "--cache-none")
    try:
        first = run(server.url, pid_prompt("first", 0.0))
        worker_pid = int(first["outputs"]["o"]["text"][0])

        prompt_id = str(uuid.uuid4())
        r = httpx.post(
            f"{server.url}/prompt",
            json={"prompt": pid_prompt("doomed", 30.0), "prompt_id": prompt_id},
            timeout=10,
        )
        assert r.status_code == 200
        time.sleep(2.0)
        os.kill(worker_pid, signal.SIGKILL)
        deadline = time.monotonic() + 60
        entry: dict = {}
        while time.monotonic() < deadline and not entry:
            entry = httpx.get(f"{server.url}/history/{prompt_id}", timeout=10).json()
            time.sleep(0.2)
        status = entry[prompt_id]["status"]
        assert status["status_str"] == "error"
        error = next(data for kind, data in status["messages"] if kind == "execution_error")
        assert error["node_id"] in {"s", "p", "o"}

        # Ray restarts the worker; /system_stats answers once every worker does again.
        # (A prompt submitted while the worker is still restarting can fail: noted in the
        # issue as a gap.)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            stats = httpx.get(f"{server.url}/system_stats", timeout=30)
            if stats.status_code == 200 and stats.json()["devices"]:
                break
            time.sleep(0.5)
        after = run(server.url, pid_prompt("after", 0.0))
        assert after["status"]["status_str"] == "success"
        assert int(after["outputs"]["o"]["text"][0]) != worker_pid
    finally:
        server.stop()
