"""Per-frame HaMeR outputs (npz or JSON, docs/hands.md) as `HandDetections`.

Each frame has two slots; `is_right` says which hand a slot holds and `valid` whether it holds
one. Keypoints are 21 per hand in OpenPose order (MediaPipe's), 2D in stored-image pixels, 3D
in the camera frame (metres); MANO rotations are as HaMeR returns them. Two slots with the same
side keep the more confident one (counted in the metadata).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from egoallo.errors import InputFileError
from egoallo.files import NpzError, load_npz
from egoallo.cameras import CameraModel
from egoallo.hands.detections import (
    NUM_LANDMARKS,
    NUM_MANO_JOINTS,
    HandDetections,
    empty_arrays,
)
from egoallo.inputs.camera_json import camera_from_spec

_SLOT_ARRAYS = {
    "keypoints_2d": (NUM_LANDMARKS, 2),
    "keypoints_3d": (NUM_LANDMARKS, 3),
    "global_orient": (3, 3),
    "hand_pose": (NUM_MANO_JOINTS, 3, 3),
}
_ROTATION_TOLERANCE = 1e-3


def read_hamer(path: str | Path, camera: CameraModel | None = None) -> HandDetections:
    """Read a HaMeR `.npz` or `.json`; `camera` is required unless the file carries one (not both)."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "HaMeR output file not found")
    if path.suffix.lower() == ".npz":
        slots, file_camera = _read_npz(path)
    elif path.suffix.lower() == ".json":
        slots, file_camera = _read_json(path)
    else:
        raise InputFileError(path, "expected a HaMeR .npz or .json (docs/hands.md)")
    if (camera is None) == (file_camera is None):
        raise InputFileError(path, "give the camera exactly once: in the file (camera keys) or as --camera")
    return _to_detections(path, slots, camera or file_camera)


def _read_npz(path: Path) -> tuple[dict[str, np.ndarray], CameraModel | None]:
    try:
        data = load_npz(path)
    except NpzError as error:
        raise InputFileError(path, str(error)) from None
    return data, camera_from_spec(path, _npz_camera_spec(path, data)) if "camera_model" in data else None


def _npz_camera_spec(path: Path, data: dict[str, np.ndarray]) -> dict:
    missing = [k for k in ("camera_params", "image_size", "T_cpf_camera") if k not in data]
    if missing:
        raise InputFileError(path, f"has camera_model but not {missing}")
    model, params, size = str(data["camera_model"]), np.atleast_1d(data["camera_params"]).tolist(), data["image_size"]
    whole = size.dtype.kind in "iuf" and np.all((size >= 1) & (size <= 65536) & (size == np.round(size)))
    if size.shape != (2,) or not whole:
        raise InputFileError(path, f"image_size {size.tolist()}; expected two whole numbers of pixels from 1 to 65536")
    width, height = (int(v) for v in size)
    spec = {"model": model, "width": width, "height": height, "T_cpf_camera": data["T_cpf_camera"].tolist()}
    if model == "pinhole" and len(params) == 4:
        return {**spec, **dict(zip(("fx", "fy", "cx", "cy"), params))}
    return {**spec, "params": params}


def _read_json(path: Path) -> tuple[dict[str, np.ndarray], CameraModel | None]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise InputFileError(path, f"not a readable JSON file ({error})") from None
    if not isinstance(document, dict) or not isinstance(document.get("frames"), list):
        raise InputFileError(path, "expected an object with a 'frames' list (docs/hands.md)")
    frames = document["frames"]
    data = {k: np.full((len(frames), 2, *shape), np.nan) for k, shape in _SLOT_ARRAYS.items()}
    data.update(
        timestamps_ns=np.zeros(len(frames), dtype=np.int64),
        frame_indices=np.arange(len(frames), dtype=np.int64),
        is_right=np.zeros((len(frames), 2), dtype=bool),
        valid=np.zeros((len(frames), 2), dtype=bool),
        confidence=np.zeros((len(frames), 2)),
    )
    for f, frame in enumerate(frames):
        _json_frame(path, f, frame, data)
    camera = camera_from_spec(path, document["camera"]) if "camera" in document else None
    return data, camera


def _json_frame(path: Path, f: int, frame: object, data: dict[str, np.ndarray]) -> None:
    where = f"frames[{f}]"
    if not isinstance(frame, dict) or not _is_int64(frame.get("timestamp_ns")) or not _is_int64(frame.get("frame_index", f)):
        raise InputFileError(
            path, "expected an object with an integer timestamp_ns (and frame_index) within int64 and a 'hands' list",
            row=where,
        )
    hands = frame.get("hands", [])
    if not isinstance(hands, list) or len(hands) > 2:
        raise InputFileError(path, "'hands' must be a list of at most 2 hands", row=where)
    data["timestamps_ns"][f] = frame["timestamp_ns"]
    data["frame_indices"][f] = frame.get("frame_index", f)
    for slot, hand in enumerate(hands):
        if not isinstance(hand, dict) or not isinstance(hand.get("is_right"), bool):
            raise InputFileError(path, "each hand needs a boolean is_right", row=f"{where}.hands[{slot}]")
        for key, shape in _SLOT_ARRAYS.items():
            try:
                data[key][f, slot] = np.asarray(hand[key], dtype=np.float64).reshape(shape)
            except (KeyError, TypeError, ValueError):
                raise InputFileError(path, f"{key} must be {shape} numbers", row=f"{where}.hands[{slot}]") from None
        confidence = hand.get("confidence", 1.0)
        if isinstance(confidence, bool) or not isinstance(confidence, (int, float)):
            raise InputFileError(path, f"confidence {confidence!r}; expected a number", row=f"{where}.hands[{slot}]")
        data["is_right"][f, slot] = hand["is_right"]
        data["valid"][f, slot] = True
        data["confidence"][f, slot] = confidence


