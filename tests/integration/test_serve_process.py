"""`comfyray serve` as a process: answers, dies completely when killed, restarts on its port.

Starts a real local Ray, so it runs only inside a loopback-only network namespace
(`make test` or scripts/netns-run provide one).
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from bench.common import loopback_only
from serve_app.lifecycle import descendants
from serve_app.main import StartupError, resolve_ingress_factory
from tests.server_process import free_port, port_is_free, start_server

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 120.0
DEATH_TIMEOUT_S = 2.0


needs_netns = pytest.mark.skipif(
    not loopback_only(), reason="starts Ray: run inside scripts/netns-run (make test does)"
)


def start_time(pid: int) -> int | None:
    """The kernel's start time of a live (non-zombie) process, None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else int(fields[19])


def snapshot_tree(root: int) -> dict[int, int]:
    """pid -> start time of every live process below `root` (start time guards pid reuse)."""
    tree = {}
    for pid in descendants(root):
        started = start_time(pid)
        if started is not None:
            tree[pid] = started
    return tree


def survivors(tree: dict[int, int]) -> list[int]:
    return [pid for pid, started in tree.items() if start_time(pid) == started]


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until `check()` held; fails the test after `timeout`."""
    began = time.monotonic()
    while not check():
        if time.monotonic() - began > timeout:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)
    return time.monotonic() - began


@needs_netns
@pytest.mark.integration
@pytest.mark.timeout(400)
def test_kill_9_frees_port_and_leaves_nothing_then_restart(tmp_path: Path) -> None:
    port = free_port()
    first = start_server(
        tmp_path / "base", port=port, with_stub_pack=False, timeout=START_TIMEOUT_S
    )
    try:
        assert httpx.get(f"{first.url}/history", timeout=5.0).json() == {}
        tree = snapshot_tree(first.process.pid)
        # supervisor -> watchdog -> server -> Ray (gcs, raylet, workers): a real tree was recorded.
        assert len(tree) >= 4, tree
    finally:
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(timeout=5)
    wait_until(lambda: port_is_free(port), DEATH_TIMEOUT_S, f"port {port} to be free")
    wait_until(lambda: not survivors(tree), DEATH_TIMEOUT_S, f"processes {survivors(tree)} to die")

    second = start_server(
        tmp_path / "base", port=port, with_stub_pack=False, timeout=START_TIMEOUT_S
    )
    try:
        second_tree = snapshot_tree(second.process.pid)
        # The gentle path: SIGTERM shuts Serve and Ray down in order and exits 0.
        second.process.send_signal(signal.SIGTERM)
        assert second.process.wait(timeout=60) == 0
    finally:
        second.stop()
    wait_until(lambda: port_is_free(port), DEATH_TIMEOUT_S, f"port {port} to be free")
    assert survivors(second_tree) == []


@needs_netns
@pytest.mark.integration
def test_port_in_use_fails_fast_with_exit_1(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(RuntimeError, match="exited with 1") as failed:
            start_server(
                tmp_path / "base", port=taken.getsockname()[1], with_stub_pack=False, timeout=60
            )
    assert "already in use" in str(failed.value)


_DAEMONIZING_CHILD = """
import os, subprocess, sys, time
# A grandchild in its own session that outlives its parent: what Ray workers and helpers do.
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(600)
    os._exit(0)
time.sleep(600)
"""

_SUPERVISOR = """
import sys, time
from serve_app.lifecycle import spawn_guarded
guard = spawn_guarded([sys.executable, "-c", sys.argv[1]])
print(guard.pid, flush=True)
time.sleep(600)
"""


@pytest.mark.integration
def test_watchdog_kills_daemonized_descendants_when_supervisor_is_killed() -> None:
    supervisor = subprocess.Popen(
        [sys.executable, "-c", _SUPERVISOR, _DAEMONIZING_CHILD],
        stdout=subprocess.PIPE,
        cwd=REPO,
    )
    try:
        assert supervisor.stdout is not None
        watchdog_pid = int(supervisor.stdout.readline())
        # watchdog -> child, its session-leader grandchild, and the orphaned double-fork child.
        wait_until(lambda: len(snapshot_tree(watchdog_pid)) >= 3, 10, "the child tree to start")
        tree = snapshot_tree(supervisor.pid)
        assert watchdog_pid in tree
    finally:
        supervisor.kill()
        supervisor.wait(timeout=5)
    wait_until(lambda: not survivors(tree), DEATH_TIMEOUT_S, f"processes {survivors(tree)} to die")


@pytest.mark.parametrize(
    ("path", "needle"),
    [
        ("no_such_module_xyz:deploy", "not found"),
        ("serve_app.settings:no_such_function", "no function"),
    ],
)
def test_bad_ingress_factory_is_a_startup_error(path: str, needle: str) -> None:
    with pytest.raises(StartupError, match=needle):
        resolve_ingress_factory(path)


def test_ingress_factory_resolves_to_the_named_function() -> None:
    from serve_app.settings import load_settings

    assert resolve_ingress_factory("serve_app.settings:load_settings") is load_settings
