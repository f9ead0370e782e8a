"""`egoallo infer --vrs`: hands detected in a real Aria recording guide the body (tiny random-weight checkpoint).

No trajectory in `../shared/aria` shares a clock span with `aea_recording_rgb8frames.vrs` (its RGB
frames are at 86.39-86.74 s of device time, the MPS trajectory at 149.2-149.4 s): the success
paths use head trajectories written around the recording's frame times.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

from egoallo.body import BodyModel
from egoallo.cli.main import main
from egoallo.observations import Observations
from egoallo.guidance.hands import LANDMARK_JOINTS, landmark_offsets
from egoallo.hands import open_frames
from egoallo.hands.observations import detected_hand_observations
from egoallo.inference import SamplingConfig, estimate_body_motion
from egoallo.cameras import CameraModel
from egoallo.inputs.calibration import load_rgb_camera
from egoallo.inputs.trajectory import HeadTrajectory
from egoallo.prior.checkpoint import load_denoiser
from egoallo.result import InferenceResult

# CPF looking along world +x in a z-up world: +x left -> +y, +y up -> +z, +z forward -> +x.
R_WORLD_CPF_FORWARD_X = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


@pytest.fixture(scope="module")
def frame_times(vrs: Path) -> np.ndarray:
    """(8,) capture times (ns) of the recording's RGB frames."""
    return np.array([frame.timestamp_ns for frame in open_frames(vrs).read(1)], dtype=np.int64)


