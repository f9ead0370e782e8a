"""How the README example's head compares with the training data's, and how often each training group raises a wrist.

    python benchmarks/example_head_report.py --dataset DIR/dataset.h5 [--split train] [--sources bandai1 bandai2]

Prints a markdown table: the example (`egoallo infer --example`'s trajectory) and every (source, activity) group of
the split, each with its clips, the median over clips of the head's median pitch (the CPF's forward axis, +z, above
the horizontal, degrees), its median horizontal speed (m/s), and the share of the truth's frames with a wrist above
its shoulder. The prior reads arms it cannot see from how the head moves; this shows how the example's head is
carried against the heads it learnt from (docs/prior_candidates.md, round 3).
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from egoallo.assets import EXAMPLE_TRAJECTORY
from egoallo.body.plausibility import wrist_above_shoulder
from egoallo.data.dataset import MotionDataset
from egoallo.inputs.trajectory import read_trajectory

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402

FPS = 30.0


def pitch_deg(T_world_cpf: np.ndarray) -> np.ndarray:
    """(T,) the CPF's forward axis above the horizontal of a z-up world, degrees (`T_world_cpf (T, 4, 4)`)."""
    return np.degrees(np.arcsin(np.clip(T_world_cpf[:, 2, 2], -1.0, 1.0)))


def speed(T_world_cpf: np.ndarray) -> np.ndarray:
    """(T - 1,) horizontal head speed, m/s."""
    return np.linalg.norm(np.diff(T_world_cpf[:, :2, 3], axis=0), axis=1) * FPS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--split", default="train")
    parser.add_argument("--sources", nargs="*", default=None)
    args = parser.parse_args()
    print(machine())

    example = read_trajectory(EXAMPLE_TRAJECTORY, device_is_cpf=True).resample(FPS).T_world_cpf
    dataset = MotionDataset(args.dataset, split=args.split, sources=tuple(args.sources) if args.sources else None)
    groups: dict[tuple[str, str], list[tuple[float, float, float]]] = defaultdict(list)
    for clip, _ in enumerate(dataset.clip_ids):
        info = dataset.info(clip)
        window = dataset.window(clip, 0, int(dataset.lengths[clip]))
        T = window["T_world_cpf"].astype(np.float64)
        if len(T) < 2:
            continue
        groups[(info.source, info.activity)].append(
            (float(np.median(pitch_deg(T))), float(np.median(speed(T))), float(wrist_above_shoulder(window["joints_world"]).mean()))
        )
    print("| group | clips | head pitch, median (deg) | head speed, median (m/s) | truth: wrist above shoulder |")
    print("|---|---|---|---|---|")
    print(f"| the example (`egoallo infer --example`) | 1 | {np.median(pitch_deg(example)):.1f} | "
          f"{np.median(speed(example)):.2f} | 0 (its truth, the held-out clip) |")
    for (source, activity), rows in sorted(groups.items()):
        values = np.array(rows)
        print(f"| {source}/{activity} | {len(values)} | {np.median(values[:, 0]):.1f} | {np.median(values[:, 1]):.2f} | "
              f"{values[:, 2].mean():.2f} |")


if __name__ == "__main__":
    main()
