"""The RESULTS.md section of bench/file_transfer.py, rendered from its JSON report.

Works on the report dict alone (as printed on the last line of stdout), so a saved run can
be rendered again: the throughput table per backend, the memory table and a reading of the
run in a few sentences from its own numbers.
"""

from __future__ import annotations

import logging
from typing import Any

from bench.common import fmt
from bench.process_memory import memory_reading, memory_table

logger = logging.getLogger(__name__)

# The command line's default size; its section is the one named without a size.
DEFAULT_SIZE_MIB = 64
SECTION = "file transfer"
# The table's column order.
SIDES = ("ours", "no_serve", "baseline")


def _cell(stats: dict[str, float], digits: int = 1) -> str:
    return f"{stats['median']:.{digits}f} ({stats['min']:.{digits}f}-{stats['max']:.{digits}f})"


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
    """RESULTS.md section name -> its text; the name carries the size and the HTTP proxy
    when they are not the defaults, so such runs do not replace the default one."""
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
        f"`read(key, 0, {report['range_bytes']})`).\n"
    )
    for name, r in report["results"].items():
        text += _backend_table(name, r)
    text += memory_table(report["results"], size_mib)
    qualifiers = [] if size_mib == DEFAULT_SIZE_MIB else [f"{size_mib} MiB"]
    if report["http_proxy"] != "python":
        qualifiers.append(f"http_proxy: {report['http_proxy']}")
    name = f"{SECTION} ({', '.join(qualifiers)})" if qualifiers else SECTION
    return {name: text + "\n" + interpretation(report) + "\n"}


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
        f"{memory_reading(results, report['size_mib'])} A 1 MiB Range request takes "
        f"{per_backend('range_vs_full_download')} of a full download's time (ours, medians): "
        f"{range_verdict}."
    )
