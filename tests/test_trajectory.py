"""Head trajectory readers (Aria MPS CSV, TUM, npz), gravity alignment, calibration, bad input."""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from aria_reference import projectaria_device_calibration
from scipy.spatial.transform import Rotation

from egoallo.errors import UserError
from egoallo.inputs import (
    DEFAULT_ARIA_T_DEVICE_CPF,
    CalibrationError,
    HeadTrajectory,
    ReadOptions,
    TrajectoryError,
    load_calibration,
    load_rgb_camera,
    load_T_device_cpf,
    read_trajectory,
    read_trajectory_segments,
)

# CPF looking along world +x in a z-up world: +x left -> +y, +y up -> +z, +z forward -> +x.
R_WORLD_CPF_FORWARD_X = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
# An OpenCV camera (x right, y down, z forward) at the CPF: the CPF turned 180 deg about z.
T_CAMERA_CPF_OPENCV = np.diag([-1.0, -1.0, 1.0, 1.0])


@pytest.fixture(scope="module")
def aria(shared_dir: Path) -> Path:
    return shared_dir / "aria"


@pytest.fixture(scope="module")
def aria_tools() -> None:
    """projectaria-tools (the aria extra): reads VRS recordings, and is the reference for the CSV readers."""
    pytest.importorskip("projectaria_tools", reason="needs projectaria-tools (pip install 'egoallo[aria]')")


def _projectaria_device_poses(path: Path) -> np.ndarray:
    """(N, 4, 4) world-from-device poses as projectaria-tools' own MPS reader gives them."""
    from projectaria_tools.core import mps

    return np.stack([p.transform_world_device.to_matrix() for p in mps.read_closed_loop_trajectory(str(path))])


