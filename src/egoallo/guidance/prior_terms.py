"""The terms that keep the guided motion near the sample and smooth: rotation deviation from the sample, torso
positions, rotation change, change of the deviation and second difference of rotations (joints 1..21 with the body's
weights, 22..51 with the fingers')."""

from __future__ import annotations

import torch
from torch import Tensor

from ..geometry import so3
from .kinematics import Kinematics, position_jacobian
from .solver import Residual
from .weights import GuidanceWeights

TORSO_JOINTS = (0, 1, 2, 3, 6, 9, 12, 13, 14)
"""pelvis, left/right hip, spine1-3, neck, left/right collar."""


def right_jacobian_inverse(r: Tensor) -> Tensor:
    """(..., 3, 3) `d log(exp(r)·exp(δ)) / dδ`."""
    return so3.left_jacobian_inverse(-r)


def joint_weights(weights: GuidanceWeights, num_rotations: int) -> Tensor:
    """(4, J) per rotation: prior, velocity, deviation-change and second-difference weights (body, then fingers)."""
    body = (weights.prior_rotation, weights.smooth_rotation, weights.smooth_prior_deviation,
            weights.smooth_second_difference)
    hand = (weights.hand_prior_rotation, weights.hand_smooth_rotation, weights.hand_smooth_prior_deviation,
            weights.hand_smooth_second_difference)
    per_joint = [body] * min(num_rotations, 21) + [hand] * (num_rotations - 21)
    return torch.tensor(per_joint, dtype=torch.float64).T


def rotation_residuals(
    deviation: Tensor, velocity: Tensor, joint_weights: Tensor, with_jacobians: bool
) -> list[Residual]:
    """Prior deviation and the three smoothness terms from `deviation (S, T, J, 3)`, `velocity (S, T-1, J, 3)`.

    `joint_weights (4, J)` as `joint_weights`.
    """
    w_prior, w_vel, w_dev, w_acc = (w.to(deviation)[:, None] for w in joint_weights)  # (J, 1) each
    flat = lambda v: v.flatten(-2)
    values = (
        flat(w_prior * deviation),
        flat(w_vel * velocity),
        flat(w_dev * (deviation[:, 1:] - deviation[:, :-1])),
        flat(w_acc * (velocity[:, 1:] - velocity[:, :-1])),
    )
    if not with_jacobians:
        return [Residual(v) for v in values]
    w_prior, w_vel, w_dev, w_acc = (w[..., None] for w in (w_prior, w_vel, w_dev, w_acc))  # (J, 1, 1)
    Jd = right_jacobian_inverse(deviation)
    Jv_right, Jv_left = right_jacobian_inverse(velocity), so3.left_jacobian_inverse(velocity)
    jacobians = (
        (w_prior * Jd,),
        (-w_vel * Jv_left, w_vel * Jv_right),
        (-w_dev * Jd[:, :-1], w_dev * Jd[:, 1:]),
        (w_acc * Jv_left[:, :-1], -w_acc * (Jv_right[:, :-1] + Jv_left[:, 1:]), w_acc * Jv_right[:, 1:]),
    )
    return [Residual(v, j, per_joint=True) for v, j in zip(values, jacobians)]


def torso_position(
    kin: Kinematics, target: Tensor, weight: float, num_rotations: int, with_jacobians: bool
) -> Residual:
    """Torso joints against the sample's `target (S, T, 9, 3)`."""
    values = weight * (kin.positions[..., TORSO_JOINTS, :] - target).flatten(-2)
    if not with_jacobians:
        return Residual(values)
    return Residual(values, (weight * position_jacobian(kin, TORSO_JOINTS, num_rotations),))
