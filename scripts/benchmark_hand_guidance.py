"""Hand guidance ("hands" mode) on this CPU: accuracy from 2D/3D hand keypoints, and speed.

    python scripts/benchmark_hand_guidance.py [--frames 64] [--seeds 3] [--speed-frames 32 64 128 256] [--threads 1]

The truth is a synthetic motion with both hands in front of the chest (arms swaying, fingers
curling) whose 21 hand landmarks per hand are projected through the real Aria RGB factory
calibration in `../shared/aria/aea_recording_rgb8frames.vrs` (`T_cpf_camera` from the device
calibration). The "sample" adds a random constant rotation (0.3 rad per axis) to shoulders,
elbows, wrists and all 30 finger joints. Prints markdown tables.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import platform
import time
from pathlib import Path

import torch

from egoallo.body import BodyModel
from egoallo.body.skeleton import JOINT_INDEX
from egoallo.geometry import se3, so3
from egoallo.guidance import HandObservations, LMConfig, Observations, guide
from egoallo.guidance.hands import LANDMARK_JOINTS, landmark_offsets
from egoallo.inputs.cameras import CameraModel, load_aria_rgb_camera
from egoallo.prior.state import MotionState

F64 = torch.float64
SHARED = Path(os.environ.get("EGOALLO_SHARED", Path(__file__).resolve().parents[2] / "shared"))
HAND_JOINTS = [JOINT_INDEX["left_wrist"], JOINT_INDEX["right_wrist"], *range(22, 52)]
LANDMARKS = list(LANDMARK_JOINTS[0] + LANDMARK_JOINTS[1])


@dataclasses.dataclass(frozen=True)
class Scene:
    truth: MotionState
    T_world_cpf: torch.Tensor
    pixels: torch.Tensor
    """(T, 2, 21, 2)"""
    points_camera: torch.Tensor
    """(T, 2, 21, 3)"""
    hand_joints: torch.Tensor
    """(T, 32, 3)"""


def reaching_rotations(T: int) -> torch.Tensor:
    """(T, 51, 3, 3) forearms forward in front of the chest, arms swaying, fingers curling."""
    t = torch.arange(T, dtype=F64) / 30.0
    turn = lambda axis, angle: so3.exp(torch.tensor(axis, dtype=F64) * angle[..., None])
    wave = lambda amplitude, hz, phase: amplitude * torch.sin(2 * math.pi * hz * t + phase)
    rot = torch.eye(3, dtype=F64).repeat(T, 51, 1, 1)
    for side, sign, phase in (("left", 1.0, 0.0), ("right", -1.0, 1.0)):
        rot[:, JOINT_INDEX[f"{side}_shoulder"] - 1] = turn([0, 0, 1], -sign * (1.0 + wave(0.15, 0.8, phase))) @ turn(
            [0, 1, 0], torch.full((T,), -sign)
        )
        rot[:, JOINT_INDEX[f"{side}_elbow"] - 1] = turn([0, 1, 0], -sign * (1.2 + wave(0.2, 0.6, phase)))
        rot[:, JOINT_INDEX[f"{side}_wrist"] - 1] = turn([1, 0, 0], wave(0.3, 0.5, phase))
        for finger in ("index", "middle", "ring", "pinky"):
            for k in (1, 2, 3):
                rot[:, JOINT_INDEX[f"{side}_{finger}{k}"] - 1] = turn([0, 0, 1], -sign * (0.3 + wave(0.25, 0.7, phase + k)))
    return rot


def world_joints(body: BodyModel, rotations: torch.Tensor, T_world_cpf: torch.Tensor) -> torch.Tensor:
    """(T, 52, 4, 4) joint poses for `rotations (T, 51, 3, 3)` placed by Eq. 5 (mean shape)."""
    at_root = body.to(dtype=F64).with_shape(torch.zeros(16, dtype=F64)).with_pose(torch.eye(4, dtype=F64), rotations)
    return (T_world_cpf @ se3.inverse(at_root.T_world_cpf))[:, None] @ at_root.Ts_world_joint


def observe(body: BodyModel, camera: CameraModel, Ts: torch.Tensor, T_world_cpf: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Landmark pixels (T, 2, 21, 2) and camera-frame points (T, 2, 21, 3) of joint poses `Ts (T, 52, 4, 4)`."""
    offsets = landmark_offsets(body.to(dtype=F64).with_shape(torch.zeros(16, dtype=F64))).flatten(0, 1)
    world = Ts[:, LANDMARKS, :3, 3] + (Ts[:, LANDMARKS, :3, :3] @ offsets[..., None])[..., 0]
    T_camera_world = se3.inverse(T_world_cpf @ camera.T_cpf_camera)
    points = (T_camera_world[:, None, :3, :3] @ world[..., None])[..., 0] + T_camera_world[:, None, :3, 3]
    return camera.project(points).unflatten(1, (2, 21)), points.unflatten(1, (2, 21))


