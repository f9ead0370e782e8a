"""A synthetic hands scene for testing and benchmarking hand guidance.

Both forearms in front of the chest (arms swaying, fingers curling), the body
at its mean shape, its 21 hand landmarks per hand seen by a camera riding on
the CPF. A "sample" is the truth with constant random rotation offsets on the
arms and fingers; `errors` measures how far a state is from the truth.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor

from ..body import BodyModel
from ..body.skeleton import JOINT_INDEX
from ..geometry import se3, so3
from ..guidance.hands import LANDMARK_JOINTS, landmark_offsets
from ..cameras import CameraModel, as_tensor
from ..prior.state import MotionState

F64 = torch.float64
HAND_JOINTS = [JOINT_INDEX["left_wrist"], JOINT_INDEX["right_wrist"], *range(22, 52)]
"""The 32 hand joints measured: both wrists, then the 30 finger joints."""
_LANDMARKS = list(LANDMARK_JOINTS[0] + LANDMARK_JOINTS[1])


@dataclasses.dataclass(frozen=True)
class Scene:
    body: BodyModel
    camera: CameraModel
    truth: MotionState
    T_world_cpf: Tensor
    """(T, 4, 4)"""
    pixels: Tensor
    """(T, 2, 21, 2) the truth's landmarks in the image."""
    points_camera: Tensor
    """(T, 2, 21, 3) the truth's landmarks in the camera frame."""
    hand_joints: Tensor
    """(T, 32, 3) the truth's `HAND_JOINTS` in the world."""


def _axis_angle(axis: list[float], angle: Tensor) -> Tensor:
    return so3.exp(torch.tensor(axis, dtype=F64) * angle[..., None])


def reaching_rotations(T: int) -> Tensor:
    """(T, 51, 3, 3) both forearms forward in front of the chest, arms swaying, fingers curling."""
    t = torch.arange(T, dtype=F64) / 30.0
    wave = lambda amplitude, hz, phase: amplitude * torch.sin(2 * math.pi * hz * t + phase)  # noqa: E731
    rot = torch.eye(3, dtype=F64).repeat(T, 51, 1, 1)
    for side, sign, phase in (("left", 1.0, 0.0), ("right", -1.0, 1.0)):
        lower = _axis_angle([0, 0, 1], -sign * (1.0 + wave(0.15, 0.8, phase)))
        rot[:, JOINT_INDEX[f"{side}_shoulder"] - 1] = lower @ _axis_angle([0, 1, 0], torch.full((T,), -sign))
        rot[:, JOINT_INDEX[f"{side}_elbow"] - 1] = _axis_angle([0, 1, 0], -sign * (1.2 + wave(0.2, 0.6, phase)))
        rot[:, JOINT_INDEX[f"{side}_wrist"] - 1] = _axis_angle([1, 0, 0], wave(0.3, 0.5, phase))
        for finger in ("index", "middle", "ring", "pinky"):
            for k in (1, 2, 3):
                curl = -sign * (0.3 + wave(0.25, 0.7, phase + k))
                rot[:, JOINT_INDEX[f"{side}_{finger}{k}"] - 1] = _axis_angle([0, 0, 1], curl)
    return rot


def world_joints(body: BodyModel, state: MotionState, T_world_cpf: Tensor) -> Tensor:
    """(T, 52, 4, 4) joint poses of sample 0 placed by Eq. 5."""
    shaped = body.to(dtype=F64).with_shape(state.betas[0].mean(dim=0))
    at_root = shaped.with_pose(torch.eye(4, dtype=F64), state.local_rotations[0].to(F64))
    T_world_root = T_world_cpf @ se3.inverse(at_root.T_world_cpf)
    return T_world_root[:, None] @ at_root.Ts_world_joint


def landmarks_world(body: BodyModel, Ts_world_joint: Tensor) -> Tensor:
    """(T, 42, 3) world landmarks: the mapped joints, fingertips offset in their third joint frame."""
    offsets = landmark_offsets(body.to(dtype=F64).with_shape(torch.zeros(16, dtype=F64))).flatten(0, 1)
    Ts = Ts_world_joint[:, _LANDMARKS]
    return Ts[..., :3, 3] + (Ts[..., :3, :3] @ offsets[..., None])[..., 0]


def observe(camera: CameraModel, T_world_cpf: Tensor, landmarks: Tensor) -> tuple[Tensor, Tensor]:
    """Pixels (T, 2, 21, 2) and camera-frame points (T, 2, 21, 3) of world `landmarks (T, 42, 3)`."""
    T_camera_world = se3.inverse(T_world_cpf @ as_tensor(camera.T_cpf_camera, T_world_cpf))
    points = (T_camera_world[:, None, :3, :3] @ landmarks[..., None])[..., 0] + T_camera_world[:, None, :3, 3]
    return camera.project(points).unflatten(1, (2, 21)), points.unflatten(1, (2, 21))


def make_scene(body: BodyModel, camera: CameraModel, T: int) -> Scene:
    """The reaching motion over `T` frames, pelvis 0.95 m above the floor, seen by `camera`."""
    rot = reaching_rotations(T)
    R_zup = so3.rot_x(torch.tensor(math.pi / 2, dtype=F64))
    T_world_root = se3.from_rotation_translation(R_zup, torch.tensor([0.0, 0.0, 0.95], dtype=F64)).expand(T, 4, 4)
    posed = body.to(dtype=F64).with_shape(torch.zeros(16, dtype=F64)).with_pose(T_world_root, rot)
    truth = MotionState(torch.zeros(1, T, 16, dtype=F64), rot[None, :, :21], torch.zeros(1, T, 21, dtype=F64), rot[None, :, 21:])
    pixels, points = observe(camera, posed.T_world_cpf, landmarks_world(body, posed.Ts_world_joint))
    return Scene(body, camera, truth, posed.T_world_cpf, pixels, points, posed.joints_world[:, HAND_JOINTS])


def perturbed(scene: Scene, seed: int = 0, angle: float = 0.3) -> MotionState:
    """Constant random rotation offsets (radians ~ `angle`) on shoulders, elbows, wrists and all fingers."""
    g = torch.Generator().manual_seed(seed)
    rot = scene.truth.local_rotations[0].clone()
    arms = [JOINT_INDEX[f"{side}_{joint}"] - 1 for side in ("left", "right") for joint in ("shoulder", "elbow", "wrist")]
    for v in arms + list(range(21, 51)):
        rot[:, v] = rot[:, v] @ so3.exp(angle * torch.randn(3, generator=g, dtype=F64))
    return dataclasses.replace(scene.truth, body_rotations=rot[None, :, :21], hand_rotations=rot[None, :, 21:])


def errors(scene: Scene, state: MotionState) -> tuple[float, float, float]:
    """Median landmark reprojection error (px), mean 3D hand-joint error and wrist error (mm)."""
    Ts = world_joints(scene.body, state, scene.T_world_cpf)
    pixels, _ = observe(scene.camera, scene.T_world_cpf, landmarks_world(scene.body, Ts))
    joints = (Ts[:, HAND_JOINTS, :3, 3] - scene.hand_joints).norm(dim=-1)
    return float((pixels - scene.pixels).norm(dim=-1).median()), float(joints.mean()) * 1000, float(joints[:, :2].mean()) * 1000
