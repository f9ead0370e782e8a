"""Floor penetration, foot skating and pelvis height figures on hand-made joint tracks."""

import numpy as np
import pytest

from egoallo.body import skeleton
from egoallo.body.plausibility import FOOT_JOINTS, largest_jump, plausibility

STANDING = np.zeros(52)
STANDING[list(FOOT_JOINTS)] = (0.08, 0.08, 0.03, 0.03)


def _standing_track(T: int = 10, floor: float = 0.5) -> np.ndarray:
    joints = np.zeros((1, T, 52, 3))
    joints[..., 2] = floor + 0.9
    joints[:, :, list(FOOT_JOINTS), 2] = floor + STANDING[list(FOOT_JOINTS)]
    return joints


def test_a_body_standing_on_its_floor_is_plausible():
    figures = plausibility(_standing_track(), 0.5, STANDING, fps=30.0)
    assert figures.penetration_share[0] == 0.0 and figures.deepest_penetration_m[0] == pytest.approx(0.0, abs=1e-12)
    assert figures.skating_share[0] == 0.0
    assert figures.pelvis_height_min_m[0] == pytest.approx(0.9) and figures.pelvis_height_max_m[0] == pytest.approx(0.9)


def test_sunken_feet_and_skating_are_counted():
    joints = _standing_track(T=10)
    left_ankle = skeleton.JOINT_INDEX["left_ankle"]
    joints[0, 2:5, left_ankle, 2] -= 0.05  # 5 cm into the floor in 3 of 10 frames
    joints[0, 6:, skeleton.JOINT_INDEX["right_foot"], 0] = np.arange(4) * 0.02  # 0.6 m/s on the floor
    figures = plausibility(joints, 0.5, STANDING, fps=30.0)
    assert figures.penetration_share[0] == pytest.approx(0.3)
    assert figures.deepest_penetration_m[0] == pytest.approx(0.05)
    assert figures.skating_share[0] == pytest.approx(3 / 9)
    assert plausibility(joints, 0.5, STANDING + 0.0, fps=30.0).to_json()["penetration_share"] == [0.3]


def test_raised_arms_are_counted():
    joints = _standing_track(T=10)
    left_wrist, left_shoulder = skeleton.JOINT_INDEX["left_wrist"], skeleton.JOINT_INDEX["left_shoulder"]
    joints[0, :, left_shoulder, 2] = 1.9
    joints[0, :, left_wrist, 2] = 1.0
    joints[0, 7:, left_wrist, 2] = 2.1  # the left hand raised in 3 of 10 frames
    assert plausibility(joints, 0.5, STANDING, fps=30.0).wrist_above_shoulder_share[0] == pytest.approx(0.3)


def test_a_floor_too_high_shows_as_penetration_per_sample():
    joints = np.concatenate([_standing_track(), _standing_track(floor=0.45)])  # sample 1 stands 5 cm lower
    figures = plausibility(joints, 0.5, np.stack([STANDING, STANDING]), fps=30.0)
    assert figures.penetration_share.tolist() == [0.0, 1.0]
    assert figures.deepest_penetration_m[1] == pytest.approx(0.05)


def test_largest_jump_sees_a_pop_of_one_body_joint():
    joints = np.zeros((2, 10, 52, 3))
    joints[:, :, :, 0] = np.arange(10)[None, :, None] * 0.01  # everything walks 1 cm a frame
    joints[1, 6:, 5, 2] += 0.5  # sample 1: joint 5 pops up 0.5 m at frame 6
    joints[:, 3, 40, 1] += 3.0  # a finger joint's jump does not count
    np.testing.assert_allclose(largest_jump(joints), [0.01, np.hypot(0.01, 0.5)])
    np.testing.assert_allclose(plausibility(joints, -1.0, np.zeros(52), 30.0).largest_jump_m, largest_jump(joints))
    assert largest_jump(joints[:, :1]).tolist() == [0.0, 0.0]
