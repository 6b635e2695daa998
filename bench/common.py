"""Shared pieces of the prompt benchmarks: the benchmark prompt, statistics, the
loopback-namespace guard, the writer of `bench/RESULTS.md` sections, and the drivers that
submit a prompt and learn when it finished (over HTTP + WS, or in process)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import re
import statistics
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "RESULTS.md"

logger = logging.getLogger(__name__)


def bench_prompt(tag: int, size: int = 64) -> dict[str, Any]:
    """EmptyImage -> ImageInvert -> SaveImage; a new `tag` changes the color and the file
    prefix, so no node's cache key matches an earlier prompt's."""
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": size, "height": size, "batch_size": 1, "color": tag % 0xFFFFFF},
        },
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {
            "class_type": "SaveImage",
            "inputs": {"images": ["2", 0], "filename_prefix": f"bench/p{tag}"},
        },
    }


@dataclass(frozen=True)
class Summary:
    """Milliseconds over `n` samples."""

    n: int
    median: float
    p90: float
    mean: float
    min: float
    max: float

    def as_dict(self) -> dict[str, float | int]:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100): a value that was actually measured."""
    if not values:
        raise ValueError("no samples")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summarize_ms(seconds: Sequence[float]) -> Summary:
    ms = [s * 1000.0 for s in seconds]
    return Summary(
        n=len(ms),
        median=statistics.median(ms),
        p90=percentile(ms, 90),
        mean=statistics.fmean(ms),
        min=min(ms),
        max=max(ms),
    )


def ratio(ours: float | None, other: float | None) -> float | None:
    if ours is None or other is None or other == 0:
        return None
    return round(ours / other, 2)


def loopback_only() -> bool:
    """True inside a network namespace whose only interface is `lo` (netns-run)."""
    lines = Path("/proc/self/net/dev").read_text().splitlines()[2:]
    return [line.split(":")[0].strip() for line in lines] == ["lo"]


def process_label(pid: int, argv: Sequence[str]) -> str:
    """A short name for a process: Ray's title (`ray::ControllerActor`), a Python module
    or script, or the executable."""
    if pid == os.getpid():
        return "benchmark client"
    if not argv:
        return "?"
    first = argv[0]
    if first.startswith("ray::"):
        return re.split(r"[.(\s]", first, maxsplit=1)[0]
    if Path(first).name.startswith("python"):
        if len(argv) > 2 and argv[1] == "-m":
            return argv[2]
        scripts = [a for a in argv[1:] if not a.startswith("-")]
        return Path(scripts[0]).name if scripts else first
    return Path(first).name


def namespace_cpu(proc: Path = Path("/proc")) -> dict[int, tuple[str, float]]:
    """pid -> (label, user + system CPU seconds) of every live process in `proc`. Inside
    netns-run's PID namespace that is this benchmark, the server and all its Ray processes."""
    out: dict[int, tuple[str, float]] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # the process exited meanwhile
            continue
        # After the parenthesised command name come fields 3..; utime and stime are 14, 15.
        fields = stat.rsplit(")", 1)[1].split()
        label = process_label(int(entry.name), [a.decode(errors="replace") for a in argv if a])
        out[int(entry.name)] = (label, (int(fields[11]) + int(fields[12])) / tick)
    return out


def cpu_used_ms(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]
) -> dict[str, float]:
    """CPU ms spent between two `namespace_cpu` snapshots, by process label."""
    used: dict[str, float] = {}
    for pid, (label, seconds) in after.items():
        spent = seconds - before.get(pid, (label, 0.0))[1]
        if spent > 0:
            used[label] = used.get(label, 0.0) + spent * 1000.0
    return used


def replace_sections(text: str, sections: dict[str, str]) -> str:
    """`text` with each `## name` section replaced by its new body (appended when missing);
    every other section, e.g. another benchmark's, is kept as it was."""
    if not text.strip():
        text = "# Benchmark results\n"
    for name, body in sections.items():
        block = f"## {name}\n\n{body.strip()}\n"
        header = f"\n## {name}\n"
        start = text.find(header)
        if start < 0:
            text = text.rstrip("\n") + "\n\n" + block
            continue
        end = text.find("\n## ", start + 1)
        rest = text[end + 1 :] if end >= 0 else ""
        text = text[: start + 1] + block + ("\n" + rest if rest else "")
    return text if text.endswith("\n") else text + "\n"


def record_sections(sections: dict[str, str], path: Path = RESULTS) -> None:
    """Rewrite only our sections of RESULTS.md, read just before writing: another
    benchmark owns other sections of the same file."""
    text = path.read_text() if path.exists() else ""
    path.write_text(replace_sections(text, sections))


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


