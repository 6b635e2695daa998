"""An append-only JSON-lines journal of the job queue and history.

The controller writes a record before it acknowledges a change (a queued prompt, a
finished one, a deletion), so a restarted controller replays the file and carries on.
The file is compacted into a snapshot of the live state when it grows.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

logger = logging.getLogger(__name__)


class JournalError(Exception):
    """The journal file cannot be written."""


class JobJournal:
    def __init__(self, path: Path, *, fsync: bool = False, compact_after: int = 20_000) -> None:
        self.path = path
        self._fsync = fsync
        self._compact_after = compact_after
        self._records = 0
        self._file: TextIO | None = None

    def replay(self) -> Iterator[dict[str, Any]]:
        """Records in write order; a torn last line (a crash mid-write) is skipped."""
        if not self.path.exists():
            return
        with self.path.open("r", encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    logger.warning("journal %s: skipping unreadable line %d", self.path, number)
                    continue
                self._records += 1
                yield record

    def _open(self) -> TextIO:
        if self._file is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                torn = self._ends_mid_line()
                self._file = self.path.open("a", encoding="utf-8")
                if torn:
                    # Otherwise the next record would join the torn line and be lost with it.
                    self._file.write("\n")
            except OSError as exc:
                raise JournalError(f"cannot open job journal {self.path}: {exc}") from exc
        return self._file

    def _ends_mid_line(self) -> bool:
        """The file's last line has no newline: a write was cut short."""
        if not self.path.exists():
            return False
        with self.path.open("rb") as raw:
            if raw.seek(0, os.SEEK_END) == 0:
                return False
            raw.seek(-1, os.SEEK_END)
            return raw.read(1) != b"\n"

    def append(self, record: dict[str, Any]) -> None:
        handle = self._open()
        try:
            handle.write(json.dumps(record, separators=(",", ":"), default=str) + "\n")
            handle.flush()
            if self._fsync:
                os.fsync(handle.fileno())
        except OSError as exc:
            raise JournalError(f"cannot write job journal {self.path}: {exc}") from exc
        self._records += 1

    def needs_compaction(self) -> bool:
        return self._records > self._compact_after

    def rewrite(self, records: list[dict[str, Any]]) -> None:
        """Replace the file with `records` (the live state) atomically."""
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record, separators=(",", ":"), default=str) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        if self._file is not None:
            self._file.close()
            self._file = None
        os.replace(tmp, self.path)
        self._records = len(records)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
