"""AMASS per-sequence `.npz` files (SMPL-H "+H G" layout) -> `Motion`.

AMASS sequences were fitted with gendered SMPL-H models (`gender` key). This
reader poses them with whichever model the caller passes; for the exact
original bodies pass the model of the file's gender. EgoAllo's reference
training uses one gender-neutral SMPL-H for all sequences, interpreting each
sequence's `betas` in the neutral model: heights then differ by a few
centimetres from the gendered fit, which the prior tolerates. The gender the
file declares and the model used are recorded in `Motion.metadata`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from ..body import BodyModel
from .motion import Motion

_REQUIRED = {"poses": 2, "trans": 2, "betas": 1, "mocap_framerate": 0}
_LIMITS = {"poses": 1e3, "trans": 1e5, "betas": 100.0}
"""Largest magnitude accepted: rotation vectors (rad), root translations (m), shape coefficients."""
FRAMERATE_RANGE = (1.0, 10_000.0)


class AmassFileError(ValueError):
    """An AMASS `.npz` file is missing keys, has wrong shapes or non-finite values."""


def read_amass(path: str | os.PathLike, model: BodyModel) -> Motion:
    """Read one AMASS sequence; `T_world_root` is the pelvis pose in AMASS's z-up world."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files if k in _REQUIRED}
            gender = _read_gender(f)
    except FileNotFoundError:
        raise AmassFileError(f"{path}: file not found.") from None
    except Exception as e:
        raise AmassFileError(f"{path}: not a readable .npz ({e}).") from None

    for key, ndim in _REQUIRED.items():
        if key not in arrays:
            raise AmassFileError(f"{path}: missing key '{key}' (have {sorted(arrays)}).")
        if arrays[key].ndim != ndim:
            raise AmassFileError(f"{path}: '{key}' has shape {arrays[key].shape}, expected {ndim} dimensions.")
        if arrays[key].dtype.kind not in "iuf":
            raise AmassFileError(f"{path}: '{key}' has dtype {arrays[key].dtype}, expected real numbers.")
    poses = arrays["poses"].astype(np.float64)
    trans = arrays["trans"].astype(np.float64)
    T = poses.shape[0]
    if poses.shape[1] != 156:
        raise AmassFileError(f"{path}: 'poses' has shape {poses.shape}, expected (T, 156) (SMPL-H: root 3, body 63, hands 90).")
    if trans.shape != (T, 3):
        raise AmassFileError(f"{path}: 'trans' has shape {trans.shape}, expected ({T}, 3).")
    if T == 0:
        raise AmassFileError(f"{path}: the sequence has no frames.")
    for key in ("poses", "trans", "betas", "mocap_framerate"):
        _check_values(path, key, arrays[key].astype(np.float64), _LIMITS.get(key, FRAMERATE_RANGE[1]))
    fps = float(arrays["mocap_framerate"])
    if not FRAMERATE_RANGE[0] <= fps <= FRAMERATE_RANGE[1]:
        raise AmassFileError(
            f"{path}: mocap_framerate is {fps}, expected {FRAMERATE_RANGE[0]:g} to {FRAMERATE_RANGE[1]:g} frames per second."
        )

    betas = arrays["betas"].astype(np.float64)[: model.num_betas]
    rotations = Rotation.from_rotvec(poses.reshape(T * 52, 3)).as_matrix().reshape(T, 52, 3, 3)
    # SMPL places the pelvis at J_0(β) + trans when the root rotation acts about J_0.
    pelvis_rest = model.with_shape(torch.from_numpy(betas)).joints_zero[0].double().numpy()
    T_world_root = np.zeros((T, 4, 4))
    T_world_root[:, :3, :3] = rotations[:, 0]
    T_world_root[:, :3, 3] = pelvis_rest + trans
    T_world_root[:, 3, 3] = 1.0

    return Motion(
        name=path.stem,
        fps=fps,
        betas=betas.astype(np.float32),
        T_world_root=T_world_root,
        local_rotations=rotations[:, 1:],
        has_hands=True,
        metadata={"source": "amass", "path": str(path), "gender": gender, "body_model": model.name},
    )


def _check_values(path: Path, key: str, values: np.ndarray, limit: float) -> None:
    """An `AmassFileError` naming the first index of `values` that is non-finite or beyond +-`limit`."""
    bad = ~(np.abs(values) <= limit)
    if bad.any():
        where = tuple(np.argwhere(bad)[0].tolist())
        value = values[where]
        found = "a non-finite value" if not np.isfinite(value) else f"{value:g}"
        raise AmassFileError(f"{path}: '{key}' holds {found} at index {where}; expected finite values within +-{limit:g}.")

def _read_gender(f) -> str:
    """Some AMASS releases store `gender` as a pickled object array; never unpickle it."""
    if "gender" not in f.files:
        return "unknown"
    try:
        value = f["gender"]
    except ValueError:
        return "unknown (stored as a pickled object, not read)"
    return value.tobytes().decode(errors="replace").strip("\x00") if value.dtype.kind == "S" else str(value)
