"""The paper's evaluation metrics, per sample, matching the EgoAllo reference release.

Arrays are numpy or torch, positions in metres in a z-up world whose floor is
z = 0, joints in SMPL-H order (`egoallo.body.skeleton`). Predictions carry a
leading sample axis S; ground truth has none. Every metric returns `(S,)`
float64 numpy.

Reference conventions reproduced here (EgoAllo's `metrics_helpers.py`):
- MPJPE and PA-MPJPE average over the 22 body joints (pelvis + 21) and frames.
- The reference's PA-MPJPE fits the similarity taking the ground truth onto the
  prediction and reports how far that moves the ground truth; it is
  `pa_mpjpe_reference`, the number comparable with the paper. `pa_mpjpe` is
  the textbook metric (prediction aligned onto the ground truth).
- Foot skate lowers the predictions by the lowest height over all samples,
  frames and body joints 1..21, then sums over the T - 1 frame steps and the
  four foot joints the L1 horizontal step (|dx| + |dy|), weighted by
  2 - 2^(h/H) where h, the height at the step's later frame, is below H.
- Foot contact is not lowered: heights are taken as they are.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..body import skeleton
from ..body.plausibility import FOOT_JOINTS

BODY_JOINTS: tuple[int, ...] = tuple(range(skeleton.NUM_BODY_JOINTS))
HEAD_JOINT: int = skeleton.JOINT_INDEX["head"]
FOOT_HEIGHT_THRESHOLDS: tuple[float, ...] = (0.08, 0.08, 0.04, 0.04)  # ankles, toes (EgoEgo / Kinpoly)


def _f64(x: np.ndarray | torch.Tensor) -> np.ndarray:
    """A float64 numpy copy of an array or tensor."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _mean_joint_error(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Mean Euclidean distance `(S,)` over frames and joints of `(S, T, J, 3)` vs `(S|1, T, J, 3)`."""
    return np.linalg.norm(pred - gt, axis=-1).mean(axis=(1, 2))


