"""Memory an inference run needs, checked against what the machine has before any work starts.

The figures are measured peaks (`ru_maxrss`) of `estimate_body_motion` with the shipped checkpoint on one
thread: 12,000 frames took 295 MB above the loaded process for one sample and 815 MB for four (about
15 kB per sample-frame, the denoiser's windows and the guidance); results add about 3.3 kB per
sample-frame, held three times (the segments, the joined result, the compressed file before writing).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError

BASE_BYTES = 600e6
"""The process with torch, the body model and the checkpoint loaded, and the fixed part of a run."""
WORK_BYTES_PER_SAMPLE_FRAME = 20e3
"""Working memory of the segment being estimated (measured 15 kB, plus a margin for guidance)."""
RESULT_BYTES_PER_SAMPLE_FRAME = 10e3
"""Results of every segment: 3.3 kB of arrays, held three times."""
FPS = 30.0


@dataclass(frozen=True)
class MemoryNeed:
    """What a run over segments of `frames` (at `FPS`) with `samples` samples needs, in bytes."""

    frames: tuple[int, ...]
    samples: int

    @property
    def bytes(self) -> float:
        return (
            BASE_BYTES
            + WORK_BYTES_PER_SAMPLE_FRAME * self.samples * max(self.frames)
            + RESULT_BYTES_PER_SAMPLE_FRAME * self.samples * sum(self.frames)
        )

    def samples_fitting(self, available: float) -> int:
        """The most samples that fit in `available` bytes (0: not even one)."""
        per_sample = WORK_BYTES_PER_SAMPLE_FRAME * max(self.frames) + RESULT_BYTES_PER_SAMPLE_FRAME * sum(self.frames)
        return max(0, math.floor((available - BASE_BYTES) / per_sample))

    def minutes_fitting(self, available: float) -> float:
        """The longest single piece, in minutes, that fits in `available` bytes with these samples."""
        per_frame = (WORK_BYTES_PER_SAMPLE_FRAME + RESULT_BYTES_PER_SAMPLE_FRAME) * self.samples
        return max(0.0, (available - BASE_BYTES) / per_frame / FPS / 60.0)


def available_memory(meminfo: Path = Path("/proc/meminfo"), cgroup: Path = Path("/sys/fs/cgroup")) -> float | None:
    """Bytes this process can still use: the smaller of the system's available memory and the cgroup's
    remaining limit (Linux); the free physical memory elsewhere; None when unknown."""
    limits = []
    try:
        fields = dict(line.split(":", 1) for line in meminfo.read_text().splitlines() if ":" in line)
        limits.append(float(fields["MemAvailable"].split()[0]) * 1024)
    except (OSError, KeyError, ValueError):
        try:
            limits.append(float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")))
        except (AttributeError, OSError, ValueError):
            pass
    try:
        limit = (cgroup / "memory.max").read_text().strip()
        if limit != "max":
            limits.append(float(limit) - float((cgroup / "memory.current").read_text()))
    except (OSError, ValueError):
        pass
    return min(limits) if limits else None


def check_memory(need: MemoryNeed, source: str, available: float | None) -> None:
    """A `UserError` before any work when `need` exceeds `available` bytes, with the estimate and a way out."""
    if available is None or need.bytes <= available:
        return
    total = sum(need.frames)
    fitting = need.samples_fitting(available)
    way = (
        f"--samples {fitting}" if fitting >= 1
        else f"the trajectory cut into pieces of at most {need.minutes_fitting(available):.1f} min, each run alone"
    )
    raise UserError(
        f"{source}: {total} frames ({total / FPS / 60:.1f} min at {FPS:g} fps) x {need.samples} sample(s) need about "
        f"{need.bytes / 1e9:.1f} GB of memory, and {available / 1e9:.1f} GB is available; expected a run that fits: {way}"
    )
