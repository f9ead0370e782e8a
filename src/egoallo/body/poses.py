"""Named demonstration poses for pictures and smoke tests."""

from __future__ import annotations

import torch

from ..geometry import so3
from . import skeleton

# Degrees about the joint's local x (pitch), y (yaw) and z (roll) axes, applied as Rz Ry Rx.
_WALK_STEP = {
    "left_hip": (-30, 0, 0),
    "right_hip": (20, 0, 0),
    "left_knee": (15, 0, 0),
    "right_knee": (35, 0, 0),
    "left_ankle": (5, 0, 0),
    "right_ankle": (-10, 0, 0),
    "spine1": (4, 0, 0),
    "left_shoulder": (0, 20, -70),
    "right_shoulder": (0, 15, 65),
    "left_elbow": (0, -25, 0),
    "right_elbow": (0, 40, 0),
    "neck": (5, 0, 0),
}
_ARM_RAISED = {
    **_WALK_STEP,
    "left_shoulder": (0, 0, 40),
    "left_elbow": (0, -60, 0),
}
POSES = {"tpose": {}, "walk": _WALK_STEP, "wave": _ARM_RAISED}

# Rest (y up, facing +z) to a z-up world where the body faces -y.
Y_UP_TO_Z_UP = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


def local_rotations(name: str) -> torch.Tensor:
    """`(51, 3, 3)` local rotations of joints 1..51 for a named pose."""
    if name not in POSES:
        raise ValueError(f"unknown pose '{name}'; choose one of {sorted(POSES)}.")
    rotations = torch.eye(3).repeat(51, 1, 1)
    for joint, (x, y, z) in POSES[name].items():
        angles = torch.deg2rad(torch.tensor([z, y, x], dtype=torch.float32))
        rotations[skeleton.JOINT_INDEX[joint] - 1] = so3.from_euler_intrinsic(angles, "ZYX")
    return rotations
