"""Aria device calibration: `T_device_cpf` and the RGB camera.

Sources: a VRS recording (factory calibration, read with projectaria-tools: the `aria`
extra), a device-calibration JSON, or an MPS online-calibration JSONL line (both read here,
without projectaria-tools, as projectaria-tools 2.3 reads them; `tests/test_trajectory.py`
compares the two). projectaria-tools reports a bad VRS by returning `None` or raising
`RuntimeError` (checked on 2.3: empty/random/truncated VRS); both become a `CalibrationError`
naming the file. In the JSON, keys and cameras may come in any order, unknown keys are ignored and a
byte-order mark is skipped; the values read must be JSON numbers (a number written as a string is refused).

Aria Gen 1 derives `T_device_cpf` from CAD extrinsics of its device subtype (DVT-S or
DVT-L frame size), not from per-device calibration: the inverse of the CAD pose, in the CPF,
of the calibration's origin sensor (camera-slam-left). MPS online calibration omits the
subtype; it is identified here from the SLAM stereo baseline (CAD: DVT-S 138.1 mm, DVT-L
142.7 mm).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..cameras import CameraModel
from ..errors import UserError
from ..geometry.rigid import as_rigid_transform
from ..thirdparty import native_logs_hidden, require

RGB_CAMERA_LABEL = "camera-rgb"
ORIGIN_LABEL = "camera-slam-left"
# CAD pose of camera-slam-left in the CPF per Aria Gen 1 frame size: translation (m), then its
# y and z axes, as listed in projectaria-tools' DeviceCadExtrinsics.cpp (Apache-2.0).
_GEN1_CAD_ORIGIN_IN_CPF = {
    "DVT-S": ((0.069051, 0.002372, 0.009254), (0.793353, 0.0, -0.608761), (0.607927, -0.052336, 0.792266)),
    "DVT-L": ((0.071351, 0.002372, 0.008454), (0.793353, 0.0, -0.608761), (0.607927, -0.052336, 0.792266)),
}
# Distance between the SLAM cameras in the Gen 1 CAD extrinsics, metres.
GEN1_SLAM_BASELINE_M = {"DVT-S": 0.138102, "DVT-L": 0.142702}
_BASELINE_TOLERANCE_M = 0.003
# What a calibration JSON without "ConfigData" implies for the RGB camera (full-resolution Gen 1 calibration).
_GEN1_RGB_FULL_RESOLUTION = {"ImageWidth": 2880, "ImageHeight": 2880, "ValidRadius": 1415.0}
_PROJECTIONS = {"FisheyeRadTanThinPrism": "fisheye624"}


class CalibrationError(UserError, ValueError):
    """An unusable calibration file or matrix: the message names the source and what was expected."""


def gen1_T_device_cpf(subtype: str) -> np.ndarray:
    """(4, 4) `T_device_cpf` of an Aria Gen 1 device of frame size `subtype` ("DVT-S" or "DVT-L")."""
    translation, y_axis, z_axis = (np.asarray(v, dtype=np.float64) for v in _GEN1_CAD_ORIGIN_IN_CPF[subtype])
    y_axis, z_axis = y_axis / np.linalg.norm(y_axis), z_axis / np.linalg.norm(z_axis)
    U, _, Vt = np.linalg.svd(np.stack([np.cross(y_axis, z_axis), y_axis, z_axis], axis=1))
    R_cpf_origin = U @ np.diag([1.0, 1.0, np.linalg.det(U @ Vt)]) @ Vt  # nearest rotation, as Sophus makes it
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R_cpf_origin.T, -R_cpf_origin.T @ translation
    return T


# Aria Gen 1, DVT-S (the default frame size). It equals `get_transform_device_cpf()` of the
# factory calibration in ../shared/aria/aea_recording_rgb8frames.vrs (projectaria-tools 2.3);
# the MPS online calibration in ../shared/aria/ (another DVT-S device) gives the same matrix;
# DVT-L (adt_video_rgb3frames.vrs) differs by 2.4 mm in translation, not in rotation.
DEFAULT_ARIA_T_DEVICE_CPF = gen1_T_device_cpf("DVT-S")
DEFAULT_ARIA_T_DEVICE_CPF.setflags(write=False)


@dataclass(frozen=True, eq=False)
class AriaCalibration:
    """What this project uses of an Aria device calibration, with where it came from."""

    T_device_cpf: np.ndarray
    """(4, 4) central pupil frame in the device frame."""
    rgb: CameraModel | None
    """The RGB camera (its `T_device_camera` set), or None when the device has none."""
    source: str
    description: str  # how it was read, e.g. "VRS factory calibration, DVT-S"

    def rgb_camera(self) -> CameraModel:
        """The RGB camera calibration; `CalibrationError` when the device has none."""
        if self.rgb is None:
            raise CalibrationError(f"{self.source}: no {RGB_CAMERA_LABEL!r} calibration in {self.description}")
        return self.rgb


def load_calibration(path: str | Path) -> AriaCalibration:
    """Read a `.vrs` recording's factory calibration or a `.json`/`.jsonl` calibration."""
    path = Path(path)
    if not path.is_file():
        raise CalibrationError(f"{path}: calibration file not found (expected .vrs, .json or .jsonl)")
    if path.suffix.lower() == ".vrs":
        return _from_vrs(path)
    if path.suffix.lower() in (".json", ".jsonl"):
        return _from_json(path)
    raise CalibrationError(f"{path}: unknown calibration file type; expected .vrs, .json or .jsonl")


