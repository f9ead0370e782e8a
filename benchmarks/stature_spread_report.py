"""Floor error, stature error and MPJPE over the stature spread, from `egoallo eval --stature-range` reports.

    egoallo eval --dataset DIR/dataset.h5 --out REPORTS --windows 128 --guidance feet \\
        --sources cmu cmu_daz reactidle --stature-range 1.50 1.95 --floor points|trajectory|stature
    python benchmarks/stature_spread_report.py REPORTS/*_statures-1.50-1.95_w128.json

Per report (one `--floor` row each): windows; MPJPE as the mean over activity groups next to the window mean;
floor and stature errors as median and 90th percentile over windows; then the medians per band of the wearer's
stature (each clip's drawn stature, `egoallo.evaluation.benchmark.drawn_stature`; reports run at the performers'
own statures are left out of this table), and MPJPE per activity.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from egoallo.evaluation.benchmark import drawn_stature

BANDS = ((1.50, 1.65), (1.65, 1.80), (1.80, 1.95))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reports", type=Path, nargs="+")
    args = parser.parse_args()
    loaded = [(path.stem, json.loads(path.read_text())) for path in args.reports]
    print("| report | windows | MPJPE (mm), mean over activities / over windows | floor error (cm), median / p90 "
          "| stature error (cm), median / p90 |")
    print("|---|---|---|---|---|")
    for name, report in loaded:
        rows = report["windows"]
        activities = report["summary"]["activities"]
        floor = np.array([r["metrics"]["floor_error_cm"] for r in rows])
        stature = np.array([r["metrics"]["stature_error_cm"] for r in rows])
        print(f"| {name} | {len(rows)} | {np.mean([a['mpjpe']['mean'] for a in activities.values()]):.1f} / "
              f"{report['summary']['all']['mpjpe']['mean']:.1f} | {np.median(floor):.1f} / {np.percentile(floor, 90):.1f} "
              f"| {np.median(stature):.1f} / {np.percentile(stature, 90):.1f} |")
    print("\n| report | " + " | ".join(f"{lo:.2f}-{hi:.2f} m: windows, floor / stature error median (cm), MPJPE (mm)"
                                        for lo, hi in BANDS) + " |")
    print("|---|" + "---|" * len(BANDS))
    for name, report in loaded:
        if report["meta"]["config"]["stature_range"] is None:
            continue  # the performers' own statures: no drawn stature per clip
        stature_range = tuple(report["meta"]["config"]["stature_range"])
        bands = defaultdict(list)
        for r in report["windows"]:
            s = drawn_stature(r["clip_id"], stature_range)
            band = next(i for i, (lo, hi) in enumerate(BANDS) if s <= hi or i == len(BANDS) - 1)
            bands[band].append((r["metrics"]["floor_error_cm"], r["metrics"]["stature_error_cm"], r["metrics"]["mpjpe"]))
        cells = []
        for i in range(len(BANDS)):
            b = np.array(bands[i]).reshape(-1, 3)
            cells.append(f"{len(b)}: {np.median(b[:, 0]):.1f} / {np.median(b[:, 1]):.1f}, {b[:, 2].mean():.1f}"
                         if len(b) else "—")
        print(f"| {name} | " + " | ".join(cells) + " |")
    names = sorted({a for _, report in loaded for a in report["summary"]["activities"]})
    print("\n| activity | windows | " + " | ".join(name for name, _ in loaded) + " |")
    print("|---|---|" + "---|" * len(loaded))
    for activity in names:
        stats = [report["summary"]["activities"].get(activity) for _, report in loaded]
        windows = next(s["windows"] for s in stats if s)
        print(f"| {activity} | {windows} | " + " | ".join(
            f"{s['mpjpe']['mean']:.1f} (floor {s['floor_error_cm']['mean']:.1f} cm)" if s else "—" for s in stats) + " |")


if __name__ == "__main__":
    main()
