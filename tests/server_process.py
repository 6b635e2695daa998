"""Start `comfyray serve` as a user would, for black-box tests and benchmarks."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
STUB_PACKS = REPO / "tests" / "stub_pack"


# Below the kernel's ephemeral range (32768-60999), where an outgoing connection of any
# process could take the port between our check and the server's bind, and above Ray's worker
# ports (10002-19999).
_TEST_PORTS = range(21000, 30000)


def free_port() -> int:
    for _ in range(200):
        port = random.choice(_TEST_PORTS)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {_TEST_PORTS}")


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


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    port: int
    base_dir: Path
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30.0) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def write_extra_model_paths(base_dir: Path, custom_nodes: Path = STUB_PACKS) -> Path:
    path = base_dir / "extra_model_paths.yaml"
    path.write_text(f"comfyray_tests:\n  custom_nodes: {custom_nodes}\n")
    return path


def start_server(
    base_dir: Path,
    *extra_args: str,
    port: int | None = None,
    with_stub_pack: bool = True,
    timeout: float = 90.0,
) -> ServerProcess:
    """Start the server and wait until GET /history answers 200 (bounded)."""
    base_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    args = [
        sys.executable,
        "-m",
        "serve_app.cli",
        "serve",
        "--port",
        str(port),
        "--base-directory",
        str(base_dir),
        *extra_args,
    ]
    if with_stub_pack:
        args += ["--extra-model-paths-config", str(write_extra_model_paths(base_dir))]
    log_path = base_dir / f"server-{port}.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log_path.open("wb") as log:
        process = subprocess.Popen(args, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
    server = ServerProcess(process, port, base_dir, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{server.log()[-4000:]}")
        try:
            if httpx.get(f"{server.url}/history", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    server.stop()
    raise TimeoutError(f"server did not answer within {timeout}s:\n{server.log()[-4000:]}")
