"""`hands.npz` reading: alignment to trajectory frames, counted problems, clear errors, `egoallo infer --guidance hands`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from egoallo.cli.main import main
from egoallo.cameras import CameraModel
from egoallo.inputs.calibration import load_rgb_camera
from egoallo.inputs.hands import HandsFileError, align_to_frames, load_hand_observations
from egoallo.inputs.trajectory import HeadTrajectory, read_trajectory
from egoallo.result import InferenceResult

FRAME_NS = 33_333_333
START_NS = 1_000_000_000


@pytest.fixture(scope="module")
def camera(shared_dir: Path) -> CameraModel:
    return load_rgb_camera(shared_dir / "aria" / "aea_recording_rgb8frames.vrs")


def _trajectory(T: int) -> HeadTrajectory:
    return HeadTrajectory(START_NS + FRAME_NS * np.arange(T), np.tile(np.eye(4), (T, 1, 1)), source="test")


def _detections(times_ns: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """Both hands in every row: keypoints inside a 1408 x 1408 image, confidence 0.9."""
    rng = np.random.default_rng(seed)
    F = len(times_ns)
    return {
        "timestamps_ns": np.asarray(times_ns, dtype=np.int64),
        "keypoints_2d": rng.uniform(300, 1100, size=(F, 2, 21, 2)).astype(np.float32),
        "confidence": np.full((F, 2), 0.9, dtype=np.float32),
    }


def _save(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def test_alignment_to_frames_counts_what_is_dropped() -> None:
    frames = START_NS + FRAME_NS * np.arange(10)
    times = np.array([frames[0] - 20_000_000, frames[0] + 5_000_000, frames[3] - 16_000_000, frames[3] + 1_000_000,
                      frames[3] + 9_000_000, frames[9] + 10_000_000, frames[9] + 17_000_000])
    frame, row, counts = align_to_frames(times, frames)
    assert frame.tolist() == [0, 3, 9] and row.tolist() == [1, 3, 5]
    assert counts == {"detections": 7, "matched": 3, "outside_trajectory": 2, "same_frame_dropped": 2}
    frame, row, counts = align_to_frames(np.array([START_NS + 1000]), np.array([START_NS]))  # a single frame
    assert frame.tolist() == [0] and counts["matched"] == 1


def test_load_aligns_masks_and_counts(tmp_path: Path, camera: CameraModel) -> None:
    trajectory = _trajectory(12)
    times = np.r_[START_NS - 3 * FRAME_NS, trajectory.timestamps_ns[2:8] + 4_000_000, START_NS + 40 * FRAME_NS]
    arrays = _detections(times)
    arrays["confidence"][2, 0] = 0.0  # frame 3, left: not detected
    arrays["confidence"][3, 1] = np.nan  # frame 4, right: not detected
    arrays["keypoints_2d"][4, 1, 5] = np.nan  # frame 5, right index MCP unseen
    arrays["keypoints_3d_camera"] = np.zeros((len(times), 2, 21, 3), dtype=np.float32)
    arrays["wrist_3d_camera"] = np.full((len(times), 2, 3), np.nan)
    arrays["wrist_3d_camera"][1, 0] = [0.1, 0.2, 0.4]  # frame 2, left
    hands, info = load_hand_observations(_save(tmp_path / "h.npz", **arrays), trajectory, camera)
    assert hands.camera is camera and hands.keypoints_2d.shape == (12, 2, 21, 2) and hands.confidence.shape == (12, 2, 21)
    assert info["counts"] == {"detections": 8, "matched": 6, "outside_trajectory": 2, "same_frame_dropped": 0,
                              "frames_left": 5, "frames_right": 5}
    assert "2 of 8 detection rows lie outside" in info["warnings"][0]
    seen = hands.keypoints_2d.isfinite().all(dim=-1)
    assert not seen[[0, 1, 8, 9, 10, 11]].any() and not seen[3, 0].any() and not seen[4, 1].any()
    assert seen[5, 1].sum() == 20 and seen[2].all()
    torch.testing.assert_close(hands.keypoints_2d[2], torch.from_numpy(arrays["keypoints_2d"][1]).double())
    assert float(hands.confidence[2, 0, 0]) == pytest.approx(0.9) and float(hands.confidence[3, 0, 0]) == 0.0
    torch.testing.assert_close(hands.keypoints_3d_camera[2, 0, 0], torch.tensor([0.1, 0.2, 0.4], dtype=torch.float64))
    assert hands.keypoints_3d_camera[2, 1].eq(0).all()  # no wrist given: as stored


def test_image_size_and_stored_camera(tmp_path: Path, camera: CameraModel) -> None:
    trajectory = _trajectory(4)
    arrays = _detections(trajectory.timestamps_ns)
    half = _save(tmp_path / "half.npz", **arrays, image_size=np.array([704, 704]))
    hands, info = load_hand_observations(half, trajectory, camera)
    assert (hands.camera.width, float(hands.camera.params[0])) == (704, pytest.approx(float(camera.params[0]) / 2))
    assert "rescaled to 704x704" in info["camera"]["note"]
    with pytest.raises(HandsFileError, match="aspect"):
        load_hand_observations(_save(tmp_path / "wide.npz", **arrays, image_size=np.array([1920, 1080])), trajectory, camera)
    stored = _save(tmp_path / "stored.npz", **arrays, image_size=np.array([1408, 1408]), camera_model=np.array("fisheye624"),
                   camera_params=camera.params, T_cpf_camera=camera.T_cpf_camera)
    hands, info = load_hand_observations(stored, trajectory)
    np.testing.assert_array_equal(hands.camera.params, camera.params)
    assert info["camera"]["note"] == "from the file"
    with pytest.raises(HandsFileError, match="no camera stored"):
        load_hand_observations(half, trajectory)
    bad = _save(tmp_path / "bad.npz", **arrays, image_size=np.array([1408, 1408]), camera_model=np.array("pinhole"),
                camera_params=np.array([0.0, 500.0, 700.0, 700.0]), T_cpf_camera=np.eye(4))
    with pytest.raises(HandsFileError, match="stored camera: pinhole camera: focal length must be positive"):
        load_hand_observations(bad, trajectory)


def test_no_detection_in_the_trajectory_is_a_warning(tmp_path: Path, camera: CameraModel) -> None:
    trajectory = _trajectory(5)
    empty = _detections(np.zeros(0, dtype=np.int64))
    hands, info = load_hand_observations(_save(tmp_path / "empty.npz", **empty), trajectory, camera)
    assert hands.keypoints_2d.isnan().all() and "no hand is seen" in info["warnings"][-1]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"confidence": None}, "missing key"),
        ({"keypoints_2d": np.zeros((3, 2, 21, 3))}, r"keypoints_2d has shape \(3, 2, 21, 3\)"),
        ({"confidence": np.zeros((3, 1))}, "confidence has shape"),
        ({"timestamps_ns": np.array([1.0, 2.0, 3.0])}, "must be integers"),
        ({"timestamps_ns": np.array([3, 2, 4])}, "row 1 has 2 after 3"),
        ({"keypoints_3d_camera": np.zeros((3, 2, 20, 3))}, "keypoints_3d_camera has shape"),
    ],
)
def test_bad_files_are_clear_errors(tmp_path: Path, camera: CameraModel, change: dict, message: str) -> None:
    arrays = {k: v for k, v in (_detections(np.array([1, 2, 3])) | change).items() if v is not None}
    with pytest.raises(HandsFileError, match=message):
        load_hand_observations(_save(tmp_path / "x.npz", **arrays), _trajectory(3), camera)
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(HandsFileError, match="not a valid npz"):
        load_hand_observations(tmp_path / "text.npz", _trajectory(3), camera)
    with pytest.raises(HandsFileError, match="not found"):
        load_hand_observations(tmp_path / "missing.npz", _trajectory(3), camera)


def test_infer_with_hand_guidance(shared_dir: Path, tiny_checkpoint: Path, tmp_path: Path, capsys) -> None:
    aria = shared_dir / "aria"
    trajectory_csv, vrs = aria / "mps_closed_loop_trajectory_short.csv", aria / "aea_recording_rgb8frames.vrs"
    frames = read_trajectory(trajectory_csv).resample(30.0).timestamps_ns
    arrays = _detections(np.r_[frames, frames[-1] + 10 * FRAME_NS])  # the last row is outside the trajectory
    arrays["keypoints_2d"][0, 0, 0] = [-100.0, 50.0]  # outside the image
    hands = _save(tmp_path / "hands.npz", **arrays)
    out = tmp_path / "r.npz"
    base = ["infer", str(trajectory_csv), "--checkpoint", str(tiny_checkpoint), "--steps", "1", "--calibration", str(vrs)]
    with pytest.warns(UserWarning, match="ignored 1 2D keypoints outside the image"):
        assert main([*base, "--out", str(out), "--guidance", "feet", "hands", "--hands", str(hands)]) == 0
    printed = capsys.readouterr().out
    assert f"1 of {len(frames) + 1} detection rows lie outside" in printed
    result = InferenceResult.load(out)
    assert result.metadata["hands"]["counts"]["matched"] == len(frames)
    post = result.metadata["guidance"]["post"]
    assert post["counts"]["keypoints_2d_outside_image"] == 1 and post["fell_back"] == 0
    assert post["counts"]["keypoints_2d_used"] == len(frames) * 42 - 1
    assert np.isfinite(result.local_rotations).all()
    assert main([*base, "--out", str(tmp_path / "x.npz"), "--guidance", "hands"]) == 2
    assert "--guidance hands and --hands FILE go together" in capsys.readouterr().err
    no_camera = ["infer", str(trajectory_csv), "--checkpoint", str(tiny_checkpoint), "--steps", "1"]
    assert main([*no_camera, "--out", str(tmp_path / "y.npz"), "--guidance", "hands", "--hands", str(hands)]) == 2
    assert "no camera stored" in capsys.readouterr().err
