"""Retarget a few clips per motion-capture source and draw source skeleton vs fitted body.

    python benchmarks/retarget_report.py --clips-per-source 5 --out-dir docs
    python benchmarks/retarget_report.py --sources cmu_daz --activity sit --clips-per-source 3

Prints the per-source mean joint error (raw: source joint to body joint; and
after the per-clip constant joint offsets) and writes `retarget_<source>.png`.
The full-dataset numbers come from `egoallo data build` (summary.json).
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np
import torch

from egoallo.body import BodyModel, skeleton
from egoallo.data.bvh import parse_bvh
from egoallo.data.retarget import retarget
from egoallo.data.sources import ARCHIVE_SOURCES, archive_path, iter_archive_clips
from egoallo.viz.render import View, render_meshes


def skeleton_lines(targets: np.ndarray, mapped: np.ndarray) -> list[np.ndarray]:
    """Polylines joining each mapped joint to its nearest mapped ancestor. `targets (M, 3)`."""
    slot = {int(j): m for m, j in enumerate(mapped)}
    lines = []
    for j in slot:
        parent = skeleton.PARENTS[j]
        while parent >= 0 and parent not in slot:
            parent = skeleton.PARENTS[parent]
        if parent >= 0:
            lines.append(np.stack([targets[slot[parent]], targets[slot[j]]]))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips-per-source", type=int, default=5)
    parser.add_argument("--out-dir", type=Path, default=Path("docs"))
    parser.add_argument("--sources", nargs="+", default=list(ARCHIVE_SOURCES), choices=ARCHIVE_SOURCES)
    parser.add_argument("--activity", default=None, help="only clips of this activity (e.g. sit)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = BodyModel.load_default()
    for source in args.sources:
        errors, marker_errors, frames, seconds = [], [], 0, 0.0
        first = None
        clips = (c for c in iter_archive_clips(archive_path(source)) if args.activity in (None, c[0].activity))
        for info, text in itertools.islice(clips, args.clips_per_source):
            start = time.perf_counter()
            result = retarget(parse_bvh(text, source=info.clip_id), model)
            seconds += time.perf_counter() - start
            frames += result.motion.num_frames
            errors.append(result.mean_error_mm)
            marker_errors.append(float(result.marker_errors_mm.mean()))
            first = first or (info, result)
        print(
            f"{source}: {len(errors)} clips, {frames} frames, joint error {np.mean(errors):.1f} mm "
            f"(after constant joint offsets {np.mean(marker_errors):.1f} mm), {1000 * seconds / frames:.1f} ms/frame"
        )
        info, result = first
        t = result.motion.num_frames // 2
        posed = result.motion.posed(model)
        vertices = posed.mesh().vertices[t].numpy()
        targets = result.target_positions[t]
        lines = [(line, "#d62728") for line in skeleton_lines(targets, result.mapped_joints)]
        title = f"{info.clip_id}, frame {t}: source (red) vs body ({result.mean_error_mm:.0f} mm)"
        views = [View(azimuth, 10.0, title if i == 0 else "") for i, azimuth in enumerate((0.0, 90.0))]
        # Face the camera: rotate the scene so the body's forward (-y at rest) looks at the viewer.
        heading = np.arctan2(*(posed.Ts_world_joint[t, 0, :2, 2].numpy()[::-1]))
        c, s = np.cos(-heading - np.pi / 2), np.sin(-heading - np.pi / 2)
        R = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        centre = vertices.mean(0) * [1, 1, 0]
        out = render_meshes(
            args.out_dir / f"retarget_{source}.png",
            [((vertices - centre) @ R.T, model.faces.numpy())],
            views,
            colors=["#b9cde3"],
            lines=[((line - centre) @ R.T, color) for line, color in lines],
        )
        print(f"  wrote {out}")


if __name__ == "__main__":
    main()
