"""Startup benchmark of `comfyray serve`: seconds from process start to a usable server.

Measures, from the moment the `comfyray serve` process is spawned:
- the first WebSocket `/ws` connection that receives its `status` message;
- the first `GET /history` answered 200;
then how long a SIGTERM takes to stop it. Prints each run and the ratio to the 15 s target
(a cold ComfyUI needs about 16 s on the reference machine).

Starts a real local Ray: run it inside a loopback-only namespace, e.g.
    scripts/netns-run .venv/bin/python bench/startup.py --runs 3 --record
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
from websockets.sync.client import connect

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "RESULTS.md"
STUB_FACTORY = "tests.integration.serve_stub:deploy"
TARGET_S = 15.0
TIMEOUT_S = 180.0


@dataclass
class Run:
    ws_s: float
    history_s: float
    stop_s: float
    exit_code: int


def loopback_only() -> bool:
    lines = Path("/proc/self/net/dev").read_text().splitlines()[2:]
    return [line.split(":")[0].strip() for line in lines] == ["lo"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def first_history(port: int, began: float, deadline: float) -> float | None:
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            try:
                if client.get(f"http://127.0.0.1:{port}/history").status_code == 200:
                    return time.monotonic() - began
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
    return None


def first_ws_status(port: int, began: float, deadline: float) -> float | None:
    while time.monotonic() < deadline:
        try:
            with connect(f"ws://127.0.0.1:{port}/ws?clientId=bench", open_timeout=2) as ws:
                message = json.loads(ws.recv(timeout=5))
                if message.get("type") == "status":
                    return time.monotonic() - began
        except Exception:  # refused, handshake rejected, closed early: not ready yet
            pass
        time.sleep(0.05)
    return None


def one_run(factory: str | None, log: Path) -> Run:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMFYRAY_")}
    env.pop("RAY_ADDRESS", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    if factory:
        env["COMFYRAY_INGRESS_FACTORY"] = factory
    comfyray = str(Path(sys.executable).with_name("comfyray"))
    with tempfile.TemporaryDirectory() as base, log.open("ab") as out:
        began = time.monotonic()
        proc = subprocess.Popen(
            [comfyray, "serve", "--port", str(port), "--base-directory", base],
            env=env,
            cwd=base,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = began + TIMEOUT_S
            with ThreadPoolExecutor(max_workers=2) as pool:
                ws = pool.submit(first_ws_status, port, began, deadline)
                history = pool.submit(first_history, port, began, deadline)
                ws_s, history_s = ws.result(), history.result()
            if ws_s is None or history_s is None:
                raise SystemExit(f"server not ready within {TIMEOUT_S:.0f}s; see {log}")
            stopping = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=120)
            return Run(ws_s, history_s, time.monotonic() - stopping, code)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def record(section: str) -> None:
    """Replace the `## startup` section of RESULTS.md, keeping every other section."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    start = text.find("\n## startup\n")
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + 1)
        text = text[: start + 1] + section + (text[end + 1 :] if end >= 0 else "")
    RESULTS.write_text(text if text.endswith("\n") else text + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument(
        "--ingress",
        help="module:function deploying the app. Default: serve_app.ingress:deploy when it "
        f"exists, else the stub {STUB_FACTORY}",
    )
    parser.add_argument("--record", action="store_true", help="write the startup section")
    args = parser.parse_args()
    if not loopback_only():
        print("refusing to start Ray outside a loopback-only namespace: use scripts/netns-run")
        return 2
    factory = args.ingress
    if factory is None and importlib.util.find_spec("serve_app.ingress") is None:
        factory = STUB_FACTORY
    label = factory or "serve_app.ingress:deploy"
    log = Path(tempfile.gettempdir()) / "comfyray-bench-startup.log"
    runs = []
    for index in range(args.runs):
        run = one_run(factory, log)
        runs.append(run)
        print(
            f"run {index + 1}: /ws status {run.ws_s:.2f}s, /history 200 {run.history_s:.2f}s, "
            f"ratio to {TARGET_S:.0f}s target {max(run.ws_s, run.history_s) / TARGET_S:.2f}, "
            f"SIGTERM stop {run.stop_s:.2f}s (exit {run.exit_code})",
            flush=True,
        )
    ready = [max(r.ws_s, r.history_s) for r in runs]
    median = statistics.median(ready)
    print(f"median ready {median:.2f}s = {median / TARGET_S:.2f} x the {TARGET_S:.0f}s target")
    if args.record:
        rows = "\n".join(
            f"| {i + 1} | {r.ws_s:.2f} | {r.history_s:.2f} | "
            f"{max(r.ws_s, r.history_s) / TARGET_S:.2f} | {r.stop_s:.2f} |"
            for i, r in enumerate(runs)
        )
        record(
            "## startup\n\n"
            f"`scripts/netns-run .venv/bin/python bench/startup.py --runs {args.runs} --record`, "
            f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs, {platform.machine()}, "
            f"ingress `{label}`. Seconds from spawning `comfyray serve` (local Ray, 512 MiB "
            "object store) to the first `/ws` status message and the first `GET /history` "
            "200; ratio = the later of the two / 15 s target; stop = SIGTERM to exit.\n\n"
            "| run | /ws status s | /history 200 s | ratio to 15 s | stop s |\n"
            "|---|---|---|---|---|\n"
            f"{rows}\n\n"
            f"Median ready: {median:.2f} s ({median / TARGET_S:.2f} x target).\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