# --- drivers: how a benchmark submits a prompt and learns that it finished -------------------

CLIENT_ID_PREFIX = "bench-"


class PromptFailedError(RuntimeError):
    """A benchmark prompt was rejected or did not run to success."""


class Driver(Protocol):
    def expect(self, prompt_id: str) -> asyncio.Future[float]:
        """A future of the perf_counter time at which `prompt_id` finished; call it before
        submitting, so a fast finish is never missed."""
        ...

    async def submit(self, prompt: dict[str, Any], prompt_id: str) -> None: ...


class Completions:
    """Finish times by prompt id, filled in by whoever watches the events."""

    def __init__(self) -> None:
        self._waiting: dict[str, asyncio.Future[float]] = {}
        self._errors: dict[str, str] = {}

    def expect(self, prompt_id: str) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiting[prompt_id] = future
        return future

    def failed(self, prompt_id: str, message: str) -> None:
        self._errors[prompt_id] = message

    def finished(self, prompt_id: str, at: float) -> None:
        future = self._waiting.pop(prompt_id, None)
        if future is None or future.done():
            return
        error = self._errors.pop(prompt_id, None)
        if error is not None:
            future.set_exception(PromptFailedError(f"prompt {prompt_id}: {error}"))
        else:
            future.set_result(at)

    def abort(self, reason: str) -> None:
        for prompt_id, future in self._waiting.items():
            if not future.done():
                future.set_exception(PromptFailedError(f"prompt {prompt_id}: {reason}"))
        self._waiting.clear()


def _watch_message(completions: Completions, kind: str | None, data: Any, at: float) -> None:
    if not isinstance(data, dict):
        return
    prompt_id = data.get("prompt_id")
    if not isinstance(prompt_id, str):
        return
    if kind in ("execution_error", "execution_interrupted"):
        completions.failed(prompt_id, f"{kind}: {data.get('exception_message', '')}")
    elif kind == "executing" and data.get("node") is None:
        completions.finished(prompt_id, at)


def wall_ms() -> float:
    return time.time() * 1000.0


@dataclass
class PathMarks:
    """Wall-clock ms along one prompt's path. The clock is shared by every process on the
    machine, so the controller's own event timestamps (whole ms) line up with ours."""

    post: float = math.nan
    reply: float = math.nan
    start_ts: float = math.nan  # execution_start's timestamp, set by the controller
    success_ts: float = math.nan  # execution_success's timestamp
    success_rx: float = math.nan  # when execution_success reached this client


def breakdown_ms(marks: Sequence[PathMarks]) -> dict[str, float]:
    """Median ms of each stage of a prompt's path (stages with no data are left out)."""
    stages = {
        "post_to_reply": lambda m: m.reply - m.post,
        "post_to_execution_start": lambda m: m.start_ts - m.post,
        "execution_start_to_success": lambda m: m.success_ts - m.start_ts,
        "success_to_client": lambda m: m.success_rx - m.success_ts,
    }
    out: dict[str, float] = {}
    for name, stage in stages.items():
        values = [v for v in (stage(m) for m in marks) if not math.isnan(v)]
        if values:
            out[name] = round(statistics.median(values), 1)
    return out


class ServerDriver:
    """A ComfyUI client of a running server: POST /prompt and one `/ws` with its client id."""

    def __init__(self, http: httpx.AsyncClient, ws: ClientConnection, client_id: str) -> None:
        self._http = http
        self._ws = ws
        self.client_id = client_id
        self._completions = Completions()
        self.marks: dict[str, PathMarks] = {}
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def open(cls, url: str, ws_url: str) -> ServerDriver:
        client_id = CLIENT_ID_PREFIX + uuid.uuid4().hex
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
        http = httpx.AsyncClient(base_url=url, timeout=30.0, limits=limits)
        ws = await connect(f"{ws_url}?clientId={client_id}", max_size=None, open_timeout=10)
        first = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if first.get("type") != "status":
            raise PromptFailedError(f"first WS message is not a status: {first}")
        return cls(http, ws, client_id)

    async def _read(self) -> None:
        try:
            async for message in self._ws:
                at = time.perf_counter()
                if isinstance(message, bytes):
                    continue
                decoded = json.loads(message)
                kind, data = decoded.get("type"), decoded.get("data")
                self._mark(kind, data)
                _watch_message(self._completions, kind, data, at)
        except ConnectionClosed:
            pass
        finally:
            self._completions.abort("the websocket closed")

    def _mark(self, kind: Any, data: Any) -> None:
        if kind not in ("execution_start", "execution_success") or not isinstance(data, dict):
            return
        marks = self.marks.get(str(data.get("prompt_id")))
        if marks is None:
            return
        if kind == "execution_start":
            marks.start_ts = float(data.get("timestamp", math.nan))
        else:
            marks.success_ts = float(data.get("timestamp", math.nan))
            marks.success_rx = wall_ms()

    def expect(self, prompt_id: str) -> asyncio.Future[float]:
        return self._completions.expect(prompt_id)

    async def submit(self, prompt: dict[str, Any], prompt_id: str) -> None:
        body = {"prompt": prompt, "client_id": self.client_id, "prompt_id": prompt_id}
        marks = self.marks.setdefault(prompt_id, PathMarks(post=wall_ms()))
        reply = await self._http.post("/prompt", json=body)
        marks.reply = wall_ms()
        if reply.status_code != 200:
            raise PromptFailedError(f"POST /prompt: {reply.status_code} {reply.text[:500]}")
        answer = reply.json()
        if answer.get("prompt_id") != prompt_id or answer.get("node_errors"):
            raise PromptFailedError(f"POST /prompt answered {answer}")

    async def get(self, path: str) -> None:
        (await self._http.get(path)).raise_for_status()

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader
        await self._ws.close()
        await self._http.aclose()


