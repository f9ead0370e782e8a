"""Evaluation metrics: the reference's values on its fixture, and cases with known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from egoallo.evaluation import metrics
from egoallo.geometry import se3

LEFT_ANKLE, RIGHT_ANKLE, LEFT_TOE, RIGHT_TOE = metrics.FOOT_JOINTS


def _standing_body(num_frames: int = 10, seed: int = 0) -> np.ndarray:
    """A still body `(T, 52, 3)`: ankles 5 cm and toes 0 cm above the floor, the rest higher."""
    rng = np.random.default_rng(seed)
    frame = np.concatenate([rng.uniform(-0.3, 0.3, (52, 2)), rng.uniform(0.3, 1.7, (52, 1))], axis=-1)
    frame[[LEFT_ANKLE, RIGHT_ANKLE], 2] = 0.05
    frame[[LEFT_TOE, RIGHT_TOE], 2] = 0.0
    return np.repeat(frame[None], num_frames, axis=0)


def _positions(wxyz_xyz: np.ndarray) -> np.ndarray:
    """Positions `(..., 3)` of transforms `(..., 7)` (w, x, y, z, then xyz)."""
    return se3.from_quat_xyz(torch.from_numpy(wxyz_xyz).double())[..., :3, 3].numpy()


def test_reproduces_reference_fixture(shared_dir: Path) -> None:
    io = np.load(shared_dir / "fixtures" / "egoallo_ref_tiny" / "metrics_io.npz")
    # The reference's joint arrays hold SMPL-H joints 1..21; the root is joint 0.
    gt_root, gt_rest = _positions(io["label_T_world_root"]), _positions(io["label_Ts_world_joint"])
    pred_root, pred_rest = _positions(io["pred_T_world_root"]), _positions(io["pred_Ts_world_joint"])
    gt = np.concatenate([gt_root[:, None], gt_rest], axis=1)
    pred = np.concatenate([pred_root[:, :, None], pred_rest], axis=2)
    assert gt.shape == (60, 22, 3) and pred.shape == (2, 60, 22, 3)

    got = metrics.body_metrics(pred, gt)
    expected = {
        "mpjpe": io["mpjpe"],
        "pa_mpjpe_reference": io["pampjpe"],
        "T_head": io["T_head"],
        "foot_contact": io["foot_contact"],
        "foot_skate": io["foot_skate"],
    }
    for key, value in expected.items():
        np.testing.assert_allclose(got[key], value, atol=1e-3, err_msg=key)
    # The textbook PA-MPJPE differs from the reference's on these noisy predictions.
    assert np.all(got["pa_mpjpe"] > got["pa_mpjpe_reference"] + 10.0)


def test_identical_prediction_scores_zero() -> None:
    gt = _standing_body()
    got = metrics.body_metrics(gt[None], gt)
    for key in ("mpjpe", "pa_mpjpe", "pa_mpjpe_reference", "T_head", "foot_skate"):
        np.testing.assert_allclose(got[key], [0.0], atol=1e-9, err_msg=key)
    np.testing.assert_allclose(metrics.hand_mpjpe(gt[None, :, 22:], gt[:, 22:]), [0.0])
    np.testing.assert_allclose(metrics.stature_error_cm(np.array([1.7]), np.array(1.7)), [0.0])


def test_rigid_offset() -> None:
    gt = _standing_body()
    pred = gt[None] + np.array([0.03, 0.0, 0.04])  # 5 cm
    got = metrics.body_metrics(pred, gt)
    np.testing.assert_allclose(got["mpjpe"], [50.0])
    np.testing.assert_allclose(got["T_head"], [0.05])
    np.testing.assert_allclose(got["pa_mpjpe"], [0.0], atol=1e-9)
    # The reference measures the similarity itself, so a rigid offset counts in full.
    np.testing.assert_allclose(got["pa_mpjpe_reference"], [50.0])


def test_pa_mpjpe_invariant_to_per_frame_similarity() -> None:
    gt = _standing_body(num_frames=6)
    rng = np.random.default_rng(1)
    R = Rotation.random(2 * 6, random_state=2).as_matrix().reshape(2, 6, 1, 3, 3)
    scale = rng.uniform(0.5, 2.0, (2, 6, 1, 1))
    shift = rng.normal(size=(2, 6, 1, 3))
    pred = scale * (R @ gt[None, ..., None])[..., 0] + shift
    np.testing.assert_allclose(metrics.pa_mpjpe(pred, gt), [0.0, 0.0], atol=1e-9)
    assert np.all(metrics.mpjpe(pred, gt) > 100.0)


def test_head_offset_of_1cm() -> None:
    gt = _standing_body()
    pred = gt[None].copy()
    pred[:, :, metrics.HEAD_JOINT, 1] += 0.01
    np.testing.assert_allclose(metrics.body_metrics(pred, gt)["T_head"], [0.01])
    np.testing.assert_allclose(metrics.head_translation_error(pred[:, :, 15], gt[:, 15]), [0.01])


def test_sliding_planted_foot_skates_by_its_l1_path() -> None:
    body = _standing_body(num_frames=10)
    body[:, LEFT_TOE, :2] += 0.01 * np.arange(10)[:, None]  # 1 cm in x and y each frame, on the floor
    np.testing.assert_allclose(metrics.foot_skate(body[None]), [9 * 0.02])


def test_skate_weight_uses_the_later_frames_height() -> None:
    body = _standing_body(num_frames=3)
    body[:, RIGHT_ANKLE, 2] = [0.10, 0.04, 0.10]  # above, at half, above the 8 cm threshold
    body[:, RIGHT_ANKLE, 0] += [0.0, 0.01, 0.02]
    np.testing.assert_allclose(metrics.foot_skate(body[None]), [0.01 * (2 - np.sqrt(2))])


def test_planted_still_foot_does_not_skate() -> None:
    body = _standing_body()
    body[:, :, 0] += 1.0  # standing elsewhere, still
    np.testing.assert_allclose(metrics.foot_skate(body[None]), [0.0])


def test_floating_body_is_lowered_for_skate_but_not_for_contact() -> None:
    body = _standing_body(num_frames=10)
    body[:, LEFT_TOE, 0] += 0.01 * np.arange(10)
    floating = body + np.array([0.0, 0.0, 0.5])
    np.testing.assert_allclose(metrics.foot_skate(floating[None]), [0.09])
    np.testing.assert_allclose(metrics.foot_contact(floating[None]), [0.0])
    np.testing.assert_allclose(metrics.foot_contact(body[None]), [1.0])
    # All samples are lowered together: beside a grounded sample, the floating one no longer skates.
    both = np.stack([_standing_body(num_frames=10, seed=3), floating])
    np.testing.assert_allclose(metrics.foot_skate(both), [0.0, 0.0])


@pytest.mark.parametrize(
    ("ankle_z", "toe_z", "contact"), [(0.079, 0.5, 1.0), (0.081, 0.039, 1.0), (0.081, 0.041, 0.0)]
)
def test_foot_contact_thresholds(ankle_z: float, toe_z: float, contact: float) -> None:
    body = _standing_body()
    body[:, [LEFT_ANKLE, RIGHT_ANKLE], 2] = 0.5
    body[:, [LEFT_TOE, RIGHT_TOE], 2] = 0.5
    body[-1, RIGHT_ANKLE, 2] = ankle_z
    body[-1, LEFT_TOE, 2] = toe_z
    np.testing.assert_allclose(metrics.foot_contact(body[None]), [contact])


def test_hand_mpjpe_and_stature_error() -> None:
    hands = _standing_body()[:, 22:]
    pred = np.stack([hands, hands + np.array([0.0, 0.01, 0.0])])
    np.testing.assert_allclose(metrics.hand_mpjpe(pred, hands), [0.0, 10.0], atol=1e-9)
    np.testing.assert_allclose(metrics.stature_error_cm(np.array([1.70, 1.80]), np.array(1.75)), [5.0, 5.0])


def test_body_metrics_accepts_torch_and_ignores_hands() -> None:
    gt = _standing_body()
    pred = np.stack([gt, gt + 0.02])
    pred[:, :, 22:] += 1.0  # hand joints play no part in the body metrics
    got = metrics.body_metrics(torch.from_numpy(pred).float(), torch.from_numpy(gt))
    assert set(got) == {"mpjpe", "pa_mpjpe", "pa_mpjpe_reference", "T_head", "foot_contact", "foot_skate"}
    for value in got.values():
        assert isinstance(value, np.ndarray) and value.shape == (2,) and value.dtype == np.float64
    np.testing.assert_allclose(got["mpjpe"], [0.0, 20.0 * np.sqrt(3)], atol=1e-4)
