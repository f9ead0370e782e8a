"""Aria MPS wrist and palm tracking: layouts v1-v3, bad files, alignment to a head trajectory."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from egoallo.inputs import DEFAULT_ARIA_T_DEVICE_CPF, HeadTrajectory, read_trajectory
from egoallo.inputs.wrist_palm import WristPalmError, read_wrist_palm, to_world_observations

SIDES = ("left", "right")
V1 = ["tracking_timestamp_us"] + [
    c
    for s in SIDES
    for c in [f"{s}_tracking_confidence", *(f"t{a}_{s}_{p}_device" for p in ("wrist", "palm") for a in "xyz")]
]
NORMALS = [f"n{a}_{s}_{p}_device" for s in SIDES for p in ("palm", "wrist") for a in "xyz"]
V3 = ["tracking_timestamp_us"]
for _s in SIDES:
    V3 += [f"{_s}_tracking_confidence", *(f"t{a}_{_s}_landmark_{i}_device" for i in range(21) for a in "xyz")]
V3 += [f"{c}_{s}_device_wrist" for s in SIDES for c in ("tx", "ty", "tz", "qx", "qy", "qz", "qw")]


def _write(path: Path, header: list[str], rows: list[dict[str, float]]) -> Path:
    """CSV with `header`; each row a column -> value map (absent columns 0)."""
    lines = [",".join(header)] + [",".join(str(row.get(c, 0)) for c in header) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def _hand(side: str, wrist, palm, palm_normal=(0, 0, 0), wrist_normal=(0, 0, 0), landmarks: bool = False) -> dict:
    """Column -> value for one hand: v1/v2 names, or v3 landmark 5 (wrist) and 20 (palm)."""
    names = ("landmark_5", "landmark_20") if landmarks else ("wrist", "palm")
    row = {f"t{a}_{side}_{names[0]}_device": v for a, v in zip("xyz", wrist)}
    row |= {f"t{a}_{side}_{names[1]}_device": v for a, v in zip("xyz", palm)}
    row |= {f"n{a}_{side}_palm_device": v for a, v in zip("xyz", palm_normal)}
    return row | {f"n{a}_{side}_wrist_device": v for a, v in zip("xyz", wrist_normal)}


def _random_rows(rng: np.random.Generator, n: int, landmarks: bool = False) -> list[dict]:
    """`n` rows 0.1 s apart; every third row the left hand is untracked (confidence -1, zeros)."""
    rows = []
    for i in range(n):
        row = {"tracking_timestamp_us": 1_000_000 + 100_000 * i}
        for side in SIDES:
            normals = Rotation.random(2, random_state=rng).apply([0.0, 0.0, 1.0]).round(6)
            hand = _hand(side, *rng.normal(size=(2, 3)).round(6), *normals, landmarks=landmarks)
            tracked = side == "right" or i % 3
            row |= hand if tracked else {}
            row[f"{side}_tracking_confidence"] = round(rng.uniform(0.5, 1.0), 6) if tracked else -1
        rows.append(row)
    return rows


def _same(reference, ours) -> None:
    """projectaria-tools' CSV parser is not correctly rounded: equal to within an ulp or so."""
    np.testing.assert_allclose(reference, ours, rtol=0, atol=1e-15)


@pytest.fixture(scope="module")
def hand_tracking():
    """projectaria-tools' MPS hand-tracking readers: the reference (skips without the aria extra)."""
    return pytest.importorskip("projectaria_tools.core.mps", reason="compares with projectaria-tools").hand_tracking


@pytest.fixture(scope="module")
def real_v1(shared_dir: Path) -> Path:
    return shared_dir / "aria" / "mps_wrist_and_palm_poses_v1.csv"


def test_real_v1_matches_projectaria_tools(real_v1: Path, hand_tracking) -> None:
    track = read_wrist_palm(real_v1)
    assert (track.layout, len(track)) == ("v1", 122)
    assert track.metadata["counts"] == {
        "rows_read": 122, "dropped_nonfinite_rows": 0, "dropped_duplicate_timestamps": 0,
        "samples": 122, "tracked_left": 0, "tracked_right": 6,
    }  # fmt: skip
    assert track.wrist_normal_device is None and track.palm_normal_device is None
    assert np.isnan(track.wrist_device[~track.tracked]).all()
    with pytest.warns(UserWarning, match="deprecated"):
        reference = hand_tracking.read_wrist_and_palm_poses(str(real_v1))
    assert len(reference) == len(track)
    for i, pose in enumerate(reference):
        assert pose.tracking_timestamp.total_seconds() * 1e9 == pytest.approx(track.timestamps_ns[i], abs=1)
        for h, hand in enumerate((pose.left_hand, pose.right_hand)):
            assert (hand is not None) == track.tracked[i, h]
            if hand is not None:
                _same(hand.confidence, track.confidence[i, h])
                _same(hand.wrist_position_device, track.wrist_device[i, h])
                _same(hand.palm_position_device, track.palm_device[i, h])
                assert hand.wrist_and_palm_normal_device is None


