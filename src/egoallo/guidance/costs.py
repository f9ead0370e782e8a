"""Guidance costs on sampled motion and the `guide` entry point.

The variables are the local rotations of joints 1..21 (and 22..51 with hands)
of every frame. The root is not free: as in the paper it follows from the
rotations through Eq. 5, `T_world_root = T_world_cpf · T_root_cpf(Θ, β)^-1`, so
every world position below moves when any joint on the path between it and
the head rotates. Jacobians are analytic: with the placement, perturbing joint
j by `R_j ← R_j·exp(δ)` moves joint k's world position by
`s_kj · hat(x_k − x_j) · R_world_j · δ`, with `s_kj = [j on the head's chain] −
[j a strict ancestor of k]` (the common chain cancels: it turns head and k together).

Each weight scales its residual, so a term's cost is `(w·‖r‖)²`; rotations in
radians, positions in metres. Terms (window of frames in brackets):

- prior (t): rotation deviation from the sample `log(R̂ᵀR)`; world position of
  the torso joints (pelvis, hips, spine1-3, neck, collars) against the sample's;
- smoothness: rotation change `log(R_tᵀR_{t+1})` (t, t+1); change of the
  deviation from the sample (t, t+1); second difference of rotations (t-1, t, t+1);
- "feet" (t, t+1): world displacement of ankles and feet, scaled by
  `sqrt(c_t·c_{t+1})` of their predicted contact probabilities;
- "wrist3d" (t): Aria wrist tracking: wrist position; palm orientation as the
  wrist→palm direction and the palm normal.
- "hands" (t), from the RGB camera (`egoallo.observations.HandObservations`): 2D reprojection of the
  21 hand landmarks (`hands.LANDMARK_JOINTS`), in normalised image units (pixel error
  divided by the focal length, ≈ radians near the image centre, as the reference's
  `x/z, y/z`), robust (Huber) and scaled by `sqrt(confidence)`; and, from 3D keypoints
  in the camera frame, the wrist position and palm orientation as in "wrist3d". The 3D
  keypoints are first moved (translation only) so they reproject onto the 2D ones, which
  removes an unknown depth offset; without 2D keypoints they are used as given.

With "hands" the 30 finger rotations of each frame are variables too, with their own,
weaker prior and smoothness weights; otherwise they stay as sampled.
"""

from __future__ import annotations

import dataclasses
import functools
import time
import warnings
import torch
from torch import Tensor

from ..body import BodyModel
from ..body.model import ShapedBody, forward_kinematics
from ..body.skeleton import JOINT_INDEX, PARENTS
from ..cameras import CameraModel, as_tensor
from ..geometry import se3, so3
from ..observations import NUM_LANDMARKS, HandObservations, Observations, WristObservations
from ..prior.state import MotionState
from .hands import (
    LANDMARK_JOINTS,
    PALM_LANDMARKS,
    landmark_offsets,
    palm_from_landmarks,
    place_keypoints,
)
from .solver import LMConfig, Residual, SolverLog, levenberg_marquardt


MODES = frozenset({"feet", "wrist3d", "hands"})
TORSO_JOINTS = (0, 1, 2, 3, 6, 9, 12, 13, 14)
"""pelvis, left/right hip, spine1-3, neck, left/right collar."""
FOOT_JOINTS = (7, 8, 10, 11)
"""left/right ankle, left/right foot; contact index = joint index − 1."""
WRIST_JOINTS = (20, 21)
PALM_JOINTS = ((22, 25, 28, 31), (37, 40, 43, 46))
"""Per hand (left, right): index1, middle1, pinky1, ring1; their mean is the palm centre."""
_LANDMARK_JOINTS = LANDMARK_JOINTS[0] + LANDMARK_JOINTS[1]
_HEAD = JOINT_INDEX["head"]
FOOT_CONTACT_LIFT_M = 0.01
"""How far a foot joint in contact sits above its standing height, typically (motion capture: median 1.0 cm)."""


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


