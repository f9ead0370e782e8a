"""What a finished run tells its user in a few lines: plausibility figures out of range, the frames each
guidance term acted on, how the floor was placed, and what to do next with the file.

Pure functions of a result's metadata (and its contacts): `egoallo infer` and `egoallo live` print them, a
notebook can call them on any `InferenceResult`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

PLAUSIBLE_RANGES: dict[str, tuple[float, float, str]] = {
    "penetration_share": (0.0, 0.05, "share of frames with a foot more than 3 cm below the floor"),
    "deepest_penetration_m": (0.0, 0.10, "deepest foot below the floor (m)"),
    "pelvis_height_min_m": (0.15, 1.3, "lowest pelvis height over the floor (m)"),
    "pelvis_height_max_m": (0.3, 1.5, "highest pelvis height over the floor (m)"),
    "largest_jump_m": (0.0, 0.5, "largest joint move between two frames (m)"),
}  # fmt: skip
"""The figures of `metadata["plausibility"]` that say a body is wrong when outside (low, high): feet in the
floor, a pelvis under the floor or floating (a standing pelvis is 0.8-1.1 m up, a sitting one 0.4-0.6 m),
a pop between frames (a run at 3-6 m/s moves a joint 0.1-0.2 m per frame at 30 fps)."""
CONTACT_THRESHOLD = 0.5
"""A foot joint's contact value above this counts as in contact (as the guidance weighs it)."""


def plausibility_warning(figures: dict[str, list[float]]) -> str | None:
    """One line naming every figure of `metadata["plausibility"]` outside `PLAUSIBLE_RANGES` (any sample)."""
    found = []
    for name, (low, high, what) in PLAUSIBLE_RANGES.items():
        values = [v for v in figures.get(name, []) if v is not None]
        out = [v for v in values if not low <= v <= high]
        if out:
            worst = max(out, key=lambda v: max(low - v, v - high))
            found.append(f"{what} {worst:.3g} (expected {low:g}-{high:g})")
    if not found:
        return None
    return ("the body looks implausible: " + "; ".join(found)
            + ' (metadata["plausibility"]): check the floor (--points, --floor-z) and the up axis')


def guidance_reach(metadata: dict[str, Any], modes: Iterable[str], contacts: np.ndarray, frames: int) -> str | None:
    """One line: on how many of the `frames` each guidance term in `modes` acted, from the observations'
    counts in the metadata (every segment's) and the predicted foot `contacts` (S, T, 21)."""
    modes = set(modes) - {"off"}
    if not modes:
        return None
    reach: dict[str, tuple[int, ...]] = {}
    if "feet" in modes:
        from .body.plausibility import FOOT_JOINTS

        feet = contacts[:, :, [j - 1 for j in FOOT_JOINTS]] > CONTACT_THRESHOLD  # joint j is contact j-1 (no root)
        reach["feet"] = (int(feet.any(axis=-1).any(axis=0).sum()),)
    entries = metadata.get("segments") or [metadata]
    if "wrist3d" in modes:
        reach["wrist3d"] = tuple(
            sum(((e.get("wrist_palm") or {}).get("hands") or {}).get(side, {}).get("frames_valid", 0) for e in entries)
            for side in ("left", "right"))
    if "hands" in modes:
        reach["hands"] = tuple(sum(((e.get("hands") or {}).get("counts") or {}).get(f"frames_{side}", 0) for e in entries)
                               for side in ("left", "right"))
    parts = [f"feet on {n[0]} of {frames} frames (a foot in predicted contact)" if term == "feet"
             else f"{term} on {n[0]} (left) and {n[1]} (right) of {frames} frames" for term, n in reach.items()]
    idle = [term for term, n in reach.items() if not any(n)]
    return "guidance acted: " + "; ".join(parts) + (
        f" ({', '.join(idle)}: nothing to act on, only the prior shaped it)" if idle else "")


def floor_note(method: str, eye_height: float, points: Path | str | None) -> str | None:
    """The note after a run whose floor came from the head trajectory: why, and what gives the true floor."""
    if method != "trajectory":
        return None
    why = (f"{points} showed no floor under the head (see the warning above)" if points is not None
           else "no point cloud, --floor-z or --stature")
    return (f"{why}: the floor was put an average standing eye height ({eye_height:.2f} m) under the head's usual "
            "top height, so it is off by about as much as the wearer's eye height differs from that (about 9 cm "
            "per 10 cm of stature; docs/everyday.md); --points with a visible floor or --floor-z give the true floor, "
            "--stature METRES (the wearer's height) the eye height")


def next_steps(out: Path | str) -> str:
    """One line naming the commands that show or convert the result file `out`."""
    stem = Path(out).with_suffix("")
    return (f"next: egoallo render {out} --out {stem}.gif | egoallo view {out} | "
            f"egoallo export {out} --to glb --out {stem}.glb")
