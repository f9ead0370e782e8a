"""The `result.npz` that `egoallo infer` writes and the viewer/exporters read.

Arrays are in the input trajectory's own world frame (metres). `S` samples,
`T` frames at `fps`; a recording split by tracking gaps holds its segments one
after the other (`metadata["segments"]`, `metadata["gaps"]`). `load` refuses
anything `infer` would not write: missing keys, other shapes or dtypes,
non-finite values, non-rotations, timestamps that do not increase, metadata
that is not a JSON object.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path

import numpy as np

from .body import skeleton
from .errors import UserError
from .files import read_npz, write_npz
from .inputs.trajectory import MAX_COORDINATE_M

FORMAT_VERSION = 1
ROTATION_TOLERANCE = 1e-3
"""Largest |R^T R - I| entry of a stored rotation (float32 rotations are within 1e-6)."""

_ARRAYS = {
    "timestamps_ns": ("T",),
    "T_world_cpf": ("T", 4, 4),
    "joints_world": ("S", "T", 52, 3),
    "T_world_root": ("S", "T", 4, 4),
    "local_rotations": ("S", "T", 51, 3, 3),
    "betas": ("S", "B"),
    "contacts": ("S", "T", 21),
    "stature_m": ("S",),
    "T_input_zup": (4, 4),
}


@dataclasses.dataclass(frozen=True)
class Span:
    """One segment of a result: frames `first` to `end` (exclusive), standing on a floor at `floor_z`."""

    first: int
    end: int
    floor_z: float


def segment_spans(entries: object, frames: int, floor_z: float) -> list[Span]:
    """Spans from the `metadata["segments"]` entries (`first_frame`, `frames`, optional `floor_z`), or one span of
    all `frames` on `floor_z` when the entries are missing or do not cover the frames one after the other."""
    whole = [Span(0, frames, floor_z)]
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        return whole
    spans, first = [], 0
    for entry in entries:
        start, count, z = entry.get("first_frame"), entry.get("frames"), entry.get("floor_z", floor_z)
        if not (_is_int(start) and _is_int(count) and start == first and count >= 1 and _is_finite_number(z)):
            return whole
        spans.append(Span(start, start + count, float(z)))
        first += count
    return spans if first == frames else whole


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_finite_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclasses.dataclass(frozen=True)
class InferenceResult:
    timestamps_ns: np.ndarray
    """(T,) int64"""
    T_world_cpf: np.ndarray
    """(T, 4, 4) the input head poses (CPF), resampled."""
    joints_world: np.ndarray
    """(S, T, 52, 3) float64 (large world coordinates keep their precision)."""
    T_world_root: np.ndarray
    """(S, T, 4, 4) pelvis poses, float64."""
    local_rotations: np.ndarray
    """(S, T, 51, 3, 3) joints 1..51 relative to their parents."""
    betas: np.ndarray
    """(S, B) body shape per sample."""
    contacts: np.ndarray
    """(S, T, 21) predicted contact probability of joints 1..21."""
    stature_m: np.ndarray
    """(S,) estimated standing height."""
    floor_z: float
    """Floor height along the up axis of the gravity-aligned frame (see `T_input_zup`); a segment in another
    world frame (a SLAM reset) has its own (`segment_spans`)."""
    T_input_zup: np.ndarray
    """(4, 4) from the gravity-aligned (z-up) frame the model worked in to the input's frame."""
    fps: float
    metadata: dict

    @property
    def num_samples(self) -> int:
        return self.joints_world.shape[0]

    def segment_spans(self) -> list[Span]:
        """The segments of the frames (`metadata["segments"]`), in order; one span of every frame on `floor_z`
        when the metadata does not describe segments that cover the frames one after the other."""
        return segment_spans(self.metadata.get("segments"), len(self.timestamps_ns), self.floor_z)

    def save(self, path: str | os.PathLike, *, force: bool = False) -> Path:
        """Write atomically; refuses to replace an existing file unless `force`."""
        arrays = {k: getattr(self, k) for k in _ARRAYS}
        return write_npz(
            path,
            {
                **arrays,
                "joint_names": np.array(skeleton.JOINT_NAMES),
                "floor_z": np.float64(self.floor_z),
                "fps": np.float64(self.fps),
                "format_version": np.int64(FORMAT_VERSION),
                "metadata": np.array(json.dumps(self.metadata, default=str)),
            },
            what="result",
            force=force,
        )

    @staticmethod
    def load(path: str | os.PathLike) -> InferenceResult:
        """Read and check a result file (clear errors for other versions or missing keys)."""
        path = Path(path)
        data = read_npz(path, what="result")
        version = int(data.get("format_version", -1))
        if version != FORMAT_VERSION:
            raise UserError(f"{path}: result format version {version}, this egoallo reads version {FORMAT_VERSION}.")
        dims: dict[str, int] = {}
        for key, spec in _ARRAYS.items():
            if key not in data:
                raise UserError(f"{path}: missing key '{key}'.")
            shape = data[key].shape
            ok = len(shape) == len(spec) and all(
                (dims.setdefault(w, g) == g) if isinstance(w, str) else g == w for g, w in zip(shape, spec)
            )
            if not ok:
                raise UserError(f"{path}: '{key}' has shape {shape}, expected {spec} (with {dims}).")
        for key in ("floor_z", "fps", "metadata"):
            if key not in data:
                raise UserError(f"{path}: missing key '{key}'.")
            if data[key].shape != ():
                raise UserError(f"{path}: '{key}' has shape {data[key].shape}, expected a single value.")
        arrays = {k: _checked_values(path, k, data[k]) for k in (*_ARRAYS, "floor_z", "fps")}
        _check_layout(path, arrays)
        return InferenceResult(
            **{k: arrays[k] for k in _ARRAYS},
            floor_z=float(arrays["floor_z"]),
            fps=float(arrays["fps"]),
            metadata=_metadata(path, data["metadata"]),
        )


