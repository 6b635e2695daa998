"""Memory of the server processes a file goes through, for bench/file_transfer.py.

Finds the Ray Serve replica and proxy by their process titles, measures how much each one's
peak RSS (VmHWM, reset through /proc/<pid>/clear_refs) grows over named windows of the run,
split by sampling into heap (RssAnon) and shared memory (RssShmem, Ray's object store), and
turns the growth into the memory table and the sentences on whether the bytes stream.
Linux only: everything here reads /proc.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import fmt, process_label
from storage.s3_store import DEFAULT_PART_SIZE as S3_PART_BYTES
from storage.s3_store import S3Store

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
# The processes an upload or a download passes through, by a part of their Ray title.
WATCHED = {"replica": "ServeReplica", "proxy": "ProxyActor"}
# VmHWM gives the exact peak but not what it was made of; RssAnon (the process's own heap)
# and RssShmem (mapped shared memory: Ray's object store) are sampled this often for that.
SAMPLE_S = 0.005
WINDOWS = ("upload", "download", "rounds")


# --- reading /proc ---------------------------------------------------------------------------


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


# --- watching ---------------------------------------------------------------------------------


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


# --- the memory table ---------------------------------------------------------------------------


def memory_rows(name: str, memory: dict[str, Any], size_mib: float) -> list[str]:
    """The table rows of one backend's watched processes (`memory` as in the JSON)."""
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


def memory_table(results: dict[str, Any], size_mib: float) -> str:
    """What the memory figures mean, then their table, for every backend in `results`."""
    rows: list[str] = []
    for name, r in results.items():
        rows += memory_rows(name, r["memory"], size_mib)
    return (
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
        "|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )


# --- reading the growth --------------------------------------------------------------------------


def s3_buffer_bytes() -> int:
    """What the S3 store holds by design during a write: the parts being sent in parallel
    and the one being gathered (16 MiB each)."""
    threads = inspect.signature(S3Store.__init__).parameters["upload_threads"].default
    return S3_PART_BYTES * (int(threads) + 1)


def allowance_mib(backend: str) -> float:
    """Memory a streaming server may still hold per transfer."""
    return s3_buffer_bytes() / MIB if backend == "s3" else 0.0


Growth = tuple[float, str, str, str, dict[str, float]]  # peak, backend, role, window, split


def largest_growth(
    results: dict[str, Any], roles: tuple[str, ...], windows: tuple[str, ...] = WINDOWS
) -> Growth | None:
    """The largest peak growth among `roles` in `windows`, beyond its backend's allowance."""
    worst: Growth | None = None
    for backend, r in results.items():
        for role in roles:
            for window, g in r["memory"].get(role, {}).get("growth_mib", {}).items():
                if window not in windows:
                    continue
                excess = g["peak"] - allowance_mib(backend)
                if worst is None or excess > worst[0] - allowance_mib(worst[1]):
                    worst = (g["peak"], backend, role, window, g)
    return worst


def held(growth: Growth, size: int) -> bool:
    """Whether the growth, past its backend's allowance, is half the file or more."""
    return growth[0] - allowance_mib(growth[1]) >= size / 2


def memory_reading(results: dict[str, Any], size: int) -> str:
    """For uploads and downloads through Serve: the largest growth, what it was made of,
    and whether the bytes stream; then whether the same app without Serve held them."""
    parts = []
    held_any = False
    for window in ("upload", "download"):
        worst = largest_growth(results, tuple(WATCHED), (window,))
        if worst is None:
            continue
        peak, backend, role, _, g = worst
        is_held = held(worst, size)
        held_any |= is_held
        parts.append(
            f"{window}s {'are held' if is_held else 'stream'} (at most +{peak:.0f} MiB, "
            f"{peak / size:.1f} x the {size} MiB file, in the {role} on {backend}: heap "
            f"{g['anon']:.0f}, shared memory {g['shmem']:.0f})"
        )
    if not parts:
        return "The Serve replica and proxy could not be identified: no memory figures for ours."
    text = "Through Serve, " + " and ".join(parts)
    if "s3" in results:
        text += (
            f"; on s3 the store's own write buffer (up to {s3_buffer_bytes() // MIB} MiB "
            f"of {S3_PART_BYTES // MIB} MiB parts) is allowed for"
        )
    text += "."
    alone = largest_growth(results, ("no_serve",))
    if alone is not None:
        if held(alone, size):
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