def _is_int64(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63


def _to_detections(path: Path, data: dict[str, np.ndarray], camera: CameraModel) -> HandDetections:
    timestamps = _checked(path, data, "timestamps_ns", None)
    if timestamps.dtype.kind not in "iu" or (timestamps.dtype.kind == "u" and timestamps.size and timestamps.max() > 2**63 - 1):
        raise InputFileError(path, f"'timestamps_ns' has dtype {timestamps.dtype}; expected integers within int64")
    if (backwards := np.flatnonzero(np.diff(timestamps.astype(np.int64)) <= 0)).size:
        raise InputFileError(path, "timestamps_ns do not increase; expected increasing capture times",
                             row=f"frame {backwards[0] + 1}")
    num_frames = timestamps.shape[0]
    slots = {k: _checked(path, data, k, (num_frames, 2, *shape)) for k, shape in _SLOT_ARRAYS.items()}
    is_right = _checked(path, data, "is_right", (num_frames, 2)).astype(bool)
    valid = data.get("valid", np.isfinite(slots["keypoints_2d"]).all(axis=(-1, -2)))
    valid = _checked(path, {"valid": valid}, "valid", (num_frames, 2)).astype(bool)
    confidence = data.get("confidence", valid.astype(np.float64))
    confidence = _checked(path, {"confidence": confidence}, "confidence", (num_frames, 2))
    frame_indices = data.get("frame_indices", np.arange(num_frames))
    _check_values(path, slots, valid, confidence)

    arrays = empty_arrays(num_frames)
    mano = {k: np.full((num_frames, 2, *_SLOT_ARRAYS[k]), np.nan, dtype=np.float32) for k in ("global_orient", "hand_pose")}
    duplicates = 0
    for f, slot in zip(*np.nonzero(valid)):
        side = int(is_right[f, slot])
        if arrays["confidence"][f, side] > 0:
            duplicates += 1
            if arrays["confidence"][f, side] >= confidence[f, slot]:
                continue
        keypoints_3d = slots["keypoints_3d"][f, slot]
        arrays["keypoints_2d"][f, side] = slots["keypoints_2d"][f, slot]
        arrays["keypoints_3d_camera"][f, side] = keypoints_3d - keypoints_3d[0]
        arrays["wrist_3d_camera"][f, side] = keypoints_3d[0]
        arrays["confidence"][f, side] = confidence[f, slot]
        for key, values in mano.items():
            values[f, side] = slots[key][f, slot]
    return HandDetections(
        timestamps_ns=timestamps.astype(np.int64),
        frame_indices=np.asarray(frame_indices, dtype=np.int64),
        **arrays,
        camera=camera,
        metadata={"source": str(path), "source_kind": "hamer", "detector": "HaMeR (converted by egoallo)",
                  "duplicate_sides_dropped": duplicates},
        mano_global_orient=mano["global_orient"],
        mano_hand_pose=mano["hand_pose"],
    )


def _checked(path: Path, data: dict[str, np.ndarray], key: str, shape: tuple[int, ...] | None) -> np.ndarray:
    if key not in data:
        raise InputFileError(path, f"missing '{key}' (docs/hands.md lists the keys)")
    value = np.asarray(data[key])
    if (value.ndim != 1 if shape is None else value.shape != shape) or value.dtype.kind not in "biuf":
        expected = "(F,) integers" if shape is None else f"{shape} numbers"
        raise InputFileError(path, f"'{key}' has shape {value.shape} ({value.dtype}), expected {expected}")
    return value


def _check_values(path: Path, slots: dict[str, np.ndarray], valid: np.ndarray, confidence: np.ndarray) -> None:
    for key, values in slots.items():
        bad = valid & ~np.isfinite(values).all(axis=tuple(range(2, values.ndim)))
        if bad.any():
            f, slot = np.argwhere(bad)[0]
            raise InputFileError(path, f"{key} has NaN or infinite values in a valid hand", row=f"frame {f}, slot {slot}")
    rotations = np.concatenate([slots["global_orient"][valid][:, None], slots["hand_pose"][valid]], axis=1)
    if rotations.size and np.abs(np.swapaxes(rotations, -1, -2) @ rotations - np.eye(3)).max() > _ROTATION_TOLERANCE:
        raise InputFileError(path, "global_orient/hand_pose are not rotation matrices (R^T R != I)")
    if (valid & ~((confidence > 0) & (confidence <= 1))).any():
        raise InputFileError(path, "confidence of a valid hand must be in (0, 1]")
