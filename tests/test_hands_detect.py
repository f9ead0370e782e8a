"""Hands from egocentric video: MediaPipe on a real Aria VRS and a synthetic video, sides over time,
the cache, HaMeR outputs, and clear errors for bad inputs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import VRS_NAME

from egoallo.cli.main import main
from egoallo.errors import UserError
from egoallo.hands import DetectSettings, HandDetections, detect_hands, read_hamer
from egoallo.hands import frames as frames_module
from egoallo.hands.cache import cache_dir
from egoallo.hands.mediapipe_hands import (
    HandCandidate,
    upright_to_stored_axes,
    upright_to_stored_pixels,
)
from egoallo.hands.sides import SideTracker
from egoallo.inputs import load_rgb_camera

# Capture times of its RGB frames 0..2 (device clock, ns); a left hand is visible in frames 0-2.
FIRST_TIMESTAMPS_NS = [86385246037, 86435217662, 86485218862]
LEFT, RIGHT = 0, 1


@pytest.fixture(scope="module")
def vrs_run(vrs: Path):
    return detect_hands(vrs, progress=False)


def test_vrs_detects_the_visible_left_hand_inside_the_image(vrs, vrs_run):
    hands = vrs_run.detections
    assert not vrs_run.cache_hit and vrs_run.cache_file == cache_dir() / vrs_run.cache_file.name
    assert [p.name for p in vrs.parent.iterdir()] == [vrs.name]  # nothing written beside the input
    assert hands.num_frames == 8 and hands.frame_indices.tolist() == list(range(8))
    assert hands.timestamps_ns[:3].tolist() == FIRST_TIMESTAMPS_NS
    present = hands.present()
    # The wearer's left hand (MediaPipe calls it "Right": it assumes mirrored selfie images).
    assert present[:2, LEFT].all() and present[:, LEFT].sum() >= 2 and not present[:, RIGHT].any()
    assert (hands.confidence[:2, LEFT] > 0.7).all()
    assert np.isnan(hands.keypoints_2d[~present]).all() and (hands.confidence[~present] == 0).all()
    keypoints = hands.keypoints_2d[:2, LEFT]  # (2, 21, 2) stored (unrotated) pixels
    assert ((keypoints >= 0) & (keypoints <= 1407)).all()
    assert (keypoints[..., 0] > 1000).all()  # the hand is at the stored image's right edge (bottom when upright)
    relative = hands.keypoints_3d_camera[:2, LEFT]
    assert np.allclose(relative[:, 0], 0) and (np.linalg.norm(relative, axis=-1).max(axis=-1) < 0.25).all()
    assert (np.linalg.norm(relative[:, 9], axis=-1) > 0.05).all()  # wrist to middle-finger knuckle: metric
    assert np.isnan(hands.wrist_3d_camera).all()
    camera = load_rgb_camera(vrs)
    assert hands.camera.kind == "fisheye624" and hands.camera.params.shape == (15,)
    assert np.allclose(hands.camera.T_cpf_camera, camera.T_cpf_camera) and hands.camera.image_size == (1408, 1408)


def test_rerun_hits_the_cache_and_settings_miss_it(vrs, vrs_run):
    again = detect_hands(vrs, progress=False)
    assert again.cache_hit and again.cache_file == vrs_run.cache_file
    assert np.array_equal(again.detections.keypoints_2d, vrs_run.detections.keypoints_2d, equal_nan=True)
    sparse = detect_hands(vrs, settings=DetectSettings(every=3), progress=False)
    assert not sparse.cache_hit and sparse.detections.frame_indices.tolist() == [0, 3, 6]
    assert np.array_equal(sparse.detections.confidence[0], vrs_run.detections.confidence[0])


def test_cache_lives_in_the_user_cache_directory(vrs, tmp_path, monkeypatch):
    folder = tmp_path / "input"
    folder.mkdir()
    copy = folder / VRS_NAME
    copy.symlink_to(vrs)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    run = detect_hands(copy, settings=DetectSettings(every=4), progress=False)
    assert run.cache_file is not None and run.cache_file.parent == tmp_path / "xdg" / "egoallo" / "hands"
    assert detect_hands(copy, settings=DetectSettings(every=4), progress=False).cache_hit
    assert [p.name for p in folder.iterdir()] == [VRS_NAME]
    # No writable cache directory: detections are still returned, not cached.
    (tmp_path / "file").write_text("a file where the cache folder would go")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))
    uncached = detect_hands(copy, settings=DetectSettings(every=4), progress=False)
    assert uncached.cache_file is None and not uncached.cache_hit and uncached.detections.num_frames == 2


def test_cli_writes_hands_npz_and_refuses_to_overwrite(vrs, vrs_run, tmp_path, capsys):
    out = tmp_path / "hands.npz"
    assert main(["hands", "detect", str(vrs), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "reused cached detections" in printed and "8 frames processed" in printed and "left hand in" in printed
    loaded = HandDetections.load(out)
    assert np.array_equal(loaded.confidence, vrs_run.detections.confidence)
    assert loaded.metadata["detector_version"] == "0.10.14" and loaded.metadata["upright_quarter_turns"] == 1
    assert main(["hands", "detect", str(vrs), "--out", str(out)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err


def _write_video(path: Path, num_frames: int = 10, fps: float = 10.0, size: tuple[int, int] = (160, 120)) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    assert writer.isOpened()
    for i in range(num_frames):
        writer.write(np.full((size[1], size[0], 3), 20 * i, dtype=np.uint8))
    writer.release()
    return path


def _camera_json(path: Path, **overrides) -> Path:
    spec = {"model": "pinhole", "width": 160, "height": 120, "fx": 100.0, "fy": 100.0, "cx": 79.5, "cy": 59.5,
            "T_head_camera": np.eye(4).tolist(), "start_time_ns": 5_000_000_000, **overrides}
    path.write_text(json.dumps(spec))
    return path


def test_video_without_hands_is_counted(tmp_path, capsys):
    video = _write_video(tmp_path / "clip.mp4")
    camera = _camera_json(tmp_path / "camera.json")
    out = tmp_path / "hands.npz"
    assert main(["hands", "detect", str(video), "--intrinsics", str(camera), "--every", "3", "--out", str(out)]) == 0
    assert "4 frames processed; no hand in 4" in capsys.readouterr().out
    hands = HandDetections.load(out)
    assert hands.frame_indices.tolist() == [0, 3, 6, 9]
    assert hands.timestamps_ns.tolist() == [5_000_000_000 + i * 100_000_000 for i in (0, 3, 6, 9)]
    assert (hands.confidence == 0).all() and np.isnan(hands.keypoints_2d).all()
    assert hands.camera.kind == "pinhole" and hands.camera.T_device_camera is None


def _text_file(path: Path) -> Path:
    path.write_text("not a recording")
    return path


def _truncated(vrs: Path, folder: Path, size: int) -> Path:
    path = folder / f"truncated_{size}.vrs"
    path.write_bytes(vrs.read_bytes()[:size])
    return path


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda vrs, d: d / "missing.vrs", "file not found"),
        (lambda vrs, d: _text_file(d / "notes.vrs"), "cannot open this file as a VRS"),
        (lambda vrs, d: _truncated(vrs, d, 5_000), "cannot read this VRS file"),
        (lambda vrs, d: _truncated(vrs, d, 200_000), "holds no frame (a truncated copy?)"),
        (lambda vrs, d: _write_video(d / "clip.mp4"), "a video needs --intrinsics"),
    ],
)
def test_bad_inputs_are_clear_errors(vrs, tmp_path, capsys, make, message):
    path = make(vrs, tmp_path)
    assert main(["hands", "detect", str(path), "--out", str(tmp_path / "hands.npz")]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and message in err and "Traceback" not in err
    assert not (tmp_path / "hands.npz").exists()


@pytest.mark.parametrize(
    "flags, message",
    [(["--every", "0"], "--every must be >= 1"), (["--intrinsics", "camera.json"], "--intrinsics is for videos")],
)
def test_bad_flags_are_clear_errors(vrs, tmp_path, capsys, flags, message):
    assert main(["hands", "detect", str(vrs), "--out", str(tmp_path / "hands.npz"), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_vrs_without_rgb_stream(vrs, monkeypatch):
    # The recording has no GPS stream: asking for it instead of the RGB camera takes the same path.
    monkeypatch.setattr(frames_module, "RGB_CAMERA_LABEL", "gps")
    with pytest.raises(UserError, match=rf"{VRS_NAME}: no RGB camera stream \('gps'\); the recording has \[.*camera-rgb"):
        detect_hands(vrs, progress=False)


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "cannot read as a video"),
        ({"fx": -1.0}, "positive focal lengths"),
        ({"width": 320}, "frames are 160x120 pixels, but"),
        ({"colour": "red"}, "unknown camera keys ['colour']"),
        ({"T_cpf_camera": np.eye(4).tolist()}, "exactly one of T_cpf_camera or T_head_camera"),
        ({"T_head_camera": np.diag([2.0, 2.0, 2.0, 1.0]).tolist()}, "T_head_camera: the top-left 3x3 block is not a rotation"),
        ({"upright_rotation_deg": 45}, "upright_rotation_deg must be 0, 90, 180 or 270"),
    ],
)
def test_bad_video_or_intrinsics(tmp_path, capsys, content, message):
    video = tmp_path / "clip.mp4"
    if content is None:
        video.write_text("not a video")
    else:
        _write_video(video)
    camera = _camera_json(tmp_path / "camera.json", **(content or {}))
    assert main(["hands", "detect", str(video), "--intrinsics", str(camera), "--out", str(tmp_path / "h.npz")]) == 2
    err = capsys.readouterr().err
    assert message in err and ("camera.json" in err or "clip.mp4" in err) and "Traceback" not in err


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
def test_upright_coordinates_map_back_to_the_stored_image(turns):
    stored = np.arange(5 * 7).reshape(5, 7)  # (H, W), every value unique
    upright = np.rot90(stored, k=-turns)
    rows, cols = np.indices(upright.shape)
    uv = np.stack([cols.ravel(), rows.ravel()], axis=-1).astype(float)
    back = upright_to_stored_pixels(uv, turns, (7, 5)).astype(int)
    assert np.array_equal(stored[back[:, 1], back[:, 0]], upright.ravel())
    # Axes follow the pixels: a step along upright x is a step along the mapped stored direction.
    step = upright_to_stored_pixels(uv + [1.0, 0.0], turns, (7, 5)) - upright_to_stored_pixels(uv, turns, (7, 5))
    assert np.allclose(step, upright_to_stored_axes(np.array([[1.0, 0.0, 0.0]]), turns)[:, :2])


def _candidate(p_right: float, wrist: tuple[float, float], score: float = 0.9) -> HandCandidate:
    keypoints = np.asarray(wrist) + np.linspace(0, 40, 21)[:, None] * [1.0, -1.0]
    return HandCandidate(p_right, score, keypoints, np.zeros((21, 3)))


def _sides(assigned) -> list[tuple[float, float] | None]:
    return [None if a is None else tuple(a.candidate.keypoints_2d[0]) for a in assigned]


def test_sides_follow_handedness_then_continuity():
    tracker = SideTracker(image_diagonal=1000.0)
    step = 50_000_000  # 20 fps
    left, right = tracker.assign([_candidate(0.05, (200, 600))], 0)
    assert right is None and left.confidence == pytest.approx(0.95 * 0.9)
    # A weak "right" vote on the same hand does not flip it ...
    assert _sides(tracker.assign([_candidate(0.7, (210, 600))], step)) == [(210, 600), None]
    # ... but a confident one far from the left hand's track starts the right hand.
    assert _sides(tracker.assign([_candidate(0.97, (800, 600))], 2 * step)) == [None, (800, 600)]
    # Both labelled "left" with little confidence: continuity with both tracks decides.
    both = [_candidate(0.4, (790, 610)), _candidate(0.45, (215, 605))]
    assert _sides(tracker.assign(both, 3 * step)) == [(215, 605), (790, 610)]
    # Two detections of one hand count once.
    assert _sides(tracker.assign([_candidate(0.3, (215, 600)), _candidate(0.2, (217, 601))], 4 * step))[1] is None


def _hamer_arrays(num_frames: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    keypoints_3d = rng.normal(size=(num_frames, 2, 21, 3)) * 0.05 + [0.1, 0.2, 0.5]
    rotations = np.broadcast_to(np.eye(3), (num_frames, 2, 16, 3, 3)).copy()
    arrays = {
        "timestamps_ns": np.arange(num_frames, dtype=np.int64) * 33_000_000,
        "is_right": np.array([[True, False]] * num_frames),
        "keypoints_2d": rng.uniform(0, 1000, size=(num_frames, 2, 21, 2)),
        "keypoints_3d": keypoints_3d,
        "global_orient": rotations[:, :, 0],
        "hand_pose": rotations[:, :, 1:],
    }
    arrays["keypoints_2d"][1, 1] = np.nan  # no left hand in frame 1
    return arrays


CAMERA_KEYS = {"camera_model": np.array("pinhole"), "camera_params": np.array([500.0, 500.0, 320.0, 240.0]),
               "image_size": np.array([640, 480]), "T_cpf_camera": np.eye(4)}


def test_hamer_npz_and_json_become_hand_detections(tmp_path):
    arrays = _hamer_arrays()
    np.savez(tmp_path / "hamer.npz", **arrays, **CAMERA_KEYS)
    hands = read_hamer(tmp_path / "hamer.npz")
    assert hands.present().tolist() == [[True, True], [False, True], [True, True]]
    assert np.allclose(hands.keypoints_2d[0, RIGHT], arrays["keypoints_2d"][0, 0])
    assert np.allclose(hands.wrist_3d_camera[2, LEFT], arrays["keypoints_3d"][2, 1, 0])
    assert np.allclose(hands.keypoints_3d_camera[0, RIGHT] + hands.wrist_3d_camera[0, RIGHT], arrays["keypoints_3d"][0, 0])
    assert hands.mano_hand_pose.shape == (3, 2, 15, 3, 3) and np.isnan(hands.mano_global_orient[1, LEFT]).all()

    frames = [
        {"timestamp_ns": int(t), "hands": [
            {"is_right": bool(arrays["is_right"][f, s]), **{k: arrays[k][f, s].tolist() for k in
             ("keypoints_2d", "keypoints_3d", "global_orient", "hand_pose")}}
            for s in range(2) if np.isfinite(arrays["keypoints_2d"][f, s]).all()]}
        for f, t in enumerate(arrays["timestamps_ns"])
    ]
    camera = {"model": "pinhole", "width": 640, "height": 480, "fx": 500.0, "fy": 500.0, "cx": 320.0, "cy": 240.0,
              "T_cpf_camera": np.eye(4).tolist()}
    (tmp_path / "hamer.json").write_text(json.dumps({"frames": frames, "camera": camera}))
    from_json = read_hamer(tmp_path / "hamer.json")
    for key in ("keypoints_2d", "keypoints_3d_camera", "wrist_3d_camera", "confidence", "mano_hand_pose"):
        assert np.allclose(getattr(from_json, key), getattr(hands, key), equal_nan=True), key

    out = tmp_path / "hands.npz"
    assert main(["hands", "import-hamer", str(tmp_path / "hamer.json"), "--out", str(out)]) == 0
    assert np.allclose(HandDetections.load(out).mano_hand_pose, hands.mano_hand_pose, equal_nan=True)


@pytest.mark.parametrize(
    "change, camera, message",
    [
        (lambda a: a.pop("hand_pose"), True, "missing 'hand_pose'"),
        (lambda a: a["global_orient"].__setitem__((0, 0), 2 * np.eye(3)), True, "not rotation matrices"),
        (lambda a: a["keypoints_3d"].__setitem__((2, 0, 5), np.nan), True, "frame 2, slot 0: keypoints_3d has NaN"),
        (lambda a: None, False, "give the camera exactly once"),
    ],
)
def test_bad_hamer_files(tmp_path, change, camera, message):
    arrays = _hamer_arrays()
    change(arrays)
    np.savez(tmp_path / "hamer.npz", **arrays, **(CAMERA_KEYS if camera else {}))
    with pytest.raises(UserError, match=re.escape(message)):
        read_hamer(tmp_path / "hamer.npz")
