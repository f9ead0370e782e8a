"""Physical plausibility of a posed body against its floor: figures that need no ground truth.

Positions are metres in a z-up world; the floor is the plane `z = floor_z`.
A foot joint (ankles, toes) "stands" on the floor when it is at its standing
height over the sole (`BodyModel.rest_joint_heights`), so its penetration is
how far it is below that height: `floor_z + standing_height - z`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from . import skeleton

FOOT_JOINTS: tuple[int, ...] = tuple(
    skeleton.JOINT_INDEX[n] for n in ("left_ankle", "right_ankle", "left_foot", "right_foot")
)
PENETRATION_TOLERANCE_M = 0.03
"""A foot joint more than this below its standing height over the floor penetrates it."""
SKATE_CONTACT_M = 0.03
"""A foot joint within this of its standing height is on the floor (for skating)."""
SKATE_SPEED_M_S = 0.2
"""... and skates when it moves horizontally faster than this."""


@dataclasses.dataclass(frozen=True)
class Plausibility:
    """Per-sample figures, each `(S,)`."""

    penetration_share: np.ndarray
    """Share of frames with a foot joint more than `PENETRATION_TOLERANCE_M` below the floor."""
    deepest_penetration_m: np.ndarray
    """Largest penetration of any foot joint over all frames (0 when none is below)."""
    skating_share: np.ndarray
    """Share of frame steps with a foot joint on the floor that moves faster than `SKATE_SPEED_M_S`."""
    pelvis_height_min_m: np.ndarray
    pelvis_height_max_m: np.ndarray
    """Range of the pelvis height above the floor."""
    wrist_above_shoulder_share: np.ndarray
    """Share of frames with a wrist higher than its shoulder (arms are unseen from the head: the prior's habit)."""
    largest_jump_m: np.ndarray
    """Largest displacement of a body joint (0-21) between two consecutive frames: a pop shows here."""

    def to_json(self) -> dict[str, list[float]]:
        return {k: np.asarray(v, dtype=np.float64).round(4).tolist() for k, v in dataclasses.asdict(self).items()}


def plausibility(joints_world: np.ndarray, floor_z: float, standing_heights: np.ndarray, fps: float) -> Plausibility:
    """Floor penetration, foot skating, pelvis height, raised wrists and jumps of `joints_world (S, T, 52, 3)`.

    Args:
        floor_z: the floor's height.
        standing_heights: `(S, 52)` or `(52,)` each joint's height over the sole in the rest pose.
        fps: frame rate (for speeds).
    """
    joints = np.asarray(joints_world)  # float32 or float64; only the joints used are cast (an hour is 0.1 GB a copy)
    standing = np.broadcast_to(np.asarray(standing_heights, dtype=np.float64), (joints.shape[0], joints.shape[2]))
    feet = joints[:, :, FOOT_JOINTS].astype(np.float64)  # (S, T, 4, 3)
    above = feet[..., 2] - floor_z - standing[:, None, FOOT_JOINTS]  # (S, T, 4): height over standing height
    penetration = np.maximum(-above, 0.0)
    on_floor = np.abs(above) < SKATE_CONTACT_M
    speed = np.linalg.norm(np.diff(feet[..., :2], axis=1), axis=-1) * fps  # (S, T-1, 4)
    skating = (on_floor[:, 1:] & on_floor[:, :-1] & (speed > SKATE_SPEED_M_S)).any(axis=-1)
    pelvis = joints[:, :, skeleton.JOINT_INDEX["pelvis"], 2].astype(np.float64) - floor_z
    return Plausibility(
        penetration_share=(penetration > PENETRATION_TOLERANCE_M).any(axis=-1).mean(axis=1),
        deepest_penetration_m=penetration.max(axis=(1, 2)),
        skating_share=skating.mean(axis=1) if skating.shape[1] else np.zeros(joints.shape[0]),
        pelvis_height_min_m=pelvis.min(axis=1),
        pelvis_height_max_m=pelvis.max(axis=1),
        wrist_above_shoulder_share=wrist_above_shoulder(joints).mean(axis=1),
        largest_jump_m=largest_jump(joints),
    )


def largest_jump(joints_world: np.ndarray) -> np.ndarray:
    """`(...)` the largest frame-to-frame displacement of a body joint (0-21) in `joints_world (..., T, J, 3)`."""
    body = np.asarray(joints_world)[..., : skeleton.NUM_BODY_JOINTS, :].astype(np.float64)
    steps = np.linalg.norm(np.diff(body, axis=-3), axis=-1)
    return steps.max(axis=(-2, -1)) if steps.shape[-2] else np.zeros(body.shape[:-3])


WRISTS_AND_SHOULDERS = tuple(
    (skeleton.JOINT_INDEX[f"{side}_wrist"], skeleton.JOINT_INDEX[f"{side}_shoulder"]) for side in ("left", "right")
)


def wrist_above_shoulder(joints_world: np.ndarray) -> np.ndarray:
    """`(..., T)` bool: some wrist is higher than its shoulder, for joints `(..., T, 52, 3)`."""
    joints = np.asarray(joints_world)
    return np.logical_or.reduce([joints[..., w, 2] > joints[..., s, 2] for w, s in WRISTS_AND_SHOULDERS])