def _assert_matches_reference(track, reference, palm_of, wrist_of) -> None:
    assert len(reference) == len(track)
    for i, result in enumerate(reference):
        for h, hand in enumerate((result.left_hand, result.right_hand)):
            assert (hand is not None) == track.tracked[i, h]
            if hand is None:
                assert np.isnan(track.palm_normal_device[i, h]).all()
                continue
            _same(wrist_of(hand), track.wrist_device[i, h])
            _same(palm_of(hand), track.palm_device[i, h])
            normals = hand.wrist_and_palm_normal_device
            _same(normals.palm_normal_device, track.palm_normal_device[i, h])
            _same(normals.wrist_normal_device, track.wrist_normal_device[i, h])


def test_v2_with_normals_in_any_column_order(tmp_path: Path, hand_tracking) -> None:
    header = V1[:1] + NORMALS + V1[1:]  # projectaria-tools finds columns by name too
    path = _write(tmp_path / "wrist_and_palm_poses.csv", header, _random_rows(np.random.default_rng(0), 9))
    track = read_wrist_palm(path)
    assert track.layout == "v2" and track.metadata["counts"]["tracked_left"] == 6
    with pytest.warns(UserWarning, match="deprecated"):
        reference = hand_tracking.read_wrist_and_palm_poses(str(path))
    _assert_matches_reference(track, reference, lambda h: h.palm_position_device, lambda h: h.wrist_position_device)


@pytest.mark.parametrize("normals", [True, False])
def test_v3_hand_tracking_results(tmp_path: Path, normals: bool, hand_tracking) -> None:
    header = V3 + NORMALS if normals else V3
    path = _write(tmp_path / "hand_tracking_results.csv", header, _random_rows(np.random.default_rng(1), 7, True))
    track = read_wrist_palm(path)
    assert track.layout == "v3" and track.metadata["ignored_columns"] == []
    reference = hand_tracking.read_hand_tracking_results(str(path))
    if normals:
        palm, wrist = (lambda h: h.get_palm_position_device()), (lambda h: h.get_wrist_position_device())
        _assert_matches_reference(track, reference, palm, wrist)
    else:
        assert track.palm_normal_device is None and all(
            r.right_hand.wrist_and_palm_normal_device is None for r in reference
        )
        _same([r.right_hand.get_wrist_position_device() for r in reference], track.wrist_device[:, 1])


def test_unknown_columns_are_ignored_and_listed(tmp_path: Path) -> None:
    """A made-up normal name (projectaria-tools 2.3 rejects the file) leaves a v1 layout."""
    made_up = [f"n{a}_left_palm_normal_device" for a in "xyz"]
    track = read_wrist_palm(_write(tmp_path / "w.csv", V1 + made_up, _random_rows(np.random.default_rng(2), 3)))
    assert track.layout == "v1" and track.metadata["ignored_columns"] == made_up


def test_nonfinite_rows_dropped_and_counted(tmp_path: Path) -> None:
    rows = _random_rows(np.random.default_rng(3), 6)
    rows[1]["ty_right_palm_device"] = "nan"  # tracked hand: row dropped
    rows[2]["right_tracking_confidence"] = "inf"  # row dropped
    rows[3] |= {"tx_left_wrist_device": "nan", "left_tracking_confidence": -1}  # untracked hand: kept
    rows[4]["tracking_timestamp_us"] = rows[3]["tracking_timestamp_us"]  # duplicate: dropped
    track = read_wrist_palm(_write(tmp_path / "w.csv", V1 + NORMALS, rows))
    counts = track.metadata["counts"]
    assert (counts["rows_read"], counts["dropped_nonfinite_rows"], counts["dropped_duplicate_timestamps"]) == (6, 2, 1)
    assert len(track) == 3 and np.isfinite(track.wrist_device[track.tracked]).all()
    assert "line 3" in track.metadata["repairs"][0] and "line 6" in track.metadata["repairs"][1]