def load_T_device_cpf(path: str | Path) -> np.ndarray:
    """(4, 4) `T_device_cpf` from a `.vrs`, `.json` or `.jsonl` calibration."""
    return load_calibration(path).T_device_cpf


def load_rgb_camera(path: str | Path) -> CameraModel:
    """The RGB camera from a `.vrs`, `.json` or `.jsonl` calibration."""
    return load_calibration(path).rgb_camera()


def _from_vrs(path: Path) -> AriaCalibration:
    data_provider = require("projectaria_tools.core.data_provider", f"{path}: reading an Aria .vrs recording")
    with native_logs_hidden():
        try:
            provider = data_provider.create_vrs_data_provider(str(path))
        except RuntimeError as error:
            raise CalibrationError(f"{path}: projectaria-tools cannot read this VRS file ({error})") from None
    if provider is None:
        raise CalibrationError(f"{path}: projectaria-tools cannot open this file as a VRS recording")
    device = provider.get_device_calibration()
    if device is None:
        raise CalibrationError(f"{path}: the VRS recording holds no device calibration")
    return from_device_calibration(device, str(path), f"VRS factory calibration, {device.get_device_subtype()}")


def from_device_calibration(device: Any, source: str, description: str) -> AriaCalibration:
    """From a projectaria-tools `DeviceCalibration` (a VRS recording's factory calibration)."""
    T_device_cpf = np.asarray(device.get_transform_device_cpf().to_matrix(), dtype=np.float64)
    camera = device.get_camera_calib(RGB_CAMERA_LABEL)
    rgb = None if camera is None else rgb_camera_from_aria(camera, T_device_cpf, source)
    return AriaCalibration(T_device_cpf, rgb, source, description)


def rgb_camera_from_aria(
    camera: Any, T_device_cpf: np.ndarray, source: str = "projectaria-tools calibration"
) -> CameraModel:
    """From a projectaria-tools `CameraCalibration` (FISHEYE624 or LINEAR) and `T_device_cpf (4, 4)`."""
    name = str(camera.get_model_name()).rsplit(".", 1)[-1]
    kinds = {"FISHEYE624": "fisheye624", "LINEAR": "pinhole"}
    if name not in kinds:
        raise CalibrationError(f"{source}: camera {camera.get_label()!r}: model {name} is not supported (FISHEYE624, LINEAR)")
    width, height = (int(v) for v in camera.get_image_size())
    radius = camera.get_valid_radius()
    T_device_camera = np.asarray(camera.get_transform_device_camera().to_matrix(), dtype=np.float64)
    return _camera(
        kinds[name], np.asarray(camera.get_projection_params(), dtype=np.float64), (width, height),
        None if radius is None else float(radius), T_device_camera, T_device_cpf, source,
    )


