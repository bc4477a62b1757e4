"""The machine a figure was measured on: every benchmark and measured choice names it the same way."""

from __future__ import annotations

import os
import platform
import time
from functools import lru_cache
from pathlib import Path
from typing import Any


@lru_cache(maxsize=1)
def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_report() -> dict[str, Any]:
    """What goes beside a figure: the CPU's name, the vector instructions torch uses on it (``AVX2``,
    ``AVX512``...: the same model name can come with different ones), cores, the load when measured
    (this machine is shared), torch's version and the date."""
    import torch

    try:
        isa = torch.backends.cpu.get_cpu_capability()
    except (AttributeError, RuntimeError):
        isa = None
    return {
        "cpu": cpu_name(),
        "cpu_isa": isa,
        "cpu_count": os.cpu_count(),
        "load_avg_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
    }