@dataclasses.dataclass(frozen=True)
class GuidanceLog:
    solver: SolverLog
    fell_back: Tensor
    """(S,) the solution was not finite and the unguided sample was returned."""
    ignored_observations: int
    """wrist3d hand-frames skipped for NaN (or a zero-length vector); hand keypoints outside the image."""
    mode: frozenset[str]
    time_s: float
    counts: dict[str, int] = dataclasses.field(default_factory=dict)
    """What the "hands" mode used and ignored (see `_hand_targets`)."""


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


def _direction_jacobian(kin: Kinematics, joints: tuple[int, ...], vectors: Tensor, num_rotations: int) -> Tensor:
    """(S, T, K·V·3, 3J) d vectors / d δ for `vectors (S, T, K, V, 3)` fixed in the frames of `joints`."""
    signs = _orientation_signs(num_rotations)[list(joints)].to(vectors)
    R = kin.orientations[..., None, None, 1 : num_rotations + 1, :, :]  # (S, T, 1, 1, J, 3, 3)
    blocks = -so3.hat(vectors)[..., None, :, :] @ R  # (S, T, K, V, J, 3, 3)
    blocks = blocks * signs[:, None, :, None, None]
    return blocks.transpose(-3, -2).flatten(-4, -3).flatten(-4, -3).flatten(-2, -1)


def _right_jacobian_inverse(r: Tensor) -> Tensor:
    """(..., 3, 3) `d log(exp(r)·exp(δ)) / dδ`."""
    return so3.left_jacobian_inverse(-r)


def _joint_weights(weights: GuidanceWeights, num_rotations: int) -> Tensor:
    """(4, J) per rotation: prior, velocity, deviation-change and second-difference weights (body, then fingers)."""
    body = (weights.prior_rotation, weights.smooth_rotation, weights.smooth_prior_deviation,
            weights.smooth_second_difference)
    hand = (weights.hand_prior_rotation, weights.hand_smooth_rotation, weights.hand_smooth_prior_deviation,
            weights.hand_smooth_second_difference)
    per_joint = [body] * min(num_rotations, 21) + [hand] * (num_rotations - 21)
    return torch.tensor(per_joint, dtype=torch.float64).T


def _rotation_residuals(
    deviation: Tensor, velocity: Tensor, joint_weights: Tensor, with_jacobians: bool
) -> list[Residual]:
    """Prior deviation and the three smoothness terms from `deviation (S, T, J, 3)`, `velocity (S, T-1, J, 3)`.

    `joint_weights (4, J)` as `_joint_weights`.
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
    Jd = _right_jacobian_inverse(deviation)
    Jv_right, Jv_left = _right_jacobian_inverse(velocity), so3.left_jacobian_inverse(velocity)
    jacobians = (
        (w_prior * Jd,),
        (-w_vel * Jv_left, w_vel * Jv_right),
        (-w_dev * Jd[:, :-1], w_dev * Jd[:, 1:]),
        (w_acc * Jv_left[:, :-1], -w_acc * (Jv_right[:, :-1] + Jv_left[:, 1:]), w_acc * Jv_right[:, 1:]),
    )
    return [Residual(v, j, per_joint=True) for v, j in zip(values, jacobians)]


def _torso_position(
    kin: Kinematics, target: Tensor, weight: float, num_rotations: int, with_jacobians: bool
) -> Residual:
    """Torso joints against the sample's `target (S, T, 9, 3)`."""
    values = weight * (kin.positions[..., TORSO_JOINTS, :] - target).flatten(-2)
    if not with_jacobians:
        return Residual(values)
    return Residual(values, (weight * position_jacobian(kin, TORSO_JOINTS, num_rotations),))


def _foot_skating(kin: Kinematics, contact: Tensor, weight: float, J_feet: Tensor | None) -> Residual:
    """Foot displacement between frames scaled by `contact (S, T-1, 4)`; `J_feet` from `position_jacobian`."""
    scale = weight * contact.repeat_interleave(3, dim=-1)  # (S, T-1, 12)
    feet = kin.positions[..., FOOT_JOINTS, :].flatten(-2)
    values = scale * (feet[:, 1:] - feet[:, :-1])
    if J_feet is None:
        return Residual(values)
    return Residual(values, (-scale[..., None] * J_feet[:, :-1], scale[..., None] * J_feet[:, 1:]))


