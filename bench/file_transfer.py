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
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
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

from bench.common import REPO, fmt, loopback_only, process_label, ratio, record_sections
from storage.areas import area_uris
from storage.content_store import ContentStore, open_store
from storage.s3_store import DEFAULT_PART_SIZE as S3_PART_BYTES
from storage.s3_store import S3Store

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
DEFAULT_SIZE_MIB = 64
SECTION = "file transfer"
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
# The processes an upload or a download passes through, by a part of their Ray title.
WATCHED = {"replica": "ServeReplica", "proxy": "ProxyActor"}
# VmHWM gives the exact peak but not what it was made of; RssAnon (the process's own heap)
# and RssShmem (mapped shared memory: Ray's object store) are sampled this often for that.
SAMPLE_S = 0.005
WINDOWS = ("upload", "download", "rounds")
# The side that runs our app without Ray Serve reads its store areas from here.
NO_SERVE_ENV = "COMFYRAY_BENCH_FILE_AREAS"
SIDES = ("ours", "no_serve", "baseline")


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


# --- memory of the server's processes --------------------------------------------------------


def find_processes(marker: str, proc: Path = Path("/proc")) -> dict[int, str]:
    """pid -> label of every live process whose label contains `marker`."""
    found: dict[int, str] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # exited meanwhile
            continue
        label = process_label(int(entry.name), [a.decode(errors="replace") for a in argv if a])
        if marker in label:
            found[int(entry.name)] = label
    return found


def read_status(pid: int) -> dict[str, float]:
    """The `kB` lines of /proc/<pid>/status (VmHWM, VmRSS, RssAnon, ...) in MiB."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        parts = value.split()
        if len(parts) == 2 and parts[1] == "kB":
            out[name] = int(parts[0]) / 1024
    return out


def reset_peak(pid: int) -> bool:
    """Set the process's VmHWM back to its current RSS (clear_refs 5), so a later peak is
    the transfer's own rather than one left from earlier; False when refused."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError as exc:
        logger.info("cannot reset the peak RSS of %d: %s", pid, exc)
        return False
    return True


@dataclass
class MemoryWatch:
    """How much one server process's memory grows over named windows of the run."""

    role: str
    pid: int | None = None
    label: str = ""
    start_rss_mib: float | None = None
    # window -> {"peak": VmHWM growth, "anon": sampled RssAnon growth, "shmem": RssShmem}
    growth_mib: dict[str, dict[str, float]] = field(default_factory=dict)
    note: str = ""
    _opened: dict[str, float] = field(default_factory=dict, repr=False)
    _peaks: dict[str, float] = field(default_factory=dict, repr=False)

    @classmethod
    def of_pid(cls, role: str, pid: int, label: str) -> MemoryWatch:
        return cls(role, pid, label, start_rss_mib=read_status(pid)["VmRSS"])

    @classmethod
    def find(cls, role: str, marker: str) -> MemoryWatch:
        found = find_processes(marker)
        if len(found) != 1:
            what = "no process" if not found else f"{len(found)} processes ({found})"
            return cls(role, note=f"not identified: {what} with {marker!r} in its title")
        pid, label = next(iter(found.items()))
        return cls(role, pid, label, start_rss_mib=read_status(pid)["VmRSS"])

    def open(self) -> None:
        if self.pid is None:
            return
        if not reset_peak(self.pid):
            self.note = "VmHWM not reset: 'peak' counts from the peak since startup"
        self._opened = read_status(self.pid)
        self._peaks = {}
        self.sample()

    def sample(self) -> None:
        if self.pid is None or not self._opened:
            return
        try:
            status = read_status(self.pid)
        except OSError:
            return
        for name in ("RssAnon", "RssShmem"):
            self._peaks[name] = max(self._peaks.get(name, 0.0), status.get(name, 0.0))

    def close(self, window: str) -> None:
        if self.pid is None or not self._opened:
            return
        self.sample()
        try:
            hwm = read_status(self.pid)["VmHWM"]
        except OSError:
            self.note = f"the process exited during {window}"
            return
        opened, peaks = self._opened, self._peaks
        self.growth_mib[window] = {
            "peak": round(hwm - opened["VmHWM"], 1),
            "anon": round(peaks.get("RssAnon", 0.0) - opened.get("RssAnon", 0.0), 1),
            "shmem": round(peaks.get("RssShmem", 0.0) - opened.get("RssShmem", 0.0), 1),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "label": self.label,
            "start_rss_mib": None if self.start_rss_mib is None else round(self.start_rss_mib, 1),
            "growth_mib": self.growth_mib,
            "note": self.note,
        }


