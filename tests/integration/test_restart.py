"""The queue and history survive a restart of the server, even after SIGKILL."""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path

import httpx

from tests.server_process import port_is_free, start_server


def sleeper(seconds: float, tag: str) -> dict:
    return {
        "v": {"class_type": "StubString", "inputs": {"value": tag}},
        "s": {"class_type": "StubSleep", "inputs": {"value": ["v", 0], "seconds": seconds}},
        "o": {"class_type": "StubOutput", "inputs": {"value": ["s", 0]}},
    }


def wait_for_history(url: str, prompt_ids: list[str], timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        history = httpx.get(f"{url}/history", timeout=5).json()
        if all(p in history for p in prompt_ids):
            return history
        time.sleep(0.2)
    raise TimeoutError(f"prompts {prompt_ids} not in history after {timeout}s")


def test_history_and_queue_survive_sigkill(tmp_path: Path) -> None:
    base = tmp_path / "base"
    server = start_server(base, "--workers", "1")
    try:
        done_id = str(uuid.uuid4())
        r = httpx.post(
            f"{server.url}/prompt",
            json={"prompt": sleeper(0.0, "first"), "prompt_id": done_id},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        wait_for_history(server.url, [done_id], 30)
        running_id, pending_id = str(uuid.uuid4()), str(uuid.uuid4())
        for prompt_id, tag in ((running_id, "running"), (pending_id, "pending")):
            r = httpx.post(
                f"{server.url}/prompt",
                json={"prompt": sleeper(2.0, tag), "prompt_id": prompt_id},
                timeout=10,
            )
            assert r.status_code == 200, r.text
        queue = httpx.get(f"{server.url}/queue", timeout=5).json()
        assert [row[1] for row in queue["queue_running"]] == [running_id]
        assert [row[1] for row in queue["queue_pending"]] == [pending_id]
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(10)
    finally:
        server.stop()

    # The killed server's process tree dies just after it; until then its proxy may still answer
    # on the port, and the restarted server would be probed through it.
    deadline = time.monotonic() + 10
    while not port_is_free(server.port):
        assert time.monotonic() < deadline, f"port {server.port} still taken after SIGKILL"
        time.sleep(0.05)
    restarted = start_server(base, "--workers", "1", port=server.port)
    try:
        history = wait_for_history(restarted.url, [done_id, running_id, pending_id], 60)
        assert history[done_id]["status"]["status_str"] == "success"
        assert history[done_id]["outputs"]["o"] == {"text": ["first"]}
        for prompt_id, tag in ((running_id, "running"), (pending_id, "pending")):
            assert history[prompt_id]["status"]["status_str"] == "success"
            assert history[prompt_id]["outputs"]["o"] == {"text": [tag]}
    finally:
        restarted.stop()