def make_scene(body: BodyModel, camera: CameraModel, T: int) -> Scene:
    rot = reaching_rotations(T)
    R_zup = so3.rot_x(torch.tensor(math.pi / 2, dtype=F64))
    T_world_root = se3.from_rotation_translation(R_zup, torch.tensor([0.0, 0.0, 0.95], dtype=F64)).expand(T, 4, 4)
    posed = body.to(dtype=F64).with_shape(torch.zeros(16, dtype=F64)).with_pose(T_world_root, rot)
    truth = MotionState(torch.zeros(1, T, 16, dtype=F64), rot[None, :, :21], torch.zeros(1, T, 21, dtype=F64), rot[None, :, 21:])
    pixels, points = observe(body, camera, posed.Ts_world_joint, posed.T_world_cpf)
    return Scene(truth, posed.T_world_cpf, pixels, points, posed.joints_world[:, HAND_JOINTS])


def perturbed(scene: Scene, seed: int) -> MotionState:
    g = torch.Generator().manual_seed(seed)
    rot = scene.truth.local_rotations[0].clone()
    arms = [JOINT_INDEX[f"{s}_{j}"] - 1 for s in ("left", "right") for j in ("shoulder", "elbow", "wrist")]
    for v in arms + list(range(21, 51)):
        rot[:, v] = rot[:, v] @ so3.exp(0.3 * torch.randn(3, generator=g, dtype=F64))
    return dataclasses.replace(scene.truth, body_rotations=rot[None, :, :21], hand_rotations=rot[None, :, 21:])


def errors(body: BodyModel, camera: CameraModel, scene: Scene, state: MotionState) -> tuple[float, float, float]:
    """Median landmark reprojection (px); mean wrist + finger joint and wrist position errors (mm)."""
    Ts = world_joints(body, state.local_rotations[0], scene.T_world_cpf)
    pixels, _ = observe(body, camera, Ts, scene.T_world_cpf)
    joints = (Ts[:, HAND_JOINTS, :3, 3] - scene.hand_joints).norm(dim=-1)
    return float((pixels - scene.pixels).norm(dim=-1).median()), float(joints.mean()) * 1e3, float(joints[:, :2].mean()) * 1e3


def noisy_pixels(scene: Scene, seed: int) -> torch.Tensor:
    """3 px Gaussian noise, 10 % of keypoints moved 150 px (clipped to the image)."""
    g = torch.Generator().manual_seed(seed)
    pixels = scene.pixels + 3.0 * torch.randn(scene.pixels.shape, generator=g, dtype=F64)
    outliers = torch.rand(scene.pixels.shape[:-1], generator=g, dtype=F64) < 0.1
    jump = torch.nn.functional.normalize(torch.randn(int(outliers.sum()), 2, generator=g, dtype=F64), dim=-1)
    pixels[outliers] += 150.0 * jump
    return pixels.clamp(0.0, 1407.0)