def _checked_values(path: Path, key: str, values: np.ndarray) -> np.ndarray:
    """`values` if they are finite real numbers (integers for the timestamps), else a `UserError` at the first bad one."""
    if values.dtype.kind not in ("iu" if key == "timestamps_ns" else "iuf"):
        kind = "integers" if key == "timestamps_ns" else "real numbers"
        raise UserError(f"{path}: '{key}' has dtype {values.dtype}; expected {kind}.")
    bad = np.argwhere(~np.isfinite(values))
    if bad.size:
        at = tuple(int(i) for i in bad[0])
        raise UserError(f"{path}: '{key}' at {at}: {values[at]}; expected finite values.")
    return values


def _check_layout(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Increasing timestamps, a positive frame rate, rotations and rigid transforms where they belong."""
    if arrays["timestamps_ns"].size == 0 or arrays["joints_world"].shape[0] == 0:
        raise UserError(f"{path}: {arrays['joints_world'].shape[1]} frames of {arrays['joints_world'].shape[0]} "
                        "samples; expected at least one of each.")
    step = np.diff(arrays["timestamps_ns"].astype(np.int64))
    if np.any(step <= 0):
        i = int(np.argmax(step <= 0))
        raise UserError(f"{path}: 'timestamps_ns' at ({i + 1},) does not increase; expected increasing timestamps.")
    if not arrays["fps"] > 0:
        raise UserError(f"{path}: 'fps' is {arrays['fps']}; expected a positive frame rate.")
    positions = {"joints_world": arrays["joints_world"], "floor_z": arrays["floor_z"]}
    positions |= {key: arrays[key][..., :3, 3] for key in ("T_world_root", "T_world_cpf", "T_input_zup")}
    for key, values in positions.items():
        far = np.argwhere(np.abs(values) > MAX_COORDINATE_M)
        if far.size:
            raise UserError(f"{path}: '{key}' at {tuple(int(i) for i in far[0])} lies {float(np.abs(values).max()):.3g} m "
                            f"from the origin; expected positions within {MAX_COORDINATE_M:g} m.")
    for key in ("local_rotations", "T_world_root", "T_world_cpf", "T_input_zup"):
        M = arrays[key].astype(np.float64)
        R = M if key == "local_rotations" else M[..., :3, :3]
        error = np.abs(np.swapaxes(R, -1, -2) @ R - np.eye(3)).max(axis=(-1, -2))
        if key != "local_rotations":
            error = np.maximum(error, np.abs(M[..., 3, :] - [0.0, 0.0, 0.0, 1.0]).max(axis=-1))
        wrong = np.argwhere((error > ROTATION_TOLERANCE) | (np.linalg.det(R) < 0))
        if wrong.size:
            what = "rotation" if key == "local_rotations" else "rigid transform (rotation, last row 0 0 0 1)"
            raise UserError(f"{path}: '{key}' at {tuple(int(i) for i in wrong[0])} is not a {what}; expected one "
                            f"within {ROTATION_TOLERANCE}.")


def _metadata(path: Path, value: np.ndarray) -> dict:
    """The metadata JSON object, or a `UserError`."""
    try:
        metadata = json.loads(str(value))
    except (json.JSONDecodeError, RecursionError) as error:
        raise UserError(f"{path}: 'metadata' is not valid JSON ({error}); expected a JSON object.") from None
    if not isinstance(metadata, dict):
        raise UserError(f"{path}: 'metadata' is a JSON {type(metadata).__name__}; expected a JSON object.")
    return metadata
