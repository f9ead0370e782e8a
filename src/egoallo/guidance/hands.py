"""Hand keypoints seen by the glasses' RGB camera, and how they map onto the body model.

Keypoints follow MediaPipe's 21 hand landmarks: 0 wrist; thumb 1 CMC, 2 MCP, 3 IP, 4 tip;
index 5 MCP, 6 PIP, 7 DIP, 8 tip; middle 9-12; ring 13-16; pinky 17-20 (same order per
finger). On the SMPL-H skeleton they are: wrist → `{side}_wrist`; thumb CMC, MCP, IP →
`thumb1-3`; finger MCP, PIP, DIP → `{finger}1-3`. SMPL-H has no fingertip joints, so a tip
is a point fixed in its finger's third joint frame: the rest-pose mesh vertex, among those
skinned mostly to that joint, that lies farthest along the finger's last bone.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..body.model import ShapedBody
from ..body.skeleton import JOINT_INDEX, PARENTS
from ..cameras import CameraModel, as_tensor
from ..observations import NUM_LANDMARKS, SIDES
_FINGERS = ("thumb", "index", "middle", "ring", "pinky")
TIP_LANDMARKS = (4, 8, 12, 16, 20)
PALM_LANDMARKS = (5, 9, 17, 13)
"""index, middle, pinky, ring MCP: the knuckles that `costs.PALM_JOINTS` average into the palm centre."""
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
    `costs._palm_local` uses on the model's knuckles (NaN where degenerate).
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
