"""The controller actor's process dies: Ray restarts it, it replays the job journal, the
queued prompts run, and a connected WebSocket keeps receiving messages."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import websockets

from tests.server_process import start_server


def sleeper(tag: str, seconds: float) -> dict:
    return {
        "v": {"class_type": "StubString", "inputs": {"value": tag}},
        "s": {"class_type": "StubSleep", "inputs": {"value": ["v", 0], "seconds": seconds}},
        "o": {"class_type": "StubOutput", "inputs": {"value": ["s", 0]}},
    }


def descendants(root: int) -> set[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {root}
    while frontier:
        children = {pid for pid, ppid in parents.items() if ppid in frontier}
        frontier = children - found
        found |= children
    return found


def controller_pid(server_pid: int) -> int:
    """The controller actor of this server (other servers may run beside it)."""
    ours = descendants(server_pid)
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    pids = [
        int(line.split()[0])
        for line in out.splitlines()
        if "ray::ControllerActor" in line and int(line.split()[0]) in ours
    ]
    assert len(pids) == 1, out
    return pids[0]


async def scenario(url: str, ws_url: str, server_pid: int) -> None:
    async with websockets.connect(f"{ws_url}?clientId=watcher") as ws:
        json.loads(await asyncio.wait_for(ws.recv(), 10))
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            queued = []
            for tag in ("first", "second"):
                prompt_id = str(uuid.uuid4())
                r = await client.post(
                    "/prompt",
                    json={"prompt": sleeper(tag, 1.5), "prompt_id": prompt_id},
                )
                assert r.status_code == 200, r.text
                queued.append((prompt_id, tag))
            await asyncio.sleep(0.5)
            os.kill(controller_pid(server_pid), signal.SIGKILL)

            deadline = time.monotonic() + 90
            history: dict = {}
            while time.monotonic() < deadline:
                try:
                    history = (await client.get("/history")).json()
                except (httpx.HTTPError, ValueError):
                    history = {}
                if all(p in history for p, _ in queued):
                    break
                await asyncio.sleep(0.5)
            for prompt_id, tag in queued:
                assert history[prompt_id]["status"]["status_str"] == "success", history
                assert history[prompt_id]["outputs"]["o"] == {"text": [tag]}

            # The socket opened before the restart still gets this prompt's messages.
            prompt_id = str(uuid.uuid4())
            r = await client.post(
                "/prompt",
                json={
                    "prompt": sleeper("third", 0.0),
                    "prompt_id": prompt_id,
                    "client_id": "watcher",
                },
            )
            assert r.status_code == 200, r.text
            while True:
                message = json.loads(await asyncio.wait_for(ws.recv(), 30))
                data = message["data"]
                if message["type"] == "executing" and data.get("prompt_id") == prompt_id:
                    if data["node"] is None:
                        break


def test_a_killed_controller_restarts_and_runs_the_queue(tmp_path: Path) -> None:
    server = start_server(tmp_path / "base", "--workers", "1")
    try:
        asyncio.run(asyncio.wait_for(scenario(server.url, server.ws_url, server.process.pid), 180))
    finally:
        server.stop()
