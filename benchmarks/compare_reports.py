"""Paired comparison of two `egoallo eval` reports on the windows they share.

    python benchmarks/compare_reports.py reports/egoallo_w128.json "reports/egoallo+feet_w128.json"
"""

import argparse
import json

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("before")
    parser.add_argument("after")
    args = parser.parse_args()
    load = lambda path: {(w["clip_id"], w["start"]): w["metrics"] for w in json.load(open(path))["windows"]}  # noqa: E731
    before, after = load(args.before), load(args.after)
    shared = sorted(before.keys() & after.keys())
    print(f"{len(shared)} shared windows\n")
    print("| metric | before | after | change |")
    print("|---|---|---|---|")
    for metric in after[shared[0]]:
        x = np.array([before[k][metric] for k in shared])
        y = np.array([after[k][metric] for k in shared])
        change = f"{100 * (y.mean() - x.mean()) / x.mean():+.1f} %" if x.mean() else "—"
        print(f"| {metric} | {x.mean():.4g} | {y.mean():.4g} | {change} |")


if __name__ == "__main__":
    main()
