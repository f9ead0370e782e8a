"""What the foot-floor term of feet guidance does, on held-out windows.

Feet guidance with the floor term off (weight 0: skating only, as in the
paper), at its default weight and at a higher one, with the floor at its true
height; then with the floor given 5 cm too low and 5 cm too high (the network's
conditioning sees the same wrong floor), the term off and on. Same windows and
seeds in every row.

    python scripts/foot_floor_ablation.py --dataset DIR/dataset.h5 [--split val] [--window-step 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from egoallo.assets import DEFAULT_CHECKPOINT
from egoallo.body import BodyModel
from egoallo.evaluation.benchmark import EvalConfig, evaluate
from egoallo.guidance import GuidanceWeights
from egoallo.inference import SamplingConfig, estimate_body_motion
from egoallo.prior.checkpoint import load_denoiser


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--split", default="val")
    parser.add_argument("--window", type=int, default=128)
    parser.add_argument("--window-step", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    body = BodyModel.load_from_env_or_default(None)
    _, denoiser = load_denoiser(args.checkpoint)
    default = GuidanceWeights().foot_floor
    rows = [(0.0, 0.0), (0.0, default), (0.0, 100.0), (-0.05, 0.0), (-0.05, default), (0.05, 0.0), (0.05, default)]
    print(f"{args.checkpoint}, split {args.split}, {args.window}-frame windows, window step {args.window_step}, 1 sample, feet guidance\n")
    print("| floor given (m from true) | foot_floor weight | MPJPE (mm) | PA-MPJPE (mm) | foot contact | foot skate | s |")
    print("|---|---|---|---|---|---|---|")
    for floor_error, weight in rows:
        weights = dataclasses.replace(GuidanceWeights(), foot_floor=weight)
        sampling = SamplingConfig(guidance=frozenset({"feet"}), guidance_weights=weights)

        def predict(trajectory, seed, window, sampling=sampling, floor_error=floor_error):
            result = estimate_body_motion(trajectory, denoiser, body, floor_z=floor_error,
                                          config=dataclasses.replace(sampling, seed=seed))
            return result.joints_world, result.stature_m

        started = time.perf_counter()
        config = EvalConfig(window=args.window, window_step=args.window_step, guidance=sampling.guidance)
        results, _ = evaluate(args.dataset, predict, body, config, split=args.split, progress=False)
        values = {k: np.array([r.metrics[k] for r in results]) for k in ("mpjpe", "pa_mpjpe", "foot_contact", "foot_skate")}
        se = values["mpjpe"].std(ddof=1) / np.sqrt(len(results))
        print(f"| {floor_error:+.2f} | {weight:g} | {values['mpjpe'].mean():.1f} ± {se:.1f} | {values['pa_mpjpe'].mean():.1f} "
              f"| {values['foot_contact'].mean():.2f} | {values['foot_skate'].mean():.3f} | {time.perf_counter() - started:.0f} |",
              flush=True)
    print(f"\n{len(results)} windows")


if __name__ == "__main__":
    main()
