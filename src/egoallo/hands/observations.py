"""Detections of a recording as guidance observations: detect (cached), then align to a trajectory."""

from __future__ import annotations

import tempfile
from pathlib import Path

from egoallo.errors import UserError
from egoallo.observations import HandObservations
from egoallo.hands.detect import DetectionRun, detect_hands
from egoallo.inputs.calibration import load_rgb_camera
from egoallo.inputs.hands import load_hand_observations
from egoallo.inputs.trajectory import HeadTrajectory


def detected_hand_observations(
    vrs: Path, trajectory: HeadTrajectory, progress: bool = True
) -> tuple[HandObservations, dict, DetectionRun]:
    """Hands detected in the RGB stream of `vrs` (cached), at the trajectory's frames, seen by its RGB camera.

    Frames outside the trajectory are dropped and counted (a warning in `info`); none inside is a `UserError`.
    """
    run = detect_hands(vrs, progress=progress)
    with tempfile.TemporaryDirectory() as folder:
        path = run.cache_file or run.detections.save(Path(folder) / "hands.npz")
        observations, info = load_hand_observations(path, trajectory, load_rgb_camera(vrs))
    if not info["counts"]["matched"]:
        frames, times = run.detections.timestamps_ns, trajectory.timestamps_ns
        raise UserError(
            f"{vrs}: none of its {len(frames)} RGB frames ({frames[0] / 1e9:.3f}-{frames[-1] / 1e9:.3f} s) lies "
            f"within the trajectory ({times[0] / 1e9:.3f}-{times[-1] / 1e9:.3f} s); expected the same recording, "
            "with the trajectory on the device clock (as Aria MPS writes it)"
        )
    info = info | {"source": str(vrs), "cache_file": str(run.cache_file) if run.cache_file else None}
    return observations, info, run
