"""Process lifecycle: no process of ours outlives `comfyray serve`, even when it is SIGKILLed.

Three processes, each with one job:

    comfyray serve (supervisor) ─► watchdog (own session, child subreaper) ─► server (main.run)
                                                                              └─ Ray: gcs, raylet,
                                                                                 workers, proxy…

Ray's processes do not reliably die with their driver (workers outlive a killed raylet for a
while, and some daemonize), so the server is not trusted to clean up after a hard kill. The
watchdog is a tiny process that imports nothing heavy. It is a child subreaper, so every process
the server tree ever starts stays its descendant even when its own parent dies, and it learns of
the supervisor's death from the kernel (PR_SET_PDEATHSIG) plus a ppid poll that covers the start
race. Then it SIGKILLs its whole subtree, reaps it and exits, so the port is free at once.

A SIGINT/SIGTERM to the supervisor is the gentle path: the server gets SIGTERM, shuts Serve and
Ray down, and the watchdog still sweeps anything left over after it exits (or after a grace
period). A second signal skips the grace period.
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from serve_app.settings import ServeSettings

logger = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
# The watchdog's signal for "parent gone or impatient user: kill the tree now".
KILL_NOW_SIGNAL = signal.SIGUSR1
POLL_SECONDS = 0.05
DEFAULT_GRACE_SECONDS = 20.0
SWEEP_SECONDS = 1.5


class LifecycleError(RuntimeError):
    """The kernel refused the process plumbing (prctl unavailable, e.g. not Linux)."""


def configure_logging() -> None:
    """The log format shared by the supervisor, the watchdog and the server (one stderr)."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def _prctl(option: int, value: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise LifecycleError(f"prctl({option}, {value}) failed: {os.strerror(errno)}")


def die_with_parent(sig: int) -> None:
    """Ask the kernel to send `sig` to this process when the thread that forked it exits."""
    _prctl(PR_SET_PDEATHSIG, int(sig))


def become_subreaper() -> None:
    """Orphans anywhere below this process are re-parented here instead of to init."""
    _prctl(PR_SET_CHILD_SUBREAPER, 1)


def parent_pids(proc: Path = Path("/proc")) -> dict[int, int]:
    """pid -> ppid of every process visible in /proc."""
    table: dict[int, int] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited while we looked
        # The command name sits in parentheses and may hold spaces or ')'; fields follow the last.
        fields = stat.rsplit(")", 1)[1].split()
        table[int(entry.name)] = int(fields[1])
    return table


def descendants(root: int, table: dict[int, int] | None = None) -> list[int]:
    """Every process below `root`, parents before children."""
    table = parent_pids() if table is None else table
    children: dict[int, list[int]] = {}
    for pid, ppid in table.items():
        children.setdefault(ppid, []).append(pid)
    found: list[int] = []
    frontier = [root]
    while frontier:
        below = children.get(frontier.pop(), [])
        found.extend(below)
        frontier.extend(below)
    return found