def _bad_header(header: list[str]) -> tuple[list[str], list[dict]]:
    return header, [{"tracking_timestamp_us": 1, "left_tracking_confidence": 1, "right_tracking_confidence": 1}]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty file"),
        ("a,b,c\n1,2,3\n", "line 1: expected an Aria MPS wrist_and_palm_poses.csv header"),
        (_bad_header([c for c in V1 if c != "tz_right_palm_device"]), "line 1: missing column(s) tz_right_palm_device"),
        (_bad_header(V1 + NORMALS[:3]), "line 1: has normal column(s) nx_left_palm_device"),
        (_bad_header(V1 + V1[-1:]), "line 1: repeated column(s) tz_right_palm_device"),
        (",".join(V1) + "\n", "no data rows"),
        (",".join(V1) + "\n" + ",".join(["1"] * 15) + "\n\n" + ",".join(["2"] * 14) + "\n", "line 4: 14 comma-separated values; expected 15"),
        (",".join(V1) + "\n" + ",".join(["1"] * 14 + ["abc"]) + "\n", "line 2: column 'tz_right_palm_device' holds 'abc'; expected a number"),
        (",".join(V1) + "\n" + ",".join(["1.5"] + ["1"] * 14) + "\n", "line 2: column 'tracking_timestamp_us' holds '1.5'; expected an integer"),
        (",".join(V1) + "\n" + ",".join(["5"] * 15) + "\n" + ",".join(["4"] * 15) + "\n", "line 3: timestamp goes backwards"),
        (",".join(V1) + "\n" + ",".join(["5"] + ["nan"] * 14) + "\n", "no usable row"),
    ],
)  # fmt: skip
def test_bad_files_name_the_line(tmp_path: Path, content, message: str) -> None:
    path = tmp_path / "bad.csv"
    if isinstance(content, tuple):
        _write(path, *content)
    else:
        path.write_text(content)
    with pytest.raises(WristPalmError, match=f"^{re.escape(str(path))}: .*{re.escape(message)}"):
        read_wrist_palm(path)


def test_missing_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(WristPalmError, match="not found"):
        read_wrist_palm(tmp_path / "none.csv")
    (tmp_path / "b.csv").write_bytes(b"\0\1\2")
    with pytest.raises(WristPalmError, match="binary file"):
        read_wrist_palm(tmp_path / "b.csv")


# CPF looking along world +x in a z-up world: +x left -> +y, +y up -> +z, +z forward -> +x.
R_WORLD_CPF_FORWARD_X = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def _T_world_cpf(t_s: np.ndarray) -> np.ndarray:
    """(T, 4, 4) head walking at constant velocity and turning at a constant rate about z (exact under
    linear/slerp interpolation)."""
    T = np.tile(np.eye(4), (len(t_s), 1, 1))
    T[:, :3, :3] = Rotation.from_euler("z", 0.8 * t_s[:, None]).as_matrix() @ R_WORLD_CPF_FORWARD_X
    T[:, :3, 3] = np.stack([0.9 * t_s, 0.2 * t_s, np.full_like(t_s, 1.6)], axis=-1)
    return T


def _head(frames: int = 61, t0_s: float = 1.0) -> HeadTrajectory:
    t_s = t0_s + np.arange(frames) / 30.0
    return HeadTrajectory(np.round(t_s * 1e9).astype(np.int64), _T_world_cpf(t_s), "synthetic")


def _track_of_world_hand(tmp_path: Path, sample_us: np.ndarray, wrist_w, palm_w, normal_w, right_tracked) -> Path:
    """v2 file: the left hand untracked, the right one at world points seen from the moving device."""
    T_world_device = _T_world_cpf(sample_us / 1e6) @ np.linalg.inv(DEFAULT_ARIA_T_DEVICE_CPF)
    T_device_world = np.linalg.inv(T_world_device)
    rows = []
    for T, us, tracked in zip(T_device_world, sample_us, right_tracked):
        wrist, palm = (T[:3, :3] @ p + T[:3, 3] for p in (wrist_w, palm_w))
        row = {"tracking_timestamp_us": us, "left_tracking_confidence": -1}
        row |= {"right_tracking_confidence": 0.9 if tracked else -1}
        rows.append(row | (_hand("right", wrist, palm, T[:3, :3] @ normal_w) if tracked else {}))
    return _write(tmp_path / "w.csv", V1 + NORMALS, rows)


def test_hand_fixed_in_world_stays_fixed(tmp_path: Path) -> None:
    head = _head()  # 1.0 s to 3.0 s at 30 fps
    sample_us = 1_004_000 + 100_000 * np.arange(20)  # 10 Hz, off the frame grid, to 2.904 s
    tracked = np.arange(20) != 12  # not tracked at 2.204 s: 0.2 s between 2.104 s and 2.304 s
    world = {"wrist": [1.0, 0.5, 1.0], "palm": [1.05, 0.55, 0.98], "normal": [0.0, 0.6, -0.8]}
    path = _track_of_world_hand(tmp_path, sample_us, *map(np.array, world.values()), tracked)
    obs, info = to_world_observations(read_wrist_palm(path), head, DEFAULT_ARIA_T_DEVICE_CPF)
    valid = obs.valid.numpy()
    t_s = head.timestamps_ns / 1e9
    far = ((t_s > 2.104 + 1 / 60) & (t_s < 2.304 - 1 / 60)) | (t_s > 2.904 + 1 / 60)
    np.testing.assert_array_equal(valid, np.stack([np.zeros_like(far), ~far], axis=1))
    for name, values in zip(world, (obs.wrist_position, obs.palm_position, obs.palm_normal)):
        np.testing.assert_allclose(values.numpy()[~far, 1], np.tile(world[name], (np.sum(~far), 1)), atol=1e-9)
    assert np.isnan(obs.wrist_position.numpy()[far, 1]).all() and np.isnan(obs.palm_normal.numpy()[:, 0]).all()
    right = info["hands"]["right"]
    assert (right["matched_samples"], right["untracked_samples"], right["frames_valid"]) == (19, 1, np.sum(~far))
    assert right["frames_nearest"] == 2  # 1.0 s and 2.3 s, each 4 ms before a sample
    assert info["orientation_available"] and info["warnings"] == []
    json.dumps(info)


