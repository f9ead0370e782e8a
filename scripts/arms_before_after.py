"""The prior's arm habit before and after a retraining, on held-out walking windows.

    python scripts/arms_before_after.py --dataset DIR/dataset.h5 --before OLD_CKPT [--after NEW_CKPT]
        [--out docs/arms_before_after.png]

Arms are not observable from the head, so where the wrists go is the prior's
habit. For every 128-frame window of the test split's walking clips (held-out
performers and styles; `--activities` chooses them) this runs both checkpoints
the way `egoallo infer` would (no guidance, seed 0, the true floor: arms do
not depend on it) and prints, per source, the share of frames with a wrist
above its shoulder for the truth and for each checkpoint, and MPJPE. With
`--out` it draws one window (`--clip`, `--start`; by default the one where the
`before` checkpoint raises a wrist above its shoulder most often beyond the
truth): the truth (grey) beside each checkpoint's prediction (blue), before on
top, after below.
"""

from __future__ import annotations

import argparse
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from egoallo.assets import DEFAULT_CHECKPOINT
from egoallo.body import BodyModel
from egoallo.body.plausibility import wrist_above_shoulder
from egoallo.data.dataset import MotionDataset
from egoallo.evaluation.metrics import mpjpe
from egoallo.evaluation.pictures import predicted_and_true
from egoallo.inference import SamplingConfig
from egoallo.prior.checkpoint import load_denoiser


def walking_windows(data: MotionDataset, activities: tuple[str, ...], length: int) -> list[tuple[str, int]]:
    """`(clip_id, start)` of every non-overlapping `length`-frame window of the clips whose activity is in `activities`."""
    return [
        (clip_id, start)
        for clip_id, group, frames in zip(data.clip_ids, data.groups, data.lengths)
        if group.split("/", 1)[1] in activities
        for start in range(0, int(frames) - length + 1, length)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--split", default="test")
    parser.add_argument("--activities", nargs="+", default=["walk", "walk-back", "walk-left", "walk-right"])
    parser.add_argument("--window", type=int, default=128)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--clip", default=None, help="the window drawn (default: the one where `before` raises its arms most beyond the truth)")
    parser.add_argument("--start", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    body = BodyModel.load_default()
    data = MotionDataset(args.dataset, args.split)
    windows = walking_windows(data, tuple(args.activities), args.window)
    if not windows:
        raise SystemExit(f"{args.dataset}: no {args.window}-frame windows of {args.activities} in the {args.split} split")
    sampling = SamplingConfig(num_samples=1, seed=0, guidance=frozenset())
    checkpoints = {"before": load_denoiser(args.before)[1], "after": load_denoiser(args.after)[1]}

    raised: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    errors: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    excess = []
    for clip_id, start in windows:
        source = clip_id.split("/", 1)[0]
        truth = data.window(data.clip_ids.index(clip_id), start, args.window)["joints_world"]
        for key in (source, "all"):
            raised[key]["truth"].append(float(wrist_above_shoulder(truth).mean()))
        for name, denoiser in checkpoints.items():
            result = predicted_and_true(data, clip_id, start, args.window, denoiser, body, sampling, 0.0, None)
            for key in (source, "all"):
                raised[key][name].append(float(wrist_above_shoulder(result.joints_world[0]).mean()))
                errors[key][name].append(float(mpjpe(result.joints_world, truth)[0]))
        excess.append(raised["all"]["before"][-1] - raised["all"]["truth"][-1])

    print(f"{len(windows)} windows of {args.window} frames ({args.split} split, activities {' '.join(args.activities)}); "
          f"before {args.before}, after {args.after}")
    print("| source | windows | wrist above shoulder: truth | before | after | MPJPE before (mm) | after (mm) |")
    print("|---|---|---|---|---|---|---|")
    for key in sorted(raised, key=lambda k: (k == "all", k)):
        r, e = raised[key], errors[key]
        print(f"| {key} | {len(r['truth'])} | {np.mean(r['truth']):.2f} | {np.mean(r['before']):.2f} | "
              f"{np.mean(r['after']):.2f} | {np.mean(e['before']):.1f} | {np.mean(e['after']):.1f} |")

    if args.out is not None:
        clip_id, start = (args.clip, args.start) if args.clip else windows[int(np.argmax(excess))]
        with tempfile.TemporaryDirectory() as tmp:
            paths = [Path(tmp) / f"{name}.png" for name in checkpoints]
            for path, denoiser in zip(paths, checkpoints.values()):
                predicted_and_true(data, clip_id, start, args.window, denoiser, body, sampling, 0.0, path)
            images = [Image.open(p).convert("RGB") for p in paths]
            stacked = Image.new("RGB", (max(i.width for i in images), sum(i.height for i in images)), "white")
            for k, image in enumerate(images):
                stacked.paste(image, (0, sum(i.height for i in images[:k])))
            args.out.parent.mkdir(parents=True, exist_ok=True)
            tmp_out = args.out.with_name(f".{args.out.name}.tmp.png")
            stacked.save(tmp_out)
            tmp_out.replace(args.out)
        print(f"wrote {args.out}: {clip_id} frames {start}-{start + args.window - 1}, truth grey, prediction blue; "
              "before (top), after (bottom)")


if __name__ == "__main__":
    main()
