"""Shared pieces of the prompt benchmarks: the benchmark prompt, statistics, the
loopback-namespace guard and the writer of `bench/RESULTS.md` sections."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "RESULTS.md"


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
