"""Hand keypoint detections (`hands.npz`) aligned to the frames of a head trajectory.

The file holds one row per detected video frame; hands are ordered (left, right), keypoints
in MediaPipe's 21-landmark order (see `egoallo.guidance.hands`):

| key | shape | meaning |
|---|---|---|
| `timestamps_ns` | (F,) integers | frame capture time, on the trajectory's clock, strictly increasing |
| `keypoints_2d` | (F, 2, 21, 2) | pixels of the original (unrotated) RGB image; NaN where not seen |
| `confidence` | (F, 2) | per hand; <= 0 or NaN: that hand was not detected in that frame |
| `keypoints_3d_camera` | (F, 2, 21, 3), optional | metres in the camera frame (depth may be offset) |
| `wrist_3d_camera` | (F, 2, 3), optional | wrist in the camera frame; where finite, the 3D keypoints are moved onto it |
| `image_size` | (2,), optional | (width, height) of the images; the camera is rescaled if it differs |
| `camera_model`, `camera_params`, `T_cpf_camera` | (), (P,), (4, 4), optional | the camera (`CameraModel`), used when none is passed |

This is the layout `egoallo hands detect` writes. Each row goes to the nearest trajectory
frame within half a frame period; rows outside the trajectory (and the farther of two rows on
one frame) are dropped and counted. A missing key, a wrong shape, non-integer or
non-increasing timestamps or an image of another aspect ratio is refused with a
`HandsFileError` naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from egoallo.errors import InputFileError
from egoallo.files import NpzError, load_npz
from egoallo.cameras import CAMERA_ARRAY_KEYS, CameraError, CameraModel
from egoallo.observations import NUM_LANDMARKS, SIDES, HandObservations
from egoallo.inputs.trajectory import HeadTrajectory

REQUIRED = {"timestamps_ns": ("F",), "keypoints_2d": ("F", 2, NUM_LANDMARKS, 2), "confidence": ("F", 2)}
OPTIONAL = {
    "keypoints_3d_camera": ("F", 2, NUM_LANDMARKS, 3),
    "wrist_3d_camera": ("F", 2, 3),
    "image_size": (2,),
    "camera_params": ("P",),
    "T_cpf_camera": (4, 4),
}
"""Numeric arrays and their shapes: "F" the number of rows, "P" any length."""
MAX_IMAGE_SIDE = 65536
class HandsFileError(InputFileError):
    """An unusable hand detections file."""


def load_hand_observations(
    path: str | Path, trajectory: HeadTrajectory, camera: CameraModel | None = None
) -> tuple[HandObservations, dict[str, Any]]:
    """Hand observations at the trajectory's frames, and counts of what was used (with warnings).

    `camera` (e.g. from the recording's calibration) takes precedence over one stored in the file.
    """
    path = Path(path)
    arrays = _read_arrays(path)
    if camera is None:
        camera, camera_note = _stored_camera(path, arrays), "from the file"
    else:
        camera, camera_note = _camera_for_images(path, camera, arrays.get("image_size"))
    frames, matched, counts = align_to_frames(arrays["timestamps_ns"], trajectory.timestamps_ns)
    confidence = np.nan_to_num(arrays["confidence"], nan=0.0)
    detected = confidence > 0  # (F, 2)
    T = len(trajectory)

    def per_frame(values: np.ndarray) -> torch.Tensor:
        out = np.full((T, *values.shape[1:]), np.nan)
        rows = values[matched].copy()
        rows[~detected[matched]] = np.nan
        out[frames] = rows
        return torch.from_numpy(out)

    frame_confidence = np.zeros((T, 2))
    frame_confidence[frames] = np.where(detected[matched], confidence[matched], 0.0)
    keypoints_3d = _with_wrist(arrays.get("keypoints_3d_camera"), arrays.get("wrist_3d_camera"))
    observations = HandObservations(
        camera=camera,
        keypoints_2d=per_frame(arrays["keypoints_2d"]),
        keypoints_3d_camera=None if keypoints_3d is None else per_frame(keypoints_3d),
        confidence=torch.from_numpy(np.repeat(frame_confidence[:, :, None], NUM_LANDMARKS, axis=2)),
    )
    seen = observations.keypoints_2d.isfinite().all(dim=-1).any(dim=-1)  # (T, 2)
    counts |= {f"frames_{side}": int(seen[:, h].sum()) for h, side in enumerate(SIDES)}
    info = {
        "source": str(path),
        "counts": counts,
        "camera": {"kind": camera.kind, "image_size": [camera.width, camera.height], "note": camera_note},
        "alignment": "nearest trajectory frame within half a frame period",
        "warnings": _warnings(counts, len(arrays["timestamps_ns"])),
    }
    return observations, info


def align_to_frames(times_ns: np.ndarray, frames_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Frame index (M,) and row index (M,) of the rows matched to `frames_ns (T,)`, and counts.

    A row matches its nearest frame when at most half a frame period away (the median spacing,
    1/30 s for a single frame); of several rows on one frame the nearest is kept.
    """
    period = float(np.median(np.diff(frames_ns))) if len(frames_ns) > 1 else 1e9 / 30.0
    after = np.clip(np.searchsorted(frames_ns, times_ns), 0, len(frames_ns) - 1)
    before = np.clip(after - 1, 0, len(frames_ns) - 1)
    nearest = np.where(np.abs(frames_ns[before] - times_ns) <= np.abs(frames_ns[after] - times_ns), before, after)
    offset = np.abs(frames_ns[nearest] - times_ns)
    inside = offset <= period / 2
    rows = np.flatnonzero(inside)
    order = rows[np.lexsort((offset[rows], nearest[rows]))]
    _, first = np.unique(nearest[order], return_index=True)
    kept = order[first]
    counts = {
        "detections": len(times_ns),
        "matched": len(kept),
        "outside_trajectory": int((~inside).sum()),
        "same_frame_dropped": int(inside.sum() - len(kept)),
    }
    return nearest[kept], kept, counts


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """The keys of the file, checked for presence, shape and (timestamps) integer, increasing values."""
    if not path.is_file():
        raise HandsFileError(path, "not found or not a file; expected a hands .npz")
    try:
        arrays = {key: value for key, value in load_npz(path).items() if key in REQUIRED or key in OPTIONAL or key in CAMERA_ARRAY_KEYS}
    except NpzError as error:
        raise HandsFileError(path, str(error)) from None
    missing = [key for key in REQUIRED if key not in arrays]
    if missing:
        raise HandsFileError(path, f"missing key(s) {', '.join(missing)}; expected {', '.join(REQUIRED)}")
    rows = arrays["timestamps_ns"].shape[0] if arrays["timestamps_ns"].ndim == 1 else -1
    for key, spec in (REQUIRED | OPTIONAL).items():
        value = arrays.get(key)
        if value is None:
            continue
        sizes = [rows if n == "F" else n for n in spec]
        fits = len(value.shape) == len(spec) and all(n in ("P", m) for n, m in zip(sizes, value.shape))
        if not fits or not np.issubdtype(value.dtype, np.number):
            expected = "(" + ", ".join(str(n) for n in sizes) + ")"
            raise HandsFileError(
                path, f"{key} has shape {value.shape} ({value.dtype}); expected numbers of shape {expected}"
            )
    timestamps = arrays["timestamps_ns"]
    if not np.issubdtype(timestamps.dtype, np.integer):
        raise HandsFileError(path, f"timestamps_ns must be integers (nanoseconds), got {timestamps.dtype}")
    decreasing = np.flatnonzero(np.diff(timestamps) <= 0)
    if decreasing.size:
        i = int(decreasing[0]) + 1
        raise HandsFileError(
            path, f"timestamps_ns must increase strictly; row {i} has {timestamps[i]} after {timestamps[i - 1]}"
        )
    if "image_size" in arrays:
        _check_image_size(path, arrays["image_size"].astype(np.float64))
    floats = {k: v.astype(np.float64) for k, v in arrays.items() if k in REQUIRED or k in OPTIONAL}
    del floats["timestamps_ns"]
    return arrays | floats | {"timestamps_ns": timestamps.astype(np.int64)}


def _check_image_size(path: Path, pixels: np.ndarray) -> None:
    """A `HandsFileError` unless `pixels (2,)` are whole numbers from 1 to `MAX_IMAGE_SIDE`."""
    if not ((pixels >= 1) & (pixels <= MAX_IMAGE_SIDE) & (pixels == np.round(pixels))).all():
        raise HandsFileError(
            path, f"image_size {pixels.tolist()}; expected two whole numbers of pixels from 1 to {MAX_IMAGE_SIDE}"
        )


def _with_wrist(keypoints: np.ndarray | None, wrist: np.ndarray | None) -> np.ndarray | None:
    """`keypoints (F, 2, 21, 3)` moved so their wrist (row 0) is at `wrist (F, 2, 3)` where that is finite."""
    if keypoints is None or wrist is None:
        return keypoints
    known = np.isfinite(wrist).all(axis=-1)[..., None, None]
    return np.where(known, keypoints - keypoints[:, :, :1] + wrist[:, :, None], keypoints)


def _stored_camera(path: Path, arrays: dict[str, np.ndarray]) -> CameraModel:
    """The camera the file stores (`CAMERA_ARRAY_KEYS`); an error naming the file when absent or unusable."""
    missing = [key for key in CAMERA_ARRAY_KEYS if key not in arrays]
    if missing:
        raise HandsFileError(
            path, f"no camera stored (missing {', '.join(missing)}); pass the recording's calibration (--calibration)"
        )
    try:
        return CameraModel.from_arrays({key: arrays[key] for key in CAMERA_ARRAY_KEYS})
    except CameraError as error:
        raise HandsFileError(path, f"stored camera: {error}") from None


def _camera_for_images(path: Path, camera: CameraModel, image_size: np.ndarray | None) -> tuple[CameraModel, str]:
    """The camera rescaled to the detections' image size, and a note saying what was done."""
    if image_size is None or (int(image_size[0]), int(image_size[1])) == (camera.width, camera.height):
        return camera, f"calibration image size {camera.width}x{camera.height}"
    width, height = int(image_size[0]), int(image_size[1])
    if width <= 0 or height <= 0 or abs(width / camera.width - height / camera.height) > 1e-3 * width / camera.width:
        raise HandsFileError(
            path, f"image_size {width}x{height} does not match the calibration's {camera.width}x{camera.height} aspect"
        )
    return camera.rescaled(width, height), f"calibration {camera.width}x{camera.height} rescaled to {width}x{height}"


def _warnings(counts: dict[str, int], rows: int) -> list[str]:
    """Signs that the detections do not fit the trajectory."""
    out = []
    if counts["outside_trajectory"]:
        out.append(
            f"{counts['outside_trajectory']} of {rows} detection rows lie outside the trajectory's frames "
            "(more than half a frame away); ignored"
        )
    if counts["same_frame_dropped"]:
        out.append(f"{counts['same_frame_dropped']} detection rows shared a frame with a nearer one; ignored")
    if rows == 0 or not (counts["frames_left"] or counts["frames_right"]):
        out.append("no hand is seen in any trajectory frame; hand guidance has nothing to act on")
    return out