def similarity_align(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """`source (..., N, 3)` moved by the least-squares similarity (rotation, translation,
    uniform scale) onto `target (..., N, 3)` (Umeyama), one fit per leading index."""
    source, target = np.broadcast_arrays(_f64(source), _f64(target))
    mu_x, mu_y = source.mean(axis=-2, keepdims=True), target.mean(axis=-2, keepdims=True)
    x, y = source - mu_x, target - mu_y
    U, sigma, Vt = np.linalg.svd(np.swapaxes(x, -1, -2) @ y)
    signs = np.ones_like(sigma)
    signs[..., -1] = np.sign(np.linalg.det(U @ Vt))
    R = (U * signs[..., None, :]) @ Vt  # acts on row vectors: x @ R
    scale = (sigma * signs).sum(axis=-1) / np.square(x).sum(axis=(-2, -1))
    return scale[..., None, None] * (x @ R) + mu_y


def mpjpe(pred_joints, gt_joints, joints: Sequence[int] = BODY_JOINTS) -> np.ndarray:
    """MPJPE in mm `(S,)` of `pred_joints (S, T, J, 3)` vs `gt_joints (T, J, 3)`, no alignment."""
    idx = list(joints)
    return 1000.0 * _mean_joint_error(_f64(pred_joints)[:, :, idx], _f64(gt_joints)[None, :, idx])


def pa_mpjpe(pred_joints, gt_joints, joints: Sequence[int] = BODY_JOINTS) -> np.ndarray:
    """PA-MPJPE in mm `(S,)`: each predicted frame `(S, T, J, 3)` similarity-aligned onto
    the ground truth `(T, J, 3)`, then MPJPE."""
    idx = list(joints)
    pred, gt = _f64(pred_joints)[:, :, idx], _f64(gt_joints)[None, :, idx]
    return 1000.0 * _mean_joint_error(similarity_align(pred, gt), gt)


def pa_mpjpe_reference(pred_joints, gt_joints, joints: Sequence[int] = BODY_JOINTS) -> np.ndarray:
    """The reference release's PA-MPJPE in mm `(S,)` (the paper's column): per frame, the
    ground truth `(T, J, 3)` is similarity-aligned onto the prediction `(S, T, J, 3)`, and
    the error is how far the aligned ground truth lies from the ground truth.

    Unlike `pa_mpjpe` it is not invariant to moving the prediction rigidly."""
    idx = list(joints)
    pred, gt = _f64(pred_joints)[:, :, idx], _f64(gt_joints)[None, :, idx]
    return 1000.0 * _mean_joint_error(similarity_align(gt, pred), gt)


def head_translation_error(pred_head, gt_head) -> np.ndarray:
    """T_head in m `(S,)`: mean distance of `pred_head (S, T, 3)` to `gt_head (T, 3)`."""
    return np.linalg.norm(_f64(pred_head) - _f64(gt_head)[None], axis=-1).mean(axis=1)


def hand_mpjpe(pred_hand_joints, gt_hand_joints) -> np.ndarray:
    """Hand MPJPE in mm `(S,)` of `pred (S, T, 30, 3)` vs `gt (T, 30, 3)`, no alignment."""
    return 1000.0 * _mean_joint_error(_f64(pred_hand_joints), _f64(gt_hand_joints)[None])


def stature_error_cm(pred_stature, gt_stature) -> np.ndarray:
    """Absolute stature error in cm `(S,)` of `pred_stature (S,)` vs `gt_stature ()`, both in m."""
    return 100.0 * np.abs(_f64(pred_stature) - _f64(gt_stature))


def foot_contact(pred_joints) -> np.ndarray:
    """GND `(S,)`: 1 where some ankle is below 0.08 m or toe below 0.04 m at some frame
    of `pred_joints (S, T, J >= 22, 3)`, else 0. Heights are used as given (no lowering)."""
    heights = _f64(pred_joints)[:, :, list(FOOT_JOINTS), 2]
    return np.any(heights < np.asarray(FOOT_HEIGHT_THRESHOLDS), axis=(1, 2)).astype(np.float64)


def foot_skate(pred_joints) -> np.ndarray:
    """Foot skate in m `(S,)` of `pred_joints (S, T, J >= 22, 3)` (EgoEgo / Kinpoly).

    All samples are lowered together so the lowest of body joints 1..21 over the
    whole tensor sits at z = 0 (one sample's score depends on the others). Then the
    sum over frame steps t -> t+1 and foot joints of (|dx| + |dy|) * (2 - 2^(h/H)),
    for the joints whose height h at frame t+1 is below their threshold H."""
    joints = _f64(pred_joints)
    floor = joints[:, :, 1 : skeleton.NUM_BODY_JOINTS, 2].min()
    feet = joints[:, :, list(FOOT_JOINTS)]
    step = np.abs(np.diff(feet[..., :2], axis=1)).sum(axis=-1)  # (S, T-1, 4)
    H = np.asarray(FOOT_HEIGHT_THRESHOLDS)
    h = feet[:, 1:, :, 2] - floor
    weight = np.where(h < H, 2.0 - 2.0 ** (h / H), 0.0)
    return (step * weight).sum(axis=(1, 2))


def body_metrics(pred_joints_world, gt_joints_world) -> dict[str, np.ndarray]:
    """All body metrics, each `(S,)`, of `pred_joints_world (S, T, 52, 3)` vs
    `gt_joints_world (T, 52, 3)` (world frame, floor at z = 0)."""
    pred, gt = _f64(pred_joints_world), _f64(gt_joints_world)
    return {
        "mpjpe": mpjpe(pred, gt),
        "pa_mpjpe": pa_mpjpe(pred, gt),
        "pa_mpjpe_reference": pa_mpjpe_reference(pred, gt),
        "T_head": head_translation_error(pred[:, :, HEAD_JOINT], gt[:, HEAD_JOINT]),
        "foot_contact": foot_contact(pred),
        "foot_skate": foot_skate(pred),
    }
