"""Fuzzing the readers and the result/export path: every input gives a clear error of the project's type
(`UserError`, one line naming the file) or a valid result, never anything else.

Each test starts from a small valid file and damages it: truncation, byte flips, NaN/inf and extreme
values, shuffled, duplicated and dropped rows or fields, wrong shapes and dtypes, unicode file names.
Examples are few and derandomised (the same ones on every run), so the suite stays fast and stable.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from egoallo.body import BodyModel
from egoallo.data.amass import AmassFileError, read_amass
from egoallo.data.bvh import BvhError, read_bvh
from egoallo.errors import UserError
from egoallo.export import result_motion, write_amass_npz, write_bvh
from egoallo.observations import Observations
from egoallo.hands.detections import HandDetections
from egoallo.hands.hamer import read_hamer
from egoallo.inference import SamplingConfig
from egoallo.inputs.calibration import load_calibration
from egoallo.inputs.hands import load_hand_observations
from egoallo.inputs.points import read_points
from egoallo.inputs.trajectory import HeadTrajectory, read_trajectory_segments
from egoallo.inputs.wrist_palm import read_wrist_palm
from egoallo.prior.checkpoint import load_denoiser
from egoallo.recording import estimate_recording
from egoallo.result import InferenceResult
from hostile_inputs import mps_text, small_result, tum_text, walk_poses, wrist_text


def fuzz(examples: int) -> settings:
    """Few, derandomised examples without a deadline (the machine may be busy)."""
    return settings(
        max_examples=examples, deadline=None, derandomize=True, database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    )


EXTREMES = ["nan", "inf", "-inf", "1e308", "-1e308", "1e30", "-1e30", "9223372036854775807", "-9223372036854775809",
            "1e-320", "1e999999999", "123456789012345678901234567890", "0", "-0", "", "x", '"x"', "true", "null",
            "１", "0x10", "1_000", " "]
NAMES = st.text(st.characters(categories=["L", "N"], exclude_characters="\0/"), min_size=1, max_size=16)
"""File names: letters and digits of any script (é, 漢, ß, ...)."""


def one_line_error(error: UserError, path: Path) -> None:
    """A project error is one line naming the file."""
    message = str(error)
    assert "\n" not in message.strip() and path.name in message, message


@st.composite
def damaged_text(draw: st.DrawFn, text: str) -> bytes:
    """`text` after 1-3 random edits of its lines and fields, then maybe a truncation or byte flips."""
    lines = text.splitlines()
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["value", "shuffle", "duplicate", "drop_line", "drop_field", "swap_fields"]))
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        fields = lines[i].replace(",", " , ").split(" ")
        if op == "value":
            numbers = [k for k, f in enumerate(fields) if f.strip(",")]
            if numbers:
                fields[draw(st.sampled_from(numbers))] = draw(st.sampled_from(EXTREMES))
            lines[i] = " ".join(fields).replace(" , ", ",")
        elif op == "shuffle":
            lines = draw(st.permutations(lines))
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "drop_line":
            del lines[i]
        elif op == "drop_field" and len(fields) > 1:
            del fields[draw(st.integers(0, len(fields) - 1))]
            lines[i] = " ".join(fields).replace(" , ", ",")
        elif op == "swap_fields" and len(fields) > 2:
            a, b = draw(st.integers(0, len(fields) - 1)), draw(st.integers(0, len(fields) - 1))
            fields[a], fields[b] = fields[b], fields[a]
            lines[i] = " ".join(fields).replace(" , ", ",")
    data = ("\n".join(lines) + "\n").encode()
    return draw(damaged_bytes(data)) if draw(st.booleans()) else data


@st.composite
def damaged_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` truncated at a random point, or with 1-8 random bytes XOR-flipped."""
    raw = bytearray(data)
    if raw and draw(st.booleans()):
        return bytes(raw[: draw(st.integers(0, len(raw) - 1))])
    for _ in range(draw(st.integers(1, 8))):
        if raw:
            raw[draw(st.integers(0, len(raw) - 1))] ^= draw(st.integers(1, 255))
    return bytes(raw)


def check_segments(segments: list[HeadTrajectory]) -> None:
    """Readers return at least one segment of finite rigid poses with increasing int64 timestamps."""
    assert segments
    for segment in segments:
        R = segment.T_world_cpf[:, :3, :3]
        assert segment.timestamps_ns.dtype == np.int64 and np.all(np.diff(segment.timestamps_ns) > 0)
        assert np.isfinite(segment.T_world_cpf).all()
        np.testing.assert_allclose(R @ np.swapaxes(R, 1, 2), np.broadcast_to(np.eye(3), R.shape), atol=1e-6)
        resampled = segment.resample(30.0)
        assert np.isfinite(resampled.T_world_cpf).all()


