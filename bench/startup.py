"""Startup benchmark of `comfyray serve`: seconds from process start to a usable server.

Measures, from the moment the `comfyray serve` process is spawned:
- the first WebSocket `/ws` connection that receives its `status` message;
- the first `GET /history` answered 200;
then how long a SIGTERM takes to stop it. Prints each run and the ratio to the 15 s target
(a cold ComfyUI needs about 16 s on the reference machine).

Starts a real local Ray: run it inside a loopback-only namespace, e.g.
    scripts/netns-run .venv/bin/python bench/startup.py --runs 3 --record
`--ingress tests.integration.serve_stub:deploy` measures the floor: Ray and Serve with a
trivial app instead of ours.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
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

if __package__ in (None, ""):
    # Run as a script: make `bench.*` and `tests.*` importable from the checkout.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import REPO, loopback_only, ratio, record_sections
from tests.server_process import free_port

REAL_FACTORY = "serve_app.ingress:deploy"
TARGET_S = 15.0
TIMEOUT_S = 180.0


@dataclass
class Run:
    ws_s: float
    history_s: float
    stop_s: float
    exit_code: int
    load_before: float

    @property
    def ready_s(self) -> float:
        return max(self.ws_s, self.history_s)


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
                if json.loads(ws.recv(timeout=5)).get("type") == "status":
                    return time.monotonic() - began
        except Exception:  # refused, handshake rejected, closed early: not ready yet
            pass
        time.sleep(0.05)
    return None


def one_run(factory: str, log: Path) -> Run:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMFYRAY_")}
    env.pop("RAY_ADDRESS", None)
    env["COMFYRAY_INGRESS_FACTORY"] = factory
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    comfyray = str(Path(sys.executable).with_name("comfyray"))
    load_before = os.getloadavg()[0]
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
            return Run(ws_s, history_s, time.monotonic() - stopping, code, load_before)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def section(runs: list[Run], factory: str, argv: list[str]) -> str:
    median = statistics.median(r.ready_s for r in runs)
    rows = "\n".join(
        f"| {i + 1} | {r.ws_s:.2f} | {r.history_s:.2f} | {ratio(r.ready_s, TARGET_S)} | "
        f"{r.stop_s:.2f} | {r.load_before:.1f} |"
        for i, r in enumerate(runs)
    )
    return (
        f"`scripts/netns-run .venv/bin/python bench/startup.py {' '.join(argv)}`, "
        f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs ({platform.machine()}, shared "
        f"with other jobs: see the load column), ingress `{factory}`. Seconds from spawning "
        "`comfyray serve` (local Ray, 512 MiB object store) to the first `/ws` status message "
        "and to the first `GET /history` 200; ratio = the later of the two / the 15 s target; "
        "stop = SIGTERM to exit 0.\n\n"
        "| run | /ws status s | /history 200 s | ratio to 15 s | stop s | load avg before |\n"
        "|---|---|---|---|---|---|\n"
        f"{rows}\n\n"
        f"Median ready: {median:.2f} s ({ratio(median, TARGET_S)} x the target).\n"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument(
        "--ingress",
        default=REAL_FACTORY,
        help=f"module:function deploying the app ({REAL_FACTORY})",
    )
    parser.add_argument("--record", action="store_true", help="write the startup section")
    args = parser.parse_args()
    if not loopback_only():
        print("refusing to start Ray outside a loopback-only namespace: use scripts/netns-run")
        return 2
    log = Path(tempfile.gettempdir()) / "comfyray-bench-startup.log"
    runs = []
    for index in range(args.runs):
        run = one_run(args.ingress, log)
        runs.append(run)
        print(
            f"run {index + 1}: /ws status {run.ws_s:.2f}s, /history 200 {run.history_s:.2f}s, "
            f"ratio to {TARGET_S:.0f}s target {ratio(run.ready_s, TARGET_S)}, "
            f"SIGTERM stop {run.stop_s:.2f}s (exit {run.exit_code}), load {run.load_before:.1f}",
            flush=True,
        )
    median = statistics.median(r.ready_s for r in runs)
    print(f"median ready {median:.2f}s = {ratio(median, TARGET_S)} x the {TARGET_S:.0f}s target")
    if args.record:
        name = "startup" if args.ingress == REAL_FACTORY else f"startup ({args.ingress})"
        record_sections({name: section(runs, args.ingress, sys.argv[1:])})
    return 0


if __name__ == "__main__":
    sys.exit(main())
