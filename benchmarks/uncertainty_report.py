"""The consensus of several samples against one sample, and the calibration of the spread (docs/uncertainty.md).

For each consensus variant (`--variants KIND:GUIDED ...`, e.g. `mean:consensus`), every held-out window of
`--split` goes through `egoallo eval`'s path (`evaluation.benchmark.evaluate`, the floor a point cloud gives,
foot guidance) with `--samples` samples, and the same window with one sample. Printed per variant:
single-sample and consensus MPJPE (mean over activities, then over windows), per activity, the Spearman
correlation of spread and error over window x joint cells, the stated against observed coverage of the
spread's intervals (with the shipped `SPREAD_SCALE` and `INTERVAL_FACTORS`), and the scale that would make the
stated 90 % interval cover 90 % of the body-joint errors of this split (over every frame x joint cell), with
each other level's interval as a multiple of it:

    python benchmarks/uncertainty_report.py --dataset DIR/dataset.h5 --split val --window-step 2
    python benchmarks/uncertainty_report.py --dataset DIR/dataset.h5 --split test --variants mean:consensus

The scale and factors measured on the validation split are the ones `egoallo.consensus` ships.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402

from egoallo.body import BodyModel  # noqa: E402
from egoallo.consensus import INTERVAL_FACTORS, SPREAD_SCALE, STATED_LEVEL  # noqa: E402
from egoallo.evaluation.benchmark import (  # noqa: E402
    COVERAGE_LEVELS,
    EvalConfig,
    consensus_errors,
    diffusion_predictor,
    evaluate,
    summarize,
)
from egoallo.prior.checkpoint import checkpoint_and_sampling, load_denoiser  # noqa: E402


def recording(predict, cells: list):
    """`predict`, appending each window's `(error (T, 22), unscaled spread (T, 22))` of the consensus to `cells`."""

    def wrapped(trajectory, seed, window, floor_z):
        joints, stature, *extra = predict(trajectory, seed, window, floor_z)
        if extra:
            error, spread = consensus_errors(extra[0], window["joints_world"])
            cells.append((error, spread / SPREAD_SCALE))
        return (joints, stature, *extra)

    return wrapped


def calibration(cells: list) -> dict:
    """Over the cells' errors: the scale whose stated 90 % interval covers 90 % of them, each level's interval
    over the 90 % one (`INTERVAL_FACTORS`), and the coverage the shipped scale and factors give."""
    error = np.concatenate([e.ravel() for e, _ in cells])
    raw = np.concatenate([s.ravel() for _, s in cells])
    ratio = error / np.maximum(raw, 1e-9)
    scale = float(np.quantile(ratio, STATED_LEVEL))
    factors = {f"{p:g}": float(np.quantile(ratio, p)) / scale for p in COVERAGE_LEVELS}
    shipped = {f"{p:g}": float(np.mean(error <= SPREAD_SCALE * INTERVAL_FACTORS[p] * raw)) for p in COVERAGE_LEVELS}
    return {"scale": scale, "interval_factors": factors, "coverage_shipped": shipped, "cells": int(error.size)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--sources", nargs="+", default=["cmu", "cmu_daz", "reactidle"])
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--window", type=int, default=128)
    parser.add_argument("--window-step", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", nargs="+", default=["mean:consensus", "mean:samples", "mean:both", "medoid:samples"])
    parser.add_argument("--checkpoint", type=Path, help="model directory; default: what egoallo infer runs")
    parser.add_argument("--eta", type=float, help="DDIM eta (noise added back at each step); default: the checkpoint's")
    parser.add_argument("--out", type=Path, help="write everything printed as JSON here too")
    args = parser.parse_args()
    print(machine())
    body = BodyModel.load_from_env_or_default(None)
    checkpoint, steps, eta = checkpoint_and_sampling(args.checkpoint, None)
    eta = eta if args.eta is None else args.eta
    _, denoiser = load_denoiser(checkpoint)
    report = {"checkpoint": str(checkpoint), "eta": eta, "split": args.split, "sources": args.sources,
              "samples": args.samples, "window_step": args.window_step, "spread_scale_shipped": SPREAD_SCALE,
              "variants": {}}
    for variant in args.variants:
        kind, guided = variant.split(":")
        config = EvalConfig(window=args.window, samples=args.samples, num_steps=steps, eta=eta, seed=args.seed,
                            window_step=args.window_step, guidance=frozenset({"feet"}), floor="points",
                            consensus=kind, guided=guided)
        cells: list = []
        rows, skipped = evaluate(args.dataset, recording(diffusion_predictor(denoiser, body, config), cells), body,
                                 config, split=args.split, sources=tuple(args.sources), progress=False)
        summary = summarize(rows)
        mean, every = summary["activity_mean"], summary["all"]
        entry = {
            "windows": len(rows), "skipped": len(skipped), "activities": mean["activities"],
            "activity_mean": {m: mean[m]["mean"] for m in ("mpjpe_single", "mpjpe_consensus")},
            "window_mean": {m: every[m]["mean"] for m in ("mpjpe_single", "mpjpe_consensus")},
            "per_activity": {a: {m: s[m]["mean"] for m in ("mpjpe_single", "mpjpe_consensus")} | {"windows": s["windows"]}
                             for a, s in summary["activities"].items()},
            "spread": summary["spread"],
            "calibration": calibration(cells),
        }
        report["variants"][variant] = entry
        ratio = entry["activity_mean"]["mpjpe_consensus"] / entry["activity_mean"]["mpjpe_single"]
        print(f"\n## {variant}: {len(rows)} windows, {mean['activities']} activities ({len(skipped)} skipped)")
        print(f"MPJPE activity mean: single {entry['activity_mean']['mpjpe_single']:.1f} mm, consensus "
              f"{entry['activity_mean']['mpjpe_consensus']:.1f} mm ({ratio:.3f}x); window mean: single "
              f"{entry['window_mean']['mpjpe_single']:.1f}, consensus {entry['window_mean']['mpjpe_consensus']:.1f}")
        print("| activity | windows | single (mm) | consensus (mm) | ratio |\n|---|---|---|---|---|")
        for a, s in entry["per_activity"].items():
            print(f"| {a} | {s['windows']} | {s['mpjpe_single']:.1f} | {s['mpjpe_consensus']:.1f} | "
                  f"{s['mpjpe_consensus'] / s['mpjpe_single']:.3f} |")
        print(f"spread: Spearman {summary['spread']['spearman']:.3f} over {summary['spread']['cells']} window x joint "
              f"cells; stated -> observed (shipped scale {SPREAD_SCALE:g}): "
              + ", ".join(f"{float(k):.0%} -> {v:.1%}" for k, v in summary["spread"]["stated_vs_observed"].items()))
        c = entry["calibration"]
        print(f"over {c['cells']} frame x joint cells: stated -> observed with the shipped scale {SPREAD_SCALE:g}: "
              + ", ".join(f"{float(k):.0%} -> {v:.1%}" for k, v in c["coverage_shipped"].items()))
        print(f"calibrated on this split: scale {c['scale']:.3f}, interval factors "
              + ", ".join(f"{float(k):.0%}: {v:.3f}" for k, v in c["interval_factors"].items()))
        sys.stdout.flush()
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
