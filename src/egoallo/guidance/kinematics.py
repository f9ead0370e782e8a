"""Where the body is, and how it moves when a rotation does: the kinematics every guidance term shares.

The root is not free: as in the paper it follows from the rotations through Eq. 5,
`T_world_root = T_world_cpf · T_root_cpf(Θ, β)^-1`, so every world position moves when any joint on the path
between it and the head rotates. Jacobians are analytic: with the placement, perturbing joint j by
`R_j ← R_j·exp(δ)` moves joint k's world position by `s_kj · hat(x_k − x_j) · R_world_j · δ`, with
`s_kj = [j on the head's chain] − [j a strict ancestor of k]` (the common chain cancels: it turns head and k
together).
"""

from __future__ import annotations

import dataclasses
import functools

import torch
from torch import Tensor

from ..body.model import ShapedBody, forward_kinematics
from ..body.skeleton import JOINT_INDEX, PARENTS
from ..geometry import so3

_HEAD = JOINT_INDEX["head"]


@dataclasses.dataclass(frozen=True)
class Kinematics:
    """A body posed and placed by Eq. 5."""

    positions: Tensor
    """(S, T, J + 1, 3) world positions of joints 0..J (J posed rotations)."""
    orientations: Tensor
    """(S, T, J + 1, 3, 3) world orientations of joints 0..J."""


def place(shaped: ShapedBody, rotations: Tensor, T_world_cpf: Tensor) -> Kinematics:
    """Pose `rotations (S, T, J, 3, 3)`, J = 21 or 51, and place the root so the CPF is at `T_world_cpf (T, 4, 4)`.

    Only joints 0..J are posed: the body's 22 without hand rotations (their parents come first).
    """
    J = rotations.shape[-3]
    joints_zero = shaped.joints_zero[..., : J + 1, :]
    eye = so3.identity((), dtype=rotations.dtype, device=rotations.device)
    R_root_joint, p_root_joint = forward_kinematics(
        joints_zero, PARENTS[: J + 1], eye, eye.new_zeros(3), rotations
    )
    # Eq. 5: the root's world pose from the head's, T_world_root = T_world_cpf · T_root_cpf⁻¹.
    R_root_cpf = R_root_joint[..., _HEAD, :, :]
    p_root_cpf = p_root_joint[..., _HEAD, :] + (R_root_cpf @ shaped.T_head_cpf[..., :3, 3, None])[..., 0]
    R_world_root = T_world_cpf[..., :3, :3] @ R_root_cpf.mT
    p_world_root = T_world_cpf[..., :3, 3] - (R_world_root @ p_root_cpf[..., None])[..., 0]
    positions = (R_world_root[..., None, :, :] @ p_root_joint[..., None])[..., 0] + p_world_root[..., None, :]
    return Kinematics(positions=positions, orientations=R_world_root[..., None, :, :] @ R_root_joint)


def _chain(joint: int) -> set[int]:
    """`joint` and its ancestors."""
    out = set()
    while joint >= 0:
        out.add(joint)
        joint = PARENTS[joint]
    return out


@functools.lru_cache
def _orientation_signs(num_rotations: int) -> Tensor:
    """(J + 1, J) how rotation j (joint j + 1) enters joint k's world orientation (±1, 0); positions use its negative."""
    head = _chain(_HEAD)
    orientation = torch.zeros(num_rotations + 1, num_rotations, dtype=torch.float64)
    for k in range(num_rotations + 1):
        chain = _chain(k)
        for v in range(num_rotations):
            j = v + 1
            orientation[k, v] = (j in chain) - (j in head)
    return orientation


def position_jacobian(kin: Kinematics, joints: tuple[int, ...], num_rotations: int) -> Tensor:
    """(S, T, 3K, 3J) d world position of `joints` / d δ of each rotation."""
    return point_jacobian(kin, joints, kin.positions[..., joints, :], num_rotations)


@functools.lru_cache
def _moving_pairs(joints: tuple[int, ...], num_rotations: int) -> tuple[Tensor, Tensor, Tensor]:
    """The (point k, rotation j) pairs of `point_jacobian` with a nonzero sign: k (P,), j (P,), sign (P,)."""
    signs = -_orientation_signs(num_rotations)[list(joints)]
    k, j = signs.nonzero(as_tuple=True)
    return k, j, signs[k, j]


def point_jacobian(kin: Kinematics, joints: tuple[int, ...], points: Tensor, num_rotations: int) -> Tensor:
    """(S, T, 3K, 3J) d `points (S, T, K, 3)` / d δ, point k fixed in the frame of joint `joints[k]`.

    Rotation j moves it by `s·hat(p − x_j)·R_world_j·δ` with `s = [j on the head's chain] −
    [j on the joint's chain, the joint included]` (for a joint itself the lever is zero);
    only the blocks with `s ≠ 0` are computed.
    """
    k, j, sign = _moving_pairs(tuple(joints), num_rotations)
    lever = points[..., k, :] - kin.positions[..., j + 1, :]  # (S, T, P, 3)
    blocks = (so3.hat(lever) @ kin.orientations[..., j + 1, :, :]) * sign.to(points)[:, None, None]
    out = points.new_zeros(*points.shape[:-2], len(joints) * num_rotations, 3, 3)
    out[..., k * num_rotations + j, :, :] = blocks
    return out.unflatten(-3, (len(joints), num_rotations)).transpose(-3, -2).flatten(-4, -3).flatten(-2, -1)


def direction_jacobian(kin: Kinematics, joints: tuple[int, ...], vectors: Tensor, num_rotations: int) -> Tensor:
    """(S, T, K·V·3, 3J) d vectors / d δ for `vectors (S, T, K, V, 3)` fixed in the frames of `joints`."""
    signs = _orientation_signs(num_rotations)[list(joints)].to(vectors)
    R = kin.orientations[..., None, None, 1 : num_rotations + 1, :, :]  # (S, T, 1, 1, J, 3, 3)
    blocks = -so3.hat(vectors)[..., None, :, :] @ R  # (S, T, K, V, J, 3, 3)
    blocks = blocks * signs[:, None, :, None, None]
    return blocks.transpose(-3, -2).flatten(-4, -3).flatten(-4, -3).flatten(-2, -1)
