"""What a worker runs on, in /system_stats' device shape."""

from __future__ import annotations

import os
import sys
from typing import Any


def memory() -> tuple[int, int]:
    """(total, available) bytes of this machine's RAM."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    available = total
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    return total, available


def devices(cpu_only: bool) -> list[dict[str, Any]]:
    import torch

    found: list[dict[str, Any]] = []
    if not cpu_only and torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(index)
            found.append(
                {
                    "name": f"cuda:{index} {torch.cuda.get_device_name(index)}",
                    "type": "cuda",
                    "index": index,
                    "vram_total": total,
                    "vram_free": free,
                    "torch_vram_total": torch.cuda.memory_reserved(index),
                    "torch_vram_free": torch.cuda.memory_reserved(index)
                    - torch.cuda.memory_allocated(index),
                }
            )
        return found
    total, available = memory()
    return [
        {
            "name": "cpu",
            "type": "cpu",
            "index": None,
            "vram_total": total,
            "vram_free": available,
            "torch_vram_total": total,
            "torch_vram_free": available,
        }
    ]


def runtime_versions() -> dict[str, str]:
    import torch

    return {"pytorch_version": torch.__version__, "python_version": sys.version}
