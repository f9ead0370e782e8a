"""BVH parsing and forward-kinematics speed on this CPU (a CMU-sized chain: 5,000 frames, 100 joints).

    python benchmarks/benchmark_bvh.py [--frames 5000] [--joints 100] [--repeats 5]

Prints the best and median wall time of `parse_bvh` and `forward_kinematics` over the repeats.
Speed is measured here, not asserted in the test suite (its result depends on the machine's load).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from egoallo.data.bvh import parse_bvh


def chain_bvh(num_joints: int, num_frames: int, seed: int = 0) -> str:
    """A BVH text of one `num_joints`-long chain with random rotations."""
    lines = ["HIERARCHY", "ROOT J0", "{", "OFFSET 0 0 0", "CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation"]
    for j in range(1, num_joints):
        lines += [f"JOINT J{j}", "{", "OFFSET 0 1 0", "CHANNELS 3 Zrotation Yrotation Xrotation"]
    lines += ["}"] * num_joints
    values = np.random.default_rng(seed).integers(-90, 90, (num_frames, 3 + 3 * num_joints))
    lines += ["MOTION", f"Frames: {num_frames}", "Frame Time: 0.016667"]
    lines += [" ".join(map(str, row)) for row in values.tolist()]
    return "\n".join(lines)


def timed(function, repeats: int) -> list[float]:
    """Wall times (s) of `repeats` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=5000)
    parser.add_argument("--joints", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    text = chain_bvh(args.joints, args.frames)
    bvh = parse_bvh(text)
    print(f"| step ({args.frames} frames, {args.joints} joints) | best (s) | median (s) |")
    print("|---|---:|---:|")
    for name, function in (("parse_bvh", lambda: parse_bvh(text)), ("forward_kinematics", bvh.forward_kinematics)):
        times = timed(function, args.repeats)
        print(f"| {name} | {min(times):.3f} | {statistics.median(times):.3f} |")


if __name__ == "__main__":
    main()
