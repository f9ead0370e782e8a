"""How often `egoallo infer` raises a wrist above its shoulder, for the README example and for dataset clips.

    python benchmarks/arms_report.py [--dataset DIR/dataset.h5 --split test --clips ID ...] [--checkpoint CK]
        [--steps N] [--seeds 0 1 2 3 4] [--level-head] [--pitch-offset DEG]

Each head trajectory (the example's, then each clip's) goes through `egoallo infer`'s path (`estimate_file`, foot
guidance, the floor from the trajectory) as a TUM file, once per seed; printed: the share of frames with a wrist
above its shoulder (`metadata["plausibility"]`) per seed and its mean, and for clips the truth's share.
`--level-head` takes the roll out of every head pose (its left-right axis made horizontal) and `--pitch-offset`
turns every head about its own left-right axis (positive: chin down), so that one can ask which part of how the
head is carried makes the prior raise an arm.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from egoallo.assets import EXAMPLE_TRAJECTORY
from egoallo.body.plausibility import wrist_above_shoulder
from egoallo.inputs.trajectory import read_trajectory
from egoallo.pipeline import InferOptions, estimate_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402

UP = np.array([0.0, 0.0, 1.0])


def carried(T_world_cpf: np.ndarray, level: bool, pitch_offset_deg: float) -> np.ndarray:
    """Head poses `(T, 4, 4)` (z up; CPF x left, y up, z forward) turned `pitch_offset_deg` about their own x axis
    (positive: chin down) and, with `level`, with their roll taken out (x made horizontal)."""
    out = T_world_cpf.copy()
    if not level:
        c, s = np.cos(np.radians(pitch_offset_deg)), np.sin(np.radians(pitch_offset_deg))
        out[:, :3, :3] = T_world_cpf[:, :3, :3] @ np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
        return out
    for k, T in enumerate(T_world_cpf):
        left = np.cross(UP, T[:3, 2])
        left /= np.linalg.norm(left)
        ahead = np.cross(left, UP)
        pitch = np.arcsin(np.clip(T[2, 2], -1.0, 1.0)) - np.radians(pitch_offset_deg)
        forward = np.cos(pitch) * ahead + np.sin(pitch) * UP
        out[k, :3, :3] = np.stack([left, np.cross(forward, left), forward], axis=1)
    return out


def write_tum(path: Path, timestamps_s: np.ndarray, T_world_cpf: np.ndarray) -> None:
    """A TUM text file of the head poses (x y z, then the quaternion x y z w)."""
    from scipy.spatial.transform import Rotation

    q = Rotation.from_matrix(T_world_cpf[:, :3, :3]).as_quat()
    lines = [f"{t:.6f} {p[0]:.6f} {p[1]:.6f} {p[2]:.6f} {a[0]:.8f} {a[1]:.8f} {a[2]:.8f} {a[3]:.8f}"
             for t, p, a in zip(timestamps_s, T_world_cpf[:, :3, 3], q)]
    path.write_text("\n".join(lines) + "\n")


def shares(path: Path, checkpoint: Path | None, steps: int | None, seeds: list[int]) -> list[float]:
    """The predicted wrist-above-shoulder share of `egoallo infer PATH --up z --guidance feet [--steps N]` per seed."""
    out = []
    for seed in seeds:
        options = InferOptions(checkpoint=checkpoint, up="z", guidance=frozenset({"feet"}), steps=steps, seed=seed,
                               threads=1)
        estimate = estimate_file(path, options, say=lambda _: None, progress=False)
        out.append(float(estimate.result.metadata["plausibility"]["wrist_above_shoulder_share"][0]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset")
    parser.add_argument("--split", default="test")
    parser.add_argument("--clips", nargs="*", default=[])
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--steps", type=int, help="denoising steps (default: the checkpoint's own)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--level-head", action="store_true")
    parser.add_argument("--pitch-offset", type=float, default=0.0)
    args = parser.parse_args()
    print(machine())

    example = read_trajectory(EXAMPLE_TRAJECTORY, device_is_cpf=True).resample(30.0)
    inputs = [("the example", example.timestamps_ns / 1e9, example.T_world_cpf, None)]
    if args.clips:
        from egoallo.data.dataset import MotionDataset

        dataset = MotionDataset(args.dataset, split=args.split)
        for clip_id in args.clips:
            clip = dataset.clip_ids.index(clip_id)
            window = dataset.window(clip, 0, int(dataset.lengths[clip]))
            T = window["T_world_cpf"].astype(np.float64)
            inputs.append((clip_id, np.arange(len(T)) / 30.0, T, float(wrist_above_shoulder(window["joints_world"]).mean())))
    print(f"head: {'levelled, ' if args.level_head else ''}pitched {args.pitch_offset:+.0f} deg; "
          f"checkpoint: {args.checkpoint or 'shipped'}, steps {args.steps or 'its own'}; seeds {args.seeds}")
    print("| head trajectory | truth | " + " | ".join(f"seed {s}" for s in args.seeds) + " | mean |")
    print("|---|---|" + "---|" * len(args.seeds) + "---|")
    with tempfile.TemporaryDirectory() as folder:
        for name, timestamps, T, truth in inputs:
            path = Path(folder) / "head.txt"
            write_tum(path, timestamps, carried(T, args.level_head, args.pitch_offset))
            values = shares(path, args.checkpoint, args.steps, args.seeds)
            print(f"| {name} | {'-' if truth is None else f'{truth:.2f}'} | " + " | ".join(f"{v:.2f}" for v in values)
                  + f" | {np.mean(values):.2f} |")


if __name__ == "__main__":
    main()
