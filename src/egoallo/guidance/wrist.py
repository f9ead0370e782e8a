"""The "wrist3d" terms (Aria wrist and palm tracking; also the hands' 3D keypoints): wrist position, and palm
orientation as the wrist→palm direction and the palm normal."""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from ..body import BodyModel
from ..body.model import ShapedBody
from ..observations import WristObservations
from ..prior.state import MotionState
from .kinematics import Kinematics, direction_jacobian, place, position_jacobian
from .solver import Residual

WRIST_JOINTS = (20, 21)
PALM_JOINTS = ((22, 25, 28, 31), (37, 40, 43, 46))
"""Per hand (left, right): index1, middle1, pinky1, ring1; their mean is the palm centre."""


@dataclasses.dataclass(frozen=True)
class WristTargets:
    """Cleaned wrist observations, and the palm's vectors in each wrist frame."""

    position: Tensor
    """(T, 2, 3) observed wrist positions (0 where invalid)."""
    vectors: Tensor
    """(T, 2, 2, 3) observed unit wrist→palm direction and palm normal (0 where invalid)."""
    valid: Tensor
    """(T, 2) 1.0 where the wrist position is observed."""
    vector_valid: Tensor
    """(T, 2, 2) 1.0 where the wrist→palm direction / palm normal is observed (MPS v1 has no normals)."""
    local_vectors: Tensor
    """(S, 1, 2, 2, 3) the same two vectors in each wrist frame of the model."""


def _palm_rest(shaped: ShapedBody) -> tuple[Tensor, Tensor]:
    """Per hand at rest: palm-centre offset from the wrist and `(index1 − pinky1) × offset`, (..., 2, 3) each."""
    joints = shaped.joints_zero
    offset = torch.stack([joints[..., list(p), :].mean(dim=-2) for p in PALM_JOINTS], dim=-2)
    offset = offset - joints[..., WRIST_JOINTS, :]
    across = joints[..., [p[0] for p in PALM_JOINTS], :] - joints[..., [p[2] for p in PALM_JOINTS], :]
    return offset, torch.linalg.cross(across, offset)


def palm_local(shaped: ShapedBody) -> tuple[Tensor, Tensor]:
    """Per hand in its wrist frame: palm-centre offset (..., 2, 3) and unit palm normal (..., 2, 3).

    At rest every joint frame is aligned with the model frame, so rest offsets are local ones.
    """
    offset, normal = _palm_rest(shaped)
    normal = normal * -torch.sign(normal[..., 1:2])  # palms face down (-y) in the T-pose
    return offset, normal / normal.norm(dim=-1, keepdim=True)


def palm_normal_sign(shaped: ShapedBody) -> Tensor:
    """(2,) per hand: the sign turning `(index1 − pinky1) × (palm centre − wrist)` to the palm side."""
    return -torch.sign(_palm_rest(shaped)[1].reshape(-1, 2, 3)[0, :, 1])


def wrist_observations(body: BodyModel, state: MotionState, T_world_cpf: Tensor, sample: int = 0) -> WristObservations:
    """What wrist tracking would report for one sample of `state` placed at `T_world_cpf (T, 4, 4)`."""
    dtype = T_world_cpf.dtype
    shaped = body.to(dtype=dtype).with_shape(state.betas[sample : sample + 1].to(dtype).mean(dim=1, keepdim=True))
    kin = place(shaped, state.local_rotations[sample : sample + 1].to(dtype), T_world_cpf)
    offset, normal = palm_local(shaped)
    R = kin.orientations[0, :, WRIST_JOINTS]  # (T, 2, 3, 3)
    wrist = kin.positions[0, :, WRIST_JOINTS]
    return WristObservations(
        wrist_position=wrist,
        palm_position=wrist + (R @ offset[0, :, :, :, None])[..., 0],
        palm_normal=(R @ normal[0, :, :, :, None])[..., 0],
    )


def wrist3d(
    kin: Kinematics,
    targets: WristTargets,
    weight_position: float,
    weight_orientation: float,
    num_rotations: int,
    with_jacobians: bool,
) -> list[Residual]:
    """Wrist positions and palm orientation against the observations ("wrist3d", and "hands" from 3D keypoints)."""
    w_pos = weight_position * targets.valid[..., None]  # (T, 2, 1)
    w_ori = weight_orientation * targets.vector_valid[..., None]  # (T, 2, 2, 1)
    position = w_pos * (kin.positions[..., WRIST_JOINTS, :] - targets.position)
    R = kin.orientations[..., WRIST_JOINTS, None, :, :]  # (S, T, 2, 1, 3, 3)
    vectors = (R @ targets.local_vectors[..., None])[..., 0]  # (S, T, 2, 2, 3)
    orientation = w_ori * (vectors - targets.vectors)
    if not with_jacobians:
        return [Residual(position.flatten(-2)), Residual(orientation.flatten(-3))]
    J_pos = position_jacobian(kin, WRIST_JOINTS, num_rotations)
    J_ori = direction_jacobian(kin, WRIST_JOINTS, vectors, num_rotations)
    return [
        Residual(position.flatten(-2), (w_pos.expand(-1, -1, 3).flatten(-2)[..., None] * J_pos,)),
        Residual(orientation.flatten(-3), (w_ori.expand(-1, -1, -1, 3).flatten(-3)[..., None] * J_ori,)),
    ]


def wrist_targets(
    obs: WristObservations, shaped: ShapedBody, num_frames: int, dtype: torch.dtype
) -> tuple[WristTargets, int]:
    """Clean the observations; returns the targets and how many marked-present hand-frames were unusable."""
    wrist, palm, normal = (t.to(dtype) for t in (obs.wrist_position, obs.palm_position, obs.palm_normal))
    if wrist.shape != (num_frames, 2, 3) or palm.shape != wrist.shape or normal.shape != wrist.shape:
        raise ValueError(
            f"wrist observations must be ({num_frames}, 2, 3), got {tuple(wrist.shape)}, "
            f"{tuple(palm.shape)}, {tuple(normal.shape)}."
        )
    marked = torch.ones(num_frames, 2, dtype=torch.bool) if obs.valid is None else obs.valid.to(torch.bool)
    valid = marked & wrist.isfinite().all(dim=-1)
    direction = palm - wrist
    lengths = torch.stack([direction.norm(dim=-1), normal.norm(dim=-1)], dim=-1)  # (T, 2, 2); NaN where unobserved
    vector_valid = valid[..., None] & lengths.isfinite() & (lengths > 1e-9)
    ignored = int((marked & ~valid).sum())
    vectors = torch.stack([direction, normal], dim=-2) / lengths[..., None]
    vectors = torch.where(vector_valid[..., None], vectors, 0.0)
    offset, palm_normal = palm_local(shaped)
    local = torch.stack([offset / offset.norm(dim=-1, keepdim=True), palm_normal], dim=-2)
    targets = WristTargets(
        torch.where(valid[..., None], wrist, 0.0), vectors, valid.to(dtype), vector_valid.to(dtype), local
    )
    return targets, ignored