def _from_json(path: Path) -> AriaCalibration:
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark (Windows editors) is not part of the JSON
    except (OSError, UnicodeDecodeError) as error:
        raise CalibrationError(f"{path}: cannot read as UTF-8 text ({error})") from None
    line_no, record = _first_json_record(path, text)
    if not isinstance(record, dict) or not isinstance(record.get("CameraCalibrations"), list):
        raise CalibrationError(
            f"{path}: line {line_no}: expected an Aria calibration JSON object with a 'CameraCalibrations' list"
        )
    cameras = record["CameraCalibrations"]
    if "DeviceClassInfo" not in record:
        subtype, baseline = _gen1_subtype_from_slam_baseline(path, cameras)
        description = (
            f"MPS online calibration, line {line_no}; Aria Gen 1 {subtype} "
            f"identified from its SLAM baseline {baseline * 1000:.1f} mm"
        )
    else:
        info = record["DeviceClassInfo"]
        subtype = info.get("BuildVersion") if isinstance(info, dict) else None
        if subtype not in _GEN1_CAD_ORIGIN_IN_CPF:
            raise CalibrationError(
                f"{path}: line {line_no}: device subtype {subtype!r} is not an Aria Gen 1 frame size "
                f"({', '.join(_GEN1_CAD_ORIGIN_IN_CPF)}); pass the recording's .vrs"
            )
        description = f"device calibration JSON, line {line_no}, {subtype}"
    origin = record.get("OriginSpecification", {"ChildLabel": ORIGIN_LABEL})
    if not isinstance(origin, dict) or origin.get("ChildLabel") != ORIGIN_LABEL:
        raise CalibrationError(f"{path}: line {line_no}: OriginSpecification {origin!r}; expected the {ORIGIN_LABEL} origin of Aria Gen 1")
    T_device_cpf = gen1_T_device_cpf(subtype)
    rgb = _rgb_from_json(f"{path}: line {line_no}: {RGB_CAMERA_LABEL}", cameras, T_device_cpf)
    return AriaCalibration(T_device_cpf, rgb, str(path), description)


def _rgb_from_json(where: str, cameras: list[Any], T_device_cpf: np.ndarray) -> CameraModel | None:
    """The RGB camera entry of a calibration JSON (None when there is none); image size from its ConfigData."""
    entry = next((c for c in cameras if isinstance(c, dict) and c.get("Label") == RGB_CAMERA_LABEL), None)
    if entry is None:
        return None
    projection = entry.get("Projection")
    name = projection.get("Name") if isinstance(projection, dict) else None
    if name not in _PROJECTIONS:
        raise CalibrationError(f"{where}: projection {name!r}; expected one of {sorted(_PROJECTIONS)}")
    params = _json_numbers(projection.get("Params"), (15,), f"{where}: Projection.Params")
    size, radius = _image_config(entry.get("ConfigData", _GEN1_RGB_FULL_RESOLUTION), where)
    T_device_camera = _se3_from_json(entry.get("T_Device_Camera"), f"{where}: T_Device_Camera")
    return _camera(_PROJECTIONS[name], params, size, radius, T_device_camera, T_device_cpf, where)


def _camera(
    kind: str,
    params: np.ndarray,
    size: tuple[int, int],
    valid_radius: float | None,
    T_device_camera: np.ndarray,
    T_device_cpf: np.ndarray,
    where: str,
) -> CameraModel:
    """The `CameraModel` of a calibration's camera; a `CalibrationError` naming `where` if it is unusable."""
    try:
        T_cpf_camera = np.linalg.inv(as_rigid_transform(T_device_cpf, "T_device_cpf")) @ T_device_camera
        return CameraModel(kind, params, size[0], size[1], T_cpf_camera, valid_radius, T_device_camera)  # type: ignore[arg-type]
    except UserError as error:
        raise CalibrationError(f"{where}: {error}") from None


def _se3_from_json(value: Any, where: str) -> np.ndarray:
    """(4, 4) from `{"Translation": [x, y, z], "UnitQuaternion": [w, [x, y, z]]}` (the quaternion normalised)."""
    expected = 'expected {"Translation": [x, y, z], "UnitQuaternion": [w, [x, y, z]]}'
    try:
        translation = _json_numbers(value["Translation"], (3,), where)
        w, xyz = value["UnitQuaternion"]
        q = _json_numbers([w, *xyz], (4,), where)
    except (TypeError, KeyError, ValueError):
        raise CalibrationError(f"{where}: {expected}") from None
    norm = np.linalg.norm(q)
    if norm < 1e-6:
        raise CalibrationError(f"{where}: the quaternion is zero; {expected}")
    w, x, y, z = q / norm
    T = np.eye(4)
    T[:3, :3] = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ]
    T[:3, 3] = translation
    return T


