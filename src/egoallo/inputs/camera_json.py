"""A user's camera JSON for an ordinary video: the camera (`egoallo.cameras.CameraModel`) and the video's timing.

An Aria recording's camera comes from its calibration (`egoallo.inputs.calibration`); for any other video the
user writes a small JSON (`read_video_calibration`):

```json
{"model": "pinhole", "width": 1920, "height": 1080,
 "fx": 1400.0, "fy": 1400.0, "cx": 959.5, "cy": 539.5,
 "T_cpf_camera": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
 "start_time_ns": 0, "fps": 30.0, "upright_rotation_deg": 0}
```

`"model": "fisheye624"` takes `"params"` instead of fx..cy: projectaria-tools' FISHEYE624
layout, 15 numbers `f, cx, cy, k0..k5, p0, p1, s0..s3` (or 16 with `fx, fy`).
`T_head_camera` is accepted for `T_cpf_camera` (the head frame is the CPF). `start_time_ns`
(default 0) and `fps` (default: the video's) give frame timestamps; `upright_rotation_deg`
(0, 90, 180 or 270, clockwise) turns stored frames upright for detection. Pixel coordinates
put (0, 0) at the centre of the top-left pixel, as projectaria-tools and OpenCV do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..cameras import NUM_PARAMS, CameraError, CameraModel
from ..errors import InputFileError
from ..geometry.rigid import NotRigidError, as_rigid_transform

CAMERA_KEYS = frozenset({"model", "width", "height", "fx", "fy", "cx", "cy", "params", "T_cpf_camera", "T_head_camera"})
_VIDEO_KEYS = frozenset({"start_time_ns", "fps", "upright_rotation_deg"})


@dataclass(frozen=True, eq=False)
class VideoCalibration:
    """What a user's camera JSON gives for an ordinary video: its camera and how its frames are timed and turned."""

    camera: CameraModel
    start_time_ns: int
    fps: float | None
    """None: take the frame rate from the video."""
    upright_quarter_turns: int
    """Clockwise quarter turns that make a stored frame upright."""


def read_video_calibration(path: str | Path) -> VideoCalibration:
    """Read and check a camera JSON (format in the module docstring); errors name the file."""
    path = Path(path)
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputFileError(path, "camera intrinsics file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise InputFileError(path, f"not a readable JSON file ({error})") from None
    camera = camera_from_spec(path, spec, extra_keys=_VIDEO_KEYS)
    rotation = spec.get("upright_rotation_deg", 0)
    if rotation not in (0, 90, 180, 270):
        raise InputFileError(path, f"upright_rotation_deg must be 0, 90, 180 or 270, got {rotation!r}")
    fps = spec.get("fps")
    if fps is not None and not (_is_number(fps) and fps > 0):
        raise InputFileError(path, f"fps must be a positive number, got {fps!r}")
    start = spec.get("start_time_ns", 0)
    if not isinstance(start, int) or isinstance(start, bool):
        raise InputFileError(path, f"start_time_ns must be an integer, got {start!r}")
    return VideoCalibration(camera, start, fps, rotation // 90)


def camera_from_spec(path: Path, spec: object, extra_keys: frozenset[str] = frozenset()) -> CameraModel:
    """A camera from a parsed JSON object (keys as in the module docstring); errors name `path`."""
    if not isinstance(spec, dict):
        raise InputFileError(path, "expected a camera JSON object with model, width, height, intrinsics and T_cpf_camera")
    unknown = sorted(set(spec) - CAMERA_KEYS - extra_keys)
    if unknown:
        raise InputFileError(path, f"unknown camera keys {unknown}; expected some of {sorted(CAMERA_KEYS | extra_keys)}")
    model = spec.get("model")
    if model not in NUM_PARAMS:
        raise InputFileError(path, f"model must be 'pinhole' or 'fisheye624', got {model!r}")
    width, height = spec.get("width"), spec.get("height")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (width, height)):
        raise InputFileError(path, f"width and height must be positive integers, got {width!r}, {height!r}")
    params = [spec.get(k) for k in ("fx", "fy", "cx", "cy")] if model == "pinhole" else spec.get("params")
    if not isinstance(params, list) or not all(_is_number(v) for v in params):
        expected = "fx, fy, cx, cy" if model == "pinhole" else "'params': a list of 15 or 16 numbers"
        raise InputFileError(path, f"{model} needs {expected}")
    if len(params) not in NUM_PARAMS[model] or params[0] <= 0 or params[1 if model == "pinhole" else 0] <= 0:
        raise InputFileError(path, f"{model}: expected {NUM_PARAMS[model]} parameters with positive focal lengths")
    if ("T_cpf_camera" in spec) == ("T_head_camera" in spec):
        raise InputFileError(path, "give the camera pose as exactly one of T_cpf_camera or T_head_camera (4x4)")
    name = "T_cpf_camera" if "T_cpf_camera" in spec else "T_head_camera"
    try:
        T_cpf_camera = as_rigid_transform(spec[name], name)
    except NotRigidError as error:
        raise InputFileError(path, str(error)) from None
    except (TypeError, ValueError) as error:
        raise InputFileError(path, f"{name}: not a 4x4 matrix of numbers ({error})") from None
    try:
        return CameraModel(model, np.asarray(params, dtype=np.float64), width, height, T_cpf_camera)
    except CameraError as error:
        raise InputFileError(path, str(error)) from None


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and bool(np.isfinite(value))
