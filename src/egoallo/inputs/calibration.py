"""Aria device calibration: `T_device_cpf` and the RGB camera, read with projectaria-tools.

Sources: a VRS recording (factory calibration), a device-calibration JSON, or an MPS
online-calibration JSONL line. projectaria-tools reports bad input by returning `None`
or raising `RuntimeError` (checked on 2.3: empty/random/truncated VRS, bad JSON, unknown
device subtype); both become a `CalibrationError` naming the file.

Aria Gen 1 derives `T_device_cpf` from CAD extrinsics of its device subtype (DVT-S or
DVT-L frame size), not from per-device calibration, so it is the same for every device of
one subtype. MPS online calibration omits the subtype; it is identified here from the SLAM
stereo baseline (CAD: DVT-S 138.1 mm, DVT-L 142.7 mm).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from projectaria_tools.core import calibration as aria_calibration
from projectaria_tools.core import data_provider

from egoallo.errors import UserError

# Aria Gen 1, DVT-S (the default frame size): `get_transform_device_cpf()` of the factory
# calibration in ../shared/aria/aea_recording_rgb8frames.vrs (projectaria-tools 2.3). The
# MPS online calibration in ../shared/aria/ (another DVT-S device) gives the same matrix;
# DVT-L (adt_video_rgb3frames.vrs) differs by 2.4 mm in translation, not in rotation.
DEFAULT_ARIA_T_DEVICE_CPF = np.array(
    [
        [-3.1860137253989063e-02, -9.9862953206225713e-01, -4.1520950702926107e-02, 4.9529584653817404e-03],
        [7.9335340107158459e-01, 1.7481547320841173e-09, -6.0876134979821916e-01, -4.9148368170507883e-02],
        [6.0792706195916857e-01, -5.2336007615386759e-02, 7.9226613561641979e-01, -4.9185461364273209e-02],
        [0.0, 0.0, 0.0, 1.0],
    ]
)
DEFAULT_ARIA_T_DEVICE_CPF.setflags(write=False)

RGB_CAMERA_LABEL = "camera-rgb"
# Distance between the SLAM cameras in the Gen 1 CAD extrinsics, metres.
GEN1_SLAM_BASELINE_M = {"DVT-S": 0.138102, "DVT-L": 0.142702}
_BASELINE_TOLERANCE_M = 0.003
_ONLINE_ORIGIN = {"ChildLabel": "camera-slam-left", "Type": "Custom"}


class CalibrationError(UserError, ValueError):
    """An unusable calibration file or matrix: the message names the source and what was expected."""


@dataclass(frozen=True, eq=False)
class RgbCamera:
    """The RGB camera's calibration: extrinsics as (4, 4) matrices, plus projectaria-tools' object."""

    T_device_camera: np.ndarray  # (4, 4)
    T_device_cpf: np.ndarray  # (4, 4)
    image_size: tuple[int, int]  # (width, height) in pixels
    calibration: aria_calibration.CameraCalibration  # projection model (FISHEYE624) and helpers

    @property
    def T_cpf_camera(self) -> np.ndarray:
        """(4, 4) camera pose in the CPF."""
        return np.linalg.inv(self.T_device_cpf) @ self.T_device_camera


@dataclass(frozen=True, eq=False)
class AriaCalibration:
    """A projectaria-tools `DeviceCalibration` with where it came from."""

    device: aria_calibration.DeviceCalibration
    source: str
    description: str  # how it was read, e.g. "VRS factory calibration, DVT-S"

    @property
    def T_device_cpf(self) -> np.ndarray:
        """(4, 4) central pupil frame in the device frame."""
        return np.asarray(self.device.get_transform_device_cpf().to_matrix(), dtype=np.float64)

    def rgb_camera(self) -> RgbCamera:
        """The RGB camera calibration; `CalibrationError` when the device has none."""
        camera = self.device.get_camera_calib(RGB_CAMERA_LABEL)
        if camera is None:
            raise CalibrationError(f"{self.source}: no {RGB_CAMERA_LABEL!r} calibration in {self.description}")
        width, height = (int(v) for v in camera.get_image_size())
        return RgbCamera(
            T_device_camera=np.asarray(camera.get_transform_device_camera().to_matrix(), dtype=np.float64),
            T_device_cpf=self.T_device_cpf,
            image_size=(width, height),
            calibration=camera,
        )


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


def load_rgb_camera(path: str | Path) -> RgbCamera:
    """The RGB camera calibration from a `.vrs`, `.json` or `.jsonl` calibration."""
    return load_calibration(path).rgb_camera()


def as_rigid_transform(T: Any, name: str) -> np.ndarray:
    """Validate a (4, 4) rigid transform (rotation with det +1, last row 0 0 0 1); returns a float64 copy."""
    M = np.array(T, dtype=np.float64)
    if M.shape != (4, 4):
        raise CalibrationError(f"{name}: expected a (4, 4) matrix, got shape {M.shape}")
    if not np.isfinite(M).all():
        raise CalibrationError(f"{name}: contains NaN or infinite values")
    if not np.allclose(M[3], [0.0, 0.0, 0.0, 1.0], atol=1e-9):
        raise CalibrationError(f"{name}: last row must be [0, 0, 0, 1], got {M[3].tolist()}")
    R = M[:3, :3]
    if not np.allclose(R.T @ R, np.eye(3), atol=1e-5) or np.linalg.det(R) < 0:
        raise CalibrationError(f"{name}: the top-left 3x3 block is not a rotation (orthonormal, det +1)")
    return M


def _from_vrs(path: Path) -> AriaCalibration:
    try:
        provider = data_provider.create_vrs_data_provider(str(path))
    except RuntimeError as error:
        raise CalibrationError(f"{path}: projectaria-tools cannot read this VRS file ({error})") from None
    if provider is None:
        raise CalibrationError(f"{path}: projectaria-tools cannot open this file as a VRS recording")
    device = provider.get_device_calibration()
    if device is None:
        raise CalibrationError(f"{path}: the VRS recording holds no device calibration")
    return AriaCalibration(device, str(path), f"VRS factory calibration, {device.get_device_subtype()}")


def _from_json(path: Path) -> AriaCalibration:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CalibrationError(f"{path}: cannot read as UTF-8 text ({error})") from None
    line_no, record = _first_json_record(path, text)
    if not isinstance(record, dict) or not isinstance(record.get("CameraCalibrations"), list):
        raise CalibrationError(
            f"{path}: line {line_no}: expected an Aria calibration JSON object with a 'CameraCalibrations' list"
        )
    description = f"device calibration JSON, line {line_no}"
    if "DeviceClassInfo" not in record:
        subtype, baseline = _gen1_subtype_from_slam_baseline(path, record["CameraCalibrations"])
        record = {**record, "DeviceClassInfo": {"BuildVersion": subtype, "DeviceClass": "Aria"}}
        record.setdefault("OriginSpecification", _ONLINE_ORIGIN)
        description = (
            f"MPS online calibration, line {line_no}; Aria Gen 1 {subtype} "
            f"identified from its SLAM baseline {baseline * 1000:.1f} mm"
        )
    try:
        device = aria_calibration.device_calibration_from_json_string(json.dumps(record))
    except RuntimeError as error:
        raise CalibrationError(f"{path}: projectaria-tools rejects this calibration ({error})") from None
    if device is None:
        raise CalibrationError(f"{path}: projectaria-tools could not build a device calibration from it")
    return AriaCalibration(device, str(path), description)


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
            translation = extrinsics.get("Translation") if isinstance(extrinsics, dict) else None
            try:
                values = np.asarray(translation, dtype=np.float64)
            except (TypeError, ValueError):
                return None
            return values if values.shape == (3,) and np.isfinite(values).all() else None
    return None
