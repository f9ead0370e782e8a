"""A live session: lines from a source -> poses -> the estimator -> the outputs, with latency kept.

    session = LiveSession(make_estimator, frames_to=[recorder.add, server.send], frame=FrameSetup())
    session.run(lines, stop)                          # until the source ends or `stop` is set

A malformed line is logged (the first `MAX_LOGGED` of them, then a count) and skipped; when no
pose arrives for `silence_s` seconds the current segment is finished (its held-back bodies come
out) and the next pose starts a new one; an MPS `graph_uid` change starts a new segment too. A followed
file rewritten from its start (`REWRITTEN`, log rotation) starts a new segment too, its timestamps shifted
to follow the poses before (logged), so its poses are not dropped as out of order.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable

import numpy as np

from ..inputs.trajectory import rotation_aligning
from .estimator import LiveEstimator, LiveFrame
from .sources import END, REWRITTEN, Line, LineError, Pose, PoseParser

log = logging.getLogger(__name__)

MAX_LOGGED = 20
"""Malformed lines logged one by one; later ones are only counted."""


@dataclasses.dataclass(frozen=True)
class FrameSetup:
    """How the input's poses become CPF poses in a z-up world."""

    up: np.ndarray | None = None
    """(3,) the input world's up axis; None: an MPS row's gravity, else +z."""
    T_device_cpf: np.ndarray | None = None
    """(4, 4) for MPS rows (device poses); None: the Aria default."""
    T_camera_cpf: np.ndarray | None = None
    """(4, 4) for TUM rows (camera poses); None: identity (the camera is the CPF)."""

    def T_input_zup(self, pose: Pose) -> np.ndarray:
        """(4, 4) from the z-up world to the input's, fixed by the first pose."""
        if self.up is not None:
            up = self.up
        elif pose.gravity is not None:
            up = -pose.gravity / np.linalg.norm(pose.gravity)
        else:
            up = np.array([0.0, 0.0, 1.0])
        T = np.eye(4)
        T[:3, :3] = rotation_aligning(up, np.array([0.0, 0.0, 1.0])).T
        return T


@dataclasses.dataclass
class Latency:
    """Pose arrival -> body out, per frame (the most recent 100,000)."""

    arrivals: dict = dataclasses.field(default_factory=dict)
    """frame index -> arrival time of the pose that completed it (pruned as frames come out)."""
    seconds: collections.deque = dataclasses.field(default_factory=lambda: collections.deque(maxlen=100_000))

    def arrived(self, frames: range, at_s: float) -> None:
        """The frames a pose completed."""
        for index in frames:
            self.arrivals.setdefault(index, at_s)

    def emitted(self, frames: list[LiveFrame], at_s: float) -> None:
        for frame in frames:
            arrived = self.arrivals.pop(frame.index, None)
            if arrived is not None:
                self.seconds.append(at_s - arrived)
        if len(self.arrivals) > 10_000:  # frames never emitted (dropped segments)
            for index in sorted(self.arrivals)[:-1000]:
                del self.arrivals[index]

    def summary(self) -> dict[str, float]:
        if not self.seconds:
            return {}
        values = np.array(self.seconds)
        return {"median_s": float(np.median(values)), "p95_s": float(np.percentile(values, 95)),
                "max_s": float(values.max()), "frames": len(values)}


@dataclasses.dataclass
class SessionCounts:
    lines: int = 0
    poses: int = 0
    malformed: int = 0
    graph_changes: int = 0
    input_rewrites: int = 0


