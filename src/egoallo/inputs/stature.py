"""The floor a wearer's stature implies (`--stature`), and how it agrees with the head and a scene floor.

A person standing upright carries the CPF near the rest-pose eye height of their body, so the floor lies that
far under the head's standing height: the 95th percentile of the head's height, as the trajectory rule takes
it (`points.floor_from_trajectory`), with the eye height of a body of the given stature
(`body.stature.stature_eye_height`) instead of the mean body's, times `STANDING_HEIGHT_OVER_EYE` (standing
people carry the head a little above the rest pose's eye height).

A recording that climbs (stairs, a ladder) has more than one floor, and its highest standing height is on the
top. When the head also walks (`gait.gait_windows`, in short windows and at stepping speeds) at a level well
under its standing height, the floor lies under the lowest level it walks on instead: the ground the climb
started from. Walking keeps a sit-down (the head low but not stepping) from passing for a lower floor.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from ..errors import UserError
from .gait import gait_windows
from .points import FloorEstimate, floor_from_trajectory

STATURE_RANGE_M = (0.5, 2.5)
"""Statures a wearer may give (metres)."""
DISAGREEMENT_M = 0.05
"""A scene floor further than this from the floor the stature implies is reported."""
STATURE_METHOD = (
    "the mean body's betas changed as little as possible (Newton steps along the stature's gradient) to stand "
    "the given height; that body performs the motion the prior samples for the mean body (betas 0 inpainted) "
    "under the head's trajectory scaled about the floor by the mean body's eye height over its; without a scene floor, "
    "the floor 1.028 times that body's rest eye height under the head's standing height (95th percentile), or under "
    "the lowest level the head walks on when that lies 0.25 m or more lower (stairs or a ladder climbed from it)"
)
"""How `--stature` is used, as the result's metadata records it."""
STANDING_HEIGHT_OVER_EYE = 1.028
"""The head's standing height (95th percentile over a recording) over the rest-pose eye height of the wearer's
body: the median over the validation split's held-out performers' 128-frame windows (CMU 3, CMU Daz 10,
ReActIdle 007; statures spread 1.50-1.95 m), `python benchmarks/fit_stature_floor.py --dataset DIR/dataset.h5`
(docs/everyday.md, "The wearer's own height")."""
STEPPING_WINDOW_S = 2.0
STEPPING_HOP_S = 0.5
STEPPING_SPEED_M_S = (0.3, 2.2)
"""Walking windows for the lowest level (every `STEPPING_HOP_S`): shorter and slower than the gait floor model's steady walking
(`gait.WINDOW_S`, `gait.SPEED_RANGE_M_S`), as stepping up to and onto stairs is."""
LOWER_LEVEL_M = 0.25
"""Walking this far or more under the head's standing height is walking on a lower floor (about two stair
steps)."""
LEVEL_WINDOWS = 2
LEVEL_BAND_M = 0.1
"""A level is walked on in at least `LEVEL_WINDOWS` windows whose tops lie within `LEVEL_BAND_M` of it: one
window of a seated wearer moved about is not a floor. On the train and validation splits' CMU and CMU Daz clips
(statures spread 1.50-1.95 m) such a lowest level lies 0.26-0.88 m under the standing height on every stairs,
ladder and playground clip it is found on, and at most 0.19 m under it on the others (docs/everyday.md)."""
FAR_BELOW_EYE_M = 0.25
"""A head whose standing height above a scene floor lies this far under the stature's eye height contradicts it
(a wearer 27 cm shorter, or one who never stands up)."""


def check_stature(stature_m: float, flag: str = "--stature") -> float:
    """`stature_m` as a float, or a one-line `UserError` when it is not a finite number in `STATURE_RANGE_M`."""
    low, high = STATURE_RANGE_M
    try:
        value = float(stature_m)
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and low <= value <= high):
        raise UserError(f"{flag} {stature_m}: expected the wearer's height in metres, from {low:g} to {high:g}.")
    return value


