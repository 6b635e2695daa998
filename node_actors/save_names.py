"""SaveImage's file naming: the prefix tokens it expands and the counters it continues."""

from __future__ import annotations

import logging
import time

logger = logging.getLogger(__name__)


def expand_prefix_tokens(prefix: str, width: int, height: int, now: time.struct_time) -> str:
    """Replace SaveImage's %width%, %height% and date/time tokens (the frontend does the rest)."""
    values = {
        "%width%": str(width),
        "%height%": str(height),
        "%year%": str(now.tm_year),
        "%month%": f"{now.tm_mon:02d}",
        "%day%": f"{now.tm_mday:02d}",
        "%hour%": f"{now.tm_hour:02d}",
        "%minute%": f"{now.tm_min:02d}",
        "%second%": f"{now.tm_sec:02d}",
    }
    for token, value in values.items():
        prefix = prefix.replace(token, value)
    return prefix


def counter_of(existing_name: str, base: str) -> int:
    """N of a `<base>_<N>...` name; 0 for any other name, which never raises the counter."""
    head = existing_name[: len(base) + 1]
    if head[:-1].lower() != base.lower() or not head.endswith("_") or len(head) != len(base) + 1:
        return 0
    digits = existing_name[len(base) + 1 :].split(".")[0].split("_")[0]
    return int(digits) if digits.isascii() and digits.isdigit() else 0