class Memory:
    """The server processes the bytes pass through, watched together."""

    def __init__(self, watches: list[MemoryWatch]) -> None:
        self.watches = watches

    @contextmanager
    def window(self, name: str) -> Iterator[None]:
        """Reset each process's peak to its current RSS, run the body, keep the new peak:
        the growth is what the body needed on top of what the process already held."""
        for watch in self.watches:
            watch.open()
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(SAMPLE_S):
                for watch in self.watches:
                    watch.sample()

        sampler = threading.Thread(target=sample, name="rss-sampler", daemon=True)
        sampler.start()
        try:
            yield
        finally:
            stop.set()
            sampler.join()
            for watch in self.watches:
                watch.close(name)

    def as_dict(self) -> dict[str, Any]:
        return {watch.role: watch.as_dict() for watch in self.watches}


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


# --- report ----------------------------------------------------------------------------------


def _cell(stats: dict[str, float], digits: int = 1) -> str:
    return f"{stats['median']:.{digits}f} ({stats['min']:.{digits}f}-{stats['max']:.{digits}f})"


def _memory_rows(name: str, memory: dict[str, Any], size_mib: float) -> list[str]:
    rows = []
    for role, m in memory.items():
        growth = m["growth_mib"]
        if not growth:
            rows.append(f"| {name} | {role} | - | - | - | - | - | {m['note']} |")
            continue
        cells = " | ".join(
            f"{g['peak']:.0f} ({g['anon']:.0f} / {g['shmem']:.0f})" if g else "-"
            for g in (growth.get(w) for w in WINDOWS)
        )
        share = max(g["peak"] for g in growth.values()) / size_mib
        rows.append(
            f"| {name} | {m['label']} | {fmt(m['start_rss_mib'], 0)} | {cells} "
            f"| {share:.2f} | {m['note']} |"
        )
    return rows


def _backend_table(name: str, r: dict[str, Any]) -> str:
    ratios = r["ratios"]

    def row(label: str, key: str, digits: int, *ratio_keys: str) -> str:
        cells = " | ".join(_cell(r[side][key], digits) for side in SIDES)
        ratio_cells = " | ".join(fmt(ratios[k], 2) if k else "-" for k in ratio_keys)
        return f"| {label} | {cells} | {ratio_cells} |\n"

    return (
        f"\n### {name}: {r['store']}\n\n"
        "| measure | ours (Serve) | no Serve | store baseline | ours / baseline "
        "| ours / no Serve |\n|---|---|---|---|---|---|\n"
        + row("upload MiB/s", "upload_mib_s", 1, "upload", "upload_vs_no_serve")
        + row("download MiB/s", "download_mib_s", 1, "download", "download_vs_no_serve")
        + row("full download ms", "download_ms", 1, "", "")
        + row("Range 1 MiB ms", "range_ms", 2, "", "")
        + "\nRange 1 MiB / full download (ours, medians): "
        f"{fmt(ratios['range_vs_full_download'], 3)}.\n"
    )


def results_sections(report: dict[str, Any], command: str) -> dict[str, str]:
    machine = report["machine"]
    size_mib = report["size_mib"]
    text = (
        f"`{command}`, {report['date']}, {machine['cpus']} CPUs ({machine['arch']}, shared "
        f"with other work: load average {machine['loadavg_start']:.1f} before, "
        f"{machine['loadavg_end']:.1f} after). A {size_mib} MiB file of random bytes named "
        f".png, {report['rounds']} rounds after one uncounted warm-up round that checks the "
        "bytes round-trip; the sides take turns going first. ours = `comfyray serve "
        f"--workers 1` (`http_proxy: {report['http_proxy']}`): POST /upload/image (multipart, "
        "overwrite=true) "
        "and GET /view?type=input streamed to the end. no Serve = the same app and routes "
        "under plain uvicorn in one process (in-memory cluster double, the same store "
        "areas): what Ray Serve's proxy and replica hop adds. store baseline = the same "
        "store class on the same input area (`open_store(<input area URI>)`): `write` of "
        "the file in 1 MiB chunks and `read` to the end, no HTTP. Cells: median (min-max). "
        "Range = GET /view with `Range: bytes=0-1048575`, 2 per round (store: "
        f"`read(key, 0, {RANGE_BYTES})`).\n"
    )
    memory_rows: list[str] = []
    for name, r in report["results"].items():
        text += _backend_table(name, r)
        memory_rows += _memory_rows(name, r["memory"], size_mib)
    text += (
        "\nMemory of the server processes the bytes pass through, MiB: RSS once a 1 MiB file "
        "has gone up and down (first-use costs paid), then the growth of the peak RSS "
        "(VmHWM, reset to the RSS through `clear_refs` as each window opens) over the "
        f"warm-up upload of the {size_mib} MiB file, its warm-up download, and all measured "
        "rounds. In brackets: the growth of RssAnon (the process's own heap) / RssShmem "
        "(shared memory it maps: Ray's object store, whose pages stay mapped once touched, "
        f"so a later window sees only new ones), sampled every {SAMPLE_S * 1000:.0f} ms. "
        "Largest growth / file size well below 1 means the bytes stream; about 1 or more "
        "means the whole file (or more) was held at once.\n\n"
        "| backend | process | RSS at start | upload | download | rounds "
        "| largest / file size | note |\n"
        "|---|---|---|---|---|---|---|---|\n" + "\n".join(memory_rows) + "\n"
    )
    qualifiers = [] if size_mib == DEFAULT_SIZE_MIB else [f"{size_mib} MiB"]
    if report["http_proxy"] != "python":
        qualifiers.append(f"http_proxy: {report['http_proxy']}")
    name = f"{SECTION} ({', '.join(qualifiers)})" if qualifiers else SECTION
    return {name: text + "\n" + interpretation(report) + "\n"}