class LiveSession:
    """Feeds lines to an estimator made at the first pose (its world frame depends on that pose)."""

    def __init__(
        self,
        make_estimator: Callable[[np.ndarray], LiveEstimator],
        *,
        frames_to: list[Callable[[list[LiveFrame]], None]],
        frame: FrameSetup = FrameSetup(),
        silence_s: float = 0.5,
        exit_after_silence_s: float | None = None,
    ) -> None:
        self.make_estimator = make_estimator
        self.frames_to = frames_to
        self.frame = frame
        self.silence_s = silence_s
        self.exit_after_silence_s = exit_after_silence_s
        self.parser = PoseParser()
        self.estimator: LiveEstimator | None = None
        self.latency = Latency()
        self.counts = SessionCounts()
        self._graph: str | None = None
        self.started_s: float | None = None
        self.busy_s = 0.0
        """Time spent in the estimator."""
        self.time_shift_ns = 0
        """Added to every timestamp: after a rewritten input, its times follow the poses before."""
        self._rewritten = False

    def run(self, lines: queue.Queue, stop: threading.Event) -> None:
        """Consume `lines` until `END` or `stop`, then finish the stream (every remaining body comes out)."""
        quiet_since = time.perf_counter()
        try:
            while not stop.is_set():
                try:
                    item = lines.get(timeout=min(self.silence_s, 0.25))
                except queue.Empty:
                    quiet = time.perf_counter() - quiet_since
                    if quiet >= self.silence_s and self.estimator is not None:
                        self._emit(self.estimator.silence())
                    if self.exit_after_silence_s is not None and quiet >= self.exit_after_silence_s:
                        log.info("no pose for %.1f s: ending the stream", quiet)
                        return
                    continue
                if item is END:
                    return
                if item is REWRITTEN:
                    self.counts.input_rewrites += 1
                    self.parser, self._rewritten = PoseParser(), True
                    continue
                quiet_since = time.perf_counter()
                self.feed(item)
        finally:
            if self.estimator is not None:
                self._emit(self.estimator.finish())

    def feed(self, line: Line) -> None:
        """One line: parsed, pushed, its bodies sent on."""
        self.counts.lines += 1
        try:
            pose = self.parser.parse(line.text)
        except LineError as error:
            self.counts.malformed += 1
            if self.counts.malformed <= MAX_LOGGED:
                log.warning("%s: skipped: %s%s", line.where, error,
                            " (further malformed lines are only counted)" if self.counts.malformed == MAX_LOGGED else "")
            return
        if pose is None:
            return
        self.counts.poses += 1
        if self.estimator is None:
            self.estimator = self.make_estimator(self.frame.T_input_zup(pose))
            self.started_s = line.arrived_s
        started = time.perf_counter()
        if pose.graph is not None and self._graph is not None and pose.graph != self._graph:
            self.counts.graph_changes += 1
            log.warning("%s: graph_uid %s -> %s: a new SLAM map, a new segment", line.where, self._graph, pose.graph)
            self._emit(self.estimator.silence(f"graph_uid changed to {pose.graph}"))
        self._graph = pose.graph
        if self._rewritten:
            self._rewritten = False
            self._follow_earlier_poses(pose.timestamp_ns, line.where)
        before = self.estimator.newest_frame
        frames = self.estimator.push(pose.timestamp_ns + self.time_shift_ns, pose.T_input_pose @ self._T_pose_cpf(pose))
        self.latency.arrived(range(before + 1, self.estimator.newest_frame + 1), line.arrived_s)
        self.busy_s += time.perf_counter() - started
        self._emit(frames)

    def _follow_earlier_poses(self, timestamp_ns: int, where: str) -> None:
        """After a rewritten input: a new segment, and a time shift when its first pose is not after the last."""
        self._emit(self.estimator.silence("the input was rewritten from its start"))
        last = self.estimator.clock.last_time_ns
        if last is not None and timestamp_ns + self.time_shift_ns <= last:
            gap_ns = round(1e9 * (self.estimator.clock.limits.max_gap_s + 1.0))
            self.time_shift_ns = last + gap_ns - timestamp_ns
            log.warning("%s: the rewritten input starts again at %.3f s, before its last pose (%.3f s): its "
                        "timestamps are shifted by %+.3f s to follow them, in a new segment", where, timestamp_ns / 1e9,
                        last / 1e9, self.time_shift_ns / 1e9)

    def _T_pose_cpf(self, pose: Pose) -> np.ndarray:
        if self.parser.columns is not None:  # MPS rows: device poses
            from ..inputs.calibration import DEFAULT_ARIA_T_DEVICE_CPF

            return self.frame.T_device_cpf if self.frame.T_device_cpf is not None else DEFAULT_ARIA_T_DEVICE_CPF
        return self.frame.T_camera_cpf if self.frame.T_camera_cpf is not None else np.eye(4)

    def _emit(self, frames: list[LiveFrame]) -> None:
        if not frames:
            return
        if not self.latency.seconds:
            log.info("first body after %d poses (frame %d)", self.counts.poses, frames[0].index)
        self.latency.emitted(frames, time.perf_counter())
        for send in self.frames_to:
            send(frames)
