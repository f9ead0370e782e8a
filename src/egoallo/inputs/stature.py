"""The floor a wearer's stature implies (`--stature`), and how it agrees with the head and a scene floor.

A person standing upright carries the CPF near the rest-pose eye height of their body, so the floor lies that
far under the head's standing height: the 95th percentile of the head's height, as the trajectory rule takes
it (`points.floor_from_trajectory`), with the eye height of a body of the given stature
(`body.stature.stature_eye_height`) instead of the mean body's, times `STANDING_HEIGHT_OVER_EYE` (standing
people carry the head a little above the rest pose's eye height).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..errors import UserError
from .points import FloorEstimate, floor_from_trajectory

STATURE_RANGE_M = (0.5, 2.5)
"""Statures a wearer may give (metres)."""
DISAGREEMENT_M = 0.05
"""A scene floor further than this from the floor the stature implies is reported."""
STATURE_METHOD = (
    "the mean body's betas changed as little as possible (Newton steps along the stature's gradient) to stand "
    "the given height; that body performs the motion the prior samples for the mean body (betas 0 inpainted) "
    "under the head's trajectory scaled about the floor by the mean body's eye height over its; without a scene floor, "
    "the floor 1.028 times that body's rest eye height under the head's standing height (95th percentile)"
)
"""How `--stature` is used, as the result's metadata records it."""
STANDING_HEIGHT_OVER_EYE = 1.028
"""The head's standing height (95th percentile over a recording) over the rest-pose eye height of the wearer's
body: the median over the validation split's held-out performers' 128-frame windows (CMU 3, CMU Daz 10,
ReActIdle 007; statures spread 1.50-1.95 m), `python benchmarks/fit_stature_floor.py --dataset DIR/dataset.h5`
(docs/everyday.md, "The wearer's own height")."""
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


def stature_floor(head_z: np.ndarray, eye_height: float) -> FloorEstimate:
    """The floor under heads at heights `head_z (T,)` of a wearer whose body's rest eye height is `eye_height`:
    their standing height less `STANDING_HEIGHT_OVER_EYE` times it (method "stature")."""
    return dataclasses.replace(floor_from_trajectory(head_z, STANDING_HEIGHT_OVER_EYE * eye_height), method="stature")


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


def check_stature_against_floor(head_z: np.ndarray, scene_floor_z: float, stature_m: float, eye_height: float
                                ) -> StatureCheck:
    """How heads at heights `head_z (T,)` over a scene floor agree with a wearer `stature_m` tall."""
    implied = stature_floor(head_z, eye_height).z
    standing = implied + STANDING_HEIGHT_OVER_EYE * eye_height
    return StatureCheck(stature_m, eye_height, standing - scene_floor_z, implied, scene_floor_z)
