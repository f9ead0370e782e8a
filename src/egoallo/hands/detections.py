"""`HandDetections`: per-frame 2D/3D hand keypoints of both hands, and the `hands.npz` that holds them.

`F` frames; side index 0 = left hand, 1 = right hand; 21 keypoints in MediaPipe's order (wrist,
thumb CMC MCP IP tip, index MCP PIP DIP tip, middle, ring, pinky; OpenPose's hand order too).
Absent hands are NaN in every keypoint array and 0 in `confidence`. docs/hands.md lists the keys.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from egoallo.errors import UserError
from egoallo.cameras import CameraModel
from egoallo.files import format_version, read_npz, write_npz
from egoallo.observations import NUM_LANDMARKS, SIDES

FORMAT_VERSION = 1
NUM_MANO_JOINTS = 15

_ARRAYS = {
    "timestamps_ns": ("F",),
    "frame_indices": ("F",),
    "keypoints_2d": ("F", 2, NUM_LANDMARKS, 2),
    "confidence": ("F", 2),
    "keypoints_3d_camera": ("F", 2, NUM_LANDMARKS, 3),
    "wrist_3d_camera": ("F", 2, 3),
}
_CAMERA = {"image_size": (2,), "camera_model": (), "camera_params": ("P",), "T_cpf_camera": (4, 4), "metadata": ()}
_MANO = {"mano_global_orient": ("F", 2, 3, 3), "mano_hand_pose": ("F", 2, NUM_MANO_JOINTS, 3, 3)}


@dataclasses.dataclass(frozen=True, eq=False)
class HandDetections:
    """Both hands in `F` video frames, in the pixels and axes of one camera."""

    timestamps_ns: np.ndarray
    """(F,) int64 capture times (Aria: device time)."""
    frame_indices: np.ndarray
    """(F,) int64 frame numbers in the source video or VRS stream."""
    keypoints_2d: np.ndarray
    """(F, 2, 21, 2) float32 pixel coordinates in the stored (unrotated) image."""
    confidence: np.ndarray
    """(F, 2) float32 in [0, 1]: handedness probability of the side times detection score."""
    keypoints_3d_camera: np.ndarray
    """(F, 2, 21, 3) float32 metres in camera axes, relative to the wrist (row 0 is zero)."""
    wrist_3d_camera: np.ndarray
    """(F, 2, 3) float32 wrist position in the camera frame, metres; NaN where not measured."""
    camera: CameraModel
    metadata: dict
    mano_global_orient: np.ndarray | None = None
    """(F, 2, 3, 3) float32 MANO root rotation in the camera frame (HaMeR), or None."""
    mano_hand_pose: np.ndarray | None = None
    """(F, 2, 15, 3, 3) float32 MANO finger joint rotations (HaMeR), or None."""

    @property
    def num_frames(self) -> int:
        return self.timestamps_ns.shape[0]

    def present(self) -> np.ndarray:
        """(F, 2) bool: where a hand was detected."""
        return self.confidence > 0

    def save(self, path: str | os.PathLike, *, force: bool = False) -> Path:
        """Write atomically; refuses to replace an existing file unless `force`."""
        return write_npz(path, self._arrays(), what="hand detections", force=force)

    @staticmethod
    def load(path: str | os.PathLike) -> HandDetections:
        """Read and check a hands.npz (clear errors for other versions, missing keys, shapes or values)."""
        path = Path(path)
        try:
            return HandDetections._load(path, read_npz(path, what="hand detections"))
        except (TypeError, ValueError, OverflowError, RecursionError) as error:
            raise UserError(
                f"{path}: not a valid hands.npz ({error}); expected what `egoallo hands detect` writes."
            ) from None

    @staticmethod
    def _load(path: Path, data: dict[str, np.ndarray]) -> HandDetections:
        format_version(path, data, "hands", FORMAT_VERSION)
        dims: dict[str, int] = {}
        for key, spec in {**_ARRAYS, **_CAMERA, **{k: v for k, v in _MANO.items() if k in data}}.items():
            if key not in data:
                raise UserError(f"{path}: missing key '{key}'.")
            _check_shape(path, key, data[key].shape, spec, dims)
        camera = CameraModel.from_arrays(data)
        return HandDetections(
            **{k: data[k] for k in _ARRAYS},
            camera=camera,
            metadata=json.loads(str(data["metadata"])),
            **{k: data.get(k) for k in _MANO},
        )

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {k: getattr(self, k) for k in _ARRAYS}
        arrays.update({k: getattr(self, k) for k in _MANO if getattr(self, k) is not None})
        arrays.update(
            self.camera.as_arrays(),
            format_version=np.int64(FORMAT_VERSION),
            metadata=np.array(json.dumps(self.metadata, default=str)),
        )
        return arrays


def empty_arrays(num_frames: int) -> dict[str, np.ndarray]:
    """Keypoint arrays for `num_frames` frames with no hand: NaN keypoints, zero confidence."""
    return {
        "keypoints_2d": np.full((num_frames, 2, NUM_LANDMARKS, 2), np.nan, dtype=np.float32),
        "confidence": np.zeros((num_frames, 2), dtype=np.float32),
        "keypoints_3d_camera": np.full((num_frames, 2, NUM_LANDMARKS, 3), np.nan, dtype=np.float32),
        "wrist_3d_camera": np.full((num_frames, 2, 3), np.nan, dtype=np.float32),
    }


def _check_shape(path: Path, key: str, shape: tuple[int, ...], spec: tuple, dims: dict[str, int]) -> None:
    ok = len(shape) == len(spec) and all(
        (dims.setdefault(w, g) == g) if isinstance(w, str) else g == w for g, w in zip(shape, spec)
    )
    if not ok:
        raise UserError(f"{path}: '{key}' has shape {shape}, expected {spec} (with {dims}).")