def _foot_floor(kin: Kinematics, contact: Tensor, target_z: Tensor, weight: float, J_feet: Tensor | None) -> Residual:
    """Height of each foot joint above `target_z (S, 1, 4)` scaled by `contact (S, T, 4)`."""
    scale = weight * contact
    values = scale * (kin.positions[..., FOOT_JOINTS, 2] - target_z)
    if J_feet is None:
        return Residual(values)
    return Residual(values, (scale[..., None] * J_feet[..., 2::3, :],))


@dataclasses.dataclass(frozen=True)
class _WristTargets:
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


def _palm_local(shaped: ShapedBody) -> tuple[Tensor, Tensor]:
    """Per hand in its wrist frame: palm-centre offset (..., 2, 3) and unit palm normal (..., 2, 3).

    At rest every joint frame is aligned with the model frame, so rest offsets are local ones.
    """
    offset, normal = _palm_rest(shaped)
    normal = normal * -torch.sign(normal[..., 1:2])  # palms face down (-y) in the T-pose
    return offset, normal / normal.norm(dim=-1, keepdim=True)


def _palm_normal_sign(shaped: ShapedBody) -> Tensor:
    """(2,) per hand: the sign turning `(index1 − pinky1) × (palm centre − wrist)` to the palm side."""
    return -torch.sign(_palm_rest(shaped)[1].reshape(-1, 2, 3)[0, :, 1])


def wrist_observations(body: BodyModel, state: MotionState, T_world_cpf: Tensor, sample: int = 0) -> WristObservations:
    """What wrist tracking would report for one sample of `state` placed at `T_world_cpf (T, 4, 4)`."""
    dtype = T_world_cpf.dtype
    shaped = body.to(dtype=dtype).with_shape(state.betas[sample : sample + 1].to(dtype).mean(dim=1, keepdim=True))
    kin = place(shaped, state.local_rotations[sample : sample + 1].to(dtype), T_world_cpf)
    offset, normal = _palm_local(shaped)
    R = kin.orientations[0, :, WRIST_JOINTS]  # (T, 2, 3, 3)
    wrist = kin.positions[0, :, WRIST_JOINTS]
    return WristObservations(
        wrist_position=wrist,
        palm_position=wrist + (R @ offset[0, :, :, :, None])[..., 0],
        palm_normal=(R @ normal[0, :, :, :, None])[..., 0],
    )


