"""File transfer through the server against the content store alone: uploads, downloads, Range.

For each store backend (`file`: `comfyray serve` with no store URI, the input area a folder;
`s3`: a SeaweedFS started here, the server given `--store-uri`), one real server
(`--workers 1`) and, in the same run, alternating rounds of

- ours: POST /upload/image (multipart, overwrite=true) of S MiB of random bytes named .png
  (the route stores uploads as sent, it decodes nothing), then GET /view?type=input of it,
  streamed and discarded; and GET /view with `Range: bytes=0-1048575`;
- no Serve: the same requests to the same app and routes under plain uvicorn in one process
  (the in-memory cluster double, the same store areas): what Ray Serve's hop adds;
- baseline: the same bytes written and read straight through the store class the server uses
  (storage.content_store.open_store on the input area's URI): what the store can do without
  HTTP, Serve's proxy and the multipart reader.

Reported: MiB/s medians and the ratios ours/baseline and ours/no Serve, the Range latency
against a full download, and how much the peak RSS (VmHWM) of the Serve replica and proxy
(and of the no-Serve process) grows while the file goes through them, against the file size:
a server that streams grows far less.

Starts a real local Ray and an S3 server: run it inside a loopback-only namespace, e.g.
    cd /work/main && PYTHONPATH=. /work/shared/tools/netns-run \
        .venv/bin/python bench/file_transfer.py [--quick] [--size 64] [--rounds 5] [--record]
The last line of stdout is the results as JSON.

The memory watching is in bench/process_memory.py, the RESULTS.md text in
bench/file_transfer_report.py.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

if __package__ in (None, ""):
    # Run as a script: make `bench.*` and the project importable from the checkout.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import REPO, loopback_only, ratio, record_sections
from bench.file_transfer_report import DEFAULT_SIZE_MIB, results_sections
from bench.process_memory import MIB, WATCHED, Memory, MemoryWatch
from storage.areas import area_uris
from storage.content_store import ContentStore, open_store

logger = logging.getLogger(__name__)

CHUNK_BYTES = MIB
RANGE_BYTES = MIB
SMALL_BYTES = MIB
SERVER_KEY = "bench-transfer.png"
NO_SERVE_KEY = "bench-no-serve.png"
BASELINE_KEY = "bench-baseline.png"
BUCKET = "bench-files"
HTTP_TIMEOUT_S = 120.0
# The server's default upload limit is 100 MiB (ComfyUI's --max-upload-size); a larger
# --size raises it for that server, with room for the multipart framing.
DEFAULT_LIMIT_MIB = 100
# The side that runs our app without Ray Serve reads its store areas from here.
NO_SERVE_ENV = "COMFYRAY_BENCH_FILE_AREAS"


@dataclass(frozen=True)
class Payload:
    path: Path
    size: int
    sha256: str

    @classmethod
    def random(cls, path: Path, size: int) -> Payload:
        """`size` random bytes, written in chunks so this process never holds the file."""
        digest = hashlib.sha256()
        with path.open("wb") as out:
            for offset in range(0, size, CHUNK_BYTES):
                chunk = os.urandom(min(CHUNK_BYTES, size - offset))
                digest.update(chunk)
                out.write(chunk)
        return cls(path, size, digest.hexdigest())

    def chunks(self) -> Iterator[bytes]:
        with self.path.open("rb") as source:
            while chunk := source.read(CHUNK_BYTES):
                yield chunk


@dataclass(frozen=True)
class Plan:
    payload: Payload  # the file measured
    small: Payload  # the file that pays the server's first-use costs
    rounds: int


# --- the two sides ----------------------------------------------------------------------------


class Ours:
    """A client of the running server."""

    def __init__(self, url: str, key: str) -> None:
        self._http = httpx.Client(base_url=url, timeout=HTTP_TIMEOUT_S)
        self._key = key

    def upload(self, payload: Payload) -> float:
        began = time.perf_counter()
        with payload.path.open("rb") as source:
            # A file object: httpx streams the multipart body from it.
            reply = self._http.post(
                "/upload/image",
                files={"image": (self._key, source, "image/png")},
                data={"type": "input", "overwrite": "true"},
            )
        elapsed = time.perf_counter() - began
        if reply.status_code != 200 or reply.json().get("name") != self._key:
            raise RuntimeError(f"upload answered {reply.status_code}: {reply.text[:300]}")
        return elapsed

    def download(self, size: int, end: int | None = None, verify: bool = False) -> Download:
        """The file, or its bytes [0, end); streamed to the end and dropped."""
        headers = {} if end is None else {"Range": f"bytes=0-{end - 1}"}
        params = {"filename": self._key, "type": "input"}
        download = Download(verify)
        with self._http.stream("GET", "/view", params=params, headers=headers) as reply:
            expected = 200 if end is None else 206
            if reply.status_code != expected:
                raise RuntimeError(f"/view answered {reply.status_code}, not {expected}")
            download.take(reply.iter_raw(CHUNK_BYTES))
        return download.check(size if end is None else end, "/view")

    def close(self) -> None:
        self._http.close()


class Baseline:
    """The same store class on the same area, called directly."""

    def __init__(self, store: ContentStore, limit: int) -> None:
        self._store = store
        self._limit = limit

    def upload(self, payload: Payload) -> float:
        began = time.perf_counter()
        self._store.write(BASELINE_KEY, payload.chunks(), max_bytes=self._limit)
        return time.perf_counter() - began

    def download(self, size: int, end: int | None = None, verify: bool = False) -> Download:
        download = Download(verify)
        download.take(self._store.read(BASELINE_KEY, 0, end, chunk_size=CHUNK_BYTES))
        return download.check(size if end is None else end, "store read")


class Download:
    """Seconds from creation to the last byte; the sha256 only when asked for, since
    hashing in the measured rounds would slow this client down."""

    def __init__(self, verify: bool) -> None:
        self._began = time.perf_counter()
        self._digest = hashlib.sha256() if verify else None
        self.received = 0
        self.seconds = 0.0

    def take(self, chunks: Iterator[bytes]) -> None:
        for chunk in chunks:
            self.received += len(chunk)
            if self._digest is not None:
                self._digest.update(chunk)
        self.seconds = time.perf_counter() - self._began

    def check(self, expected: int, source: str) -> Download:
        if self.received != expected:
            raise RuntimeError(f"{source} gave {self.received} bytes, not {expected}")
        return self

    @property
    def sha256(self) -> str:
        return "" if self._digest is None else self._digest.hexdigest()


Side = Ours | Baseline


# --- one backend -----------------------------------------------------------------------------


@dataclass
class Samples:
    upload_s: list[float] = field(default_factory=list)
    download_s: list[float] = field(default_factory=list)
    range_s: list[float] = field(default_factory=list)

    def add_round(self, side: Side, payload: Payload) -> None:
        self.upload_s.append(side.upload(payload))
        self.download_s.append(side.download(payload.size).seconds)
        for _ in range(2):
            self.range_s.append(side.download(payload.size, RANGE_BYTES).seconds)

    def summary(self, size: int) -> dict[str, Any]:
        return {
            "upload_mib_s": _stats([size / MIB / s for s in self.upload_s]),
            "download_mib_s": _stats([size / MIB / s for s in self.download_s]),
            "download_ms": _stats([s * 1000 for s in self.download_s]),
            "range_ms": _stats([s * 1000 for s in self.range_s]),
        }


def _stats(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 2),
        "min": round(min(values), 2),
        "max": round(max(values), 2),
        "n": len(values),
    }


def warm_up(side: Side, payload: Payload, memory: Memory | None = None) -> None:
    """One uncounted round that also checks the bytes come back as they went; with
    `memory`, the upload and the download each in a window of their own."""
    with memory.window("upload") if memory else nullcontext():
        side.upload(payload)
    with memory.window("download") if memory else nullcontext():
        if side.download(payload.size, verify=True).sha256 != payload.sha256:
            raise RuntimeError(f"{type(side).__name__}: the download differs from the upload")


def measure(
    name: str, sides: dict[str, Side], memory: dict[str, Memory], plan: Plan
) -> dict[str, Any]:
    # First use costs memory of its own (worker threads, lazy imports, connection pools):
    # paid with a small file before any window opens, so the windows see what grows with
    # the file.
    for side_name in memory:
        warm_up(sides[side_name], plan.small)
    for side_name, side in sides.items():
        warm_up(side, plan.payload, memory.get(side_name))
    measured = {side_name: Samples() for side_name in sides}
    names = list(sides)
    with memory["ours"].window("rounds"), memory["no_serve"].window("rounds"):
        for i in range(plan.rounds):
            # Rotate who goes first, so a burst of other work on the machine is shared.
            for side_name in names[i % len(names) :] + names[: i % len(names)]:
                measured[side_name].add_round(sides[side_name], plan.payload)
            print(f"  {name}: round {i + 1}/{plan.rounds} done", flush=True)
    result: dict[str, Any] = {s: m.summary(plan.payload.size) for s, m in measured.items()}

    def vs(key: str, other: str) -> float | None:
        return ratio(result["ours"][key]["median"], result[other][key]["median"])

    result["ratios"] = {
        "upload": vs("upload_mib_s", "baseline"),
        "download": vs("download_mib_s", "baseline"),
        "upload_vs_no_serve": vs("upload_mib_s", "no_serve"),
        "download_vs_no_serve": vs("download_mib_s", "no_serve"),
        "range_vs_full_download": ratio(
            result["ours"]["range_ms"]["median"], result["ours"]["download_ms"]["median"]
        ),
    }
    result["memory"] = {role: watch for m in memory.values() for role, watch in m.as_dict().items()}
    return result


def no_serve_app() -> Any:
    """`uvicorn --factory` target: our app with no Ray Serve around it, over the in-memory
    cluster double and the store areas named in $COMFYRAY_BENCH_FILE_AREAS."""
    from serve_app.edge import EdgeConfig, EdgeServices
    from serve_app.http.app import build_app
    from serve_app.http.memory_backend import InMemoryBackend

    config = json.loads(os.environ[NO_SERVE_ENV])
    edge = EdgeServices.open(
        EdgeConfig(area_uris=config["area_uris"], max_upload_bytes=config["max_upload_bytes"])
    )
    return build_app(InMemoryBackend(), edge)


@contextmanager
def no_serve_server(base: Path, uris: dict[str, str], limit: int) -> Iterator[tuple[str, int]]:
    """Our app under plain uvicorn in its own process: (url, pid)."""
    from tests.server_process import free_port

    port = free_port()
    env = {
        **os.environ,
        NO_SERVE_ENV: json.dumps({"area_uris": uris, "max_upload_bytes": limit}),
        "PYTHONPATH": str(REPO),
    }
    args = [sys.executable, "-m", "uvicorn", "--factory", "bench.file_transfer:no_serve_app"]
    args += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    log_path = base / "no-serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(args, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the no-Serve app did not start: {log_path.read_text()[-2000:]}"
                )
            try:
                if httpx.get(f"{url}/history", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(30)


def bench_backend(name: str, base: Path, store_uri: str | None, plan: Plan) -> dict[str, Any]:
    from tests.server_process import start_server

    limit_mib = max(DEFAULT_LIMIT_MIB, plan.payload.size // MIB + 16)
    if limit_mib != DEFAULT_LIMIT_MIB:
        # start_server passes our environment on to `comfyray serve`.
        os.environ["COMFYRAY_MAX_UPLOAD_SIZE"] = str(limit_mib)
    store_args = [] if store_uri is None else ["--store-uri", store_uri]
    began = time.monotonic()
    server = start_server(base / "server", "--workers", "1", *store_args, with_stub_pack=False)
    print(f"{name}: server up in {time.monotonic() - began:.1f} s", flush=True)
    directories = {area: base / "server" / area for area in ("input", "output", "temp", "user")}
    uris = area_uris(store_uri, directories)
    clients: list[Ours] = []
    try:
        with no_serve_server(base, uris, limit_mib * MIB) as (url, pid):
            clients = [Ours(server.url, SERVER_KEY), Ours(url, NO_SERVE_KEY)]
            sides: dict[str, Side] = {
                "ours": clients[0],
                "no_serve": clients[1],
                "baseline": Baseline(open_store(uris["input"]), limit_mib * MIB),
            }
            serve_watches = [MemoryWatch.find(role, marker) for role, marker in WATCHED.items()]
            memory = {
                "ours": Memory(serve_watches),
                "no_serve": Memory([MemoryWatch.of_pid("no_serve", pid, "uvicorn (no Serve)")]),
            }
            result = measure(name, sides, memory, plan)
    except BaseException:
        print(server.log()[-3000:], file=sys.stderr)
        raise
    finally:
        for client in clients:
            client.close()
        server.stop()
    result["store"] = "file (no store URI)" if store_uri is None else "s3 (SeaweedFS)"
    return result


def run_file(base: Path, plan: Plan) -> dict[str, Any]:
    return bench_backend("file", base, None, plan)


def run_s3(base: Path, plan: Plan) -> dict[str, Any]:
    from tests.seaweed import start_seaweed

    seaweed = start_seaweed(base / "seaweed")
    try:
        return bench_backend("s3", base, seaweed.uri(BUCKET, "bench"), plan)
    finally:
        seaweed.stop()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 8 MiB, 2 rounds")
    parser.add_argument(
        "--size",
        type=int,
        default=DEFAULT_SIZE_MIB,
        help=f"file size in MiB ({DEFAULT_SIZE_MIB}); another size records its own section",
    )
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds (5)")
    parser.add_argument("--backends", default="file,s3", help="comma-separated: file, s3")
    parser.add_argument(
        "--http-proxy",
        choices=("python", "haproxy"),
        default="python",
        help="Serve's HTTP proxy for the server (python); haproxy records its own section",
    )
    parser.add_argument("--json", type=Path, help="also write the JSON results to this file")
    parser.add_argument("--record", action="store_true", help="write our RESULTS.md section")
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.rounds = 8, 2
    if args.size <= 0 or args.rounds <= 0:
        parser.error("--size and --rounds must be positive")
    return args


RUNNERS: dict[str, Callable[[Path, Plan], dict[str, Any]]] = {"file": run_file, "s3": run_s3}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not loopback_only():
        print("refusing to start Ray outside a loopback-only namespace: use netns-run")
        return 2
    logging.basicConfig(level=logging.WARNING)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = sorted(set(backends) - set(RUNNERS))
    if unknown:
        print(f"unknown backend(s): {', '.join(unknown)} (file, s3)")
        return 2
    # start_server passes our environment on to `comfyray serve`.
    os.environ["COMFYRAY_HTTP_PROXY"] = args.http_proxy
    load_start = os.getloadavg()[0]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-files-") as tmp:
        plan = Plan(
            Payload.random(Path(tmp) / "payload.png", args.size * MIB),
            Payload.random(Path(tmp) / "small.png", SMALL_BYTES),
            args.rounds,
        )
        for backend in backends:
            (Path(tmp) / backend).mkdir()
            results[backend] = RUNNERS[backend](Path(tmp) / backend, plan)
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {
            "cpus": os.cpu_count(),
            "arch": platform.machine(),
            "python": sys.version.split()[0],
            "loadavg_start": load_start,
            "loadavg_end": os.getloadavg()[0],
        },
        "size_mib": args.size,
        "rounds": args.rounds,
        "http_proxy": args.http_proxy,
        "range_bytes": RANGE_BYTES,
        "results": results,
    }
    command = (
        "cd /work/main && PYTHONPATH=. /work/shared/tools/netns-run "
        f".venv/bin/python bench/file_transfer.py {' '.join(sys.argv[1:])}"
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
