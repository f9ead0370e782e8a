"""How high a standing wearer carries the head over their body's rest-pose eye height: the ratio `--stature` uses.

    python benchmarks/fit_stature_floor.py --dataset DIR/dataset.h5 [--split val]

With the wearer's stature known (`egoallo infer --stature`), the floor lies under the head's standing height
(the 95th percentile of its height over the recording) by the standing eye height of a body of that stature.
Motion capture fitted to the body model carries the head a little above or below the rest pose's eye height
(posture: a straight or bent neck and knees), so the floor is placed `STANDING_HEIGHT_OVER_EYE` times that eye
height under the head. This script measures that ratio on a split (default: validation, never test): every
clip performed by a body of a stature drawn uniformly over 1.50-1.95 m (the body-shape augmentation,
`egoallo eval --stature-range`), per 128-frame window as `egoallo eval` counts them, the whole clip's 95th
percentile head height over the true floor (z = 0) divided by the true body's rest eye height. It prints the
median per group and over all windows, and the floor error (median, cm) each ratio would give on the split.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from egoallo.body import BodyModel
from egoallo.data.dataset import MotionDataset
from egoallo.evaluation.benchmark import HELD_OUT_PERFORMER_SOURCES, EvalConfig, clip_window, test_windows, true_stature
from egoallo.body.stature import stature_eye_height


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--window", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(1)
    body = BodyModel.load_default()
    config = EvalConfig(window=args.window, stature_range=(1.50, 1.95))
    dataset = MotionDataset(args.dataset, args.split)
    per_clip: dict[int, tuple[float, float]] = {}
    ratios: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    for clip, _ in test_windows(dataset, args.window):
        if clip not in per_clip:
            whole = clip_window(dataset, clip, 0, int(dataset.lengths[clip]), body, config)
            top = float(np.percentile(whole["T_world_cpf"][:, 2, 3], 95))
            per_clip[clip] = (top, stature_eye_height(body, true_stature(body, whole)))
        top, eye = per_clip[clip]
        source = dataset.clip_ids[clip].split("/")[0]
        group = "held-out performers" if source in HELD_OUT_PERFORMER_SOURCES else "held-out styles"
        for key in ("all", group, f"source {source}"):
            ratios[key].append((top / eye, top, eye))
    fitted = float(np.median([r for r, _, _ in ratios["all"]]))
    print(f"{args.split} split, {len(ratios['all'])} windows of {args.window} frames, statures 1.50-1.95 m")
    print(f"| windows | n | median ratio | floor error median (cm), ratio 1 | ratio {fitted:.4f} (all windows' median) |")
    print("|---|---|---|---|---|")
    for key, rows in sorted(ratios.items()):
        r = np.array(rows)
        errors = [100 * np.median(np.abs(r[:, 1] - k * r[:, 2])) for k in (1.0, fitted)]
        print(f"| {key} | {len(r)} | {np.median(r[:, 0]):.4f} | {errors[0]:.1f} | {errors[1]:.1f} |")
    print(f"STANDING_HEIGHT_OVER_EYE = {fitted:.4f}")


if __name__ == "__main__":
    main()
