"""Hand keypoints seen by the glasses' RGB camera, and how they map onto the body model.

Keypoints follow MediaPipe's 21 hand landmarks: 0 wrist; thumb 1 CMC, 2 MCP, 3 IP, 4 tip;
index 5 MCP, 6 PIP, 7 DIP, 8 tip; middle 9-12; ring 13-16; pinky 17-20 (same order per
finger). On the SMPL-H skeleton they are: wrist → `{side}_wrist`; thumb CMC, MCP, IP →
`thumb1-3`; finger MCP, PIP, DIP → `{finger}1-3`. SMPL-H has no fingertip joints, so a tip
is a point fixed in its finger's third joint frame: the rest-pose mesh vertex, among those
skinned mostly to that joint, that lies farthest along the finger's last bone.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from ..body.model import ShapedBody
from ..body.skeleton import JOINT_INDEX, PARENTS
from ..cameras import CameraModel, as_tensor
from ..geometry import se3
from ..observations import NUM_LANDMARKS, SIDES, HandObservations, WristObservations
from .kinematics import Kinematics, point_jacobian
from .solver import Residual
from .weights import GuidanceWeights
from .wrist import WristTargets, palm_normal_sign, wrist_targets
_FINGERS = ("thumb", "index", "middle", "ring", "pinky")
TIP_LANDMARKS = (4, 8, 12, 16, 20)
PALM_LANDMARKS = (5, 9, 17, 13)
"""index, middle, pinky, ring MCP: the knuckles that `wrist.PALM_JOINTS` average into the palm centre."""
LANDMARK_JOINTS: tuple[tuple[int, ...], tuple[int, ...]] = tuple(
    (JOINT_INDEX[f"{side}_wrist"],)
    + tuple(JOINT_INDEX[f"{side}_{finger}{min(k, 3)}"] for finger in _FINGERS for k in range(1, 5))
    for side in SIDES
)
"""Per hand (left, right): the joint each landmark is attached to (a tip: its finger's third joint)."""


def fingertip_offsets(shaped: ShapedBody) -> Tensor:
    """(..., 2, 5, 3) each fingertip in its finger's third joint frame (rest offsets are local ones)."""
    weights = shaped.model.weights
    dominant = weights.argmax(dim=-1)
    offsets = []
    for side in SIDES:
        for finger in _FINGERS:
            joint = JOINT_INDEX[f"{side}_{finger}3"]
            x = shaped.joints_zero[..., joint, :]
            bone = x - shaped.joints_zero[..., PARENTS[joint], :]
            verts = shaped.verts_zero[..., dominant == joint, :] - x[..., None, :]  # (..., M, 3)
            along = (verts * bone[..., None, :]).sum(dim=-1)
            tip = torch.gather(verts, -2, along.argmax(dim=-1)[..., None, None].expand(*verts.shape[:-2], 1, 3))
            offsets.append(tip[..., 0, :])
    return torch.stack(offsets, dim=-2).unflatten(-2, (2, 5))


def landmark_offsets(shaped: ShapedBody) -> Tensor:
    """(..., 2, 21, 3) each landmark in the frame of its joint (`LANDMARK_JOINTS`): zero but for the tips."""
    tips = fingertip_offsets(shaped)
    out = tips.new_zeros(*tips.shape[:-3], 2, NUM_LANDMARKS, 3)
    out[..., list(TIP_LANDMARKS), :] = tips
    return out


def palm_from_landmarks(keypoints: Tensor, normal_sign: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Wrist, palm centre and unit palm normal `(..., 2, 3)` from `keypoints (..., 2, 21, 3)`.

    The palm normal is `normal_sign (2,) · (index − pinky MCP) × (palm − wrist)`, the construction
    `wrist.palm_local` uses on the model's knuckles (NaN where degenerate).
    """
    wrist = keypoints[..., 0, :]
    palm = keypoints[..., list(PALM_LANDMARKS), :].mean(dim=-2)
    across = keypoints[..., PALM_LANDMARKS[0], :] - keypoints[..., PALM_LANDMARKS[2], :]
    normal = torch.linalg.cross(across, palm - wrist) * normal_sign[:, None]
    return wrist, palm, normal / normal.norm(dim=-1, keepdim=True)


def place_keypoints(
    camera: CameraModel, keypoints_3d: Tensor, pixels: Tensor, weight: Tensor, iterations: int = 15
) -> tuple[Tensor, Tensor]:
    """The translation that moves each hand's 3D keypoints onto its 2D ones (damped Gauss-Newton).

    Args:
        keypoints_3d: (N, 21, 3) camera frame, finite; pixels: (N, 21, 2); weight: (N, 21), 0 where unused.
    Returns:
        translation (N, 3), and ok (N,): converged with every keypoint in front of the camera.
    Starts from the given placement if the wrist (keypoint 0) is over 0.1 m ahead (else, e.g.
    for wrist-relative keypoints, with the wrist 0.4 m ahead).
    """
    focal = as_tensor(camera.focal_lengths, keypoints_3d)
    wrist = keypoints_3d[:, 0]
    ahead = torch.tensor([0.0, 0.0, 0.4], dtype=keypoints_3d.dtype) - wrist
    translation = torch.where(wrist[:, 2:] > 0.1, torch.zeros_like(wrist), ahead)
    damping = torch.full_like(wrist[:, 0], 1e-3)

    def cost(t: Tensor) -> Tensor:
        points = keypoints_3d + t[:, None, :]
        error = weight[..., None] * (camera.project(points) - pixels) / focal
        behind = ~camera.in_front(points) & (weight > 0)
        return torch.where(behind.any(dim=-1), torch.inf, error.square().sum(dim=(-2, -1)))

    current = cost(translation)
    for _ in range(iterations):
        uv, J = camera.project_with_jacobian(keypoints_3d + translation[:, None, :])
        r = (weight[..., None] * (uv - pixels) / focal).flatten(-2)  # (N, 42)
        Jw = (weight[..., None, None] * J / focal[:, None]).flatten(-3, -2)  # (N, 42, 3)
        H = Jw.mT @ Jw
        H = H + damping[:, None, None] * torch.diag_embed(torch.diagonal(H, dim1=-2, dim2=-1) + 1e-9)
        step = torch.linalg.solve(H, -(Jw.mT @ r[..., None]))[..., 0]
        candidate = cost(translation + step)
        better = candidate < current
        translation = torch.where(better[:, None], translation + step, translation)
        current = torch.where(better, candidate, current)
        damping = torch.where(better, damping / 10, damping * 10).clamp(1e-9, 1e9)
    return translation, current.isfinite()


_LANDMARK_JOINTS = LANDMARK_JOINTS[0] + LANDMARK_JOINTS[1]


@dataclasses.dataclass(frozen=True)
class HandTargets:
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


def hand_reprojection(
    kin: Kinematics, targets: HandTargets, weights: GuidanceWeights, num_rotations: int, with_jacobians: bool
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


def hand_targets(
    obs: HandObservations, shaped: ShapedBody, T_world_cpf: Tensor
) -> tuple[HandTargets | None, WristTargets | None, dict[str, int]]:
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
        targets_2d = HandTargets(
            obs.camera, se3.inverse(T_world_camera), pixels.flatten(1, 2), weight.flatten(1, 2), offsets
        )
    hand3d = None
    if obs.keypoints_3d_camera is not None:
        keypoints = obs.keypoints_3d_camera.to(dtype)
        _check_shape("keypoints_3d_camera", keypoints, (T, 2, NUM_LANDMARKS, 3))
        observed, hand3d_counts = _wrist_from_keypoints(obs.camera, keypoints, pixels, weight, T_world_camera, shaped)
        hand3d, _ = wrist_targets(observed, shaped, T, dtype)
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
    wrist, palm, normal = palm_from_landmarks(keypoints, palm_normal_sign(shaped).to(keypoints))
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
