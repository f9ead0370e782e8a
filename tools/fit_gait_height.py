"""Fit the gait floor model on the train split and measure the floor without a point cloud on held-out clips.

    python tools/fit_gait_height.py --dataset DIR/dataset.h5 [--out src/egoallo/assets/gait_height.json]

Every clip is performed again by bodies of other statures (the body-shape
augmentation, `betas_with_stature`): `--statures` draws per clip, uniform over
1.50-1.95 m. Fit: the walking windows of train clips. Report, per split (val,
test) and group (held-out performers: CMU, CMU Daz, ReActIdle; held-out
styles of seen performers: Bandai Namco), each clip taken as one recording:
the floor error of the old rule (95th percentile head height minus the mean
body's standing eye height), of the gait model (the old rule where a clip has
no walking), and the stature each floor implies (the body whose standing eye
height is the 95th percentile head height above that floor), as median and
90th percentile of absolute errors in cm.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from egoallo.body import BodyModel
from egoallo.data.dataset import MotionDataset, betas_with_stature, reshape_window
from egoallo.inference import standing_eye_height
from egoallo.inputs.gait import GaitHeightModel, gait_windows

HELD_OUT_PERFORMERS = ("cmu", "cmu_daz", "reactidle")


def stature_for_eye_height(body: BodyModel, eye: float) -> float:
    """Stature of the body (moved along the stature direction from the mean) whose standing eye height is `eye`."""
    lo, hi = 1.2, 2.3
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        if standing_eye_height(body, betas_with_stature(body, np.zeros(body.num_betas), mid)) < eye:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def recordings(dataset: MotionDataset, body: BodyModel, draws: int, rng: np.random.Generator):
    """(clip index, betas, head positions (T, 3)) per clip and stature draw."""
    for i in range(len(dataset)):
        clip = dataset.window(i, 0, int(dataset.lengths[i]))
        for _ in range(draws):
            betas = betas_with_stature(body, clip["betas"], float(rng.uniform(1.50, 1.95)))
            shaped = reshape_window(clip, body, betas)
            yield i, betas, shaped["T_world_cpf"][:, :3, 3].astype(np.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=None, help="write the fitted model here (JSON)")
    parser.add_argument("--statures", type=int, default=3, help="stature draws per clip")
    args = parser.parse_args()
    torch.set_num_threads(1)
    body = BodyModel.load_default()
    rng = np.random.default_rng(0)

    train = MotionDataset(args.dataset, "train")
    windows, floors = [], []
    for _, _, head in recordings(train, body, args.statures, rng):
        found = gait_windows(head, 30.0)
        windows += found
        floors += [0.0] * len(found)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    model = GaitHeightModel.fit(
        windows, np.array(floors),
        provenance=f"tools/fit_gait_height.py --dataset {args.dataset.name} --statures {args.statures} at commit {commit}: "
                   f"{len(windows)} walking windows of the train split, statures 1.50-1.95 m",
    )
    print(f"fit on {len(windows)} walking windows of {len(train)} train clips x {args.statures} statures: "
          f"log height = {model.intercept:.3f} + {model.step_coef:.3f} log step + {model.bob_coef:.3f} log bob "
          f"(residual sd {model.residual_std:.3f})")
    if args.out:
        model.save(args.out)
        print(f"wrote {args.out}")

    mean_eye = standing_eye_height(body, np.zeros(body.num_betas))
    for split in ("val", "test"):
        dataset = MotionDataset(args.dataset, split)
        errors: dict[tuple[str, str], list] = defaultdict(list)
        for i, betas, head in recordings(dataset, body, args.statures, rng):
            source = dataset.groups[i].split("/")[0]
            group = "held-out performers" if source in HELD_OUT_PERFORMERS else "held-out styles (Bandai)"
            top = float(np.percentile(head[:, 2], 95))
            old = top - mean_eye
            gait = model.floor_z(gait_windows(head, 30.0))
            new = old if gait is None else gait
            true_stature = float(body.with_shape(torch.from_numpy(betas[: body.num_betas]).float()).stature)
            row = [100 * abs(old), 100 * abs(new), gait is not None,
                   100 * abs(stature_for_eye_height(body, top - old) - true_stature),
                   100 * abs(stature_for_eye_height(body, top - new) - true_stature)]
            for key in (group, f"{group}: {dataset.groups[i].split('/')[1]}", "all"):
                errors[(split, key)].append(row)
        print(f"\n{split} | recordings | with walking | floor err old rule median / p90 (cm) | floor err gait median / p90 | "
              "stature err old median / p90 | stature err gait median / p90")
        for (s, key), rows in sorted(errors.items()):
            r = np.array(rows, dtype=np.float64)
            cells = [f"{np.median(r[:, k]):.1f} / {np.percentile(r[:, k], 90):.1f}" for k in (0, 1, 3, 4)]
            print(f"{key} | {len(r)} | {int(r[:, 2].sum())} | " + " | ".join(cells))
    print(json.dumps({"windows": len(windows), "model": model.__dict__}))


if __name__ == "__main__":
    main()