def _walk(frames: int = 60, fps: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps (T,) ns and T_world_cpf (T, 4, 4): walking along x at 1 m/s, turning, head at 1.6 m."""
    t = np.arange(frames) / fps
    T = np.tile(np.eye(4), (frames, 1, 1))
    T[:, :3, :3] = Rotation.from_euler("z", 0.5 * t[:, None]).as_matrix() @ R_WORLD_CPF_FORWARD_X
    T[:, :3, 3] = np.stack([t, 0.1 * np.sin(t), 1.6 + 0.02 * np.sin(6 * t)], axis=-1)
    return np.round(1_000_000_000 + t * 1e9).astype(np.int64), T


def _write_tum(path: Path, timestamps_ns: np.ndarray, T: np.ndarray) -> Path:
    q = Rotation.from_matrix(T[:, :3, :3]).as_quat()
    lines = ["# timestamp tx ty tz qx qy qz qw", ""]
    lines += [
        f"{ts // 1_000_000_000}.{ts % 1_000_000_000:09d} " + " ".join(f"{v:.12f}" for v in (*p, *qq))
        for ts, p, qq in zip(timestamps_ns, T[:, :3, 3], q)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _mps_variant(src: Path, dst: Path, edit: Callable[[list[str], list[list[str]]], None]) -> Path:
    """Copy of the MPS CSV `src` with `edit(header, rows)` applied to its split fields."""
    lines = src.read_text().splitlines()
    header, rows = lines[0].split(","), [line.split(",") for line in lines[1:]]
    edit(header, rows)
    dst.write_text("\n".join([",".join(header)] + [",".join(r) for r in rows]) + "\n")
    return dst


def _column(header: list[str], name: str) -> int:
    return header.index(name)


# --- real Aria files ---------------------------------------------------------------------------


def test_mps_closed_loop_real_file(aria: Path) -> None:
    path = aria / "mps_closed_loop_trajectory_short.csv"
    traj = read_trajectory(path)
    assert len(traj) == 199 and traj.metadata["counts"]["rows_read"] == 199
    assert traj.timestamps_ns.dtype == np.int64 and traj.T_world_cpf.shape == (199, 4, 4)
    assert traj.duration_s == pytest.approx(0.196445)
    np.testing.assert_allclose(traj.R_zup_input, np.eye(3))
    assert traj.metadata["format"] == "aria_mps_closed_loop_csv"
    assert "default Aria Gen 1" in traj.metadata["calibration"]
    assert traj.metadata["repairs"] == [] and traj.metadata["warnings"] == []
    json.dumps(traj.metadata)  # plain data, ready for an output file
    # Worn upright: the CPF's +y is world up, its +z (forward) is horizontal.
    assert traj.T_world_cpf[:, 2, 1].min() > 0.99
    assert np.abs(traj.T_world_cpf[:, 2, 2]).max() < 0.1

    # Same device poses as projectaria-tools' own reader, where it is installed.
    if importlib.util.find_spec("projectaria_tools"):
        ours = traj.T_world_cpf @ np.linalg.inv(DEFAULT_ARIA_T_DEVICE_CPF)
        np.testing.assert_allclose(ours, _projectaria_device_poses(path), atol=1e-9)

    resampled = traj.resample(30.0)
    assert len(resampled) == 6  # 0.196 s at 30 fps: frames at 0, 1/30, ..., 5/30 s
    np.testing.assert_allclose(np.diff(resampled.timestamps_ns), 1e9 / 30, atol=1)
    assert resampled.timestamps_ns[0] == traj.timestamps_ns[0]
    np.testing.assert_allclose(resampled.T_world_cpf[0], traj.T_world_cpf[0], atol=1e-12)
    assert resampled.metadata["resampled"] == {"fps": 30.0, "from_poses": 199, "frames": 6}


def test_mps_layouts_by_column_name(aria: Path, tmp_path: Path) -> None:
    """The newer layout (geo_available + ECEF columns, BOM) and the open-loop layout give the same poses."""
    src = aria / "mps_closed_loop_trajectory_short.csv"
    reference = read_trajectory(src)
    ecef = ["geo_available", *(f"{a}_ecef_device" for a in ("tx", "ty", "tz", "qx", "qy", "qz", "qw"))]

    def with_geo(header: list[str], rows: list[list[str]]) -> None:
        header.extend(ecef)
        for r in rows:
            r.extend(["0", "0", "0", "0", "0", "0", "0", "1"])

    geo = _mps_variant(src, tmp_path / "geo.csv", with_geo)
    geo.write_text("\ufeff" + geo.read_text())
    np.testing.assert_array_equal(read_trajectory(geo).T_world_cpf, reference.T_world_cpf)

    def open_loop(header: list[str], rows: list[list[str]]) -> None:
        header[:] = [
            "session_uid" if name == "graph_uid" else name.replace("_world", "_odometry")
            for name in header
        ]
        order = [1, 2, 0, *range(3, len(header))]  # session_uid is the third column in open loop files
        header[:] = [header[i] for i in order]
        rows[:] = [[r[i] for i in order] for r in rows]

    odometry = read_trajectory(_mps_variant(src, tmp_path / "open_loop_trajectory.csv", open_loop))
    assert odometry.metadata["format"] == "aria_mps_open_loop_csv"
    assert odometry.metadata["segments"][0]["session_uid"].startswith("ea7288b8")
    assert "gravity_x_odometry" in odometry.metadata["gravity"]["source"]
    np.testing.assert_array_equal(odometry.T_world_cpf, reference.T_world_cpf)


def test_adt_trajectory_with_gravity_along_minus_y(aria: Path, aria_tools: None) -> None:
    path = aria / "adt_aria_trajectory_gravity_minus_y.csv"
    traj = read_trajectory(path, calibration=aria / "adt_video_rgb3frames.vrs")
    assert len(traj) == 6
    np.testing.assert_allclose(traj.R_zup_input @ [0.0, -1.0, 0.0], [0.0, 0.0, -1.0], atol=1e-12)
    assert traj.metadata["gravity"]["gravity_input"] == pytest.approx([0.0, -1.0, 0.0])
    # The data: the CPF's +y lies within 21 deg of world +z (the wearer looks ~20 deg down).
    assert traj.T_world_cpf[:, 2, 1].min() > 0.93
    assert traj.T_world_cpf[:, 2, 2].max() < -0.3

    # Mapping back reproduces the file's own world: T_input_world @ T_world_cpf = T_input_device @ T_device_cpf.
    T_device_cpf = load_T_device_cpf(aria / "adt_video_rgb3frames.vrs")
    np.testing.assert_allclose(traj.T_input_world @ traj.T_world_cpf, _projectaria_device_poses(path) @ T_device_cpf, atol=1e-9)

    assert len(traj.resample(30.0)) == 5  # 6 poses 33.328 ms apart span 0.16664 s < 5/30 s


def test_calibration_from_vrs_and_online_json_agree(aria: Path, aria_tools: None, tmp_path: Path) -> None:
    aea = load_calibration(aria / "aea_recording_rgb8frames.vrs")
    online = load_calibration(aria / "mps_online_calibration_first_line.jsonl")
    adt = load_calibration(aria / "adt_video_rgb3frames.vrs")
    # Different devices; T_device_cpf is the CAD value of the frame size (AEA and the MPS sample: DVT-S).
    assert "DVT-S" in aea.description and "DVT-S" in online.description and "DVT-L" in adt.description
    np.testing.assert_allclose(aea.T_device_cpf, DEFAULT_ARIA_T_DEVICE_CPF, atol=1e-12)
    np.testing.assert_allclose(online.T_device_cpf, aea.T_device_cpf, atol=1e-9)
    np.testing.assert_allclose(adt.T_device_cpf[:3, :3], aea.T_device_cpf[:3, :3], atol=1e-9)
    assert np.linalg.norm(adt.T_device_cpf[:3, 3] - aea.T_device_cpf[:3, 3]) < 0.005
    for T in (aea.T_device_cpf, online.T_device_cpf, adt.T_device_cpf):
        np.testing.assert_allclose(T[:3, :3].T @ T[:3, :3], np.eye(3), atol=1e-9)
        assert np.linalg.det(T[:3, :3]) > 0 and np.linalg.norm(T[:3, 3]) < 0.10

    # A full device-calibration JSON as projectaria-tools writes it, read by this project's own reader.
    from projectaria_tools.core import calibration as aria_calibration

    device = projectaria_device_calibration(aria / "aea_recording_rgb8frames.vrs")
    full_json = tmp_path / "device_calibration.json"
    full_json.write_text(aria_calibration.device_calibration_to_json_string(device))
    from_json = load_calibration(full_json)
    assert "DVT-S" in from_json.description
    np.testing.assert_allclose(from_json.T_device_cpf, aea.T_device_cpf, atol=1e-9)
    for key in ("kind", "image_size", "valid_radius"):
        assert getattr(from_json.rgb_camera(), key) == getattr(aea.rgb_camera(), key)
    np.testing.assert_allclose(from_json.rgb_camera().params, aea.rgb_camera().params, rtol=1e-12)
    np.testing.assert_allclose(from_json.rgb_camera().T_device_camera, aea.rgb_camera().T_device_camera, atol=1e-12)


def test_online_calibration_without_projectaria_matches_it(aria: Path) -> None:
    """The MPS online calibration is read without projectaria-tools; where installed, it agrees."""
    online = load_calibration(aria / "mps_online_calibration_first_line.jsonl")
    camera = online.rgb_camera()
    assert camera.kind == "fisheye624" and camera.image_size == (2880, 2880) and camera.valid_radius == 1415.0
    np.testing.assert_allclose(online.T_device_cpf, DEFAULT_ARIA_T_DEVICE_CPF, atol=1e-12)
    device = projectaria_device_calibration(aria / "mps_online_calibration_first_line.jsonl")
    theirs = device.get_camera_calib("camera-rgb")
    np.testing.assert_allclose(online.T_device_cpf, device.get_transform_device_cpf().to_matrix(), atol=1e-12)
    np.testing.assert_allclose(camera.T_device_camera, theirs.get_transform_device_camera().to_matrix(), atol=1e-12)
    np.testing.assert_allclose(camera.params, theirs.get_projection_params(), rtol=1e-15)
    assert camera.image_size == tuple(theirs.get_image_size()) and camera.valid_radius == theirs.get_valid_radius()


def test_rgb_camera_from_vrs(aria: Path, aria_tools: None) -> None:
    camera = load_rgb_camera(aria / "aea_recording_rgb8frames.vrs")
    assert camera.image_size == (1408, 1408)
    theirs = projectaria_device_calibration(aria / "aea_recording_rgb8frames.vrs").get_camera_calib("camera-rgb")
    np.testing.assert_allclose(camera.T_device_camera, theirs.get_transform_device_camera().to_matrix(), atol=1e-12)
    # The RGB optical axis is about +z of the CPF, the camera ~1 cm from it.
    assert camera.T_cpf_camera[2, 2] > 0.98
    assert np.linalg.norm(camera.T_cpf_camera[:3, 3]) < 0.1


def test_device_is_cpf_and_calibration_options(aria: Path, aria_tools: None) -> None:
    path = aria / "mps_closed_loop_trajectory_short.csv"
    as_cpf = read_trajectory(path, device_is_cpf=True)
    with_vrs = read_trajectory(path, calibration=aria / "aea_recording_rgb8frames.vrs")
    np.testing.assert_allclose(with_vrs.T_world_cpf, as_cpf.T_world_cpf @ DEFAULT_ARIA_T_DEVICE_CPF, atol=1e-12)
    assert "aea_recording_rgb8frames.vrs" in with_vrs.metadata["calibration"]
    assert with_vrs.metadata["assumptions"] == []
    with pytest.raises(TrajectoryError, match="device_is_cpf"):
        read_trajectory(path, device_is_cpf=True, calibration=np.eye(4))
    with pytest.raises(CalibrationError, match="rotation"):
        read_trajectory(path, calibration=np.diag([1.0, 1.0, -1.0, 1.0]))


# --- TUM and npz round trips ---------------------------------------------------------------------


def test_tum_round_trip(tmp_path: Path) -> None:
    timestamps_ns, T = _walk()
    traj = read_trajectory(_write_tum(tmp_path / "poses.txt", timestamps_ns, T))
    np.testing.assert_array_equal(traj.timestamps_ns, timestamps_ns)
    np.testing.assert_allclose(traj.T_world_cpf, T, atol=1e-10)
    assert traj.metadata["format"] == "tum" and traj.metadata["row_labels"] == "file line numbers"
    assert any("z-up" in note for note in traj.metadata["assumptions"])
    assert traj.metadata["segments"][0]["rows"] == "lines 3-62"


@pytest.mark.parametrize(("unit", "digits"), [("milliseconds", 3), ("microseconds", 6), ("nanoseconds", 9)])
def test_tum_timestamps_in_other_units_are_recognised_with_a_note(tmp_path: Path, unit: str, digits: int) -> None:
    timestamps_ns, T = _walk()
    reference = read_trajectory(_write_tum(tmp_path / "seconds.txt", timestamps_ns, T))
    seconds_text = (tmp_path / "seconds.txt").read_text().splitlines()
    lines = [line if not line or line.startswith("#") else f"{timestamps_ns[i - 2] // 10 ** (9 - digits)} {line.split(' ', 1)[1]}"
             for i, line in enumerate(seconds_text)]
    path = tmp_path / f"{unit}.txt"
    path.write_text("\n".join(lines))
    traj = read_trajectory(path)
    np.testing.assert_allclose(traj.timestamps_ns, timestamps_ns, atol=10 ** (9 - digits))
    np.testing.assert_allclose(traj.T_world_cpf, reference.T_world_cpf, atol=1e-10)
    assert traj.metadata["timestamps"] == f"TUM {unit} x 1e{9 - digits}"
    assert traj.metadata["repairs"][0].startswith(f"timestamps read as {unit}, not the seconds of TUM")


def test_tum_timestamps_in_no_known_unit_are_refused_with_a_hint(tmp_path: Path) -> None:
    timestamps_ns, T = _walk()
    path = _write_tum(tmp_path / "fast.txt", timestamps_ns // 10_000, T)  # 3.3 µs between poses, if seconds
    with pytest.raises(TrajectoryError, match=r"median interval between timestamps is 3.333e-06, .* expected timestamps in"):
        read_trajectory(path)


def test_tum_y_up_and_camera_calibration(tmp_path: Path) -> None:
    timestamps_ns, T = _walk()
    R_yup_zup = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # z-up world -> y-up world
    T_yup = np.eye(4)
    T_yup[:3, :3] = R_yup_zup
    path = _write_tum(tmp_path / "yup.txt", timestamps_ns, T_yup @ T @ np.linalg.inv(T_CAMERA_CPF_OPENCV))

    traj = read_trajectory(path, up="y", calibration=T_CAMERA_CPF_OPENCV)
    np.testing.assert_allclose(traj.R_zup_input, R_yup_zup.T, atol=1e-12)
    np.testing.assert_allclose(traj.T_world_cpf, T, atol=1e-9)
    np.testing.assert_allclose(traj.T_input_world @ traj.T_world_cpf, T_yup @ T, atol=1e-9)
    assert traj.metadata["calibration"] == "given T_camera_cpf"
    # Without the camera calibration the head is upside down: refused, not a silently wrong body.
    with pytest.raises(TrajectoryError, match="upside down"):
        read_trajectory(path, up="y")
    # Without `up` the y-up world lies on its side: read, with a warning.
    sideways = read_trajectory(path, calibration=T_CAMERA_CPF_OPENCV)
    assert sideways.metadata["warnings"] and "check `up`" in sideways.metadata["warnings"][0]


def test_npz_round_trips(tmp_path: Path) -> None:
    timestamps_ns, T = _walk()
    np.savez(tmp_path / "cpf.npz", timestamps_ns=timestamps_ns, T_world_cpf=T)
    traj = read_trajectory(tmp_path / "cpf.npz")
    np.testing.assert_array_equal(traj.timestamps_ns, timestamps_ns)
    np.testing.assert_allclose(traj.T_world_cpf, T, atol=1e-12)
    assert traj.metadata["assumptions"] == ["assumed: z-up world (no gravity information)"]
    assert traj.metadata["calibration"] == "none: the file's poses are CPF poses"
    assert traj.metadata["row_labels"] == "pose indices (0-based)"

    T_head_cpf = np.eye(4)
    T_head_cpf[:3, 3] = [0.0, -0.05, 0.08]
    np.savez(tmp_path / "head.npz", timestamps_s=timestamps_ns / 1e9, T_world_head=T @ np.linalg.inv(T_head_cpf))
    head = read_trajectory(tmp_path / "head.npz", calibration=T_head_cpf)
    np.testing.assert_allclose(head.T_world_cpf, T, atol=1e-9)
    assert np.abs(head.timestamps_ns - timestamps_ns).max() <= 1
    with pytest.raises(TrajectoryError, match="a second time"):
        read_trajectory(tmp_path / "cpf.npz", calibration=T_head_cpf)


def test_resample_interpolates_and_refuses_gaps(tmp_path: Path) -> None:
    timestamps_ns, T = _walk(frames=31, fps=10.0)
    traj = HeadTrajectory(timestamps_ns, T, "synthetic")
    resampled = traj.resample(30.0)
    assert len(resampled) == 91
    np.testing.assert_allclose(resampled.T_world_cpf[::3], T, atol=1e-9)
    mid = resampled.T_world_cpf[1]
    np.testing.assert_allclose(mid[:3, 3], T[0, :3, 3] + (T[1, :3, 3] - T[0, :3, 3]) / 3, atol=1e-9)
    expected = Rotation.from_matrix(T[0, :3, :3]) * Rotation.from_rotvec(
        Rotation.from_matrix(T[0, :3, :3].T @ T[1, :3, :3]).as_rotvec() / 3
    )
    np.testing.assert_allclose(mid[:3, :3], expected.as_matrix(), atol=1e-9)

    gappy = timestamps_ns.copy()
    gappy[15:] += 2_000_000_000
    with pytest.raises(TrajectoryError, match=r"gap of 2\.100 s"):
        HeadTrajectory(gappy, T, "synthetic").resample(30.0)
    with pytest.raises(TrajectoryError, match="fewer than 2 frames"):
        HeadTrajectory(timestamps_ns[:1], T[:1], "synthetic").resample(30.0)


# --- bad input: errors name the file and the line --------------------------------------------------


def _set_quaternion(row: int, values: tuple[float, float, float, float]) -> Callable:
    def edit(header: list[str], rows: list[list[str]]) -> None:
        for name, value in zip(("qx", "qy", "qz", "qw"), values):
            rows[row][_column(header, f"{name}_world_device")] = str(value)

    return edit


def _scale_quaternion(row: int, factor: float) -> Callable:
    def edit(header: list[str], rows: list[list[str]]) -> None:
        for name in ("qx", "qy", "qz", "qw"):
            i = _column(header, f"{name}_world_device")
            rows[row][i] = repr(float(rows[row][i]) * factor)

    return edit


def _set_timestamp(row: int, value: int | None = None, like_row: int | None = None) -> Callable:
    def edit(header: list[str], rows: list[list[str]]) -> None:
        i = _column(header, "tracking_timestamp_us")
        rows[row][i] = rows[like_row][i] if like_row is not None else str(value)

    return edit


def _drop_columns(prefix: str) -> Callable:
    def edit(header: list[str], rows: list[list[str]]) -> None:
        keep = [i for i, name in enumerate(header) if not name.startswith(prefix)]
        header[:] = [header[i] for i in keep]
        rows[:] = [[r[i] for i in keep] for r in rows]

    return edit


ERROR_CASES: dict[str, tuple[Callable, str]] = {
    # name: (edit of the real 199-row MPS CSV; rows[k] is file line k + 2), expected message
    "zero rows": (lambda h, r: r.clear(), "no data rows after the header"),
    "one row": (lambda h, r: r.__delitem__(slice(1, None)), r"too short: .*lines 2-2\) has 1 poses"),
    "too short a span": (lambda h, r: r.__delitem__(slice(60, None)), r"has 60 poses over 0\.059 s"),
    "short row": (lambda h, r: r[5].__delitem__(slice(10, None)), r"line 7: 10 comma-separated values; expected 20"),
    "long row": (lambda h, r: r[5].append("1.0"), r"line 7: 21 comma-separated values"),
    "text in a number": (
        lambda h, r: r[5].__setitem__(_column(h, "ty_world_device"), "abc"),
        r"line 7: column 'ty_world_device' holds 'abc'; expected a number",
    ),
    "fractional timestamp": (_set_timestamp(3, "149205000.5"), r"line 5: column 'tracking_timestamp_us'.*integer"),
    "far from unit quaternion": (_scale_quaternion(9, 2.0), r"line 11: quaternion norm 2; expected a unit quaternion"),
    "time going backwards": (_set_timestamp(20, 149202000), r"line 22: timestamp goes backwards"),
    "missing pose column": (_drop_columns("qw_"), r"line 1: missing column\(s\) qw_world_device"),
    "partial gravity": (_drop_columns("gravity_z"), r"line 1: has gravity_x_world, gravity_y_world but not all"),
    "all quaternions zero": (
        lambda h, r: [_set_quaternion(i, (0, 0, 0, 0))(h, r) for i in range(len(r))],
        "no valid pose",
    ),
}


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_bad_mps_csv_is_a_clear_error(aria: Path, tmp_path: Path, case: str) -> None:
    edit, message = ERROR_CASES[case]
    path = _mps_variant(aria / "mps_closed_loop_trajectory_short.csv", tmp_path / "bad.csv", edit)
    with pytest.raises(TrajectoryError, match=message) as caught:
        read_trajectory(path)
    assert str(caught.value).startswith(str(path)) and isinstance(caught.value, UserError)


def test_documented_repairs_are_recorded(aria: Path, tmp_path: Path) -> None:
    src = aria / "mps_closed_loop_trajectory_short.csv"

    def edit(header: list[str], rows: list[list[str]]) -> None:
        _set_quaternion(4, (0, 0, 0, 0))(header, rows)  # line 6: zero quaternion
        rows[7][_column(header, "qx_world_device")] = "nan"  # line 9: NaN
        _scale_quaternion(10, 1.01)(header, rows)  # line 12: slightly off unit
        _set_timestamp(30, like_row=29)(header, rows)  # line 32 repeats line 31

    traj = read_trajectory(_mps_variant(src, tmp_path / "repairs.csv", edit))
    counts = traj.metadata["counts"]
    assert len(traj) == 196
    assert counts["dropped_invalid_rows"] == 2
    assert counts["renormalised_rotations"] == 1
    assert counts["dropped_duplicate_timestamps"] == 1
    repairs = " | ".join(traj.metadata["repairs"])
    assert "first at line 6" in repairs and "first at line 12" in repairs and "first at line 32" in repairs
    reference = read_trajectory(src)
    np.testing.assert_allclose(traj.T_world_cpf[8], reference.T_world_cpf[10], atol=1e-9)  # renormalised row


def test_gaps_and_graph_changes_split(aria: Path, tmp_path: Path) -> None:
    src = aria / "mps_closed_loop_trajectory_short.csv"

    def gap(header: list[str], rows: list[list[str]]) -> None:
        i = _column(header, "tracking_timestamp_us")
        for r in rows[50:]:
            r[i] = str(int(r[i]) + 3_000_000)  # 3 s gap before line 52

    traj = read_trajectory(_mps_variant(src, tmp_path / "gap.csv", gap))
    assert len(traj) == 149 and traj.metadata["counts"]["poses_in_other_segments"] == 50
    assert "gap of 3.0" in traj.metadata["repairs"][0] and "before line 52" in traj.metadata["repairs"][0]
    assert traj.metadata["segments"][traj.metadata["segment_index"]]["rows"] == "lines 52-200"

    def graphs(header: list[str], rows: list[list[str]]) -> None:
        for r in rows[120:]:
            r[_column(header, "graph_uid")] = "other-graph"
        for r in rows[120:]:  # a different world: offset by 10 m
            r[_column(header, "tx_world_device")] = str(float(r[_column(header, "tx_world_device")]) + 10.0)

    path = _mps_variant(src, tmp_path / "graphs.csv", graphs)
    traj = read_trajectory(path)
    assert len(traj) == 120 and traj.metadata["segments"][0]["graph_uid"].startswith("ea7288b8")
    assert "graph_uid ea7288b8-b6a0-012d-8156-257aba6bd796 -> other-graph at line 122" in traj.metadata["repairs"][0]
    assert np.abs(traj.T_world_cpf[:, 0, 3]).max() < 1.0  # never mixes the two worlds
    assert [len(s) for s in read_trajectory_segments(path)] == [120]  # 79 poses over 0.078 s: too short
    segments = read_trajectory_segments(path, options=ReadOptions(min_duration_s=0.05))
    assert [len(s) for s in segments] == [120, 79]
    assert segments[1].metadata["segment_index"] == 1


def test_gravity_missing_assumed_or_required(aria: Path, tmp_path: Path) -> None:
    path = _mps_variant(aria / "mps_closed_loop_trajectory_short.csv", tmp_path / "nograv.csv", _drop_columns("gravity"))
    traj = read_trajectory(path)
    assert "assumed: z-up world (no gravity information)" in traj.metadata["assumptions"]
    with pytest.raises(TrajectoryError, match="no gravity information"):
        read_trajectory(path, options=ReadOptions(require_gravity=True))
    assert read_trajectory(path, up="z", options=ReadOptions(require_gravity=True)).metadata["gravity"]["source"] == (
        "up='z' option"
    )
    with pytest.raises(TrajectoryError, match=r"up='y' is 90 deg from the gravity"):
        read_trajectory(aria / "mps_closed_loop_trajectory_short.csv", up="y")
    with pytest.raises(TrajectoryError, match="expected one of x, y, z"):
        read_trajectory(path, up="up")


def test_bad_files_of_every_format(tmp_path: Path) -> None:
    def check(path: Path, message: str) -> None:
        with pytest.raises(TrajectoryError, match=message) as caught:
            read_trajectory(path)
        assert str(path) in str(caught.value)

    check(tmp_path / "missing.csv", "not found")
    (tmp_path / "empty.csv").write_text("")
    check(tmp_path / "empty.csv", "empty file")
    (tmp_path / "garbage.csv").write_text("hello,world\n1,2\n")
    check(tmp_path / "garbage.csv", "line 1: expected an Aria MPS trajectory header")
    (tmp_path / "binary.txt").write_bytes(b"\x00\x01\x02")
    check(tmp_path / "binary.txt", "binary file")
    (tmp_path / "seven.txt").write_text("# c\n0.0 0 0 0 0 0 0 1\n0.1 0 0 0 0 0 1\n")
    check(tmp_path / "seven.txt", r"line 3: 7 values; expected 8")
    (tmp_path / "nan_time.txt").write_text("nan 0 0 0 0 0 0 1\n")
    check(tmp_path / "nan_time.txt", r"line 1: expected 8 finite numbers")
    (tmp_path / "comments.txt").write_text("# only\n# comments\n")
    check(tmp_path / "comments.txt", "no poses")
    (tmp_path / "bad.npz").write_bytes(b"PK not a zip")
    check(tmp_path / "bad.npz", "not a valid npz")
    timestamps_ns, T = _walk()
    np.savez(tmp_path / "keys.npz", times=timestamps_ns, T_world_cpf=T)
    check(tmp_path / "keys.npz", r"expected exactly one of timestamps_ns / timestamps_s")
    np.savez(tmp_path / "shape.npz", timestamps_ns=timestamps_ns, T_world_cpf=T[:, :3])
    check(tmp_path / "shape.npz", r"expected \(T,\) and \(T, 4, 4\)")
    skewed = T.copy()
    skewed[7, :3, :3] *= 1.5
    np.savez(tmp_path / "skewed.npz", timestamps_ns=timestamps_ns, T_world_cpf=skewed)
    check(tmp_path / "skewed.npz", r"pose 7: rotation block is not a rotation")


def _check_calibration_error(path: Path, message: str) -> None:
    with pytest.raises(CalibrationError, match=message) as caught:
        load_T_device_cpf(path)
    assert str(path) in str(caught.value)


def test_vrs_calibration_errors_are_clear(aria: Path, aria_tools: None, tmp_path: Path) -> None:
    _check_calibration_error(tmp_path / "missing.vrs", "not found")
    (tmp_path / "empty.vrs").write_bytes(b"")
    _check_calibration_error(tmp_path / "empty.vrs", "cannot open this file as a VRS")
    (tmp_path / "truncated.vrs").write_bytes((aria / "adt_video_rgb3frames.vrs").read_bytes()[:3000])
    _check_calibration_error(tmp_path / "truncated.vrs", "cannot read this VRS")


def test_json_calibration_errors_are_clear(aria: Path, tmp_path: Path) -> None:
    check = _check_calibration_error
    (tmp_path / "bad.jsonl").write_text("\n{not json\n")
    check(tmp_path / "bad.jsonl", r"line 2: not valid JSON")
    (tmp_path / "other.json").write_text(json.dumps({"hello": 1}))
    check(tmp_path / "other.json", "'CameraCalibrations' list")
    record = json.loads((aria / "mps_online_calibration_first_line.jsonl").read_text())
    record["DeviceClassInfo"] = {"BuildVersion": "XYZ", "DeviceClass": "Aria"}
    (tmp_path / "subtype.json").write_text(json.dumps(record))
    check(tmp_path / "subtype.json", re.escape("device subtype 'XYZ' is not an Aria Gen 1 frame size (DVT-S, DVT-L)"))
    record["DeviceClassInfo"]["BuildVersion"] = "DVT-L"
    record["OriginSpecification"] = {"ChildLabel": "imu-left", "Type": "Custom"}
    (tmp_path / "origin.json").write_text(json.dumps(record))
    check(tmp_path / "origin.json", "expected the camera-slam-left origin")
    del record["OriginSpecification"]
    rgb = next(c for c in record["CameraCalibrations"] if c["Label"] == "camera-rgb")
    rgb["T_Device_Camera"]["UnitQuaternion"] = [1.0, [0.0, 0.0]]
    (tmp_path / "extrinsics.json").write_text(json.dumps(record))
    check(tmp_path / "extrinsics.json", re.escape("line 1: camera-rgb: T_Device_Camera: expected"))
    rgb["Projection"]["Name"] = "KannalaBrandtK3"
    (tmp_path / "projection.json").write_text(json.dumps(record))
    check(tmp_path / "projection.json", "projection 'KannalaBrandtK3'; expected one of")
    del record["DeviceClassInfo"]
    record["CameraCalibrations"] = record["CameraCalibrations"][2:]
    (tmp_path / "noslam.jsonl").write_text(json.dumps(record) + "\n")
    check(tmp_path / "noslam.jsonl", "no camera-slam-left/right extrinsics")
