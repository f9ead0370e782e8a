"""The `result.npz` that `egoallo infer` writes and the viewer/exporters read.

Arrays are in the input trajectory's own world frame (metres). `S` samples,
`T` frames at `fps`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from .body import skeleton
from .errors import UserError
from .files import read_npz, write_npz

FORMAT_VERSION = 1

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
class InferenceResult:
    timestamps_ns: np.ndarray
    """(T,) int64"""
    T_world_cpf: np.ndarray
    """(T, 4, 4) the input head poses (CPF), resampled."""
    joints_world: np.ndarray
    """(S, T, 52, 3)"""
    T_world_root: np.ndarray
    """(S, T, 4, 4) pelvis poses."""
    local_rotations: np.ndarray
    """(S, T, 51, 3, 3) joints 1..51 relative to their parents."""
    betas: np.ndarray
    """(S, B) body shape per sample."""
    contacts: np.ndarray
    """(S, T, 21) predicted contact probability of joints 1..21."""
    stature_m: np.ndarray
    """(S,) estimated standing height."""
    floor_z: float
    """Floor height along the up axis of the gravity-aligned frame (see `T_input_zup`)."""
    T_input_zup: np.ndarray
    """(4, 4) from the gravity-aligned (z-up) frame the model worked in to the input's frame."""
    fps: float
    metadata: dict

    @property
    def num_samples(self) -> int:
        return self.joints_world.shape[0]

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
        return InferenceResult(
            **{k: data[k] for k in _ARRAYS},
            floor_z=float(data["floor_z"]),
            fps=float(data["fps"]),
            metadata=json.loads(str(data["metadata"])),
        )
