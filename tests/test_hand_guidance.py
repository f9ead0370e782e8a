"""Hand guidance: keypoints seen by the real Aria RGB camera pull the arms and fingers to the truth.

The truth is a posed body reaching forward (hands in the RGB camera's view) with moving arms
and curling fingers; its landmarks are projected through the real factory calibration of
`aea_recording_rgb8frames.vrs` (`T_cpf_camera` from the device calibration). The sample
perturbs the arm and finger rotations; guidance must bring the reprojection and the 3D hand
joints back.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from egoallo.body import BodyModel
from egoallo.body.skeleton import JOINT_NAMES, PARENTS
from egoallo.evaluation.synthetic_hands import Scene, errors, make_scene, perturbed
from egoallo.guidance import GuidanceWeights, guide
from egoallo.observations import HandObservations, Observations
from egoallo.guidance.hands import (
    LANDMARK_JOINTS,
    TIP_LANDMARKS,
    fingertip_offsets,
)
from egoallo.cameras import CameraModel
from egoallo.inputs.calibration import load_rgb_camera

F64 = torch.float64
@pytest.fixture(scope="module")
def body() -> BodyModel:
    return BodyModel.load_default()


@pytest.fixture(scope="module")
def camera(shared_dir: Path) -> CameraModel:
    return load_rgb_camera(shared_dir / "aria" / "aea_recording_rgb8frames.vrs")


@pytest.fixture(scope="module")
def scene(body: BodyModel, camera: CameraModel) -> Scene:
    return make_scene(body, camera, 24)


def test_landmark_map_and_fingertips(body: BodyModel, scene: Scene) -> None:
    names = [JOINT_NAMES[j] for j in LANDMARK_JOINTS[1]]
    assert names[:5] == ["right_wrist", "right_thumb1", "right_thumb2", "right_thumb3", "right_thumb3"]
    assert names[5:9] == ["right_index1", "right_index2", "right_index3", "right_index3"]
    assert names[17:] == ["right_pinky1", "right_pinky2", "right_pinky3", "right_pinky3"]
    shaped = body.with_shape(torch.zeros(16))
    tips = fingertip_offsets(shaped)  # (2, 5, 3)
    for h, landmarks in enumerate(LANDMARK_JOINTS):
        for f, landmark in enumerate(TIP_LANDMARKS):
            joint = landmarks[landmark]
            bone = shaped.joints_zero[joint] - shaped.joints_zero[PARENTS[joint]]
            tip = tips[h, f]
            assert 0.015 < float(tip.norm()) < 0.04
            assert float(tip @ bone) / float(tip.norm() * bone.norm()) > 0.7  # beyond the joint, along the finger
    assert scene.camera.visible(scene.points_camera).all()  # every landmark of the scene is in view


def test_2d_keypoints_pull_arms_and_fingers_to_the_truth(scene: Scene) -> None:
    sample = perturbed(scene)
    observations = Observations(hands=HandObservations(scene.camera, keypoints_2d=scene.pixels))
    guided, log = guide(scene.body, sample, scene.T_world_cpf, mode={"hands"}, observations=observations)
    (px0, mm0, wrist0), (px1, mm1, wrist1) = errors(scene, sample), errors(scene, guided)
    print(
        f"\nhands 2D: reprojection {px0:.0f} -> {px1:.1f} px (median), hand joints {mm0:.0f} -> {mm1:.1f} mm, "
        f"wrists {wrist0:.0f} -> {wrist1:.1f} mm; {log.solver.iterations} iterations, {log.time_s:.2f} s"
    )
    assert px1 < 0.1 * px0 and mm1 < 0.3 * mm0 and wrist1 < 0.3 * wrist0
    assert log.counts == {"keypoints_2d_used": 24 * 42, "keypoints_2d_outside_image": 0}
    assert not log.fell_back.any() and log.ignored_observations == 0


def test_3d_keypoints_pull_the_wrists_to_the_truth(scene: Scene) -> None:
    sample = perturbed(scene)
    observations = Observations(hands=HandObservations(scene.camera, keypoints_3d_camera=scene.points_camera))
    guided, log = guide(scene.body, sample, scene.T_world_cpf, mode={"hands"}, observations=observations)
    (_, mm0, wrist0), (_, mm1, wrist1) = errors(scene, sample), errors(scene, guided)
    print(f"\nhands 3D: wrists {wrist0:.0f} -> {wrist1:.1f} mm, hand joints {mm0:.0f} -> {mm1:.1f} mm (fingers unobserved)")
    assert wrist1 < 0.1 * wrist0 and wrist1 < 15.0 and mm1 < 0.5 * mm0
    assert log.counts == {"hand3d_frames_used": 48, "hand3d_frames_placed_on_2d": 0, "hand3d_frames_unusable": 0}


def test_wrist_relative_3d_keypoints_are_placed_on_the_2d_ones(scene: Scene) -> None:
    """MediaPipe-style 3D keypoints relative to the wrist: the depth comes from the 2D keypoints."""
    relative = scene.points_camera - scene.points_camera[:, :, :1]
    sample = perturbed(scene)
    hands = HandObservations(scene.camera, keypoints_2d=scene.pixels, keypoints_3d_camera=relative)
    guided, log = guide(scene.body, sample, scene.T_world_cpf, mode={"hands"}, observations=Observations(hands=hands))
    (px0, mm0, _), (px1, mm1, wrist1) = errors(scene, sample), errors(scene, guided)
    print(f"\nhands 2D + relative 3D: {px0:.0f} -> {px1:.1f} px, hand joints {mm0:.0f} -> {mm1:.1f} mm, wrists -> {wrist1:.1f} mm")
    assert log.counts["hand3d_frames_placed_on_2d"] == 48 and log.counts["hand3d_frames_used"] == 48
    assert px1 < 0.05 * px0 and mm1 < 0.1 * mm0 and wrist1 < 10.0


def test_noisy_keypoints_with_outliers(scene: Scene) -> None:
    """3 px noise and 10 % of keypoints thrown 150 px away: the Huber loss keeps the fit."""
    g = torch.Generator().manual_seed(1)
    pixels = scene.pixels + 3.0 * torch.randn(scene.pixels.shape, generator=g, dtype=F64)
    outliers = torch.rand(scene.pixels.shape[:-1], generator=g, dtype=F64) < 0.1
    pixels[outliers] += 150.0 * torch.nn.functional.normalize(torch.randn(int(outliers.sum()), 2, generator=g, dtype=F64), dim=-1)
    pixels = pixels.clamp(0.0, 1407.0)
    sample = perturbed(scene)
    observations = Observations(hands=HandObservations(scene.camera, keypoints_2d=pixels))
    guided, _ = guide(scene.body, sample, scene.T_world_cpf, mode={"hands"}, observations=observations)
    (px0, mm0, _), (px1, mm1, _) = errors(scene, sample), errors(scene, guided)
    print(f"\nhands 2D, noise + outliers: {px0:.0f} -> {px1:.1f} px, hand joints {mm0:.0f} -> {mm1:.1f} mm")
    assert px1 < 0.1 * px0 and mm1 < 0.35 * mm0


def test_missing_and_bad_keypoints_are_ignored(scene: Scene) -> None:
    pixels = scene.pixels.clone()
    confidence = torch.ones(24, 2, 21, dtype=F64)
    pixels[::3] = torch.nan  # 8 frames unseen
    pixels[:, 0, 8] = torch.nan  # the left index tip never seen
    pixels[1, 1, :4] = torch.tensor([-40.0, 3000.0], dtype=F64)  # 4 keypoints outside the image
    pixels[4:, 1] = torch.nan  # the right hand seen in only 2 frames (1 and 2)
    confidence[2, 0, :] = 0.0  # the left hand of frame 2: no confidence
    confidence[5, 0, 3] = torch.nan
    hands = HandObservations(scene.camera, keypoints_2d=pixels, confidence=confidence)
    sample = perturbed(scene)
    with pytest.warns(UserWarning, match="ignored 4 2D keypoints outside the image"):
        guided, log = guide(scene.body, sample, scene.T_world_cpf, mode={"hands"}, observations=Observations(hands=hands))
    assert log.counts["keypoints_2d_outside_image"] == 4 and log.ignored_observations == 4
    left = (16 - 1) * 20 - 1  # 16 frames seen, less frame 2 (no confidence), 20 keypoints, one NaN confidence
    right = 2 * 21 - 4  # frames 1 and 2, less the 4 outside the image
    assert log.counts["keypoints_2d_used"] == left + right
    assert guided.body_rotations.isfinite().all() and guided.hand_rotations.isfinite().all()
    assert not log.fell_back.any()
    px_before, px_after = errors(scene, sample)[0], errors(scene, guided)[0]
    assert px_after < 0.5 * px_before


def test_no_usable_observation_is_a_warning(scene: Scene) -> None:
    sample = perturbed(scene)
    nothing = torch.full_like(scene.pixels, torch.nan)
    observations = Observations(hands=HandObservations(scene.camera, keypoints_2d=nothing))
    with pytest.warns(UserWarning, match="no usable hand observation"):
        guided, log = guide(scene.body, sample, scene.T_world_cpf, mode={"hands"}, observations=observations)
    assert log.counts["keypoints_2d_used"] == 0 and guided.local_rotations.isfinite().all()


def test_state_without_finger_rotations_gains_them(scene: Scene) -> None:
    sample = dataclasses.replace(perturbed(scene), hand_rotations=None)
    observations = Observations(hands=HandObservations(scene.camera, keypoints_2d=scene.pixels))
    guided, _ = guide(scene.body, sample, scene.T_world_cpf, mode={"hands"}, observations=observations, iterations=3)
    assert guided.hand_rotations is not None and guided.hand_rotations.shape == (1, 24, 30, 3, 3)


def test_bad_hand_arguments(scene: Scene) -> None:
    sample = perturbed(scene)
    with pytest.raises(ValueError, match="needs Observations"):
        guide(scene.body, sample, scene.T_world_cpf, mode={"hands"})
    with pytest.raises(ValueError, match="keypoints_2d and/or keypoints_3d_camera"):
        guide(scene.body, sample, scene.T_world_cpf, mode={"hands"}, observations=Observations(hands=HandObservations(scene.camera)))
    short = HandObservations(scene.camera, keypoints_2d=scene.pixels[:5])
    with pytest.raises(ValueError, match=r"keypoints_2d must be \(24, 2, 21, 2\)"):
        guide(scene.body, sample, scene.T_world_cpf, mode={"hands"}, observations=Observations(hands=short))
    with pytest.raises(ValueError, match="huber"):
        guide(scene.body, sample, scene.T_world_cpf, mode={"hands"}, observations=Observations(hands=short),
              weights=GuidanceWeights(hand_reprojection_huber=0.0))