def read_or_refuse(read, path: Path):  # noqa: ANN001, ANN201 (any reader)
    """`read(path)`, or None after checking that a refusal is a one-line project error naming the file."""
    try:
        value = read(path)
    except UserError as error:
        one_line_error(error, path)
        event("refused with a clear error")
        return None
    event("read")
    return value


@fuzz(60)
@given(data=st.data(), name=NAMES, fmt=st.sampled_from(["tum", "mps"]))
def test_trajectory_text_readers(tmp_path_factory, data, name, fmt) -> None:
    text = tum_text() if fmt == "tum" else mps_text()
    path = tmp_path_factory.mktemp("traj") / f"{name}.{'txt' if fmt == 'tum' else 'csv'}"
    path.write_bytes(data.draw(damaged_text(text)))
    segments = read_or_refuse(read_trajectory_segments, path)
    if segments is not None:
        check_segments(segments)


ARRAY_DTYPES = st.sampled_from(["int8", "uint64", "int64", "float16", "float32", "float64", "complex64", "bool", "U4"])


@st.composite
def trajectory_arrays(draw: st.DrawFn) -> dict[str, np.ndarray]:
    """Valid npz arrays, then damaged: values, order, shapes, dtypes or keys."""
    t, pose = walk_poses(20)
    T = np.tile(np.eye(4), (20, 1, 1))
    T[:, :3, 3] = pose[:, :3]
    T[:, :3, :3] = [[0, 0, 1], [1, 0, 0], [0, 1, 0]]
    arrays = {"timestamps_ns": np.round(t * 1e9).astype(np.int64), "T_world_cpf": T}
    op = draw(st.sampled_from(["value", "shuffle", "duplicate", "shape", "dtype", "keys", "seconds"]))
    key = draw(st.sampled_from(sorted(arrays)))
    value = arrays[key]
    if op == "value":
        flat = value.reshape(-1).copy()
        extreme = draw(st.sampled_from([np.nan, np.inf, -np.inf, 1e308, 1e30, -1e12, 2.0**63, 0.0]))
        flat[draw(st.integers(0, flat.size - 1))] = extreme if value.dtype.kind == "f" else int(min(abs(extreme), 2**62))
        arrays[key] = flat.reshape(value.shape)
    elif op in ("shuffle", "duplicate"):
        order = draw(st.permutations(range(len(value)))) if op == "shuffle" else sorted([*range(len(value)), 3])
        arrays[key] = value[list(order)]
    elif op == "shape":
        arrays[key] = value.reshape(-1)[: draw(st.integers(0, value.size))]
    elif op == "dtype":
        with np.errstate(over="ignore", invalid="ignore"):
            arrays[key] = value.astype(draw(ARRAY_DTYPES))
    elif op == "keys":
        arrays[draw(st.sampled_from(["T_world_head", "timestamps_s", "junk"]))] = arrays.pop(key)
    else:
        arrays = {"timestamps_s": t * draw(st.sampled_from([1.0, 1e-9, 1e12, -1.0])), "T_world_cpf": T}
    return arrays


@fuzz(60)
@given(arrays=trajectory_arrays(), name=NAMES)
def test_trajectory_npz_reader(tmp_path_factory, arrays, name) -> None:
    path = tmp_path_factory.mktemp("npz") / f"{name}.npz"
    np.savez(path, **arrays)
    segments = read_or_refuse(read_trajectory_segments, path)
    if segments is not None:
        check_segments(segments)


def point_files() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    xyz = np.c_[rng.uniform(-3, 3, (30, 2)), rng.normal(0, 0.01, 30)]
    csv = "uid,graph_uid,px_world,py_world,pz_world,inv_dist_std,dist_std\n" + "".join(
        f"{i},g,{x:.4f},{y:.4f},{z:.4f},50,0.02\n" for i, (x, y, z) in enumerate(xyz)
    )
    ply = "ply\nformat ascii 1.0\nelement vertex 30\nproperty float x\nproperty float y\nproperty float z\nend_header\n"
    ply += "".join(f"{x:.4f} {y:.4f} {z:.4f}\n" for x, y, z in xyz)
    binary = ply.replace("ascii", "binary_little_endian").split("end_header\n")[0].encode() + b"end_header\n"
    buffer = io.BytesIO()
    np.save(buffer, xyz)
    return {".csv": csv.encode(), ".ply": ply.encode(), "_bin.ply": binary + xyz.astype("<f4").tobytes(),
            ".npy": buffer.getvalue()}


POINT_FILES = point_files()


@fuzz(60)
@given(data=st.data(), name=NAMES, suffix=st.sampled_from(sorted(POINT_FILES)))
def test_point_cloud_readers(tmp_path_factory, data, name, suffix) -> None:
    valid = POINT_FILES[suffix]
    text = suffix in (".csv", ".ply")
    path = tmp_path_factory.mktemp("points") / f"{name}{suffix}"
    path.write_bytes(data.draw(damaged_text(valid.decode()) if text else damaged_bytes(valid)))
    cloud = read_or_refuse(read_points, path)
    if cloud is not None:
        assert cloud.points.ndim == 2 and cloud.points.shape[1] == 3 and len(cloud.points) >= 1
        assert np.isfinite(cloud.points).all()


