"""Memory an inference run needs, checked against what the machine has before any work starts.

The figures come from measured peaks (`ru_maxrss`) of `estimate_body_motion` with the shipped checkpoint on
one thread, above a loaded process of 280 MB: 3,000 / 12,000 frames took 153 / 295 MB for one sample and
12,000 frames 815 MB for four (16 kB per sample-frame); with foot guidance, 3,000 / 12,000 frames of two
samples took 582 / 696 MB (the guidance works on segments of at most 2,048 frames, about 130 kB per
sample-frame of such a segment). Results add 3.3 kB per sample-frame, held twice more (the joined result,
the compressed file before writing). The estimates lie 30-65 % above these measurements.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError

BASE_BYTES = 500e6
"""The process with torch, the body model and the checkpoint loaded, and the fixed part of a run."""
WORK_BYTES_PER_SAMPLE_FRAME = 16e3
"""Working memory of the segment being estimated, its result included."""
GUIDANCE_BYTES_PER_SAMPLE_FRAME = 130e3
"""Working memory of guidance, per sample-frame of one guidance segment."""
RESULT_BYTES_PER_SAMPLE_FRAME = 7e3
"""Every segment's result, held twice more: joined, and compressed for writing."""
FPS = 30.0


@dataclass(frozen=True)
class MemoryNeed:
    """What a run over segments of `frames` (at `FPS`) with `samples` samples needs, in bytes; `guided_frames`:
    the frames guided at once (0 without guidance)."""

    frames: tuple[int, ...]
    samples: int
    guided_frames: int = 0

    @property
    def bytes(self) -> float:
        return BASE_BYTES + self.samples * self._per_sample()

    def _per_sample(self) -> float:
        return (
            GUIDANCE_BYTES_PER_SAMPLE_FRAME * self.guided_frames
            + WORK_BYTES_PER_SAMPLE_FRAME * max(self.frames)
            + RESULT_BYTES_PER_SAMPLE_FRAME * sum(self.frames)
        )

    def samples_fitting(self, available: float) -> int:
        """The most samples that fit in `available` bytes (0: not even one)."""
        return max(0, math.floor((available - BASE_BYTES) / self._per_sample()))

    def minutes_fitting(self, available: float) -> float:
        """The longest single piece, in minutes, that fits in `available` bytes with these samples."""
        left = available - BASE_BYTES - self.samples * GUIDANCE_BYTES_PER_SAMPLE_FRAME * self.guided_frames
        per_frame = (WORK_BYTES_PER_SAMPLE_FRAME + RESULT_BYTES_PER_SAMPLE_FRAME) * self.samples
        return max(0.0, left / per_frame / FPS / 60.0)


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