def _wrist3d(
    kin: Kinematics,
    targets: _WristTargets,
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
    J_ori = _direction_jacobian(kin, WRIST_JOINTS, vectors, num_rotations)
    return [
        Residual(position.flatten(-2), (w_pos.expand(-1, -1, 3).flatten(-2)[..., None] * J_pos,)),
        Residual(orientation.flatten(-3), (w_ori.expand(-1, -1, -1, 3).flatten(-3)[..., None] * J_ori,)),
    ]


@dataclasses.dataclass(frozen=True)
class _HandTargets:
    """Cleaned 2D hand keypoints, the camera at every frame, and where the landmarks sit on the model."""

    camera: CameraModel
    T_camera_world: Tensor
    """(T, 4, 4)"""
    pixels: Tensor
    """(T, 42, 2) observed keypoints, left hand's 21 then right's (0 where unused)."""
    weight: Tensor
    """(T, 42) `sqrt(confidence)`, 0 where unused."""
    offsets: Tensor
    """(S, 1, 42, 3) each landmark in the frame of its joint (`LANDMARK_JOINTS`)."""


def _huber(error: Tensor, delta: float) -> tuple[Tensor, Tensor]:
    """For `error (..., 2)`, `s = ‖e‖`: the scale `g` with `‖g·e‖² = huber(s)` and `g'(s)/s`, each (...).

    `huber(s)` is `s²` up to δ, then `2δs − δ²`; `d(g·e)/de = g·I + (g'(s)/s)·e·eᵀ`.
    """
    s = error.norm(dim=-1).clamp_min(delta)
    root = torch.sqrt(2.0 * delta * s - delta**2)
    return root / s, -delta * (s - delta) / (s**3 * root)


def _hand_reprojection(
    kin: Kinematics, targets: _HandTargets, weights: GuidanceWeights, num_rotations: int, with_jacobians: bool
) -> Residual:
    """Landmarks projected through the camera against the 2D keypoints, in normalised image units (Huber)."""
    R = kin.orientations[..., _LANDMARK_JOINTS, :, :]  # (S, T, 42, 3, 3)
    points = kin.positions[..., _LANDMARK_JOINTS, :] + (R @ targets.offsets[..., None])[..., 0]
    R_camera_world = targets.T_camera_world[:, None, :3, :3]  # (T, 1, 3, 3)
    points_camera = (R_camera_world @ points[..., None])[..., 0] + targets.T_camera_world[:, None, :3, 3]
    focal = as_tensor(targets.camera.focal_lengths, points)
    w = weights.hand_reprojection * targets.weight[..., None]  # (T, 42, 1)
    if not with_jacobians:
        error = (targets.camera.project(points_camera) - targets.pixels) / focal
        return Residual((w * _huber(error, weights.hand_reprojection_huber)[0][..., None] * error).flatten(-2))
    pixels, J_project = targets.camera.project_with_jacobian(points_camera)  # (S, T, 42, 2), (S, T, 42, 2, 3)
    error = (pixels - targets.pixels) / focal
    scale, slope = _huber(error, weights.hand_reprojection_huber)
    robust = scale[..., None, None] * torch.eye(2, dtype=error.dtype) + slope[..., None, None] * (
        error[..., :, None] * error[..., None, :]
    )
    outer = w[..., None] * robust @ (J_project / focal[:, None]) @ R_camera_world  # (S, T, 42, 2, 3)
    J_points = point_jacobian(kin, _LANDMARK_JOINTS, points, num_rotations).unflatten(-2, (-1, 3))
    values = (w * scale[..., None] * error).flatten(-2)
    return Residual(values, ((outer @ J_points).flatten(-3, -2),))


def _hand_targets(
    obs: HandObservations, shaped: ShapedBody, T_world_cpf: Tensor
) -> tuple[_HandTargets | None, _WristTargets | None, dict[str, int]]:
    """Clean the hand observations: 2D targets, wrist/palm targets from 3D keypoints, and counts.

    A 2D keypoint is used when finite, of positive confidence and inside the image (else
    counted in `keypoints_2d_outside_image`); NaN ones are absent, not errors.
    """
    T, dtype = T_world_cpf.shape[0], T_world_cpf.dtype
    if obs.keypoints_2d is None and obs.keypoints_3d_camera is None:
        raise ValueError("HandObservations needs keypoints_2d and/or keypoints_3d_camera.")
    T_world_camera = T_world_cpf @ as_tensor(obs.camera.T_cpf_camera, T_world_cpf)
    confidence = torch.ones(T, 2, NUM_LANDMARKS, dtype=dtype) if obs.confidence is None else obs.confidence.to(dtype)
    _check_shape("confidence", confidence, (T, 2, NUM_LANDMARKS))
    confidence = torch.nan_to_num(confidence, nan=0.0).clamp(0.0, 1.0)
    counts: dict[str, int] = {}
    targets_2d = pixels = weight = None
    if obs.keypoints_2d is not None:
        keypoints = obs.keypoints_2d.to(dtype)
        _check_shape("keypoints_2d", keypoints, (T, 2, NUM_LANDMARKS, 2))
        present = keypoints.isfinite().all(dim=-1) & (confidence > 0)
        used = present & obs.camera.in_image(torch.nan_to_num(keypoints))
        counts |= {"keypoints_2d_used": int(used.sum()), "keypoints_2d_outside_image": int((present & ~used).sum())}
        pixels = torch.where(used[..., None], keypoints, 0.0)
        weight = confidence.sqrt() * used
        offsets = landmark_offsets(shaped).flatten(-3, -2)  # (S, 1, 42, 3)
        targets_2d = _HandTargets(
            obs.camera, se3.inverse(T_world_camera), pixels.flatten(1, 2), weight.flatten(1, 2), offsets
        )
    hand3d = None
    if obs.keypoints_3d_camera is not None:
        keypoints = obs.keypoints_3d_camera.to(dtype)
        _check_shape("keypoints_3d_camera", keypoints, (T, 2, NUM_LANDMARKS, 3))
        observed, hand3d_counts = _wrist_from_keypoints(obs.camera, keypoints, pixels, weight, T_world_camera, shaped)
        hand3d, _ = _wrist_targets(observed, shaped, T, dtype)
        counts |= hand3d_counts
    return targets_2d, hand3d, counts


def _wrist_from_keypoints(
    camera: CameraModel,
    keypoints: Tensor,
    pixels: Tensor | None,
    weight: Tensor | None,
    T_world_camera: Tensor,
    shaped: ShapedBody,
) -> tuple[WristObservations, dict[str, int]]:
    """World wrist and palm observations from `keypoints (T, 2, 21, 3)` in the camera frame.

    A hand-frame needs its wrist and four knuckles. With at least 4 usable 2D keypoints
    (`pixels`, `weight (T, 2, 21)`) it is moved onto them first (`place_keypoints`); else
    it is used as given if its wrist is in front of the camera.
    """
    present = keypoints.isfinite().all(dim=-1)  # (T, 2, 21)
    complete = present[..., [0, *PALM_LANDMARKS]].all(dim=-1)  # (T, 2)
    keypoints = torch.where(present[..., None], keypoints, 0.0)
    both = torch.zeros_like(present) if weight is None else (weight > 0) & present
    fit = complete & (both.sum(dim=-1) >= 4)
    placed_ok = torch.zeros_like(complete)
    if fit.any():
        translation, ok = place_keypoints(camera, keypoints[fit], pixels[fit], (weight * both)[fit])
        keypoints[fit] += torch.where(ok[:, None], translation, torch.nan)[:, None, :]
        placed_ok[fit] = ok
    valid = torch.where(fit, placed_ok, complete & camera.in_front(keypoints[..., 0, :]))
    wrist, palm, normal = palm_from_landmarks(keypoints, _palm_normal_sign(shaped).to(keypoints))
    R, t = T_world_camera[:, None, :3, :3], T_world_camera[:, None, :3, 3]
    to_world = lambda p: (R @ p[..., None])[..., 0] + t
    nan = torch.tensor(torch.nan, dtype=keypoints.dtype)
    observed = WristObservations(
        wrist_position=torch.where(valid[..., None], to_world(wrist), nan),
        palm_position=torch.where(valid[..., None], to_world(palm), nan),
        palm_normal=(R @ normal[..., None])[..., 0],
        valid=valid,
    )
    counts = {
        "hand3d_frames_used": int(valid.sum()),
        "hand3d_frames_placed_on_2d": int((valid & fit).sum()),
        "hand3d_frames_unusable": int((complete & ~valid).sum()),
    }
    return observed, counts


def _check_shape(name: str, value: Tensor, shape: tuple[int, ...]) -> None:
    if tuple(value.shape) != shape:
        raise ValueError(f"hand observations: {name} must be {shape}, got {tuple(value.shape)}.")


@dataclasses.dataclass(frozen=True)
class GuidanceProblem:
    """Everything the residuals need besides the rotations being optimised."""

    shaped: ShapedBody
    T_world_cpf: Tensor
    """(T, 4, 4)"""
    prior: Tensor
    """(S, T, J, 3, 3) the diffusion sample's rotations."""
    prior_torso: Tensor
    """(S, T, 9, 3) the sample's torso joint positions."""
    weights: GuidanceWeights
    foot_contact: Tensor | None
    """(S, T-1, 4) `sqrt(c_t·c_{t+1})` per foot joint, with "feet"."""
    foot_floor: tuple[Tensor, Tensor] | None
    """With "feet" and a known floor: contact `(S, T, 4)` and target heights `(S, 1, 4)` of the foot joints."""
    wrists: _WristTargets | None
    """With "wrist3d"."""
    hands: _HandTargets | None
    """With "hands" and 2D keypoints."""
    hand3d: _WristTargets | None
    """With "hands" and 3D keypoints: wrist and palm targets in the world."""
    ignored_observations: int
    counts: dict[str, int]

    def residuals(self, rotations: Tensor, with_jacobians: bool) -> list[Residual]:
        """Every term's residuals (and Jacobians) at `rotations (S, T, J, 3, 3)`."""
        J, w = rotations.shape[-3], self.weights
        kin = place(self.shaped, rotations, self.T_world_cpf)
        deviation = so3.log(self.prior.mT @ rotations)
        velocity = so3.log(rotations[:, :-1].mT @ rotations[:, 1:])
        out = _rotation_residuals(deviation, velocity, _joint_weights(w, J), with_jacobians)
        out.append(_torso_position(kin, self.prior_torso, w.prior_torso_position, J, with_jacobians))
        feet = self.foot_contact is not None or self.foot_floor is not None
        J_feet = position_jacobian(kin, FOOT_JOINTS, J) if feet and with_jacobians else None
        if self.foot_contact is not None:
            out.append(_foot_skating(kin, self.foot_contact, w.foot_skating, J_feet))
        if self.foot_floor is not None:
            out.append(_foot_floor(kin, *self.foot_floor, w.foot_floor, J_feet))
        if self.wrists is not None:
            out.extend(_wrist3d(kin, self.wrists, w.wrist_position, w.palm_orientation, J, with_jacobians))
        if self.hands is not None:
            out.append(_hand_reprojection(kin, self.hands, w, J, with_jacobians))
        if self.hand3d is not None:
            out.extend(
                _wrist3d(kin, self.hand3d, w.hand3d_wrist_position, w.hand3d_palm_orientation, J, with_jacobians)
            )
        return out


def _wrist_targets(
    obs: WristObservations, shaped: ShapedBody, num_frames: int, dtype: torch.dtype
) -> tuple[_WristTargets, int]:
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
    offset, palm_normal = _palm_local(shaped)
    local = torch.stack([offset / offset.norm(dim=-1, keepdim=True), palm_normal], dim=-2)
    targets = _WristTargets(
        torch.where(valid[..., None], wrist, 0.0), vectors, valid.to(dtype), vector_valid.to(dtype), local
    )
    return targets, ignored


def build_problem(
    body: BodyModel,
    state: MotionState,
    T_world_cpf: Tensor,
    *,
    mode: set[str] | frozenset[str],
    observations: Observations | None = None,
    weights: GuidanceWeights = GuidanceWeights(),
    dtype: torch.dtype = torch.float64,
    floor_z: float | None = None,
) -> GuidanceProblem:
    """The guidance problem for a sample `state (S, T, ...)` and the head poses `T_world_cpf (T, 4, 4)`.

    With "hands" and a state without hand rotations, the fingers start from the flat rest pose.
    With "feet" and `floor_z`, foot joints in contact are also drawn to their standing height
    above the floor.
    """
    unknown = set(mode) - MODES
    if unknown:
        raise ValueError(f"unknown guidance mode(s) {sorted(unknown)}; choose from {sorted(MODES)}.")
    observations = observations or Observations()
    if "wrist3d" in mode and observations.wrist3d is None:
        raise ValueError("guidance mode 'wrist3d' needs Observations(wrist3d=WristObservations(...)).")
    if "hands" in mode and observations.hands is None:
        raise ValueError("guidance mode 'hands' needs Observations(hands=HandObservations(...)).")
    if not weights.hand_reprojection_huber > 0:
        raise ValueError(f"hand_reprojection_huber must be positive, got {weights.hand_reprojection_huber}.")
    T = state.body_rotations.shape[-4]
    if T_world_cpf.shape != (T, 4, 4):
        raise ValueError(f"T_world_cpf must be ({T}, 4, 4) to match the state, got {tuple(T_world_cpf.shape)}.")
    shaped = body.to(dtype=dtype).with_shape(state.betas.to(dtype).mean(dim=1, keepdim=True))
    T_world_cpf = T_world_cpf.to(dtype)
    # Finger rotations are variables only when hand keypoints constrain them; the other terms
    # never depend on them (the palm's knuckles move with the wrist), so they stay as sampled.
    prior = state.body_rotations.to(dtype)
    if "hands" in mode:
        fingers = state.hand_rotations.to(dtype) if state.hand_rotations is not None else so3.identity((*prior.shape[:2], 30), dtype=dtype)
        prior = torch.cat([prior, fingers], dim=-3)
    prior_kin = place(shaped, prior, T_world_cpf)
    foot_contact, foot_floor = None, None
    if "feet" in mode:
        c = state.contacts[..., [j - 1 for j in FOOT_JOINTS]].to(dtype).clamp(0.0, 1.0)
        foot_contact = torch.sqrt(c[:, 1:] * c[:, :-1])
        if floor_z is not None:
            target_z = floor_z + shaped.rest_joint_heights[..., FOOT_JOINTS] + FOOT_CONTACT_LIFT_M
            foot_floor = (c, target_z)
    wrists, ignored = None, 0
    if "wrist3d" in mode:
        wrists, ignored = _wrist_targets(observations.wrist3d, shaped, T, dtype)
        if ignored:
            warnings.warn(
                f"wrist3d: ignored {ignored} of {2 * T} hand observations with NaN or zero-length vectors.",
                stacklevel=3,
            )
    hands, hand3d, counts = None, None, {}
    if "hands" in mode:
        hands, hand3d, counts = _hand_targets(observations.hands, shaped, T_world_cpf)
        outside = counts.get("keypoints_2d_outside_image", 0)
        ignored += outside
        if outside:
            warnings.warn(f"hands: ignored {outside} 2D keypoints outside the image.", stacklevel=3)
        if not counts.get("keypoints_2d_used", 0) and not counts.get("hand3d_frames_used", 0):
            warnings.warn("hands: no usable hand observation; only the prior and smoothness terms act.", stacklevel=3)
    return GuidanceProblem(
        shaped=shaped,
        T_world_cpf=T_world_cpf,
        prior=prior,
        prior_torso=prior_kin.positions[..., TORSO_JOINTS, :],
        weights=weights,
        foot_contact=foot_contact,
        foot_floor=foot_floor,
        wrists=wrists,
        hands=hands,
        hand3d=hand3d,
        ignored_observations=ignored,
        counts=counts,
    )


def guide(
    body: BodyModel,
    state: MotionState,
    T_world_cpf: Tensor,
    *,
    mode: set[str] | frozenset[str],
    observations: Observations | None = None,
    weights: GuidanceWeights = GuidanceWeights(),
    iterations: int = 20,
    dtype: torch.dtype = torch.float64,
    solver: LMConfig = LMConfig(),
    floor_z: float | None = None,
) -> tuple[MotionState, GuidanceLog]:
    """Refine sampled rotations with Levenberg–Marquardt ("post" guidance).

    Args:
        state: the sample, `(S, T, ...)`; β is averaged over time as in `place_in_world`.
        T_world_cpf: (T, 4, 4) head poses (z-up world).
        mode: subset of {"feet", "wrist3d", "hands"}; prior and smoothness terms are always on.
        floor_z: floor height in the same world; with "feet", feet in contact stand on it.
    Returns:
        The state with refined body (and hand) rotations, and the log. A sample whose
        solution is not finite is returned unguided, flagged in `log.fell_back`.
    """
    started = time.perf_counter()
    problem = build_problem(
        body, state, T_world_cpf, mode=mode, observations=observations, weights=weights, dtype=dtype, floor_z=floor_z
    )
    rotations, solver_log = levenberg_marquardt(problem.residuals, problem.prior, iterations, solver)
    finite = rotations.flatten(1).isfinite().all(dim=1)
    if not finite.all():
        warnings.warn(
            f"guidance: {int((~finite).sum())} sample(s) gave non-finite rotations; returning them unguided.",
            stacklevel=2,
        )
    rotations = torch.where(finite[:, None, None, None, None], rotations, problem.prior)
    body_rotations = rotations[..., :21, :, :].to(state.body_rotations.dtype)
    hands = rotations[..., 21:, :, :].to(state.body_rotations.dtype) if rotations.shape[-3] == 51 else state.hand_rotations
    guided = dataclasses.replace(state, body_rotations=body_rotations, hand_rotations=hands)
    log = GuidanceLog(
        solver=solver_log,
        fell_back=~finite,
        ignored_observations=problem.ignored_observations,
        mode=frozenset(mode),
        time_s=time.perf_counter() - started,
        counts=problem.counts,
    )
    return guided, log
