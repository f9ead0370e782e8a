"""BVH of the 52-joint skeleton and AMASS-style `.npz` from a `result.npz`.

BVH files are Y-up centimetres (what Blender and most tools expect); the
skeleton's offsets are the sample's rest joints, so reading the file back
gives the result's joint positions. AMASS-style files use SMPL-H's layout
(`poses (T, 156)` axis-angle, `trans`, `betas`, `mocap_framerate`), with the
pelvis at `J_0(β) + trans`; they are SMPL-H bodies only if the result was made
with the SMPL-H model. A result with a consensus body exports the consensus unless a sample is asked for;
the AMASS-style file then carries its `joint_spread_m (T, 52)` too.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from ..body import BodyModel, skeleton
from ..data.motion import Motion
from ..files import write_bytes_atomic
from ..result import InferenceResult

# Maps this project's z-up worlds to BVH's y-up: (x, y, z) -> (x, z, -y), the inverse of the reader's mapping.
Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


def result_motion(result: InferenceResult, sample: int | None = None) -> Motion:
    """One body of a result as a `Motion` in the gravity-aligned z-up frame (floor at z = 0): sample `sample`,
    or with None the consensus when the result has one (else sample 0)."""
    T_zup_input = np.linalg.inv(result.T_input_zup)
    T_zup_input[2, 3] -= result.floor_z
    _, T_world_root, local_rotations, betas = result.body(sample)
    return Motion(
        name="consensus" if sample is None and result.has_consensus else f"sample {sample or 0}",
        fps=result.fps,
        betas=betas,
        T_world_root=T_zup_input @ T_world_root.astype(np.float64),
        local_rotations=local_rotations.astype(np.float64),
        has_hands=True,
    )


def write_bvh(path: str | os.PathLike, motion: Motion, body: BodyModel) -> Path:
    """The 52-joint skeleton and its motion as BVH (root 6 channels, others ZYX rotations), atomically."""
    path = Path(path)
    rest = body.with_shape(torch.from_numpy(motion.betas)).joints_zero.double().numpy() * 100.0  # cm, y-up
    children = {j: [c for c in range(skeleton.NUM_JOINTS) if skeleton.PARENTS[c] == j] for j in range(skeleton.NUM_JOINTS)}
    lines = ["HIERARCHY"]

    def emit(j: int, depth: int) -> None:
        pad = "  " * depth
        parent = skeleton.PARENTS[j]
        offset = rest[j] - rest[parent] if parent >= 0 else np.zeros(3)
        lines.append(f"{pad}{'ROOT' if parent < 0 else 'JOINT'} {skeleton.JOINT_NAMES[j]}")
        lines.append(f"{pad}{{")
        lines.append(f"{pad}  OFFSET {offset[0]:.6f} {offset[1]:.6f} {offset[2]:.6f}")
        channels = "6 Xposition Yposition Zposition Zrotation Yrotation Xrotation" if parent < 0 else "3 Zrotation Yrotation Xrotation"
        lines.append(f"{pad}  CHANNELS {channels}")
        for c in children[j]:
            emit(c, depth + 1)
        if not children[j]:
            tip = offset / max(np.linalg.norm(offset), 1e-9) * 3.0  # a short continuation of the bone
            lines.extend([f"{pad}  End Site", f"{pad}  {{", f"{pad}    OFFSET {tip[0]:.6f} {tip[1]:.6f} {tip[2]:.6f}", f"{pad}  }}"])
        lines.append(f"{pad}}}")

    emit(0, 0)
    order = _depth_first(children)
    R_root = Z_UP_TO_Y_UP @ motion.T_world_root[:, :3, :3]
    p_root = motion.T_world_root[:, :3, 3] @ Z_UP_TO_Y_UP.T * 100.0
    rotations = np.concatenate([R_root[:, None], motion.local_rotations], axis=1)  # (T, 52, 3, 3)
    euler = Rotation.from_matrix(rotations.reshape(-1, 3, 3)).as_euler("ZYX", degrees=True).reshape(motion.num_frames, 52, 3)
    lines += ["MOTION", f"Frames: {motion.num_frames}", f"Frame Time: {1.0 / motion.fps:.8f}"]
    for t in range(motion.num_frames):
        values = list(p_root[t]) + [a for j in order for a in euler[t, j]]
        lines.append(" ".join(f"{v:.6f}" for v in values))
    return _write_text(path, "\n".join(lines) + "\n")


def _depth_first(children: dict[int, list[int]]) -> list[int]:
    order: list[int] = []

    def visit(j: int) -> None:
        order.append(j)
        for c in children[j]:
            visit(c)

    visit(0)
    return order


def write_amass_npz(path: str | os.PathLike, motion: Motion, body: BodyModel,
                    joint_spread_m: np.ndarray | None = None) -> Path:
    """AMASS-style `poses (T, 156)`, `trans (T, 3)`, `betas (16,)`, `mocap_framerate`, `gender`, atomically; with
    `joint_spread_m (T, 52)` (a consensus's spread, `egoallo.consensus`) that array too."""
    path = Path(path)
    T = motion.num_frames
    rotations = np.concatenate([motion.T_world_root[:, None, :3, :3], motion.local_rotations], axis=1)
    poses = Rotation.from_matrix(rotations.reshape(-1, 3, 3)).as_rotvec().reshape(T, 156)
    pelvis_rest = body.with_shape(torch.from_numpy(motion.betas)).joints_zero[0].double().numpy()
    buffer = io.BytesIO()
    np.savez(
        buffer,
        poses=poses,
        trans=motion.T_world_root[:, :3, 3] - pelvis_rest,
        betas=np.asarray(motion.betas, dtype=np.float64),
        mocap_framerate=np.float64(motion.fps),
        gender=np.array("neutral"),
        body_model=np.array(body.name),
        **({} if joint_spread_m is None else {"joint_spread_m": np.asarray(joint_spread_m, dtype=np.float32)}),
    )
    return write_bytes_atomic(path, buffer.getvalue())


def _write_text(path: Path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode())