def settings(scene: Scene, seed: int) -> dict[str, dict[str, torch.Tensor]]:
    depth = torch.tensor([0.0, 0.0, 0.05], dtype=F64)
    relative = scene.points_camera - scene.points_camera[:, :, :1]
    return {
        "2D": {"keypoints_2d": scene.pixels},
        "2D, 3 px noise + 10 % outliers": {"keypoints_2d": noisy_pixels(scene, seed)},
        "3D (camera frame, exact)": {"keypoints_3d_camera": scene.points_camera},
        "3D, 5 cm too deep": {"keypoints_3d_camera": scene.points_camera + depth},
        "2D + 3D 5 cm too deep (placed on 2D)": {"keypoints_2d": scene.pixels, "keypoints_3d_camera": scene.points_camera + depth},
        "2D + wrist-relative 3D (placed on 2D)": {"keypoints_2d": scene.pixels, "keypoints_3d_camera": relative},
    }


def accuracy_table(body: BodyModel, camera: CameraModel, T: int, seeds: int) -> None:
    print(f"\n### Accuracy, {T} frames, mean of {seeds} seeds (paper weights, post guidance, 20 iterations)\n")
    print("| keypoints | reprojection, median (px) | hand joints (mm) | wrists (mm) | iterations | time (s) |")
    print("|---|---|---|---|---|---|")
    scene = make_scene(body, camera, T)
    rows: dict[str, list[tuple[float, ...]]] = {}
    for seed in range(seeds):
        sample = perturbed(scene, seed)
        before = errors(body, camera, scene, sample)
        for name, arrays in settings(scene, seed).items():
            observations = Observations(hands=HandObservations(camera, **arrays))
            guided, log = guide(body, sample, scene.T_world_cpf, mode={"hands"}, observations=observations)
            after = errors(body, camera, scene, guided)
            rows.setdefault(name, []).append((*before, *after, log.solver.iterations, log.time_s))
    for name, values in rows.items():
        m = torch.tensor(values, dtype=F64).mean(dim=0).tolist()
        print(f"| {name} | {m[0]:.0f} → {m[3]:.1f} | {m[1]:.0f} → {m[4]:.1f} | {m[2]:.0f} → {m[5]:.1f} | {m[6]:.0f} | {m[7]:.2f} |")


def speed_table(body: BodyModel, camera: CameraModel, frames: list[int], iterations: int) -> None:
    print(f"\n### Speed, {iterations} iterations (no early stop), float64\n")
    print("| frames | feet, 21 rotations (s) | hands 2D, 51 rotations (s) | ms / iteration | µs / frame·iteration |")
    print("|---|---|---|---|---|")
    fixed = LMConfig(relative_tolerance=0.0)
    for T in frames:
        scene = make_scene(body, camera, T)
        sample = perturbed(scene, 0)
        contacts = torch.ones(1, T, 21, dtype=F64)
        feet_sample = dataclasses.replace(sample, hand_rotations=None, contacts=contacts)
        start = time.perf_counter()
        guide(body, feet_sample, scene.T_world_cpf, mode={"feet"}, iterations=iterations, solver=fixed)
        feet = time.perf_counter() - start
        observations = Observations(hands=HandObservations(camera, keypoints_2d=scene.pixels))
        start = time.perf_counter()
        _, log = guide(body, sample, scene.T_world_cpf, mode={"hands"}, observations=observations, iterations=iterations, solver=fixed)
        hands = time.perf_counter() - start
        n = log.solver.iterations
        print(f"| {T} | {feet:.2f} | {hands:.2f} | {hands / n * 1e3:.0f} | {hands / n / T * 1e6:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--speed-frames", type=int, nargs="+", default=[32, 64, 128, 256])
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    body = BodyModel.load_default()
    camera = load_aria_rgb_camera(SHARED / "aria" / "aea_recording_rgb8frames.vrs")
    started = time.perf_counter()
    print(f"torch {torch.__version__}, {args.threads} thread(s), {platform.processor() or platform.machine()}")
    accuracy_table(body, camera, args.frames, args.seeds)
    speed_table(body, camera, args.speed_frames, args.iterations)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
