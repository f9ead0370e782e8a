"""Evaluation cases: what a user would feed the system, made from motion capture.

A case directory holds `trajectory.csv` (Aria MPS closed-loop layout; its
device frame is the CPF itself, so read it with `--device-is-cpf`) and
`gt.npz` with the ground truth in the same world frame.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch

from ..body import BodyModel, skeleton
from ..data.motion import Motion
from ..errors import UserError
from ..files import write_files_atomic
from ..geometry import so3

MPS_COLUMNS = (
    "graph_uid", "tracking_timestamp_us", "utc_timestamp_ns",
    "tx_world_device", "ty_world_device", "tz_world_device",
    "qx_world_device", "qy_world_device", "qz_world_device", "qw_world_device",
    "device_linear_velocity_x_device", "device_linear_velocity_y_device", "device_linear_velocity_z_device",
    "angular_velocity_x_device", "angular_velocity_y_device", "angular_velocity_z_device",
    "gravity_x_world", "gravity_y_world", "gravity_z_world", "quality_score",
)  # fmt: skip


def mps_trajectory_text(timestamps_ns: np.ndarray, T_world_device: np.ndarray) -> str:
    """Poses `(T, 4, 4)` as the text of an Aria MPS closed-loop trajectory CSV (z-up world)."""
    T = len(timestamps_ns)
    q_wxyz = so3.to_quat(torch.from_numpy(T_world_device[:, :3, :3])).numpy()
    dt = np.gradient(timestamps_ns.astype(np.float64) * 1e-9) if T > 1 else np.ones(1)
    velocity_world = np.gradient(T_world_device[:, :3, 3], axis=0) / dt[:, None] if T > 1 else np.zeros((1, 3))
    velocity_device = np.einsum("tji,tj->ti", T_world_device[:, :3, :3], velocity_world)
    rows = []
    for t in range(T):
        x, y, z = T_world_device[t, :3, 3]
        w, qx, qy, qz = q_wxyz[t]
        v = velocity_device[t]
        rows.append(
            f"egoallo-case,{timestamps_ns[t] // 1000},{timestamps_ns[t]},{x:.6f},{y:.6f},{z:.6f},"
            f"{qx:.8f},{qy:.8f},{qz:.8f},{w:.8f},{v[0]:.5f},{v[1]:.5f},{v[2]:.5f},0,0,0,0,0,-9.81,1.0"
        )
    return ",".join(MPS_COLUMNS) + "\n" + "\n".join(rows) + "\n"


def make_case(motion: Motion, model: BodyModel, out_dir: str | os.PathLike, *, force: bool = False) -> Path:
    """Write `trajectory.csv` (CPF poses of the body) and `gt.npz` for one motion: both files or neither
    (`files.write_files_atomic`), so an interrupted run leaves no half case."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not force:
        raise UserError(f"{out_dir} exists and is not empty; pass --force to overwrite the case files in it.")
    posed = motion.posed(model)
    T_world_cpf = posed.T_world_cpf.double().numpy()
    timestamps_ns = np.round(np.arange(motion.num_frames) * 1e9 / motion.fps).astype(np.int64)
    gt = io.BytesIO()
    np.savez_compressed(
        gt,
        timestamps_ns=timestamps_ns,
        joint_names=np.array(skeleton.JOINT_NAMES),
        joints_world=posed.joints_world.numpy().astype(np.float32),
        T_world_root=motion.T_world_root.astype(np.float32),
        local_rotations=motion.local_rotations.astype(np.float32),
        T_world_cpf=T_world_cpf.astype(np.float32),
        betas=motion.betas.astype(np.float32),
        contacts=(motion.contacts if motion.contacts is not None else np.zeros((motion.num_frames, 52))).astype(np.uint8),
        fps=np.float64(motion.fps),
        stature_m=np.float64(model.with_shape(torch.from_numpy(motion.betas)).stature),
        source=np.array(motion.name),
        body_model=np.array(model.name),
    )
    trajectory = mps_trajectory_text(timestamps_ns, T_world_cpf).encode()
    return write_files_atomic(out_dir, {"trajectory.csv": trajectory, "gt.npz": gt.getvalue()})
