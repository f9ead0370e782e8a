"""Inference speed: seconds of compute per second of motion (no guidance), this machine's CPU.

    python scripts/benchmark_inference.py [--checkpoint DIR] [--seconds 60] [--samples 1 4] [--threads N]

The trajectory is the shipped example, looped (mirrored back and forth) to the
requested length. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch

from egoallo.assets import DEFAULT_CHECKPOINT, EXAMPLE_TRAJECTORY
from egoallo.body import BodyModel
from egoallo.inference import SamplingConfig, estimate_body_motion, standing_eye_height
from egoallo.inputs.points import floor_from_trajectory
from egoallo.inputs.trajectory import HeadTrajectory, read_trajectory
from egoallo.prior.checkpoint import load_denoiser


def looped(trajectory: HeadTrajectory, frames: int) -> HeadTrajectory:
    """Play the trajectory forwards and backwards until it has `frames` poses."""
    index = np.arange(frames) % (2 * len(trajectory) - 2)
    index = np.where(index < len(trajectory), index, 2 * len(trajectory) - 2 - index)
    timestamps = trajectory.timestamps_ns[0] + np.round(np.arange(frames) * 1e9 / 30.0).astype(np.int64)
    return HeadTrajectory(timestamps, trajectory.T_world_cpf[index], trajectory.source, trajectory.metadata, trajectory.R_zup_input)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--seconds", type=float, nargs="+", default=[4.3, 60.0])
    parser.add_argument("--samples", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    config, denoiser = load_denoiser(args.checkpoint)
    body = BodyModel.load_default()
    base = read_trajectory(EXAMPLE_TRAJECTORY, device_is_cpf=True).resample(30.0)
    print(f"checkpoint {args.checkpoint} ({sum(p.numel() for p in denoiser.parameters()) / 1e6:.2f} M parameters), "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    print("\n| motion | frames | samples | wall time (s) | compute s per motion s | x real time |")
    print("|---|---|---|---|---|---|")
    for seconds in args.seconds:
        trajectory = looped(base, int(round(seconds * 30)))
        floor = floor_from_trajectory(trajectory.T_world_cpf[:, 2, 3], standing_eye_height(body))
        for samples in args.samples:
            estimate_body_motion(trajectory, denoiser, body, floor_z=floor.z, config=SamplingConfig(num_samples=samples, num_steps=2))
            start = time.perf_counter()
            estimate_body_motion(trajectory, denoiser, body, floor_z=floor.z, config=SamplingConfig(num_samples=samples))
            wall = time.perf_counter() - start
            motion_s = len(trajectory) / 30.0
            print(f"| {motion_s:.1f} s | {len(trajectory)} | {samples} | {wall:.2f} | {wall / motion_s:.3f} | {motion_s / wall:.1f} |")


if __name__ == "__main__":
    main()