@fuzz(40)
@given(data=st.data(), name=NAMES)
def test_wrist_and_palm_reader(tmp_path_factory, data, name) -> None:
    path = tmp_path_factory.mktemp("wrist") / f"{name}.csv"
    path.write_bytes(data.draw(damaged_text(wrist_text())))
    track = read_or_refuse(read_wrist_palm, path)
    if track is not None:
        assert np.all(np.diff(track.timestamps_ns) > 0) and track.wrist_device.shape == (len(track.timestamps_ns), 2, 3)
        assert np.isfinite(track.confidence).all()


def hands_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    F = 8
    return {
        "timestamps_ns": 33_333_333 * np.arange(F, dtype=np.int64),
        "keypoints_2d": rng.uniform(100, 500, (F, 2, 21, 2)).astype(np.float32),
        "confidence": np.full((F, 2), 0.9, np.float32),
        "camera_model": np.array("pinhole"),
        "camera_params": np.array([500.0, 500.0, 320.0, 240.0]),
        "image_size": np.array([640, 480]),
        "T_cpf_camera": np.eye(4),
    }


@st.composite
def damaged_arrays(draw: st.DrawFn, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`arrays` with one key's values, shape or dtype damaged, or the key dropped."""
    arrays = dict(arrays)
    key = draw(st.sampled_from(sorted(arrays)))
    value = np.asarray(arrays[key])
    op = draw(st.sampled_from(["value", "shape", "dtype", "drop", "scalar"]))
    if op == "value" and value.size and value.dtype.kind in "fiu":
        flat = value.astype(np.float64).reshape(-1)
        flat[draw(st.integers(0, flat.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -1e30, 1e30, -1.0, 0.0]))
        arrays[key] = flat.reshape(value.shape).astype(value.dtype) if value.dtype.kind == "f" else flat.reshape(value.shape)
    elif op == "shape":
        arrays[key] = value.reshape(-1)[: draw(st.integers(0, max(value.size - 1, 0)))]
    elif op == "dtype":
        arrays[key] = value.astype(draw(ARRAY_DTYPES)) if value.dtype.kind != "U" else np.zeros(3)
    elif op == "drop":
        del arrays[key]
    else:
        arrays[key] = np.array(7)
    return arrays


@fuzz(50)
@given(arrays=damaged_arrays(hands_arrays()), name=NAMES)
def test_hands_npz_reader(tmp_path_factory, arrays, name) -> None:
    path = tmp_path_factory.mktemp("hands") / f"{name}.npz"
    with np.errstate(invalid="ignore"):
        np.savez(path, **arrays)
    trajectory = HeadTrajectory(33_333_333 * np.arange(10), np.tile(np.eye(4), (10, 1, 1)), "t")
    loaded = read_or_refuse(lambda p: load_hand_observations(p, trajectory), path)
    if loaded is not None:
        observations, info = loaded
        assert observations.keypoints_2d.shape == (10, 2, 21, 2) and info["source"] == str(path)


def hamer_json() -> str:
    """Three frames of a right hand (identity MANO rotations) and a pinhole camera, as docs/hands.md describes."""
    hand = {"is_right": True, "keypoints_2d": [[300.0 + j, 200.0] for j in range(21)],
            "keypoints_3d": [[0.01 * j, 0.0, 0.5] for j in range(21)], "global_orient": np.eye(3).tolist(),
            "hand_pose": [np.eye(3).tolist()] * 15}
    frames = [{"timestamp_ns": 33_333_333 * i, "hands": [hand]} for i in range(3)]
    camera = {"model": "pinhole", "width": 640, "height": 480, "fx": 500.0, "fy": 500.0, "cx": 320.0, "cy": 240.0,
              "T_cpf_camera": np.eye(4).tolist()}
    return json.dumps({"camera": camera, "frames": frames}, indent=0)


@fuzz(40)
@given(data=st.data(), name=NAMES)
def test_hamer_reader(tmp_path_factory, data, name) -> None:
    path = tmp_path_factory.mktemp("hamer") / f"{name}.json"
    path.write_bytes(data.draw(damaged_text(hamer_json())))
    detections = read_or_refuse(read_hamer, path)
    if detections is not None:
        assert np.all(np.diff(detections.timestamps_ns) > 0)


def hamer_arrays() -> dict[str, np.ndarray]:
    """Three frames of HaMeR outputs with a stored pinhole camera (docs/hands.md)."""
    rng = np.random.default_rng(0)
    rotations = np.broadcast_to(np.eye(3), (3, 2, 16, 3, 3))
    return {
        "timestamps_ns": np.arange(3, dtype=np.int64) * 33_000_000, "is_right": np.array([[True, False]] * 3),
        "keypoints_2d": rng.uniform(0, 600, (3, 2, 21, 2)), "keypoints_3d": rng.normal(0.3, 0.05, (3, 2, 21, 3)),
        "global_orient": rotations[:, :, 0].copy(), "hand_pose": rotations[:, :, 1:].copy(),
        "camera_model": np.array("pinhole"), "camera_params": np.array([500.0, 500.0, 320.0, 240.0]),
        "image_size": np.array([640, 480]), "T_cpf_camera": np.eye(4),
    }


@fuzz(40)
@given(arrays=damaged_arrays(hamer_arrays()), name=NAMES)
def test_hamer_npz_reader(tmp_path_factory, arrays, name) -> None:
    path = tmp_path_factory.mktemp("hamer_npz") / f"{name}.npz"
    with np.errstate(invalid="ignore"):
        np.savez(path, **arrays)
    detections = read_or_refuse(read_hamer, path)
    if detections is not None:
        assert np.all(np.diff(detections.timestamps_ns) > 0) and detections.confidence.shape == (3, 2)


@fuzz(30)
@given(data=st.data(), name=NAMES)
def test_hands_npz_written_by_egoallo(tmp_path_factory, data, name) -> None:
    """`HandDetections.load` (the detection cache, `hands detect` outputs) on damaged files."""
    folder = tmp_path_factory.mktemp("detections")
    (folder / "hamer.json").write_text(hamer_json())
    valid = read_hamer(folder / "hamer.json").save(folder / "valid.npz")
    with np.load(valid) as f:
        arrays = {k: f[k] for k in f.files}
    with np.errstate(invalid="ignore"):
        np.savez(folder / f"{name}.npz", **data.draw(damaged_arrays(arrays)))
    detections = read_or_refuse(HandDetections.load, folder / f"{name}.npz")
    if detections is not None:
        assert detections.keypoints_2d.shape == (detections.num_frames, 2, 21, 2)


@fuzz(30)
@given(data=st.data(), name=NAMES)
def test_calibration_json_reader(tmp_path_factory, data, name, shared_dir) -> None:
    text = (shared_dir / "aria" / "mps_online_calibration_first_line.jsonl").read_text()
    path = tmp_path_factory.mktemp("calib") / f"{name}.jsonl"
    path.write_bytes(data.draw(damaged_text(text.replace(",", ",\n"))))
    calibration = read_or_refuse(load_calibration, path)
    if calibration is not None:
        T = calibration.T_device_cpf
        assert T.shape == (4, 4) and np.isfinite(T).all()
        np.testing.assert_allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-6)


