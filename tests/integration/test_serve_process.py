"""`comfyray serve` as a process: answers, dies completely when killed, restarts on its port.

Starts a real local Ray, so it runs only inside a loopback-only network namespace
(`make test` or scripts/netns-run provide one). Until `serve_app.ingress` exists the server
deploys the stub ingress of tests/integration/serve_stub.py.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from serve_app.lifecycle import descendants

REPO = Path(__file__).resolve().parents[2]
STUB_FACTORY = "tests.integration.serve_stub:deploy"
START_TIMEOUT_S = 120.0
DEATH_TIMEOUT_S = 2.0


def loopback_only() -> bool:
    """True inside a network namespace whose only interface is lo."""
    lines = Path("/proc/self/net/dev").read_text().splitlines()[2:]
    return [line.split(":")[0].strip() for line in lines] == ["lo"]


needs_netns = pytest.mark.skipif(
    not loopback_only(), reason="starts Ray: run inside scripts/netns-run (make test does)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Nobody listens, and a server could bind it now (with SO_REUSEADDR, as uvicorn does)."""
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            return False
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


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


def server_env() -> dict[str, str]:
    """The suite's environment without settings, except a chosen ingress factory."""
    factory = os.environ.get("COMFYRAY_INGRESS_FACTORY")
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMFYRAY_")}
    env.pop("RAY_ADDRESS", None)
    if factory is None and importlib.util.find_spec("serve_app.ingress") is None:
        factory = STUB_FACTORY
    if factory is not None:
        env["COMFYRAY_INGRESS_FACTORY"] = factory
    # The stub (and Ray workers unpickling it) import from the repository root.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def comfyray() -> str:
    return str(Path(sys.executable).with_name("comfyray"))


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Callable[[int], subprocess.Popen[bytes]]]:
    """Starts `comfyray serve` processes; kills whatever is left of them at the end."""
    started: list[subprocess.Popen[bytes]] = []
    log = (tmp_path / "serve.log").open("ab")

    def start(port: int) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [comfyray(), "serve", "--port", str(port), "--base-directory", str(tmp_path / "base")],
            cwd=tmp_path,
            env=server_env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    log.close()
    print((tmp_path / "serve.log").read_text(errors="replace")[-4000:])


def answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/history", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def wait_for_server(proc: subprocess.Popen[bytes], port: int) -> float:
    def ready() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"comfyray serve exited early with {proc.returncode}")
        return answers(port)

    return wait_until(ready, START_TIMEOUT_S, f"GET /history 200 on port {port}")


@needs_netns
@pytest.mark.integration
@pytest.mark.timeout(400)
def test_kill_9_frees_port_and_leaves_nothing_then_restart(
    servers: Callable[[int], subprocess.Popen[bytes]],
) -> None:
    port = free_port()
    first = servers(port)
    wait_for_server(first, port)
    assert httpx.get(f"http://127.0.0.1:{port}/history", timeout=5.0).json() == {}
    tree = snapshot_tree(first.pid)
    # supervisor -> watchdog -> server -> Ray (gcs, raylet, workers): a real tree was recorded.
    assert len(tree) >= 4, tree

    first.send_signal(signal.SIGKILL)
    first.wait(timeout=5)
    wait_until(lambda: port_is_free(port), DEATH_TIMEOUT_S, f"port {port} to be free")
    wait_until(lambda: not survivors(tree), DEATH_TIMEOUT_S, f"processes {survivors(tree)} to die")

    second = servers(port)
    wait_for_server(second, port)
    second_tree = snapshot_tree(second.pid)

    # The gentle path: SIGTERM shuts Serve and Ray down in order and exits 0.
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=60) == 0
    wait_until(lambda: port_is_free(port), DEATH_TIMEOUT_S, f"port {port} to be free")
    assert survivors(second_tree) == []


@needs_netns
@pytest.mark.integration
def test_port_in_use_fails_fast_with_exit_1(
    servers: Callable[[int], subprocess.Popen[bytes]],
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        proc = servers(taken.getsockname()[1])
        assert proc.wait(timeout=60) == 1


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
