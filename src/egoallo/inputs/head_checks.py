"""Plausibility checks of resampled head trajectories (z-up world): warnings that the result records.

None of these refuses the input: a frozen stretch, a vehicle ride or a head below the floor may be what
the recording holds. They say where the body is a guess. (Jumps faster than a person moves are split
by the readers, `ReadOptions.max_speed_mps`.)
"""

from __future__ import annotations

import numpy as np

from .trajectory import HeadTrajectory

LARGE_COORDINATE_M = 1e4
"""Positions further than this from the origin (UTM, ECEF frames) are noted: inference re-centres them."""
FROZEN_S = 2.0
"""A head that does not move at all for this long (SLAM noise alone moves it) has lost tracking."""
FROZEN_STEP = 1e-7
"""Per-frame change below which the head counts as not moving (metres plus radians)."""
SPEED_WINDOW_S = 1.0
MAX_SPEED_MPS = 8.0
"""Head speed over `SPEED_WINDOW_S` beyond which a wearer is rarely on foot (running is 3-6 m/s; only sprinters
pass 8 m/s)."""


def head_warnings(segments: list[HeadTrajectory], floor_z: float | list[float], fps: float) -> list[str]:
    """Every warning about `segments` (resampled at `fps`) standing on a floor at `floor_z` (or each on its own)."""
    found = [large_coordinates(segments), below_floor(segments, floor_z)]
    for segment in segments:
        found += [frozen(segment, fps), too_fast(segment, fps)]
    return [warning for warning in found if warning]


def large_coordinates(segments: list[HeadTrajectory]) -> str | None:
    """A note when positions lie further than `LARGE_COORDINATE_M` from the origin."""
    furthest = max(float(np.abs(s.T_world_cpf[:, :3, 3]).max()) for s in segments)
    if furthest <= LARGE_COORDINATE_M:
        return None
    return (
        f"positions reach {furthest:.4g} m from the world origin (a UTM or ECEF frame?): estimated in a frame "
        "re-centred in float64 and moved back, so nothing is lost to rounding"
    )


def below_floor(segments: list[HeadTrajectory], floor_z: float | list[float]) -> str | None:
    """A warning when the head is below the floor (one for all segments, or each segment's) in some frames."""
    floors = [float(floor_z)] * len(segments) if np.ndim(floor_z) == 0 else [float(z) for z in floor_z]
    heights = np.concatenate([s.T_world_cpf[:, 2, 3] - z for s, z in zip(segments, floors)])
    below = heights < 0.0
    if not below.any():
        return None
    floor = f"z = {floors[0]:.3f} m" if len(set(floors)) == 1 else "each segment's own floor"
    return (
        f"the head is below the floor ({floor}) in {int(below.sum())} of {len(heights)} frames, down to "
        f"{-heights.min():.2f} m under it: a wrong floor or up axis, or another SLAM map; bodies there are unreliable"
    )


def frozen(segment: HeadTrajectory, fps: float) -> str | None:
    """A warning when the head does not move at all for `FROZEN_S` or longer."""
    T = segment.T_world_cpf
    if len(T) < 2:
        return None
    step = np.linalg.norm(np.diff(T[:, :3, 3], axis=0), axis=-1) + np.abs(np.diff(T[:, :3, :3], axis=0)).max(axis=(1, 2))
    start, length = longest_run(step < FROZEN_STEP)
    seconds = length / fps
    if seconds < FROZEN_S:
        return None
    return (
        f"the head does not move at all for {seconds:.1f} s from {start / fps:.1f} s into the segment "
        f"({segment.rows}): tracking may have stalled; the body there is a guess"
    )


def too_fast(segment: HeadTrajectory, fps: float) -> str | None:
    """A warning when the head moves faster than `MAX_SPEED_MPS` over `SPEED_WINDOW_S`."""
    lag = max(1, round(SPEED_WINDOW_S * fps))
    p = segment.T_world_cpf[:, :3, 3]
    if len(p) <= lag:
        return None
    speed = np.linalg.norm(p[lag:] - p[:-lag], axis=-1) / (lag / fps)
    fast = speed > MAX_SPEED_MPS
    if not fast.any():
        return None
    return (
        f"the head moves at up to {speed.max():.1f} m/s ({segment.rows}; {fast.sum() / fps:.1f} s above "
        f"{MAX_SPEED_MPS:g} m/s, a sprint at least): in a vehicle? the body there is unreliable"
    )


def longest_run(flags: np.ndarray) -> tuple[int, int]:
    """(start, length) of the longest run of True in `flags` (N,); (0, 0) without any."""
    padded = np.concatenate([[False], flags, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    starts, ends = edges[::2], edges[1::2]
    if not len(starts):
        return 0, 0
    best = int(np.argmax(ends - starts))
    return int(starts[best]), int(ends[best] - starts[best])
