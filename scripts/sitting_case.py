"""A held-out sitting-down case: plausibility with the floor known and unknown, and a picture.

    python scripts/sitting_case.py --dataset DIR/dataset.h5 [--clip cmu_daz/13_01] [--out docs/sitting_13_01.png]

The window (128 frames) is the one of the clip whose true pelvis drops the most
(the sitting down). It runs through `estimate_body_motion` with foot guidance
three times: with the true floor, with a point-cloud floor (true + 2 cm), and
with the floor estimated from the whole clip's head trajectory (no point cloud).
Prints MPJPE and the plausibility figures (`egoallo.body.plausibility`, against
the true floor and the predicted body's standing foot heights) and draws the
truth (grey) beside the prediction (blue) for the estimated floor.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from egoallo.assets import DEFAULT_CHECKPOINT
from egoallo.body import BodyModel
from egoallo.body.plausibility import plausibility
from egoallo.data.dataset import MotionDataset
from egoallo.evaluation.metrics import mpjpe
from egoallo.evaluation.pictures import predicted_and_true
from egoallo.inference import SamplingConfig, standing_eye_height
from egoallo.inputs.gait import floor_without_points
from egoallo.prior.checkpoint import load_denoiser


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--clip", default="cmu_daz/13_01")
    parser.add_argument("--split", default="test")
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--out", type=Path, default=Path("docs/sitting_13_01.png"))
    parser.add_argument("--window", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(1)
    body = BodyModel.load_default()
    _, denoiser = load_denoiser(args.checkpoint)
    data = MotionDataset(args.dataset, args.split)
    clip = data.clip_ids.index(args.clip)
    whole = data.window(clip, 0, int(data.lengths[clip]))
    pelvis = whole["joints_world"][:, 0, 2]
    starts = np.arange(0, len(pelvis) - args.window + 1, 8)
    start = int(starts[np.argmax([pelvis[s] - pelvis[s : s + args.window].min() for s in starts])])
    estimated = floor_without_points(whole["T_world_cpf"].astype(np.float64), 30.0, standing_eye_height(body))
    truth = data.window(clip, start, args.window)
    sampling = SamplingConfig(num_samples=1, seed=0, guidance=frozenset({"feet"}))
    print(f"{args.clip} frames {start}-{start + args.window - 1}: true pelvis height {pelvis[start]:.2f} -> "
          f"{pelvis[start:start + args.window].min():.2f} m; checkpoint {args.checkpoint}")
    print("| floor given | floor error (cm) | MPJPE (mm) | frames with a foot >3 cm below the true floor | deepest (cm) | "
          "skating share | pelvis height min-max (m) |")
    print("|---|---|---|---|---|---|---|")
    rows = (("true floor", 0.0), ("point cloud (true + 2 cm)", 0.02), (f"no point cloud ({estimated.method})", estimated.z))
    for label, floor_z in rows:
        path = args.out if label.startswith("no point cloud") else None
        result = predicted_and_true(data, args.clip, start, args.window, denoiser, body, sampling, floor_z, path)
        error = float(mpjpe(result.joints_world, truth["joints_world"])[0])
        standing = body.with_shape(torch.from_numpy(result.betas)).rest_joint_heights.double().numpy()
        figures = plausibility(result.joints_world, 0.0, standing, 30.0)
        print(f"| {label} | {100 * abs(floor_z):.1f} | {error:.1f} | {figures.penetration_share[0]:.2f} | "
              f"{100 * figures.deepest_penetration_m[0]:.1f} | {figures.skating_share[0]:.2f} | "
              f"{figures.pelvis_height_min_m[0]:.2f}-{figures.pelvis_height_max_m[0]:.2f} |")
    print(f"wrote {args.out} (truth grey, prediction blue; floor {estimated.method})")


if __name__ == "__main__":
    main()
