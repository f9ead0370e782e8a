"""What the glasses observed besides the head, in the form the guidance consumes.

Readers (`egoallo.inputs.wrist_palm`, `egoallo.inputs.hands`, `egoallo.hands.observations`) build these from
files at the trajectory's frames; `egoallo.guidance` turns them into residuals. Neither imports the other: they
meet here. Hands are ordered (left, right); keypoints follow MediaPipe's 21 hand landmarks (0 wrist; thumb 1-4;
index 5-8; middle 9-12; ring 13-16; pinky 17-20, each finger base to tip).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from .cameras import CameraModel

if TYPE_CHECKING:
    from torch import Tensor

SIDES = ("left", "right")
NUM_LANDMARKS = 21
"""Hand landmarks per hand (MediaPipe's order, also OpenPose's)."""


@dataclasses.dataclass(frozen=True)
class WristObservations:
    """Aria wrist-and-palm tracking in the world frame (z up).

    A hand-frame with any NaN is ignored (with a warning); `valid` marks absent ones.
    """

    wrist_position: Tensor
    """(T, 2, 3)"""
    palm_position: Tensor
    """(T, 2, 3) palm centre (mean of the index, middle, ring and pinky knuckles)."""
    palm_normal: Tensor
    """(T, 2, 3) unit normal of the palm side (facing down in the rest T-pose)."""
    valid: Tensor | None = None
    """(T, 2) bool, or None: all present."""


@dataclasses.dataclass(frozen=True)
class HandObservations:
    """Hand keypoints at the trajectory's frames (one row per frame).

    NaN marks what was not observed. At least one of the keypoint arrays is given.
    """

    camera: CameraModel
    """The RGB camera that saw them (intrinsics, image size, `T_cpf_camera`)."""
    keypoints_2d: Tensor | None = None
    """(T, 2, 21, 2) pixels in the camera's image."""
    keypoints_3d_camera: Tensor | None = None
    """(T, 2, 21, 3) metres in the camera frame (e.g. HaMeR); their depth may be off by an unknown offset."""
    confidence: Tensor | None = None
    """(T, 2, 21) in [0, 1]; None: 1 wherever a keypoint is present."""


@dataclasses.dataclass(frozen=True)
class Observations:
    """Measurements used by the guidance modes that need them."""

    wrist3d: WristObservations | None = None
    hands: HandObservations | None = None