def walking_head(start_ns: int, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps (T,) at 30 fps from `start_ns` and `T_world_cpf (T, 4, 4)`: head at 1.6 m, walking along +x."""
    timestamps = start_ns + np.round(np.arange(frames) * 1e9 / 30.0).astype(np.int64)
    T = np.tile(np.eye(4), (frames, 1, 1))
    T[:, :3, :3] = R_WORLD_CPF_FORWARD_X
    T[:, :3, 3] = np.stack([np.arange(frames) / 30.0, np.zeros(frames), np.full(frames, 1.6)], axis=-1)
    return timestamps, T


def test_infer_vrs_detects_guides_and_reuses_the_cache(tiny_checkpoint, vrs, frame_times, tmp_path, capsys):
    # 13 frames from 205 ms before the first RGB frame: frames 0-4 fall on it, frames 5-7 after its end.
    timestamps, T = walking_head(int(frame_times[0]) - 205_000_000, 13)
    trajectory = tmp_path / "head.npz"
    np.savez(trajectory, timestamps_ns=timestamps, T_world_cpf=T)
    out = tmp_path / "result.npz"
    args = ["infer", str(trajectory), "--vrs", str(vrs), "--guidance", "feet", "--out", str(out),
            "--checkpoint", str(tiny_checkpoint), "--steps", "2"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "8 frames processed" in printed and "left hand in 3" in printed
    assert "3 of 8 detection rows lie outside the trajectory's frames" in printed
    result = InferenceResult.load(out)
    assert result.metadata["sampling"]["guidance"] == ["feet", "hands"]
    hands = result.metadata["hands"]
    assert hands["source"] == str(vrs) and hands["counts"]["matched"] == 5 and hands["counts"]["frames_left"] == 3
    assert result.metadata["guidance"]["post"]["counts"]["keypoints_2d_used"] > 0
    assert np.isfinite(result.joints_world).all()
    # Again: the detections come from the cache.
    assert main([*args, "--force"]) == 0
    assert f"reused cached detections {hands['cache_file']}" in capsys.readouterr().out


def test_vrs_of_another_recording_is_a_clear_error(tiny_checkpoint, vrs, shared_dir, tmp_path, capsys):
    out = tmp_path / "result.npz"
    csv = shared_dir / "aria" / "mps_closed_loop_trajectory_short.csv"
    args = ["infer", str(csv), "--vrs", str(vrs), "--out", str(out), "--checkpoint", str(tiny_checkpoint), "--steps", "2"]
    assert main(args) == 2
    error = capsys.readouterr().err
    assert f"{vrs}: none of its 8 RGB frames (86.385-86.735 s) lies within the trajectory (149.203-149.369 s)" in error
    assert not out.exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--vrs", "VRS", "--hands", "hands.npz"], "give --vrs or --hands, not both"),
        (["--vrs", "clip.mp4"], "clip.mp4: --vrs expects an Aria .vrs recording"),
        (["--vrs", "missing.vrs"], "missing.vrs: file not found"),
        (["--guidance", "hands"], "--guidance hands and --hands FILE go together (or give --vrs RECORDING)"),
    ],
)
def test_bad_vrs_flags_are_clear_errors(tiny_checkpoint, vrs, tmp_path, capsys, flags, message):
    flags = [str(vrs) if f == "VRS" else f for f in flags]
    args = ["infer", "--example", "--out", str(tmp_path / "r.npz"), "--checkpoint", str(tiny_checkpoint), *flags]
    assert main(args) == 2
    assert message in capsys.readouterr().err


def landmark_pixel_error(result: InferenceResult, camera: CameraModel, pixels: torch.Tensor) -> float:
    """Median distance (px) of the result's left-hand landmarks, seen by `camera`, from `pixels (T, 2, 21, 2)` where finite."""
    body = BodyModel.load_default().to(dtype=torch.float64)
    shaped = body.with_shape(torch.from_numpy(result.betas[0]).double())
    posed = shaped.with_pose(torch.from_numpy(result.T_world_root[0]).double(), torch.from_numpy(result.local_rotations[0]).double())
    Ts = posed.Ts_world_joint[:, list(LANDMARK_JOINTS[0])]  # (T, 21, 4, 4)
    world = Ts[..., :3, 3] + (Ts[..., :3, :3] @ landmark_offsets(shaped)[0, :, :, None])[..., 0]
    T_camera_world = torch.linalg.inv(torch.from_numpy(result.T_world_cpf @ camera.T_cpf_camera))
    points = (T_camera_world[:, None, :3, :3] @ world[..., None])[..., 0] + T_camera_world[:, None, :3, 3]
    error = (camera.project(points) - pixels[:, 0]).norm(dim=-1)
    return float(error[error.isfinite()].median())


def test_detected_hands_guide_the_left_arm_toward_the_keypoints(tiny_checkpoint, vrs, frame_times):
    """Library path: the recording's detections at the frames of a trajectory spanning it, then guidance."""
    timestamps, T = walking_head(int(frame_times[0]) - 100_000_000, 18)
    trajectory = HeadTrajectory(timestamps, T, "around the VRS")
    observations, info, _ = detected_hand_observations(vrs, trajectory, progress=False)
    assert info["counts"] == {"detections": 8, "matched": 8, "outside_trajectory": 0, "same_frame_dropped": 0,
                              "frames_left": 3, "frames_right": 0}
    assert info["warnings"] == []
    camera = load_rgb_camera(vrs)
    assert np.array_equal(observations.camera.params, camera.params)
    seen = observations.keypoints_2d.isfinite().all(dim=-1).all(dim=-1)  # (T, 2)
    nearest = np.round((frame_times[:3] - timestamps[0]) * 30 / 1e9).astype(int)
    assert seen[:, 0].nonzero()[:, 0].tolist() == nearest.tolist() and not seen[:, 1].any()
    assert observations.keypoints_3d_camera is not None  # MediaPipe's hand-relative 3D, placed on the 2D ones

    _, denoiser = load_denoiser(tiny_checkpoint)
    body = BodyModel.load_default()
    results = {
        mode: estimate_body_motion(trajectory, denoiser, body, floor_z=0.0, observations=Observations(hands=observations),
                                   config=SamplingConfig(num_steps=2, guidance=mode))
        for mode in (frozenset(), frozenset({"hands"}))
    }
    counts = results[frozenset({"hands"})].metadata["guidance"]["post"]["counts"]
    assert counts["keypoints_2d_used"] + counts["keypoints_2d_outside_image"] == 3 * 21
    assert counts["keypoints_2d_used"] > 50 and counts["hand3d_frames_used"] == 3
    before, after = (landmark_pixel_error(r, camera, observations.keypoints_2d) for r in results.values())
    assert after < 0.2 * before, (before, after)  # here about 3700 -> 190 px
