"""How many threads inference uses: the cores this process may run on, and the size of the work.

A machine may have more cores than this process is allowed (CPU affinity, a
container's cgroup CPU quota); OpenMP threads beyond them, or threads that spin
while they wait, slow everything down when another process is busy. So the
count is min(affinity, quota), 1 for small inputs, and waiting threads sleep
(`OMP_WAIT_POLICY=PASSIVE`, which OpenMP reads once, when torch is imported:
`egoallo.cli` sets it before anything imports torch).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import UserError

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

SMALL_WORK_FRAMES = 768
"""Inputs of fewer frames × samples than this run on one thread (a second one costs more than it gains)."""

PASSIVE_WAITING = {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_NUM_THREADS": "1"}
"""Set (unless already set) before torch and scipy start their thread pools: sleeping, not spinning,
OpenMP threads; LAPACK's banded solves on the calling thread."""


def prefer_passive_waiting(environ: MutableMapping[str, str] = os.environ) -> None:
    """Set `PASSIVE_WAITING` in `environ` where the user has not chosen otherwise."""
    for name, value in PASSIVE_WAITING.items():
        environ.setdefault(name, value)


def cgroup_v2_limit(cpu_max: str) -> float | None:
    """Cores allowed by a cgroup v2 `cpu.max` ("max 100000" or "150000 100000"); None: unlimited."""
    fields = cpu_max.split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    quota, period = float(fields[0]), float(fields[1])
    return quota / period if quota > 0 and period > 0 else None


def cgroup_v1_limit(quota_us: str, period_us: str) -> float | None:
    """Cores allowed by cgroup v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`; None: unlimited (quota -1)."""
    quota, period = float(quota_us), float(period_us)
    return quota / period if quota > 0 and period > 0 else None


def cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """This process's cgroup CPU quota in cores, from `root` (v2, else v1); None where there is none."""
    try:
        if (root / "cpu.max").is_file():
            return cgroup_v2_limit((root / "cpu.max").read_text())
        for v1 in (root / "cpu", root / "cpu,cpuacct"):
            if (v1 / "cpu.cfs_quota_us").is_file():
                return cgroup_v1_limit((v1 / "cpu.cfs_quota_us").read_text(), (v1 / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None


def available_cores(affinity: int, cpu_limit: float | None) -> int:
    """Cores to use: those in the affinity mask, no more than the whole cores of the quota, at least 1."""
    cores = affinity if cpu_limit is None else min(affinity, math.floor(cpu_limit))
    return max(1, cores)


def cores_here() -> int:
    """`available_cores` for this process (affinity mask and cgroup quota)."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return available_cores(affinity, cgroup_cpu_limit())


def choose_threads(requested: int | None, available: int, work_frames: int) -> tuple[int, str | None]:
    """Threads for `work_frames` (frames × samples) given `available` cores; `requested` overrides.

    Returns the count and a warning when the request was clamped. A request below 1 is a `UserError`.
    """
    if requested is not None:
        if requested < 1:
            raise UserError(f"--threads must be at least 1, got {requested}.")
        if requested > available:
            return available, f"--threads {requested}: only {available} core(s) available here; using {available}."
        return requested, None
    return (1 if work_frames < SMALL_WORK_FRAMES else available), None


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Torch's intra-op thread count set to `count` inside the block, restored after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def thread_pool(workers: int) -> Iterator[ThreadPoolExecutor | None]:
    """A pool of `workers` threads, or None for fewer than 2.

    On leaving the block the pool's queued work is cancelled (after an error or Ctrl-C, only the
    calls already running are waited for, not every one submitted).
    """
    if workers < 2:
        yield None
        return
    from concurrent.futures import ThreadPoolExecutor  # here: the CLI imports this module at start-up

    pool = ThreadPoolExecutor(workers)
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
