"""A pose stream -> frames at a fixed rate, split where the stream breaks.

Head poses arrive one at a time, at any rate, in a z-up world (`T_world_cpf`).
`FrameClock` turns them into frames at `fps` (linear translation, slerp rotation
between the two poses around each frame time, as `HeadTrajectory.resample`) and
says where the stream breaks: a gap longer than `max_gap_s` or a jump faster than a
person moves (a SLAM reset) ends the segment, and the next segment starts at the
pose after it. Poses at or before the last accepted time (duplicates, out of order)
are dropped and counted. Time and memory per pose are constant.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from ..geometry import so3


@dataclasses.dataclass(frozen=True)
class StreamLimits:
    """Where a stream breaks into segments (the offline readers' `ReadOptions` values)."""

    fps: float = 30.0
    max_gap_s: float = 0.5
    max_speed_mps: float = 12.0
    min_jump_m: float = 0.5


@dataclasses.dataclass(frozen=True)
class Frame:
    """One frame at the clock's rate."""

    timestamp_ns: int
    T_world_cpf: np.ndarray
    """(4, 4) float64, z-up world."""


@dataclasses.dataclass(frozen=True)
class Break:
    """The segment ends before the pose at `timestamp_ns`; `reason` says why."""

    timestamp_ns: int
    reason: str


@dataclasses.dataclass
class ClockCounts:
    poses: int = 0
    frames: int = 0
    dropped_duplicates: int = 0
    dropped_out_of_order: int = 0
    gaps: int = 0
    jumps: int = 0


@dataclasses.dataclass
class FrameClock:
    """Stateful resampler of a pose stream; `push` returns the frames (and breaks) a new pose completes."""

    limits: StreamLimits = dataclasses.field(default_factory=StreamLimits)
    counts: ClockCounts = dataclasses.field(default_factory=ClockCounts)
    last_time_ns: int | None = None
    last_pose: np.ndarray | None = None
    """(4, 4) the last accepted pose."""
    segment_start_ns: int | None = None
    next_frame: int = 0
    """Index (in the segment) of the next frame to emit."""

    def frame_time(self, k: int) -> int:
        """Timestamp of frame `k` of the current segment (rounded as `HeadTrajectory.resample`)."""
        return self.segment_start_ns + round(k * 1e9 / self.limits.fps)

    def push(self, timestamp_ns: int, T_world_cpf: np.ndarray) -> tuple[list[Frame | Break], str | None]:
        """Frames (and a `Break`, when the stream breaks here) completed by this pose, and a note when it was dropped."""
        if self.last_time_ns is not None and timestamp_ns <= self.last_time_ns:
            duplicate = timestamp_ns == self.last_time_ns
            if duplicate:
                self.counts.dropped_duplicates += 1
            else:
                self.counts.dropped_out_of_order += 1
            what = "duplicate timestamp" if duplicate else f"{(self.last_time_ns - timestamp_ns) / 1e9:.3f} s out of order"
            return [], f"dropped the pose at {timestamp_ns / 1e9:.6f} s: {what}"
        self.counts.poses += 1
        out: list[Frame | Break] = []
        reason = self._break_reason(timestamp_ns, T_world_cpf)
        if reason is not None:
            out.append(Break(timestamp_ns, reason))
            self.segment_start_ns, self.next_frame = None, 0
        if self.segment_start_ns is None:
            self.segment_start_ns = timestamp_ns
        else:
            out += self._frames_until(timestamp_ns, T_world_cpf)
        self.last_time_ns, self.last_pose = timestamp_ns, T_world_cpf
        if self.next_frame == 0:  # a segment's first pose is its first frame
            out.append(Frame(timestamp_ns, T_world_cpf))
            self.next_frame = 1
        self.counts.frames += sum(isinstance(e, Frame) for e in out)
        return out, None

    def restart(self) -> None:
        """End the current segment (the source went silent); the next pose starts a new one."""
        self.segment_start_ns, self.next_frame, self.last_pose = None, 0, None

    def _break_reason(self, timestamp_ns: int, T_world_cpf: np.ndarray) -> str | None:
        if self.last_pose is None or self.segment_start_ns is None:
            return None
        limits = self.limits
        seconds = (timestamp_ns - self.last_time_ns) / 1e9
        if seconds > limits.max_gap_s:
            self.counts.gaps += 1
            return f"gap of {seconds:.3f} s"
        distance = float(np.linalg.norm(T_world_cpf[:3, 3] - self.last_pose[:3, 3]))
        if distance > limits.min_jump_m and distance > limits.max_speed_mps * seconds:
            self.counts.jumps += 1
            return f"jump of {distance:.2f} m in {seconds:.3f} s (a tracking reset)"
        return None

    def _frames_until(self, timestamp_ns: int, T_world_cpf: np.ndarray) -> list[Frame]:
        """The frames whose times lie in (last pose, this pose], interpolated between the two."""
        t0, t1 = self.last_time_ns, timestamp_ns
        count = math.floor((t1 - self.segment_start_ns) * self.limits.fps / 1e9 + 1e-4) + 1 - self.next_frame
        if count <= 0:
            return []
        times = [self.frame_time(self.next_frame + i) for i in range(count)]
        times = [min(t, t1) for t in times]
        weights = np.array([(t - t0) / (t1 - t0) for t in times])
        poses = interpolate(self.last_pose, T_world_cpf, weights)
        self.next_frame += count
        return [Frame(t, T) for t, T in zip(times, poses)]


def interpolate(T_a: np.ndarray, T_b: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(K, 4, 4) poses between `T_a` and `T_b` (4, 4) at `weights (K,)` in [0, 1] (lerp, slerp)."""
    weights = np.clip(weights, 0.0, 1.0)
    R_a, R_b = (torch.tensor(T[:3, :3], dtype=torch.float64) for T in (T_a, T_b))
    out = np.tile(np.eye(4), (len(weights), 1, 1))
    out[:, :3, :3] = so3.slerp(R_a, R_b, torch.tensor(weights, dtype=torch.float64)).numpy()  # shortest arc
    out[:, :3, 3] = (1 - weights)[:, None] * T_a[:3, 3] + weights[:, None] * T_b[:3, 3]
    return out
