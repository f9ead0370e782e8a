"""Per-activity MPJPE of several checkpoints side by side, each averaged over its `egoallo eval` reports (seeds).

    python benchmarks/activity_table.py "shipped=reports/shipped/performers_seed*/egoallo+feet_w128.json" \
        "new=reports/new/performers_seed*/egoallo+feet_w128.json" [--before shipped]

Each argument is LABEL=GLOB; the reports a glob matches are averaged (each activity group's mean, the mean over
activity groups and the mean over windows, each first taken per report). Prints a markdown table: a row per
activity group with its window count, then the mean over activity groups, the mean over windows and the share of
frames with a wrist above its shoulder. With `--before LABEL`, every other column also shows its change against
that one, and the activities more than 10 mm worse are listed.
"""

from __future__ import annotations

import argparse
import glob
import json
from pathlib import Path

import numpy as np

WORSE_MM = 10.0


def load(pattern: str) -> list[dict]:
    paths = sorted(glob.glob(pattern))
    if not paths:
        raise SystemExit(f"no report matches {pattern}")
    return [json.loads(Path(p).read_text())["summary"] for p in paths]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("columns", nargs="+", help="LABEL=GLOB of report JSON files")
    parser.add_argument("--before", help="the label the others are compared with")
    args = parser.parse_args()
    columns = dict(c.split("=", 1) for c in args.columns)
    summaries = {label: load(pattern) for label, pattern in columns.items()}
    first = next(iter(summaries.values()))[0]
    activities = list(first["activities"])

    def mean(label: str, of) -> float:
        return float(np.mean([of(s) for s in summaries[label]]))

    rows = [(a, f"{first['activities'][a]['windows']}", lambda s, a=a: s["activities"][a]["mpjpe"]["mean"])
            for a in activities]
    rows += [("**mean over activity groups**", f"{first['activity_mean']['activities']} groups",
              lambda s: s["activity_mean"]["mpjpe"]["mean"]),
             ("mean over windows", f"{first['all']['windows']}", lambda s: s["all"]["mpjpe"]["mean"])]
    print("| activity | windows | " + " | ".join(f"{k} ({len(v)} report{'s' * (len(v) > 1)})"
                                             for k, v in summaries.items()) + " |")
    print("|---|---|" + "---|" * len(summaries))
    worse: dict[str, list[str]] = {label: [] for label in summaries}
    for name, windows, of in rows:
        cells = []
        for label in summaries:
            value = mean(label, of)
            cell = f"{value:.1f}"
            if args.before and label != args.before:
                change = value - mean(args.before, of)
                cell += f" ({change:+.1f})"
                if change > WORSE_MM and name in activities:
                    worse[label].append(f"{name} {change:+.1f}")
            cells.append(cell)
        print(f"| {name} | {windows} | " + " | ".join(cells) + " |")
    print("| wrist above shoulder (share of frames) | | " + " | ".join(
        f"{mean(label, lambda s: s['all']['wrist_above_shoulder']['mean']):.3f}" for label in summaries) + " |")
    print("\nmean over activity groups per report: " + "; ".join(
        f"{label} " + ", ".join(f"{s['activity_mean']['mpjpe']['mean']:.1f}" for s in reps)
        for label, reps in summaries.items()))
    if args.before:
        for label, items in worse.items():
            if label != args.before:
                print(f"{label}: more than {WORSE_MM:g} mm worse than {args.before}: {', '.join(items) or 'none'}")


if __name__ == "__main__":
    main()
