import dataclasses

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from egoallo.body import BodyModel, skeleton
from egoallo.data.bvh import BvhError, parse_bvh, read_bvh
from egoallo.data.retarget import (
    RetargetError,
    _kabsch,
    _swing,
    clean_frames,
    contact_labels,
    repair_glitches,
    resample,
    retarget,
)

FEET = [skeleton.JOINT_INDEX[n] for n in ("left_ankle", "right_ankle", "left_foot", "right_foot")]


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    return BodyModel.load_default()


@pytest.mark.parametrize("stem", ["dataset-1_walk_normal_001", "dataset-2_run_feminine_021", "002_01"])
def test_real_clips_fit_within_target(model, bvh_samples, stem):
    bvh = read_bvh(bvh_samples[stem])
    result = retarget(bvh, model)
    motion = result.motion
    expected_frames = len(np.arange(0.0, (bvh.num_frames - 1) / bvh.fps + 1e-9, 1 / 30))
    assert motion.fps == 30.0 and motion.num_frames == expected_frames
    assert result.mean_error_mm < 30.0, result.joint_errors_mm
    assert result.marker_errors_mm.mean() < 10.0
    joints = motion.posed(model).joints_world.numpy()
    # Floor at z = 0: the feet reach down to it but not through it.
    lowest_foot = joints[:, FEET, 2].min()
    assert 0.0 <= lowest_foot < 0.12
    assert 1.4 < float(model.with_shape(torch.from_numpy(motion.betas)).stature) < 2.0
    # Walking and running plant both feet at some point; the head never touches the floor.
    assert motion.contacts[:, FEET[0]].any() and motion.contacts[:, FEET[1]].any()
    assert not motion.contacts[:, skeleton.JOINT_INDEX["head"]].any()
    rotations = motion.local_rotations
    np.testing.assert_allclose(rotations @ rotations.swapaxes(-1, -2), np.broadcast_to(np.eye(3), rotations.shape), atol=1e-5)


def test_one_frame_clip_is_refused(model, bvh_samples):
    bvh = read_bvh(bvh_samples["dataset-1_walk_normal_001"])
    lines = bvh_samples["dataset-1_walk_normal_001"].read_text().splitlines()
    motion_at = next(i for i, line in enumerate(lines) if line.strip() == "MOTION")
    text = "\n".join(lines[: motion_at + 1] + ["Frames: 1", lines[motion_at + 2], lines[motion_at + 3]])
    with pytest.raises(RetargetError, match="need at least 2"):
        retarget(parse_bvh(text, source="one.bvh"), model)
    assert bvh.num_frames > 1


def test_kabsch_recovers_a_rotation():
    rng = np.random.default_rng(0)
    R = Rotation.random(5, random_state=1).as_matrix()
    a = rng.normal(size=(4, 3))
    b = np.einsum("tij,kj->tki", R, a)
    np.testing.assert_allclose(_kabsch(a, b), R, atol=1e-10)


def test_swing_is_minimal_and_aligns():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    S = _swing(a, b)
    aligned = np.einsum("tij,tj->ti", S, a)
    np.testing.assert_allclose(aligned / np.linalg.norm(aligned, axis=-1, keepdims=True), b / np.linalg.norm(b, axis=-1, keepdims=True), atol=1e-10)
    # Minimal: the rotation axis is perpendicular to both directions.
    axis = Rotation.from_matrix(S).as_rotvec()
    np.testing.assert_allclose(np.einsum("ti,ti->t", axis, a), 0.0, atol=1e-10)


def test_contact_labels_need_low_and_still():
    T = 30
    joints = np.zeros((T, 52, 3))
    joints[:, :, 2] = 1.0
    joints[:, 7, 2] = 0.08  # planted ankle at its rest clearance
    joints[:, 8, 2] = 0.08
    joints[:, 8, 0] = np.arange(T) * 0.05  # sliding ankle at 1.5 m/s
    rest = np.full(52, 0.08)
    contacts = contact_labels(joints, rest, fps=30.0, height=0.05, speed=0.2)
    assert contacts[:, 7].all() and not contacts[:, 8].any() and not contacts[:, 0].any()


