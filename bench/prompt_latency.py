"""Prompt latency, queued throughput and cached re-run of a trivial prompt.

The prompt is EmptyImage(64x64) -> ImageInvert -> SaveImage. Measured for `comfyray serve`
with `--workers 1` and `--workers 2` (real HTTP + WebSocket, local Ray), and for a baseline
in the same run: the same engine and node library in this one process (tests/engine/harness.py,
no Ray, no HTTP), standing for ComfyUI's single process on the same machine.

1. latency: POST /prompt (client_id set) until the WS says `executing {node: null}` for
   that prompt, one prompt at a time, every prompt new (nothing cached): median and p90 ms;
2. throughput: N new prompts submitted as fast as possible, until each one's executing-null
   arrived: prompts per second from the first POST to the last finish;
3. cached: the same prompt again and again after a first run: median ms.

Starts a real local Ray: run it inside a loopback-only namespace, e.g.
    cd /work/main && PYTHONPATH=. /work/shared/tools/netns-run \
        .venv/bin/python bench/prompt_latency.py [--quick] [--json FILE] [--record]
The last line of stdout is the results as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as a script: make `bench.*` and the project importable from the checkout.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    BaselineDriver,
    Driver,
    ServerDriver,
    Summary,
    bench_prompt,
    breakdown_ms,
    cpu_used_ms,
    fmt,
    loopback_only,
    namespace_cpu,
    ratio,
    ray_call_probe,
    record_sections,
    summarize_ms,
)

logger = logging.getLogger(__name__)

# ComfyUI measured on the reference machine (the issue): one trivial prompt end to end,
# and prompts per second through its queue.
REFERENCE_LATENCY_MS = 9.0
REFERENCE_THROUGHPUT_PPS = 120.0
WARMUP_PROMPTS = 3
PROMPT_TIMEOUT_S = 60.0
THROUGHPUT_TIMEOUT_S = 180.0
SUBMIT_CONCURRENCY = 16
PROBE_CALLS = 30
CPU_ROWS = 8
STAGES = (
    "post_to_reply",
    "post_to_execution_start",
    "execution_start_to_success",
    "success_to_client",
)


@dataclass
class Counts:
    latency: int
    throughput: int
    cached: int


@dataclass
class Throughput:
    pps: float
    submitted_s: float  # until every submit was acknowledged
    total_s: float  # until every prompt finished
    # CPU time of every process in the namespace (client, server, Ray) over the phase, per
    # prompt: a cost that a busy shared machine distorts much less than wall time.
    cpu_ms_per_prompt: float
    cpu_ms_per_prompt_by_process: dict[str, float] = field(default_factory=dict)


@dataclass
class TargetResult:
    name: str
    latency: Summary
    submit: Summary  # the latency prompts' submit part: POST until its reply
    throughput: Throughput
    cached: Summary
    startup_s: float | None = None
    probes: dict[str, Summary] = field(default_factory=dict)
    # prompt ids of each measured phase, and the median ms of each stage of their path
    ids: dict[str, list[str]] = field(default_factory=dict)
    breakdown: dict[str, dict[str, float]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "latency_ms": self.latency.as_dict(),
            "submit_ms": self.submit.as_dict(),
            "throughput_pps": round(self.throughput.pps, 2),
            "throughput_submitted_s": round(self.throughput.submitted_s, 3),
            "throughput_total_s": round(self.throughput.total_s, 3),
            "throughput_cpu_ms_per_prompt": round(self.throughput.cpu_ms_per_prompt, 1),
            "throughput_cpu_ms_per_prompt_by_process": {
                k: round(v, 2) for k, v in self.throughput.cpu_ms_per_prompt_by_process.items()
            },
            "cached_ms": self.cached.as_dict(),
            "startup_s": None if self.startup_s is None else round(self.startup_s, 2),
            "probes_ms": {k: v.as_dict() for k, v in self.probes.items()},
            "breakdown_median_ms": self.breakdown,
        }


class Tags:
    """Fresh tags for prompts that no earlier prompt of this run can have cached."""

    def __init__(self, start: int) -> None:
        self._next = start

    def take(self, n: int) -> list[int]:
        out = list(range(self._next, self._next + n))
        self._next += n
        return out


@dataclass
class Sample:
    prompt_id: str
    submit_s: float  # until the submit was acknowledged
    total_s: float  # until the prompt finished


async def run_one(driver: Driver, prompt: dict[str, Any]) -> Sample:
    """One prompt, start to finish."""
    prompt_id = str(uuid.uuid4())
    began = time.perf_counter()
    finished = driver.expect(prompt_id)
    await driver.submit(prompt, prompt_id)
    acked = time.perf_counter()
    done_at = await asyncio.wait_for(finished, PROMPT_TIMEOUT_S)
    return Sample(prompt_id, acked - began, done_at - began)


async def measure_latency(driver: Driver, tags: list[int]) -> list[Sample]:
    return [await run_one(driver, bench_prompt(tag)) for tag in tags]


async def measure_throughput(driver: Driver, tags: list[int]) -> Throughput:
    ids = [str(uuid.uuid4()) for _ in tags]
    finished = [driver.expect(prompt_id) for prompt_id in ids]
    gate = asyncio.Semaphore(SUBMIT_CONCURRENCY)

    async def submit(tag: int, prompt_id: str) -> None:
        async with gate:
            await driver.submit(bench_prompt(tag), prompt_id)

    cpu_before = namespace_cpu()
    began = time.perf_counter()
    await asyncio.gather(*(submit(t, i) for t, i in zip(tags, ids, strict=True)))
    submitted = time.perf_counter() - began
    done = await asyncio.wait_for(asyncio.gather(*finished), THROUGHPUT_TIMEOUT_S)
    used = cpu_used_ms(cpu_before, namespace_cpu())
    total = max(done) - began
    n = len(tags)
    by_process = {k: v / n for k, v in sorted(used.items(), key=lambda kv: -kv[1])}
    return Throughput(n / total, submitted, total, sum(used.values()) / n, by_process)


async def measure_cached(driver: Driver, tag: int, n: int) -> list[Sample]:
    prompt = bench_prompt(tag)
    await run_one(driver, prompt)  # the first run computes and caches every node
    return [await run_one(driver, prompt) for _ in range(n)]


async def measure(name: str, driver: Driver, counts: Counts, tags: Tags) -> TargetResult:
    for tag in tags.take(WARMUP_PROMPTS):
        await run_one(driver, bench_prompt(tag))
    samples = await measure_latency(driver, tags.take(counts.latency))
    latency = summarize_ms([s.total_s for s in samples])
    print(f"  {name}: latency median {latency.median:.1f} ms, p90 {latency.p90:.1f} ms", flush=True)
    throughput = await measure_throughput(driver, tags.take(counts.throughput))
    print(
        f"  {name}: throughput {throughput.pps:.1f} prompts/s ({throughput.total_s:.2f} s, "
        f"{throughput.cpu_ms_per_prompt:.0f} CPU ms per prompt)",
        flush=True,
    )
    cached_samples = await measure_cached(driver, tags.take(1)[0], counts.cached)
    cached = summarize_ms([s.total_s for s in cached_samples])
    print(f"  {name}: cached median {cached.median:.1f} ms", flush=True)
    submit = summarize_ms([s.submit_s for s in samples])
    result = TargetResult(name, latency, submit, throughput, cached)
    result.ids = {
        "latency": [s.prompt_id for s in samples],
        "cached": [s.prompt_id for s in cached_samples],
    }
    return result


async def probe(call: Callable[[], Awaitable[Any]], n: int = PROBE_CALLS) -> Summary:
    times = []
    for _ in range(n):
        began = time.perf_counter()
        await call()
        times.append(time.perf_counter() - began)
    return summarize_ms(times)


async def bench_baseline(base: Path, counts: Counts, tags: Tags) -> TargetResult:
    driver = await BaselineDriver.open(base)
    try:
        return await measure("baseline", driver, counts, tags)
    finally:
        await driver.close()


async def bench_server(
    url: str, ws_url: str, name: str, counts: Counts, tags: Tags
) -> TargetResult:
    driver = await ServerDriver.open(url, ws_url)
    try:
        result = await measure(name, driver, counts, tags)
        result.breakdown = {
            phase: breakdown_ms([driver.marks[i] for i in ids if i in driver.marks])
            for phase, ids in result.ids.items()
        }
        # Where a request's time goes: HTTP through the Serve proxy alone (/features is
        # answered by the replica), then the same plus one controller actor call (/prompt).
        result.probes["http_only"] = await probe(lambda: driver.get("/features"))
        result.probes["http_plus_actor_call"] = await probe(lambda: driver.get("/prompt"))
        return result
    finally:
        await driver.close()


def run_server_target(workers: int, counts: Counts, tags: Tags) -> TargetResult:
    from tests.server_process import start_server

    name = f"ray_w{workers}"
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as base:
        began = time.monotonic()
        server = start_server(
            Path(base), "--workers", str(workers), "--cache-classic", with_stub_pack=False
        )
        startup = time.monotonic() - began
        print(f"{name}: server up in {startup:.1f} s", flush=True)
        try:
            result = asyncio.run(bench_server(server.url, server.ws_url, name, counts, tags))
        except BaseException:
            print(server.log()[-3000:], file=sys.stderr)
            raise
        finally:
            server.stop()
    result.startup_s = startup
    return result


def ratios(results: list[TargetResult]) -> dict[str, Any]:
    base = next((r for r in results if r.name == "baseline"), None)
    out: dict[str, Any] = {}
    for r in results:
        out[r.name] = {
            "latency_vs_baseline": ratio(r.latency.median, base.latency.median if base else None),
            "throughput_vs_baseline": ratio(
                r.throughput.pps, base.throughput.pps if base else None
            ),
            "cached_vs_baseline": ratio(r.cached.median, base.cached.median if base else None),
            "latency_vs_reference": ratio(r.latency.median, REFERENCE_LATENCY_MS),
            "throughput_vs_reference": ratio(r.throughput.pps, REFERENCE_THROUGHPUT_PPS),
        }
    return out


def results_sections(report: dict[str, Any], command: str) -> dict[str, str]:
    """Our three sections of bench/RESULTS.md."""
    results = report["results"]
    machine = report["machine"]
    head = (
        f"`{command}`, {report['date']}, {machine['cpus']} CPUs ({machine['arch']}, shared "
        f"with other work: load average {machine['loadavg_start']:.1f} before, "
        f"{machine['loadavg_end']:.1f} after), `--cache-classic`, "
        f"`http_proxy: {report['http_proxy']}`. Prompt: EmptyImage(64x64) -> ImageInvert -> SaveImage. "
        "baseline = the same engine and node library in one process (tests/engine/harness.py, "
        "no Ray, no HTTP), measured in the same run; reference = ComfyUI on the reference "
        f"machine (the issue): {REFERENCE_LATENCY_MS:.0f} ms per prompt, "
        f"{REFERENCE_THROUGHPUT_PPS:.0f} prompts/s.\n\n"
    )

    def vs(name: str, key: str) -> str:
        return fmt(report["ratios"][name].get(key), 2)

    latency_rows = "\n".join(
        f"| {n} | {r['latency_ms']['median']:.1f} | {r['latency_ms']['p90']:.1f} "
        f"| {r['submit_ms']['median']:.1f} | {vs(n, 'latency_vs_baseline')} "
        f"| {vs(n, 'latency_vs_reference')} |"
        for n, r in results.items()
    )
    probe_rows = "\n".join(
        f"| {n} | {p} | {s['median']:.2f} | {s['p90']:.2f} |"
        for n, r in results.items()
        for p, s in r["probes_ms"].items()
    )
    throughput_rows = "\n".join(
        f"| {n} | {report['counts']['throughput']} | {r['throughput_submitted_s']:.2f} "
        f"| {r['throughput_total_s']:.2f} | {r['throughput_pps']:.1f} "
        f"| {r['throughput_cpu_ms_per_prompt']:.1f} "
        f"| {vs(n, 'throughput_vs_baseline')} | {vs(n, 'throughput_vs_reference')} |"
        for n, r in results.items()
    )
    cpu_rows = "\n".join(
        f"| {n} | {label} | {ms:.1f} |"
        for n, r in results.items()
        for label, ms in list(r["throughput_cpu_ms_per_prompt_by_process"].items())[:CPU_ROWS]
    )
    cached_rows = "\n".join(
        f"| {n} | {r['cached_ms']['median']:.1f} | {r['cached_ms']['p90']:.1f} "
        f"| {vs(n, 'cached_vs_baseline')} |"
        for n, r in results.items()
    )
    stage_rows = "\n".join(
        f"| {n} | {phase} | " + " | ".join(fmt(stages.get(k)) for k in STAGES) + " |"
        for n, r in results.items()
        for phase, stages in r["breakdown_median_ms"].items()
    )
    ray_probe = report.get("ray_call_probe_ms") or {}
    ray_rows = "\n".join(
        f"| {k} | {v['median']:.2f} | {v['p90']:.2f} |" for k, v in ray_probe.items()
    )
    latency = (
        head + f"Sequential, {report['counts']['latency']} new prompts each (after "
        f"{WARMUP_PROMPTS} warm-up prompts): POST /prompt with client_id until the WS "
        "`executing {node: null}` of that prompt (baseline: controller.submit until its history "
        "entry is present). submit = POST until its reply.\n\n"
        "| target | median ms | p90 ms | submit median ms | x baseline | x reference |\n"
        "|---|---|---|---|---|---|\n" + latency_rows + "\n\n"
        "Where the time goes (median ms; wall clock shared by all processes, the "
        "controller's event timestamps are whole ms): POST until its reply; POST until the "
        "controller's `execution_start`; `execution_start` until `execution_success` (the "
        "node calls on the workers); `execution_success` until it reached the WS client.\n\n"
        "| target | prompts | POST->reply | POST->start | start->success | success->client |\n"
        "|---|---|---|---|---|---|\n" + stage_rows + "\n\n"
        "Probes (ms, 30 calls each): `http_only` = GET /features (answered by the ingress "
        "replica), `http_plus_actor_call` = GET /prompt (one controller actor call).\n\n"
        "| target | probe | median ms | p90 ms |\n|---|---|---|---|\n" + probe_rows + "\n"
    )
    if ray_rows:
        latency += (
            "\nBare Ray actor calls on this machine (a fresh local Ray, no comfyray code):\n\n"
            "| call | median ms | p90 ms |\n|---|---|---|\n" + ray_rows + "\n"
        )
    throughput = (
        head + f"New prompts submitted as fast as possible ({SUBMIT_CONCURRENCY} POSTs in "
        "flight), then waited for until each one's `executing {node: null}`; prompts/s = "
        "count / (last finish - first POST). CPU ms/prompt = CPU time (user + system) of "
        "every process in the namespace (this client, the server, Ray) over the phase, per "
        "prompt: less distorted by other work on the machine than wall time.\n\n"
        "| target | prompts | all submitted s | all finished s | prompts/s | CPU ms/prompt "
        "| x baseline | x reference |\n|---|---|---|---|---|---|---|---|\n"
        + throughput_rows
        + f"\n\nCPU ms per prompt by process (top {CPU_ROWS} of each target):\n\n"
        "| target | process | CPU ms/prompt |\n|---|---|---|\n" + cpu_rows + "\n"
    )
    cached = (
        head + f"The same prompt {report['counts']['cached']} times, sequentially, after one "
        "first run that computed it; every node is a cache hit.\n\n"
        "| target | median ms | p90 ms | x baseline |\n|---|---|---|---|\n" + cached_rows + "\n"
    )
    suffix = "" if report["http_proxy"] == "python" else f" (http_proxy: {report['http_proxy']})"
    return {
        "latency" + suffix: latency,
        "throughput" + suffix: throughput,
        "cached" + suffix: cached,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: a few prompts each")
    parser.add_argument("--latency", type=int, default=30, help="sequential prompts (30)")
    parser.add_argument("--throughput", type=int, default=100, help="queued prompts (100)")
    parser.add_argument("--cached", type=int, default=30, help="cached re-runs (30)")
    parser.add_argument(
        "--workers", default="1,2", help="comma-separated --workers values to serve (1,2)"
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the in-process baseline")
    parser.add_argument("--no-ray-probe", action="store_true", help="skip bare Ray call timings")
    parser.add_argument("--json", type=Path, help="also write the JSON results to this file")
    parser.add_argument("--record", action="store_true", help="write our RESULTS.md sections")
    parser.add_argument(
        "--http-proxy",
        choices=("python", "haproxy"),
        default="python",
        help="the server's http_proxy setting (python); haproxy records its own sections",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not loopback_only():
        print("refusing to start Ray outside a loopback-only namespace: use netns-run")
        return 2
    logging.basicConfig(level=logging.WARNING)
    # The harness loads the test stub packs, some of which fail on purpose: not news here.
    logging.getLogger("node_actors.custom_nodes").setLevel(logging.CRITICAL)
    # start_server passes our environment on to `comfyray serve`.
    os.environ["COMFYRAY_HTTP_PROXY"] = args.http_proxy
    counts = Counts(5, 10, 5) if args.quick else Counts(args.latency, args.throughput, args.cached)
    workers = [int(w) for w in args.workers.split(",") if w.strip()]
    tags = Tags(1)
    load_start = os.getloadavg()[0]
    results: list[TargetResult] = []
    if not args.no_baseline:
        with tempfile.TemporaryDirectory(prefix="bench-baseline-") as base:
            print("baseline: in-process engine", flush=True)
            results.append(asyncio.run(bench_baseline(Path(base), counts, tags)))
    for count in workers:
        results.append(run_server_target(count, counts, tags))
    ray_probe = {} if args.no_ray_probe else ray_call_probe(200 if not args.quick else 30)
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {
            "cpus": os.cpu_count(),
            "arch": platform.machine(),
            "python": sys.version.split()[0],
            "loadavg_start": load_start,
            "loadavg_end": os.getloadavg()[0],
        },
        "counts": vars(counts),
        "http_proxy": args.http_proxy,
        "reference": {
            "latency_ms": REFERENCE_LATENCY_MS,
            "throughput_pps": REFERENCE_THROUGHPUT_PPS,
        },
        "results": {r.name: r.as_dict() for r in results},
        "ratios": ratios(results),
        "ray_call_probe_ms": {k: v.as_dict() for k, v in ray_probe.items()},
    }
    command = (
        "cd /work/main && PYTHONPATH=. /work/shared/tools/netns-run "
        f".venv/bin/python bench/prompt_latency.py {' '.join(sys.argv[1:])}"
    ).strip()
    sections = results_sections(report, command)
    for name, text in sections.items():
        print(f"\n## {name}\n\n{text}")
    if args.record:
        record_sections(sections)
    line = json.dumps(report)
    if args.json:
        args.json.write_text(line + "\n")
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