def stature_floor(tracks: Sequence[np.ndarray], fps: float, eye_height: float) -> FloorEstimate:
    """The floor under the head positions `tracks` (each `(T_i, 3)`, z up, contiguous frames at `fps`) of a wearer
    whose body's rest eye height is `eye_height`: `STANDING_HEIGHT_OVER_EYE` times it under the head's standing
    height (95th percentile over every frame), or under the lowest level the head walks on when that lies
    `LOWER_LEVEL_M` or more lower (method "stature")."""
    standing = STANDING_HEIGHT_OVER_EYE * eye_height
    tracks = [np.asarray(track, dtype=np.float64) for track in tracks]
    estimate = floor_from_trajectory(np.concatenate([track[:, 2] for track in tracks]), standing)
    tops = np.array([window.top_height_m for track in tracks
                     for window in gait_windows(track, fps, STEPPING_WINDOW_S, STEPPING_HOP_S, STEPPING_SPEED_M_S)])
    if tops.size:
        lowest = float(tops.min())
        if (tops <= lowest + LEVEL_BAND_M).sum() >= LEVEL_WINDOWS and estimate.z + standing - lowest >= LOWER_LEVEL_M:
            return FloorEstimate(lowest - standing, int(tops.size), "stature")
    return dataclasses.replace(estimate, method="stature")


@dataclasses.dataclass(frozen=True)
class StatureCheck:
    """A scene floor against the stature: the head's standing height above it, the floor the stature implies."""

    stature_m: float
    eye_height_m: float
    standing_height_m: float
    """The head's standing height (95th percentile) above the scene floor."""
    implied_floor_z: float
    scene_floor_z: float

    @property
    def disagreement_m(self) -> float:
        """Scene floor minus the stature's floor (positive: the scene floor lies higher)."""
        return self.scene_floor_z - self.implied_floor_z

    def warning(self, source: str) -> str | None:
        """A warning naming both heights when the head contradicts the stature, else None (`source`: the floor's)."""
        s, top, eye = self.stature_m, self.standing_height_m, self.eye_height_m
        if top > s:
            return (f"--stature {s:.2f} m contradicts the head: its standing height above the floor from {source} is "
                    f"{top:.2f} m, above the top of a {s:.2f} m body; going on with --stature {s:.2f} m")
        if top < eye - FAR_BELOW_EYE_M:
            return (f"--stature {s:.2f} m contradicts the head: its standing height above the floor from {source} is "
                    f"{top:.2f} m, {100 * (eye - top):.0f} cm below the {eye:.2f} m eye height of a {s:.2f} m body; "
                    f"going on with --stature {s:.2f} m")
        return None

    def note(self, source: str) -> str | None:
        """One line when the scene floor and the stature's disagree by more than `DISAGREEMENT_M`, else None."""
        d = self.disagreement_m
        if abs(d) <= DISAGREEMENT_M:
            return None
        return (f"the floor from {source} (z = {self.scene_floor_z:.3f} m) lies {100 * abs(d):.0f} cm "
                f"{'above' if d > 0 else 'below'} the floor --stature {self.stature_m:.2f} m implies "
                f"(z = {self.implied_floor_z:.3f} m, under the head by that body's {self.eye_height_m:.2f} m eye height "
                f"times {STANDING_HEIGHT_OVER_EYE}); the estimate stands on the floor from {source}")


def check_stature_against_floor(
    tracks: Sequence[np.ndarray], fps: float, scene_floor_z: float, stature_m: float, eye_height: float
) -> StatureCheck:
    """How the head positions `tracks` (as `stature_floor` takes them) over a scene floor agree with a wearer
    `stature_m` tall."""
    implied = stature_floor(tracks, fps, eye_height).z
    standing = implied + STANDING_HEIGHT_OVER_EYE * eye_height
    return StatureCheck(stature_m, eye_height, standing - scene_floor_z, implied, scene_floor_z)