def test_resample_halves_a_60fps_clip_exactly():
    times = np.arange(7) / 60.0
    positions = np.random.default_rng(2).normal(size=(7, 2, 3))
    rotations = Rotation.random(14, random_state=3).as_matrix().reshape(7, 2, 3, 3)
    pos, rot = resample(times, positions, rotations, np.arange(4) / 30.0)
    np.testing.assert_allclose(pos, positions[::2], atol=1e-12)
    np.testing.assert_allclose(rot, rotations[::2], atol=1e-9)


def _rotations_about_z(degrees: np.ndarray) -> np.ndarray:
    """(F, 1, 3, 3) rotations about z by `degrees (F,)`."""
    return Rotation.from_euler("z", np.asarray(degrees)[:, None], degrees=True).as_matrix()[:, None]


def test_clean_frames_repairs_a_glitch_and_cuts_at_a_flip():
    fps = 120.0
    angles = np.linspace(0.0, 30.0, 200)  # a joint turning at 18 deg/s
    positions = np.zeros((200, 2, 3))
    glitch = angles.copy()
    glitch[50:52] += 170.0  # flips away for two frames and back
    clean = clean_frames(positions, _rotations_about_z(glitch), fps, 3000.0)
    assert (clean.start, clean.stop, clean.repaired_frames, clean.flip_frames) == (0, 200, (50, 51), 0)
    flipped = angles.copy()
    flipped[120:] += 112.0  # flips and stays: the longer side is kept
    clean = clean_frames(positions, _rotations_about_z(flipped), fps, 3000.0)
    assert (clean.start, clean.stop, clean.repaired_frames, clean.flip_frames) == (0, 120, (), 1)
    with_nan = positions.copy()
    with_nan[:30] = np.nan
    clean = clean_frames(with_nan, _rotations_about_z(angles), fps, 3000.0)
    assert (clean.start, clean.stop, clean.non_finite_frames) == (30, 200, 30)


def test_glitch_frames_are_interpolated():
    positions = np.arange(10.0)[:, None, None] * np.ones((10, 1, 3))
    rotations = _rotations_about_z(np.arange(10.0) * 2.0)
    positions[4], rotations[4] = 99.0, np.eye(3)
    fixed_p, fixed_R = repair_glitches(positions, rotations, (4,))
    np.testing.assert_allclose(fixed_p[4], 4.0)
    np.testing.assert_allclose(fixed_R[4], _rotations_about_z(np.array([8.0]))[0], atol=1e-9)
    assert positions[4, 0, 0] == 99.0  # the input is not modified


def test_daz_clip_of_calibration_frames_only_or_all_nan_is_refused(model, bvh_samples):
    text = bvh_samples["11_01"].read_text()
    header, frames = text.split("Frame Time:")
    lines = frames.splitlines()
    only_tpose = header.replace("Frames:\t598", "Frames:\t6") + "Frame Time:" + "\n".join(lines[:7]) + "\n"
    with pytest.raises(RetargetError, match="lead-in"):
        retarget(parse_bvh(only_tpose, source="tpose.bvh"), model)
    values = [line.split() for line in lines[1:]]
    nan_text = header + "Frame Time:" + lines[0] + "\n" + "\n".join(" ".join(["nan"] * len(v)) for v in values) + "\n"
    with pytest.raises(BvhError, match=r"nan.bvh:276: non-finite value nan in frame 0"):
        parse_bvh(nan_text, source="nan.bvh")


def test_markerless_clip_is_low_pass_filtered(model, bvh_samples):
    bvh = read_bvh(bvh_samples["003_genuine"])
    short = dataclasses.replace(bvh, motion=bvh.motion[:96])  # 4 s at 24 fps
    motion = retarget(short, model).motion
    assert motion.metadata["lowpass_hz"] == 6.0 and 0.0 < motion.metadata["jitter_removed_rms_mm"] < 5.0
    rotations = motion.local_rotations
    np.testing.assert_allclose(rotations @ rotations.swapaxes(-1, -2), np.broadcast_to(np.eye(3), rotations.shape), atol=1e-5)
