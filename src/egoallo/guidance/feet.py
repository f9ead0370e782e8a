"""The "feet" terms: no skating of foot joints in predicted contact, and, with a known floor, feet in contact
standing on it."""

from __future__ import annotations

from torch import Tensor

from .kinematics import Kinematics
from .solver import Residual

FOOT_JOINTS = (7, 8, 10, 11)
"""left/right ankle, left/right foot; contact index = joint index − 1."""
FOOT_CONTACT_LIFT_M = 0.01
"""How far a foot joint in contact sits above its standing height, typically (motion capture: median 1.0 cm)."""


def foot_skating(kin: Kinematics, contact: Tensor, weight: float, J_feet: Tensor | None) -> Residual:
    """Foot displacement between frames scaled by `contact (S, T-1, 4)`; `J_feet` from `position_jacobian`."""
    scale = weight * contact.repeat_interleave(3, dim=-1)  # (S, T-1, 12)
    feet = kin.positions[..., FOOT_JOINTS, :].flatten(-2)
    values = scale * (feet[:, 1:] - feet[:, :-1])
    if J_feet is None:
        return Residual(values)
    return Residual(values, (-scale[..., None] * J_feet[:, :-1], scale[..., None] * J_feet[:, 1:]))


def foot_floor(kin: Kinematics, contact: Tensor, target_z: Tensor, weight: float, J_feet: Tensor | None) -> Residual:
    """Height of each foot joint above `target_z (S, 1, 4)` scaled by `contact (S, T, 4)`."""
    scale = weight * contact
    values = scale * (kin.positions[..., FOOT_JOINTS, 2] - target_z)
    if J_feet is None:
        return Residual(values)
    return Residual(values, (scale[..., None] * J_feet[..., 2::3, :],))