def test_interpolation_rule_and_ignored_samples(tmp_path: Path) -> None:
    """v1 hand moving at 1 m/s along x, head still at the origin (device = CPF): x(t) = t between samples."""
    frames_ns = np.round((1.0 + np.arange(31) / 30.0) * 1e9).astype(np.int64)  # 1.0 s to 2.0 s
    head = HeadTrajectory(frames_ns, np.tile(np.eye(4), (31, 1, 1)), "still")
    sample_s = [0.9, 1.0, 1.1, 1.2, 1.61, 1.7, 2.0, 2.1]  # 0.9 s, 2.1 s outside; 1.7 s below min_confidence
    rows = [
        {"tracking_timestamp_us": round(s * 1e6), "left_tracking_confidence": -1, "right_tracking_confidence": 0.9}
        | _hand("right", (s, 0, 0), (s + 0.1, 0, 0), (0, 0, 1))
        for s in sample_s
    ]
    rows[5]["right_tracking_confidence"] = 0.5
    track = read_wrist_palm(_write(tmp_path / "w.csv", V1, rows))
    obs, info = to_world_observations(track, head, np.eye(4), min_confidence=0.6)
    assert np.isnan(obs.palm_normal.numpy()).all() and not info["orientation_available"]
    # 1.0-1.2 s: between samples 0.1 s apart (1.2 s itself: the sample, as the next is 0.41 s away);
    # 1.6 s: the sample at 1.61 s, 10 ms away; 2.0 s: the sample on the last frame.
    valid_frames = [0, 1, 2, 3, 4, 5, 6, 18, 30]
    np.testing.assert_array_equal(np.flatnonzero(obs.valid.numpy()[:, 1]), valid_frames)
    t_s = frames_ns[valid_frames] / 1e9
    np.testing.assert_allclose(
        obs.wrist_position.numpy()[valid_frames, 1, 0], np.where(t_s == 1.6, 1.61, t_s), atol=1e-9
    )
    np.testing.assert_allclose(
        obs.palm_position.numpy()[valid_frames, 1, 0] - 0.1, np.where(t_s == 1.6, 1.61, t_s), atol=1e-9
    )
    assert info["hands"]["right"] == {
        "untracked_samples": 0, "low_confidence_samples": 1, "outside_trajectory_samples": 2, "matched_samples": 5,
        "frames_interpolated": 6, "frames_nearest": 3, "frames_valid": 9,
    }  # fmt: skip
    assert info["samples_outside_trajectory"] == 2 and info["hands"]["left"]["untracked_samples"] == 8


def test_real_files_align_and_count(real_v1: Path, shared_dir: Path) -> None:
    """The shared trajectory spans 0.17 s in which the wrist file tracks no hand: nothing matches, all is counted."""
    head = read_trajectory(shared_dir / "aria" / "mps_closed_loop_trajectory_short.csv").resample(30.0)
    T_device_cpf = np.asarray(head.metadata["T_pose_cpf"])
    obs, info = to_world_observations(read_wrist_palm(real_v1), head, T_device_cpf)
    assert obs.wrist_position.shape == (len(head), 2, 3) and not obs.valid.any()
    assert info["samples"] == 122 and info["samples_outside_trajectory"] == 121
    assert info["hands"]["right"] == {
        "untracked_samples": 116, "low_confidence_samples": 0, "outside_trajectory_samples": 6, "matched_samples": 0,
        "frames_interpolated": 0, "frames_nearest": 0, "frames_valid": 0,
    }  # fmt: skip
    assert not info["orientation_available"] and "no normal columns" in info["palm_normal"]
    assert "none of the 6 tracked samples" in info["warnings"][0]
    _, shifted = to_world_observations(read_wrist_palm(real_v1), head, np.eye(4))
    assert "T_device_cpf differs" in shifted["warnings"][-1]
    json.dumps(info)
