"""What the benchmark scripts share: where the shared data is, and one line describing the machine they ran on."""

from __future__ import annotations

import os
import platform
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EGOALLO_SHARED") or ROOT.parent / "shared")
"""`../shared` beside the repository, or `$EGOALLO_SHARED`."""


def cpu_model() -> str:
    """The CPU's model name (Linux `/proc/cpuinfo`), else what `platform` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine() -> str:
    """`<CPU model>, <n> CPUs, load average <1-minute load>`: printed at the top of every benchmark's output."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{cpu_model()}, {os.cpu_count()} CPUs, load average {load:.2f}"