def _s3_buffer_bytes() -> int:
    """What the S3 store holds by design during a write: the parts being sent in parallel
    and the one being gathered (16 MiB each)."""
    threads = inspect.signature(S3Store.__init__).parameters["upload_threads"].default
    return S3_PART_BYTES * (int(threads) + 1)


def _allowance_mib(backend: str) -> float:
    """Memory a streaming server may still hold per transfer."""
    return _s3_buffer_bytes() / MIB if backend == "s3" else 0.0


Growth = tuple[float, str, str, str, dict[str, float]]  # peak, backend, role, window, split


def _largest_growth(
    results: dict[str, Any], roles: tuple[str, ...], windows: tuple[str, ...] = WINDOWS
) -> Growth | None:
    """The largest peak growth among `roles` in `windows`, beyond its backend's allowance."""
    worst: Growth | None = None
    for backend, r in results.items():
        for role in roles:
            for window, g in r["memory"].get(role, {}).get("growth_mib", {}).items():
                if window not in windows:
                    continue
                excess = g["peak"] - _allowance_mib(backend)
                if worst is None or excess > worst[0] - _allowance_mib(worst[1]):
                    worst = (g["peak"], backend, role, window, g)
    return worst


def _held(growth: Growth, size: int) -> bool:
    return growth[0] - _allowance_mib(growth[1]) >= size / 2


def _memory_reading(results: dict[str, Any], size: int) -> str:
    """For uploads and downloads through Serve: the largest growth, what it was made of,
    and whether the bytes stream; then whether the same app without Serve held them."""
    parts = []
    held_any = False
    for window in ("upload", "download"):
        worst = _largest_growth(results, tuple(WATCHED), (window,))
        if worst is None:
            continue
        peak, backend, role, _, g = worst
        held = _held(worst, size)
        held_any |= held
        parts.append(
            f"{window}s {'are held' if held else 'stream'} (at most +{peak:.0f} MiB, "
            f"{peak / size:.1f} x the {size} MiB file, in the {role} on {backend}: heap "
            f"{g['anon']:.0f}, shared memory {g['shmem']:.0f})"
        )
    if not parts:
        return "The Serve replica and proxy could not be identified: no memory figures for ours."
    text = "Through Serve, " + " and ".join(parts)
    if "s3" in results:
        text += (
            f"; on s3 the store's own write buffer (up to {_s3_buffer_bytes() // MIB} MiB "
            f"of {S3_PART_BYTES // MIB} MiB parts) is allowed for"
        )
    text += "."
    alone = _largest_growth(results, ("no_serve",))
    if alone is not None:
        if _held(alone, size):
            tail = "our routes hold the file too"
        elif held_any:
            tail = (
                "our routes stream, the bytes pile up in the hop between Serve's proxy and replica"
            )
        else:
            tail = "our routes stream"
        per_backend = ", ".join(
            f"{max(g['peak'] for g in r['memory']['no_serve']['growth_mib'].values()):.0f} MiB "
            f"on {backend}"
            for backend, r in results.items()
            if r["memory"].get("no_serve", {}).get("growth_mib")
        )
        text += f" The same app without Serve grew by at most {per_backend}: {tail}."
    return text


def interpretation(report: dict[str, Any]) -> str:
    """The run's reading in a few sentences, from its own numbers."""
    results = report["results"]
    if not results:
        return "No backend was measured."

    def per_backend(key: str) -> str:
        return ", ".join(f"{fmt(r['ratios'][key], 2)} on {n}" for n, r in results.items())

    shares = [r["ratios"]["range_vs_full_download"] for r in results.values()]
    range_verdict = (
        "a client that asks for a part (a player seeking, a resumed download) does not pay "
        "for the whole file"
        if all(s is not None and s < 0.5 for s in shares)
        else "a Range request saves less than half of a full download here"
    )
    return (
        f"Through the server, uploads reach {per_backend('upload')} of the store's own rate "
        f"and downloads {per_backend('download')}; against the same app without Serve, "
        f"{per_backend('upload_vs_no_serve')} (upload) and "
        f"{per_backend('download_vs_no_serve')} (download). "
        f"{_memory_reading(results, report['size_mib'])} A 1 MiB Range request takes "
        f"{per_backend('range_vs_full_download')} of a full download's time (ours, medians): "
        f"{range_verdict}."
    )


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
