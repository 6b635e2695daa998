"""The replica's recent log lines, for the frontend's logs panel (`/internal/logs*`).

A `LogBuffer` is a logging handler that keeps the last `capacity` records as ComfyUI's
entries, `{"t": ISO time, "m": formatted text ending in a newline}` (the frontend joins the
`m`s as they are into a terminal), and the set of client ids subscribed to live lines.
Listeners (the WebSocket hub) are told of each new entry; they may be called from any thread
that logs, with the handler's lock held, so they must only hand the entry on.

It holds what this ingress replica logs (`serve_app`, `cluster`, `node_actors`, `storage`
at INFO and above). Node workers and the controller run in other Ray processes: their logs
go to Ray's log files (`/tmp/ray/session_latest/logs/`), not here.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections import deque
from collections.abc import Callable, Iterable
from datetime import datetime

logger = logging.getLogger(__name__)

DEFAULT_CAPACITY = 300
CAPTURED_LOGGERS: tuple[str, ...] = ("serve_app", "cluster", "node_actors", "storage")
LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"
# What the frontend's terminal is sized to when this process has no terminal of its own.
FALLBACK_TERMINAL_SIZE = (80, 24)

LogEntry = dict[str, str]
EntryListener = Callable[[LogEntry], None]


class LogBuffer(logging.Handler):
    def __init__(self, capacity: int = DEFAULT_CAPACITY, level: int = logging.INFO) -> None:
        super().__init__(level)
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.setFormatter(logging.Formatter(LOG_FORMAT))
        self._entries: deque[LogEntry] = deque(maxlen=capacity)
        self._entries_lock = threading.Lock()
        self._listeners: list[EntryListener] = []
        # Separate from the handler's lock, which is held while records are emitted.
        self._subscribers_lock = threading.Lock()
        self._subscribers: set[str] = set()

    # --- logging.Handler -------------------------------------------------------------------

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            entry = {
                "t": datetime.fromtimestamp(record.created).isoformat(),
                "m": text if text.endswith("\n") else text + "\n",
            }
            with self._entries_lock:
                self._entries.append(entry)
            for listener in list(self._listeners):
                listener(entry)
        except Exception:
            self.handleError(record)

    # --- reading ---------------------------------------------------------------------------

    def entries(self) -> list[LogEntry]:
        with self._entries_lock:
            return [dict(entry) for entry in self._entries]

    def text(self) -> str:
        """Every entry as `"<t> - <m>"`, concatenated (`GET /internal/logs`)."""
        return "".join(f"{entry['t']} - {entry['m']}" for entry in self.entries())

    @staticmethod
    def size() -> dict[str, int]:
        columns, lines = shutil.get_terminal_size(FALLBACK_TERMINAL_SIZE)
        return {"cols": columns, "rows": lines}

    # --- live subscribers ------------------------------------------------------------------

    def add_listener(self, listener: EntryListener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: EntryListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def subscribe(self, client_id: str) -> None:
        with self._subscribers_lock:
            self._subscribers.add(client_id)

    def unsubscribe(self, client_id: str) -> None:
        with self._subscribers_lock:
            self._subscribers.discard(client_id)

    def subscribers(self) -> frozenset[str]:
        with self._subscribers_lock:
            return frozenset(self._subscribers)


def install_log_buffer(
    buffer: LogBuffer, logger_names: Iterable[str] = CAPTURED_LOGGERS
) -> LogBuffer:
    """Attach `buffer` to the named loggers, replacing any LogBuffer attached before (a
    replica app built twice in one process must not log every line twice).

    Loggers left at a level above the buffer's are lowered to it, or their INFO lines would
    never reach any handler.
    """
    for name in logger_names:
        target = logging.getLogger(name)
        for handler in list(target.handlers):
            if isinstance(handler, LogBuffer):
                target.removeHandler(handler)
        target.addHandler(buffer)
        if target.getEffectiveLevel() > buffer.level:
            target.setLevel(buffer.level)
    return buffer


def uninstall_log_buffer(buffer: LogBuffer, logger_names: Iterable[str] = CAPTURED_LOGGERS) -> None:
    for name in logger_names:
        logging.getLogger(name).removeHandler(buffer)