class BaselineDriver:
    """The in-process engine (tests/engine/harness.py): the real controller, runner and node
    library over worker threads. A prompt is finished when its history entry is present,
    checked whenever the controller's event log moves."""

    def __init__(self, controller: Any) -> None:
        self._controller = controller
        self._completions = Completions()
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    @classmethod
    async def open(cls, base_dir: Path) -> BaselineDriver:
        from tests.engine.harness import make_harness

        harness = await make_harness(base_dir, cache_mode="classic", concurrent=1)
        return cls(harness.controller)

    async def _watch(self) -> None:
        events = self._controller.events
        seq = events.last_seq
        while True:
            batch = await events.wait_since(seq, 1.0)
            at = time.perf_counter()
            for event in batch:
                seq = event.seq
                data = event.data
                if event.type == "executing" and data.get("prompt_id") in self._controller.history:
                    _watch_message(self._completions, event.type, data, at)
                elif event.type != "executing":
                    _watch_message(self._completions, event.type, data, at)

    def expect(self, prompt_id: str) -> asyncio.Future[float]:
        return self._completions.expect(prompt_id)

    async def submit(self, prompt: dict[str, Any], prompt_id: str) -> None:
        body = {
            "prompt": prompt,
            "client_id": CLIENT_ID_PREFIX + "baseline",
            "prompt_id": prompt_id,
        }
        answer = await self._controller.submit(body)
        if answer.get("node_errors"):
            raise PromptFailedError(f"submit answered {answer}")

    async def close(self) -> None:
        self._watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._watcher
        await self._controller.shutdown()


def ray_call_probe(n: int) -> dict[str, Summary]:
    """Bare Ray call costs on this machine, in a fresh local Ray with no comfyray code: a
    driver's call to an actor (as an ingress replica's call to the controller), and a chain
    of calls from an async actor to a threaded actor with two returns, each taking the
    previous call's output ref (as the controller's run_node calls down a node chain)."""
    import ray

    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=128 * 1024 * 1024,
        log_to_driver=False,
        logging_level=logging.WARNING,
    )
    try:

        @ray.remote(num_cpus=0, concurrency_groups={"run": 8})
        class Node:
            def ping(self) -> int:
                return 0

            @ray.method(concurrency_group="run", num_returns=2)
            def run(self, *upstream: Any) -> tuple[dict[str, str], list[Any]]:
                return {"status": "done"}, [list(upstream)[:0]]

        @ray.remote(num_cpus=0, max_concurrency=1000)
        class Control:
            async def chain(self, node: Any, n: int) -> list[float]:
                times, previous = [], []
                for _ in range(n):
                    began = time.perf_counter()
                    meta, out = node.run.remote(*previous)
                    await meta
                    times.append(time.perf_counter() - began)
                    previous = [out]
                return times

        node = Node.remote()
        control = Control.remote()
        ray.get(node.ping.remote())
        ray.get(control.chain.remote(node, 5))
        driver_times = []
        for _ in range(n):
            began = time.perf_counter()
            ray.get(node.ping.remote())
            driver_times.append(time.perf_counter() - began)
        chain_times = ray.get(control.chain.remote(node, n))
        return {
            "driver_to_actor": summarize_ms(driver_times),
            "actor_to_threaded_actor_2_returns": summarize_ms(chain_times),
        }
    finally:
        ray.shutdown()