def _signal_all(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


@dataclass
class _Reaper:
    """Reaps every child of this process (a subreaper adopts many) and keeps the server's status."""

    server_pid: int
    server_status: int | None = None

    def reap(self) -> bool:
        """Collect exited children; False once this process has no children at all."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return False
            if pid == 0:
                return True
            if pid == self.server_pid:
                self.server_status = os.waitstatus_to_exitcode(status)


def sweep(reaper: _Reaper, seconds: float = SWEEP_SECONDS) -> None:
    """SIGKILL and reap the whole subtree of this process, bounded by `seconds`."""
    me = os.getpid()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        # Killing a parent re-parents its children here, so repeat until nothing is left.
        below = descendants(me)
        _signal_all(below, signal.SIGKILL)
        has_children = reaper.reap()
        if not below and not has_children:
            return
        time.sleep(0.01)
    logger.error("watchdog: processes still alive after %.1fs: %s", seconds, descendants(me))


def _shell_exit_code(status: int) -> int:
    """os.waitstatus_to_exitcode's value as a shell reports it: 128 + N when killed by signal N."""
    return 128 - status if status < 0 else status


def watchdog(command: Sequence[str], parent_pid: int, grace_seconds: float) -> int:
    """Run `command` as the server and guard its tree; returns the server's exit code."""
    become_subreaper()
    die_with_parent(KILL_NOW_SIGNAL)
    requests: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        requests.append(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, KILL_NOW_SIGNAL):
        signal.signal(sig, on_signal)

    pid = os.fork()
    if pid == 0:  # the server: dies if the watchdog does, whatever happens to its own code
        try:
            die_with_parent(signal.SIGKILL)
            for sig in (signal.SIGTERM, signal.SIGINT, KILL_NOW_SIGNAL):
                signal.signal(sig, signal.SIG_DFL)
            os.execv(command[0], list(command))
        except OSError as exc:
            os.write(2, f"watchdog: cannot start {command[0]}: {exc}\n".encode())
        finally:
            os._exit(127)

    reaper = _Reaper(server_pid=pid)
    stop_by: float | None = None
    while reaper.server_status is None:
        parent_gone = os.getppid() != parent_pid
        if parent_gone or KILL_NOW_SIGNAL in requests:
            logger.warning(
                "watchdog: %s; killing server tree of pid %d",
                "supervisor gone" if parent_gone else "kill requested",
                pid,
            )
            break
        if requests and stop_by is None:
            _signal_all([pid], signal.SIGTERM)
            stop_by = time.monotonic() + grace_seconds
        if stop_by is not None and time.monotonic() > stop_by:
            logger.warning("watchdog: server pid %d still running after %.0fs", pid, grace_seconds)
            break
        reaper.reap()
        time.sleep(POLL_SECONDS)
    sweep(reaper)
    if reaper.server_status is None:
        return 128 + signal.SIGKILL
    return _shell_exit_code(reaper.server_status)


def server_command(settings: ServeSettings) -> list[str]:
    """The command line of the server process (runnable by hand, for debugging)."""
    return [sys.executable, "-m", "serve_app.main", "--settings-json", settings.model_dump_json()]


def watchdog_command(command: Sequence[str], parent_pid: int, grace_seconds: float) -> list[str]:
    return [
        sys.executable,
        "-m",
        "serve_app.lifecycle",
        "--parent-pid",
        str(parent_pid),
        "--grace-seconds",
        str(grace_seconds),
        "--",
        *command,
    ]


def spawn_guarded(
    command: Sequence[str], grace_seconds: float = DEFAULT_GRACE_SECONDS
) -> subprocess.Popen[bytes]:
    """Start `command` under a watchdog in a new session; the caller is the supervisor."""
    # A new session keeps the terminal's Ctrl-C away from the tree: the supervisor alone
    # decides how to stop it.
    return subprocess.Popen(
        watchdog_command(command, os.getpid(), grace_seconds),
        start_new_session=True,
        stdin=subprocess.DEVNULL,
    )


def supervise(settings: ServeSettings, grace_seconds: float = DEFAULT_GRACE_SECONDS) -> int:
    """Run the server under a watchdog until it exits; forwards SIGINT/SIGTERM to it."""
    guard = spawn_guarded(server_command(settings), grace_seconds)
    signals_seen = 0

    def forward(_signum: int, _frame: FrameType | None) -> None:
        nonlocal signals_seen
        signals_seen += 1
        sig = signal.SIGTERM if signals_seen == 1 else KILL_NOW_SIGNAL
        try:
            guard.send_signal(sig)
        except ProcessLookupError:
            pass

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, forward)
    return guard.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serve_app.lifecycle")
    parser.add_argument("--parent-pid", type=int, required=True)
    parser.add_argument("--grace-seconds", type=float, default=DEFAULT_GRACE_SECONDS)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("a command to guard is required after --")
    configure_logging()
    return watchdog(command, args.parent_pid, args.grace_seconds)


if __name__ == "__main__":
    sys.exit(main())
