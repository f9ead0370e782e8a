"""The guidance residuals' weights."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class GuidanceWeights:
    """Residual weights: the paper's values, and `foot_floor`, which the paper does not have."""

    prior_rotation: float = 1.0
    prior_torso_position: float = 5.0
    smooth_rotation: float = 1.0
    smooth_prior_deviation: float = 10.0
    smooth_second_difference: float = 5.0
    foot_skating: float = 30.0
    foot_floor: float = 30.0
    """Height of a foot joint in contact above its standing height over the floor (needs the floor)."""
    wrist_position: float = 50.0
    palm_orientation: float = 10.0
    hand_reprojection: float = 1.0
    """Per normalised image unit (pixels / focal length)."""
    hand_reprojection_huber: float = 0.05
    """Huber threshold in normalised image units (0.05 ≈ 30 px at Aria RGB's 607 px focal length)."""
    hand3d_wrist_position: float = 20.0
    hand3d_palm_orientation: float = 5.0
    hand_prior_rotation: float = 0.1
    """Finger rotations (joints 22..51), as the reference's hand prior; the body's terms above cover joints 1..21."""
    hand_smooth_rotation: float = 1.0
    hand_smooth_prior_deviation: float = 0.0
    hand_smooth_second_difference: float = 0.0
