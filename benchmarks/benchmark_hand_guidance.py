"""Hand guidance ("hands" mode) on this CPU: accuracy from 2D/3D hand keypoints, and speed.

    python benchmarks/benchmark_hand_guidance.py [--frames 64] [--seeds 3] [--speed-frames 32 64 128 256] [--threads 1]

The truth is a synthetic motion with both hands in front of the chest (arms swaying, fingers
curling) whose 21 hand landmarks per hand are projected through the real Aria RGB factory
calibration in `../shared/aria/aea_recording_rgb8frames.vrs` (`T_cpf_camera` from the device
calibration). The "sample" adds a random constant rotation (0.3 rad per axis) to shoulders,
elbows, wrists and all 30 finger joints. Prints markdown tables.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from egoallo.body import BodyModel
from egoallo.evaluation.synthetic_hands import F64, Scene, errors, make_scene, perturbed
from egoallo.guidance import LMConfig, guide
from egoallo.observations import HandObservations, Observations
from egoallo.cameras import CameraModel
from egoallo.inputs.calibration import load_rgb_camera
from _common import SHARED, machine

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
        before = errors(scene, sample)
        for name, arrays in settings(scene, seed).items():
            observations = Observations(hands=HandObservations(camera, **arrays))
            guided, log = guide(body, sample, scene.T_world_cpf, mode={"hands"}, observations=observations)
            after = errors(scene, guided)
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
    camera = load_rgb_camera(SHARED / "aria" / "aea_recording_rgb8frames.vrs")
    started = time.perf_counter()
    print(f"torch {torch.__version__}, {args.threads} thread(s), {machine()}")
    accuracy_table(body, camera, args.frames, args.seeds)
    speed_table(body, camera, args.speed_frames, args.iterations)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
