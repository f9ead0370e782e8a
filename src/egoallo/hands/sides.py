"""Left/right assignment that stays consistent over time.

Each frame's hands go to the sides that minimise, in nats,
`-log P(side | handedness) + continuity`, where continuity is `0.5 (d / sigma)^2` for a side
last seen `dt` seconds ago at wrist distance `d` (`sigma = motion * sqrt(dt)`, as fractions of
the image diagonal), and a fixed `new_track_cost` for a side not seen within `memory_s`. So a
hand keeps its side unless its handedness is confident or it jumps, and two hands are resolved
jointly. Two detections on one hand (mean keypoint distance under `duplicate`) count once.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from egoallo.hands.mediapipe_hands import HandCandidate

_MIN_PROBABILITY = 1e-6


@dataclass(frozen=True, eq=False)
class Assigned:
    """A hand given a side."""

    candidate: HandCandidate
    confidence: float
    """Probability of the side (handedness) times the detection score."""


@dataclass
class SideTracker:
    """Online assignment of each frame's hand candidates to (left, right)."""

    image_diagonal: float
    """Pixels."""
    motion: float = 0.35
    """Expected wrist motion scale, image diagonals per sqrt(second)."""
    memory_s: float = 1.0
    new_track_cost: float = 2.0
    duplicate: float = 0.03
    """Image diagonals."""
    _last: list[tuple[np.ndarray, int] | None] = field(default_factory=lambda: [None, None], init=False, repr=False)
    """Per side: (wrist pixel (2,), timestamp ns) where it was last seen."""

    def assign(self, candidates: list[HandCandidate], timestamp_ns: int) -> tuple[Assigned | None, Assigned | None]:
        """(left, right) for one frame's candidates; frames must come in time order."""
        candidates = self._drop_duplicate(candidates)
        cost = np.array([[self._cost(c, side, timestamp_ns) for side in (0, 1)] for c in candidates])
        best = min(
            itertools.permutations((0, 1), len(candidates)),
            key=lambda sides: sum(cost[i, s] for i, s in enumerate(sides)),
        )
        result: list[Assigned | None] = [None, None]
        for candidate, side in zip(candidates, best):
            result[side] = Assigned(candidate, _p_side(candidate, side) * candidate.score)
            self._last[side] = (candidate.keypoints_2d[0], timestamp_ns)
        return result[0], result[1]

    def _cost(self, candidate: HandCandidate, side: int, timestamp_ns: int) -> float:
        cost = -np.log(max(_p_side(candidate, side), _MIN_PROBABILITY))
        last = self._last[side]
        dt = (timestamp_ns - last[1]) * 1e-9 if last is not None else np.inf
        if not dt <= self.memory_s:
            return cost + self.new_track_cost
        sigma = self.motion * np.sqrt(max(dt, 1e-3)) * self.image_diagonal
        return cost + 0.5 * (np.linalg.norm(candidate.keypoints_2d[0] - last[0]) / sigma) ** 2

    def _drop_duplicate(self, candidates: list[HandCandidate]) -> list[HandCandidate]:
        if len(candidates) != 2:
            return candidates
        a, b = candidates
        distance = np.linalg.norm(a.keypoints_2d - b.keypoints_2d, axis=-1).mean()
        if distance >= self.duplicate * self.image_diagonal:
            return candidates
        return [max(candidates, key=lambda c: c.score * max(c.p_right, 1.0 - c.p_right))]


def _p_side(candidate: HandCandidate, side: int) -> float:
    """Handedness probability of `side` (0 left, 1 right)."""
    return candidate.p_right if side == 1 else 1.0 - candidate.p_right