def _json_numbers(value: Any, shape: tuple[int, ...], where: str) -> np.ndarray:
    """`value` as finite float64 numbers of `shape`, or a `CalibrationError` naming `where`."""
    array = _real_numbers(value)
    if array is None or array.shape != shape or not np.isfinite(array).all():
        raise CalibrationError(f"{where}: expected {shape[0]} finite JSON numbers, got {value!r:.80}")
    return array


def _real_numbers(value: Any) -> np.ndarray | None:
    """A JSON number or (nested) list of them as float64; None for anything else (strings, booleans, null,
    integers beyond float64)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, bool) or not isinstance(item, (int, float)):
            return None
        elif isinstance(item, int) and abs(item) > 2**1023:
            return None
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):  # ragged lists
        return None


def _image_config(config: Any, where: str) -> tuple[tuple[int, int], float]:
    """((width, height), valid radius) from a camera's ConfigData: positive integers and a positive number."""
    expected = "expected ImageWidth and ImageHeight (positive integers) and ValidRadius (a positive number)"
    values = [config.get(k) for k in ("ImageWidth", "ImageHeight", "ValidRadius")] if isinstance(config, dict) else []
    numbers = _real_numbers(values) if len(values) == 3 else None
    if numbers is None or numbers.shape != (3,) or not (np.isfinite(numbers).all() and (numbers > 0).all()):
        raise CalibrationError(f"{where}: ConfigData {config!r:.120}; {expected}")
    width, height, radius = numbers
    if width != int(width) or height != int(height):
        raise CalibrationError(f"{where}: ConfigData image size {width:g} x {height:g}; {expected}")
    return (int(width), int(height)), float(radius)


def _first_json_record(path: Path, text: str) -> tuple[int, Any]:
    """The whole `.json` document, or the first non-empty line of a `.jsonl`, with its line number."""
    if path.suffix.lower() == ".json":
        chunk, line_no = text, 1
    else:
        numbered = [(i, line) for i, line in enumerate(text.splitlines(), start=1) if line.strip()]
        if not numbered:
            raise CalibrationError(f"{path}: empty file; expected one calibration JSON object per line")
        line_no, chunk = numbered[0]
    try:
        return line_no, json.loads(chunk)
    except RecursionError:
        raise CalibrationError(f"{path}: line {line_no}: JSON nested too deeply; expected a calibration object") from None
    except json.JSONDecodeError as error:
        at = line_no + error.lineno - 1
        raise CalibrationError(
            f"{path}: line {at}: not valid JSON ({error.msg}, column {error.colno}); expected a calibration object"
        ) from None


def _gen1_subtype_from_slam_baseline(path: Path, cameras: list[Any]) -> tuple[str, float]:
    """("DVT-S" | "DVT-L", baseline in m) from the SLAM cameras of an online calibration (origin: slam-left)."""
    left, right = (_camera_translation(cameras, label) for label in ("camera-slam-left", "camera-slam-right"))
    if left is None or right is None:
        raise CalibrationError(
            f"{path}: no DeviceClassInfo and no camera-slam-left/right extrinsics; expected an Aria Gen 1 "
            "device or online calibration (or pass the recording's .vrs)"
        )
    if np.linalg.norm(left) > 1e-6:
        raise CalibrationError(f"{path}: camera-slam-left is not the device origin; expected Aria Gen 1 MPS output")
    baseline = float(np.linalg.norm(right))
    subtype = min(GEN1_SLAM_BASELINE_M, key=lambda s: abs(GEN1_SLAM_BASELINE_M[s] - baseline))
    if abs(GEN1_SLAM_BASELINE_M[subtype] - baseline) > _BASELINE_TOLERANCE_M:
        raise CalibrationError(
            f"{path}: SLAM baseline {baseline * 1000:.1f} mm matches no Aria Gen 1 frame size "
            f"({', '.join(f'{k} {v * 1000:.1f} mm' for k, v in GEN1_SLAM_BASELINE_M.items())}); pass the .vrs"
        )
    return subtype, baseline


def _camera_translation(cameras: list[Any], label: str) -> np.ndarray | None:
    """(3,) `T_Device_Camera` translation of the camera with `label`, or None when absent or malformed."""
    for camera in cameras:
        if isinstance(camera, dict) and camera.get("Label") == label:
            extrinsics = camera.get("T_Device_Camera")
            values = _real_numbers(extrinsics.get("Translation")) if isinstance(extrinsics, dict) else None
            return values if values is not None and values.shape == (3,) and np.isfinite(values).all() else None
    return None
