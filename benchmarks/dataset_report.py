"""Markdown tables of a built dataset: sources x splits, fit errors, and what the cleaning changed.

    python benchmarks/dataset_report.py --build DIR

Reads `DIR/dataset.h5` (the index) and the per-clip npz metadata in `DIR/clips`:
clips, hours and performers (styles for Bandai Namco) per source and split,
activities present on both sides of the split, mean fit error, frames
dropped after flips, glitch frames repaired, and the jitter the low-pass
filter removed.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from egoallo.data.dataset_build import read_index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", type=Path, required=True)
    args = parser.parse_args()
    index = read_index(args.build / "dataset.h5")

    print("| source | split | clips | hours | performers (styles for Bandai Namco) |")
    print("|---|---|---|---|---|")
    table: dict[tuple[str, str], list] = defaultdict(lambda: [0, 0.0, set()])
    for row in index:
        entry = table[(row["source"], row["split"])]
        entry[0] += 1
        entry[1] += row["num_frames"] / row["fps"] / 3600.0
        entry[2].add(row["performer"] or row["style"])
    order = {"train": 0, "val": 1, "test": 2}
    for (source, split), (clips, hours, who) in sorted(table.items(), key=lambda kv: (kv[0][0], order[kv[0][1]])):
        print(f"| {source} | {split} | {clips} | {hours:.2f} | {len(who)}: {', '.join(sorted(who))} |")

    sides: dict[str, dict[str, set]] = defaultdict(lambda: defaultdict(set))
    for row in index:
        side = "train" if row["split"] == "train" else "held out"
        sides[f"{row['source']}/{row['activity']}"][side].add(row["performer"] or row["style"])
    print("\n| activity | performers in train | held out |")
    print("|---|---|---|")
    for activity, by_side in sorted(sides.items()):
        if not activity.startswith("bandai"):
            print(f"| {activity} | {', '.join(sorted(by_side['train'])) or '-'} | {', '.join(sorted(by_side['held out'])) or '-'} |")

    print("\n| source | clips | mean fit error (mm) | after constant joint offsets (mm) | clips with flips | frames dropped after flips | glitch frames repaired | jitter removed, RMS (mm) |")
    print("|---|---|---|---|---|---|---|---|")
    stats: dict[str, list[dict]] = defaultdict(list)
    for path in sorted((args.build / "clips").rglob("*.npz")):
        with np.load(path) as npz:
            stats[path.parent.name].append(json.loads(npz["metadata"].item()))
    for source, metas in sorted(stats.items()):
        fits = [m["fit"] for m in metas if m.get("fit")]
        motion = [m["motion"] for m in metas]
        flips = [m["clean_frames"]["flip_frames"] for m in motion if "clean_frames" in m]
        dropped = sum(m.get("frames_dropped", 0) for m in motion)
        repaired = sum(m["clean_frames"]["repaired_frames"] for m in motion if "clean_frames" in m)
        jitter = [m["jitter_removed_rms_mm"] for m in motion if m.get("lowpass_hz")]
        print(f"| {source} | {len(metas)} | {np.mean([f['mean_error_mm'] for f in fits]):.1f} | "
              f"{np.mean([f['mean_marker_error_mm'] for f in fits]):.1f} | {sum(f > 0 for f in flips)} | {dropped} | {repaired} | "
              + (f"{np.mean(jitter):.2f} (max {np.max(jitter):.2f})" if jitter else "-") + " |")


if __name__ == "__main__":
    main()