def json_paths(value, path=()):  # noqa: ANN001, ANN201 (any JSON value)
    """Every place in a parsed JSON value: (path, value) pairs, containers before their contents."""
    yield path, value
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for key, item in items:
        yield from json_paths(item, (*path, key))


def json_set(root, path, value):  # noqa: ANN001, ANN201 (any JSON value)
    """`root` with the value at `path` replaced (root itself when `path` is empty)."""
    if not path:
        return value
    parent = root
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return root


def reordered(value, draw: st.DrawFn):  # noqa: ANN001, ANN201 (any JSON value)
    """`value` with every object's keys and every list of objects in a random order."""
    if isinstance(value, dict):
        keys = draw(st.permutations(list(value)))
        return {k: reordered(value[k], draw) for k in keys}
    if isinstance(value, list):
        items = [reordered(v, draw) for v in value]
        return draw(st.permutations(items)) if all(isinstance(v, dict) for v in items) and items else items
    return value


NEUTRAL_EDITS = ("extra_key", "reorder", "unicode_text", "int_as_float", "layout")
"""Edits after which a calibration must read exactly as before."""


@st.composite
def odd_calibration(draw: st.DrawFn, record: dict) -> tuple[str, str]:
    """(edit, text): the calibration `record` after one valid-but-odd edit, as one JSONL line (or a document)."""
    record = json.loads(json.dumps(record))
    edit = draw(st.sampled_from([*NEUTRAL_EDITS, "number_as_string", "odd_value"]))
    places = list(json_paths(record))
    containers = [p for p, v in places if isinstance(v, dict)]
    numbers = [p for p, v in places if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if draw(st.booleans()):  # half the time a number the reader uses (cameras), not one it skips (IMUs, times)
        numbers = [p for p in numbers if p[0] == "CameraCalibrations"]
    if edit == "extra_key":
        key = "x-" + draw(st.text(max_size=8))
        extra = draw(st.sampled_from([None, True, "é漢\u2028", [1, {"a": []}], {"nested": {"deep": 1.5}}, -1e308]))
        target = draw(st.sampled_from(containers))
        json_set(record, target, {**dict(json_paths(record))[target], key: extra})
    elif edit == "reorder":
        record = reordered(record, draw)
    elif edit == "unicode_text":
        strings = [p for p, v in places if isinstance(v, str) and p[-1] in ("SerialNumber", "Name") and "Bias" in p]
        strings += [p for p, v in places if isinstance(v, str) and p[-1] == "SerialNumber"]
        json_set(record, draw(st.sampled_from(strings)), draw(st.text(max_size=12)))
    elif edit == "int_as_float":
        integers = [p for p in numbers if isinstance(dict(places)[p], int)] or numbers
        path = draw(st.sampled_from(integers))
        json_set(record, path, float(dict(places)[path]))
    elif edit == "number_as_string":
        path = draw(st.sampled_from(numbers))
        json_set(record, path, repr(dict(places)[path]))
    elif edit == "odd_value":
        path = draw(st.sampled_from(numbers))
        json_set(record, path, draw(st.sampled_from([True, None, 10**400, -(10**400), 1e308, [], {}, "", "nan"])))
    text = json.dumps(record, ensure_ascii=draw(st.booleans()), indent=draw(st.sampled_from([None, 0, 2])))
    if edit == "layout":
        text = draw(st.sampled_from(["\ufeff", "", "\n\n", "   "])) + text.replace("\n", " ") + draw(st.sampled_from(["", "\n", "\r\n"]))
    return edit, text if "\n" not in text.strip() else text.replace("\n", " ")


def same_calibration(a, b) -> bool:  # noqa: ANN001 (two AriaCalibration)
    """The two calibrations give the same T_device_cpf and RGB camera (to float rounding)."""
    if not np.allclose(a.T_device_cpf, b.T_device_cpf, atol=1e-12):
        return False
    if (a.rgb is None) != (b.rgb is None):
        return False
    return a.rgb is None or (
        a.rgb.kind == b.rgb.kind and a.rgb.image_size == b.rgb.image_size and a.rgb.valid_radius == b.rgb.valid_radius
        and np.allclose(a.rgb.params, b.rgb.params, atol=1e-12)
        and np.allclose(a.rgb.T_device_camera, b.rgb.T_device_camera, atol=1e-12)
    )


@fuzz(60)
@given(data=st.data(), name=NAMES)
def test_calibration_json_valid_but_odd(tmp_path_factory, data, name, shared_dir) -> None:
    """Extra keys, reordered keys and cameras, unicode, layout (BOM, indentation, CRLF) and ints written as floats
    read exactly as the original; numbers as strings and other odd values read as the original or are refused
    with one line naming the file."""
    original = shared_dir / "aria" / "mps_online_calibration_first_line.jsonl"
    expected = load_calibration(original)
    edit, text = data.draw(odd_calibration(json.loads(original.read_text().splitlines()[0])))
    path = tmp_path_factory.mktemp("calib_odd") / f"{name}.{data.draw(st.sampled_from(['jsonl', 'json']))}"
    path.write_text(text, encoding="utf-8")
    event(f"edit: {edit}")
    calibration = read_or_refuse(load_calibration, path)
    if edit in NEUTRAL_EDITS:
        assert calibration is not None, edit
    assert calibration is None or same_calibration(calibration, expected), edit


@pytest.fixture(scope="module")
def body() -> BodyModel:
    return BodyModel.load_default()


def result_arrays(result: InferenceResult, tmp: Path) -> dict[str, np.ndarray]:
    path = result.save(tmp / "valid.npz")
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def check_exports(result: InferenceResult, body: BodyModel, folder: Path) -> None:
    """Every exporter writes its file from a result that loaded."""
    motion = result_motion(result, 0)
    assert write_bvh(folder / "m.bvh", motion, body).stat().st_size > 0
    amass = write_amass_npz(folder / "m.npz", motion, body)
    with np.load(amass) as f:
        assert np.isfinite(f["poses"]).all() and np.isfinite(f["trans"]).all()


@fuzz(40)
@given(data=st.data(), name=NAMES)
def test_result_load_and_export(tmp_path_factory, body, data, name) -> None:
    folder = tmp_path_factory.mktemp("result")
    arrays = result_arrays(small_result(body), folder)
    path = folder / f"{name}.npz"
    if data.draw(st.booleans()):
        with np.errstate(invalid="ignore"):
            np.savez(path, **data.draw(damaged_arrays(arrays)))
    else:
        path.write_bytes(data.draw(damaged_bytes((folder / "valid.npz").read_bytes())))
    result = read_or_refuse(InferenceResult.load, path)
    if result is not None:
        check_exports(result, body, folder)


@fuzz(20)
@given(data=st.data(), shuffle=st.booleans())
def test_result_rows_shuffled_or_duplicated(tmp_path_factory, body, data, shuffle) -> None:
    """Frames out of order or repeated (every per-frame array alike) are refused by their timestamps."""
    folder = tmp_path_factory.mktemp("rows")
    arrays = result_arrays(small_result(body), folder)
    T = len(arrays["timestamps_ns"])
    order = list(data.draw(st.permutations(range(T)))) if shuffle else sorted([*range(T), data.draw(st.integers(0, T - 1))])
    for key in ("timestamps_ns", "T_world_cpf"):
        arrays[key] = arrays[key][order]
    for key in ("joints_world", "T_world_root", "local_rotations", "contacts"):
        arrays[key] = arrays[key][:, order]
    np.savez(folder / "r.npz", **arrays)
    result = read_or_refuse(InferenceResult.load, folder / "r.npz")
    assert (result is not None) == (order == list(range(T)))


BVH_EXTREMES = ["1e308", "-1e308", "1e30", "1e12", "nan", "inf", "-inf", "1e-320", "x", ""]


@st.composite
def damaged_bvh(draw: st.DrawFn, text: str) -> bytes:
    """A BVH export after text edits (then maybe truncation or byte flips), or with one OFFSET or frame value
    replaced by an extreme or non-number."""
    if draw(st.booleans()):
        return draw(damaged_text(text))
    lines = text.splitlines()
    numeric = [i for i, line in enumerate(lines) if line.strip().startswith("OFFSET") or line[:1] in "-0123456789"]
    i = draw(st.sampled_from(numeric))
    words = lines[i].split()
    k = draw(st.integers(1 if words[0] == "OFFSET" else 0, len(words) - 1))
    words[k] = draw(st.sampled_from(BVH_EXTREMES))
    lines[i] = " ".join(words)
    return ("\n".join(lines) + "\n").encode()


@fuzz(40)
@given(data=st.data(), name=NAMES)
def test_bvh_reader(tmp_path_factory, body, data, name) -> None:
    """The BVH reader (egoallo data make-case) on damaged exports: a `BvhError` naming the file, or a clip whose
    forward kinematics is finite."""
    folder = tmp_path_factory.mktemp("bvh")
    valid = write_bvh(folder / "valid.bvh", result_motion(small_result(body), 0), body).read_text()
    path = folder / f"{name}.bvh"
    path.write_bytes(data.draw(damaged_bvh(valid)))
    try:
        clip = read_bvh(path)
    except BvhError as error:
        one_line_error(error, path)
        event("refused with a clear error")
        return
    event("read")
    assert clip.num_frames >= 1 and np.isfinite(clip.forward_kinematics().positions).all()


def amass_arrays() -> dict[str, np.ndarray]:
    """Six frames of an AMASS SMPL-H sequence ("+H G" layout)."""
    rng = np.random.default_rng(0)
    return {
        "poses": rng.normal(0, 0.3, (6, 156)), "trans": np.cumsum(rng.normal(0, 0.01, (6, 3)), axis=0),
        "betas": rng.normal(0, 1, 16), "mocap_framerate": np.array(120.0), "gender": np.array("female"),
        "dmpls": np.zeros((6, 8)),
    }


AMASS_ARRAYS = amass_arrays()


@fuzz(50)
@given(data=st.data(), name=NAMES)
def test_amass_reader(tmp_path_factory, body, data, name) -> None:
    """The AMASS reader (egoallo data build --amass-dir) on damaged arrays or damaged bytes: an `AmassFileError`
    naming the file, or a motion of finite, rigid poses."""
    folder = tmp_path_factory.mktemp("amass")
    path = folder / f"{name}.npz"
    if data.draw(st.booleans()):
        with np.errstate(invalid="ignore", over="ignore"):
            np.savez(path, **data.draw(damaged_arrays(AMASS_ARRAYS)))
    else:
        np.savez(folder / "valid.npz", **AMASS_ARRAYS)
        path.write_bytes(data.draw(damaged_bytes((folder / "valid.npz").read_bytes())))
    try:
        motion = read_amass(path, body)
    except AmassFileError as error:
        one_line_error(error, path)
        event("refused with a clear error")
        return
    event("read")
    R = motion.local_rotations
    assert motion.num_frames >= 1 and motion.fps > 0 and np.isfinite(motion.T_world_root).all()
    np.testing.assert_allclose(R @ np.swapaxes(R, -1, -2), np.broadcast_to(np.eye(3), R.shape), atol=1e-6)
    assert np.isfinite(motion.posed(body).joints_world.numpy()).all()


@fuzz(20)
@given(data=st.data(), which=st.sampled_from(["weights", "config"]))
def test_damaged_checkpoints(tmp_path_factory, body, tiny_checkpoint, data, which) -> None:
    """A damaged checkpoint is refused when loaded, or its non-finite outputs are, or it gives finite bodies."""
    folder = tmp_path_factory.mktemp("ckpt")
    weights, config = (tiny_checkpoint / "model.safetensors").read_bytes(), (tiny_checkpoint / "config.json").read_bytes()
    if which == "weights":
        header = int.from_bytes(weights[:8], "little") + 8
        flips = data.draw(st.lists(st.integers(header, len(weights) - 1), min_size=1, max_size=200))
        raw = bytearray(weights)
        for i in flips:
            raw[i] ^= data.draw(st.sampled_from([0x7F, 0x80, 0xFF, 0x40]))
        weights = bytes(raw) if data.draw(st.booleans()) else data.draw(damaged_bytes(weights))
    else:
        config = data.draw(damaged_text(config.decode()))
    (folder / "model.safetensors").write_bytes(weights)
    (folder / "config.json").write_bytes(config)
    try:
        _, denoiser = load_denoiser(folder)
    except UserError as error:
        assert "\n" not in str(error).strip() and str(folder) in str(error)
        return
    t, pose = walk_poses(8)
    T = np.tile(np.eye(4), (8, 1, 1))
    T[:, :3, 3] = pose[:, :3]
    T[:, :3, :3] = [[0, 0, 1], [1, 0, 0], [0, 1, 0]]
    segment = HeadTrajectory(np.round(t * 1e9).astype(np.int64), T, "t")
    try:
        result = estimate_recording([segment], denoiser, body, floor_z=0.0, config=SamplingConfig(num_steps=1),
                                    observe=lambda s: (Observations(), {}), checkpoint=str(folder), metadata={})
    except UserError as error:
        assert str(folder) in str(error) and "NaN or infinite" in str(error)
        return
    assert np.isfinite(result.joints_world).all()


@fuzz(15)
@given(data=st.data(), fmt=st.sampled_from(["tum", "mps"]))
def test_infer_command_on_damaged_trajectories(tmp_path_factory, tiny_checkpoint, capsys, data, fmt) -> None:
    """The whole `egoallo infer` path: a result (exit 0) or one line of error (exit 2), never a bug (exit 1)."""
    from egoallo.cli.main import main

    folder = tmp_path_factory.mktemp("infer")
    path = folder / ("t.txt" if fmt == "tum" else "t.csv")
    path.write_bytes(data.draw(damaged_text(tum_text() if fmt == "tum" else mps_text())))
    out = folder / "r.npz"
    code = main(["infer", str(path), "--out", str(out), "--checkpoint", str(tiny_checkpoint), "--steps", "1",
                 "--threads", "1"])
    err = capsys.readouterr().err.strip()
    event(f"exit code {code}")
    assert code in (0, 2), err
    assert out.exists() == (code == 0)
    if code == 2:
        assert len(err.splitlines()) == 1 and err.startswith("egoallo: error: ")
    else:
        assert np.isfinite(InferenceResult.load(out).joints_world).all()


# --- Round three (issue #28): generators for the classes that were silently wrong -----------------------


@fuzz(25)
@given(data=st.data())
def test_repeated_trajectory_columns_are_refused(tmp_path_factory, data) -> None:
    """Any column of an MPS CSV repeated, with any values: refused at line 1, never the last copy winning."""
    lines = mps_text().splitlines()
    header = lines[0].split(",")
    column = data.draw(st.sampled_from(header))
    value = data.draw(st.sampled_from(["25.0", "0", "-1e5", "g2", "nan"]))
    at = data.draw(st.integers(0, len(header)))
    rows = [",".join([*r.split(",")[:at], column if i == 0 else value, *r.split(",")[at:]]) for i, r in enumerate(lines)]
    path = tmp_path_factory.mktemp("repeated") / "closed_loop_trajectory.csv"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(UserError, match=f"line 1: repeated column\\(s\\) .*{column}"):
        read_trajectory_segments(path)


def tum_of(t: np.ndarray, pose: np.ndarray) -> str:
    return "".join(f"{a:.6f} " + " ".join(f"{v:.6f}" for v in row) + "\n" for a, row in zip(t, pose))


@fuzz(30)
@given(start=st.integers(0, 299), length=st.integers(1, 300))
def test_a_partly_upside_down_head_is_never_silent(tmp_path_factory, start, length) -> None:
    """A head flipped for any stretch of a 10 s walk: refused (0.5 s or longer) or warned, never read silently."""
    t, pose = walk_poses(300)
    end = min(300, start + length)
    pose[start:end, 3:] = [0.5, -0.5, 0.5, -0.5]
    path = tmp_path_factory.mktemp("flip") / "walk.txt"
    path.write_text(tum_of(t, pose))
    try:
        segments = read_trajectory_segments(path)
    except UserError as error:
        one_line_error(error, path)
        assert "upside down" in str(error)
        event("refused")
        return
    assert (t[end - 1] - t[start]) < 0.5
    assert any("upside down" in w for w in segments[0].metadata["warnings"])
    event("warned")


@fuzz(40)
@given(head=st.floats(-1e6, 1e6),
       below=st.one_of(st.floats(-5.0, 5.0), st.floats(-1e7, 1e7), st.sampled_from([np.nan, np.inf, -np.inf])))
def test_a_given_floor_far_from_the_head_is_refused(head, below) -> None:
    """`--floor-z` anywhere: accepted only 0.3-2.5 m under the head's median height."""
    from egoallo.inputs.points import MAX_HEAD_ABOVE_FLOOR_M, MIN_HEAD_ABOVE_FLOOR_M, floor_given

    floor = head - below
    heads = np.full(50, head)
    plausible = np.isfinite(floor) and MIN_HEAD_ABOVE_FLOOR_M <= head - floor <= MAX_HEAD_ABOVE_FLOOR_M
    if plausible:
        assert floor_given(floor, heads).z == floor
    else:
        with pytest.raises(ValueError, match="is not a floor under this head"):
            floor_given(floor, heads)


OUT_OF_RANGE = {
    "betas": [21.0, -1e6, 1e30], "stature_m": [-1.7, 0.0, 3.5, 1e9], "contacts": [-0.5, 1.5, 1e30],
    "fps": [0.0, 1e-300, 1e6, 60.0], "joint_names": ["swap"], "T_world_root": [5.0, 1e9],
}  # fmt: skip


@fuzz(40)
@given(data=st.data())
def test_results_with_out_of_range_fields_are_refused(tmp_path_factory, body, data) -> None:
    """One field of a valid result set to a value no run gives: `load` names that field."""
    folder = tmp_path_factory.mktemp("edited")
    arrays = result_arrays(small_result(body), folder)
    key = data.draw(st.sampled_from(sorted(OUT_OF_RANGE)))
    value = data.draw(st.sampled_from(OUT_OF_RANGE[key]))
    if key == "joint_names":
        i, j = data.draw(st.lists(st.integers(0, 51), min_size=2, max_size=2, unique=True))
        names = arrays[key].copy()
        names[[i, j]] = names[[j, i]]
        arrays[key] = names
    elif key == "T_world_root":  # the root moved away from its joints
        root = arrays[key].copy()
        root[..., data.draw(st.integers(0, 2)), 3] += value
        arrays[key] = root
    elif key == "fps":
        arrays[key] = np.float64(value)
    else:
        changed = arrays[key].astype(np.float64).copy()
        index = tuple(data.draw(st.integers(0, n - 1)) for n in changed.shape)
        changed[index] = value
        arrays[key] = changed.astype(arrays[key].dtype)
    path = folder / "edited.npz"
    np.savez(path, **arrays)
    with pytest.raises(UserError) as error:
        InferenceResult.load(path)
    one_line_error(error.value, path)
    expected = {"T_world_root": "from the root", "fps": "'fps'"}.get(key, f"'{key}'")
    assert expected in str(error.value)


@fuzz(12)
@given(offset=st.tuples(*[st.floats(-1e7, 1e7)] * 2), up=st.floats(-100.0, 100.0))
def test_utm_results_through_export_keep_millimetres(tmp_path_factory, body, offset, up) -> None:
    """A result anywhere within 10,000 km of its origin exports to a GLB whose joints are those of the same
    result at the origin, moved, within a millimetre."""
    import dataclasses

    import pygltflib

    from egoallo.export import frame_times, write_glb

    folder = tmp_path_factory.mktemp("utm")
    near = small_result(body)
    shift = np.array([offset[0], offset[1], up])

    def moved(T: np.ndarray) -> np.ndarray:
        T = T.astype(np.float64)
        T[..., :3, 3] += shift
        return T

    far = dataclasses.replace(near, joints_world=near.joints_world + shift, T_world_root=moved(near.T_world_root),
                              T_world_cpf=moved(near.T_world_cpf), floor_z=near.floor_z + up)  # z-up input world
    roots = []
    for name, result in (("near", near), ("far", far)):
        path = write_glb(folder / f"{name}.glb", result_motion(result, 0), body, frame_times(result.timestamps_ns))
        gltf = pygltflib.GLTF2().load(str(path))
        animation = gltf.animations[0]
        channel = next(c for c in animation.channels if c.target.path == "translation")
        accessor = gltf.accessors[animation.samplers[channel.sampler].output]
        view = gltf.bufferViews[accessor.bufferView]
        keys = np.frombuffer(gltf.binary_blob(), np.float32, accessor.count * 3, view.byteOffset).reshape(-1, 3)
        roots.append(keys.astype(np.float64) + gltf.nodes[53].translation)
    # glTF is y-up: (x, y, z) -> (x, z, -y); heights are over each result's own floor.
    np.testing.assert_allclose(roots[1] - roots[0], np.broadcast_to([shift[0], 0.0, -shift[1]], roots[0].shape),
                               atol=1e-3)
    assert abs(gltf.nodes[53].translation[0] - shift[0]) < 1.0
