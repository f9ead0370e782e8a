"""Hands on held-out motion, after the paper's Table 3: hand-joint error with and without hand observations.

    python benchmarks/hands_table3.py --dataset DIR/dataset.h5 [--windows 12] [--seed 0] [--threads 1]

Test windows of 128 frames in which the true hands enter the real Aria RGB camera's view
(factory calibration and `T_cpf_camera` of `../shared/aria/aea_recording_rgb8frames.vrs`,
placed on the true CPF trajectory) are spread over sources and activities. A synthetic
detector sees the true 21 landmarks per hand (`egoallo.guidance.hands`: joints plus fingertip
points) where at least half of them are visible, keeps the visible ones, adds Gaussian pixel
noise and misses a fraction of hand-frames; its 3D keypoints are the true wrist-relative hand
shape with Gaussian noise, scaled by a per-hand, per-window size error (a monocular detector's
metric scale is a learned guess, and placing the hand in depth turns a size error into a depth
error of the same proportion). Everything is seeded per window. Compared, on the 32 hand joints
(wrists and 30 finger joints) against ground truth: the shipped prior without observations,
the detector's 3D keypoints placed on its 2D ones, the prior guided by 2D keypoints, by 2D + 3D
keypoints, and by exact Aria wrist and palm poses. Prints markdown tables.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from egoallo.assets import DEFAULT_CHECKPOINT
from egoallo.body import BodyModel
from egoallo.data.dataset import MotionDataset
from egoallo.evaluation.benchmark import test_windows
from egoallo.geometry import se3
from egoallo.guidance import wrist_observations
from egoallo.observations import HandObservations, Observations
from egoallo.guidance.hands import (
    LANDMARK_JOINTS,
    NUM_LANDMARKS,
    TIP_LANDMARKS,
    landmark_offsets,
    place_keypoints,
)
from egoallo.inference import SamplingConfig, estimate_body_motion
from egoallo.cameras import CameraModel
from egoallo.inputs.calibration import load_rgb_camera
from egoallo.inputs.trajectory import HeadTrajectory
from egoallo.prior.checkpoint import load_denoiser
from egoallo.prior.network import EgoDenoiser
from egoallo.prior.state import MotionState
from _common import SHARED, machine

F64 = torch.float64
WINDOW = 128
JOINT_LANDMARKS = [i for i in range(NUM_LANDMARKS) if i not in TIP_LANDMARKS]
"""The 16 landmarks per hand that sit on a joint: wrist, thumb1-3, and finger1-3 of the other four."""
HAND_JOINTS = [[LANDMARK_JOINTS[h][i] for i in JOINT_LANDMARKS] for h in range(2)]
"""(2, 16) left: wrist 20 and joints 22-36; right: wrist 21 and joints 37-51."""
METHODS = (
    "EgoAllo, no hand observations",
    "detector alone (3D keypoints placed on 2D)",
    "EgoAllo + 2D keypoints",
    "EgoAllo + 2D + 3D keypoints",
    "EgoAllo + Aria wrist/palm (Wrist3D, exact)",
)
COLUMNS = ("hands_seen", "hands_all", "wrists_seen", "wrists_all")


@dataclasses.dataclass(frozen=True)
class Detector:
    """How the synthetic detector sees the true landmarks."""

    pixel_noise: float = 3.0
    """Gaussian pixel noise per coordinate."""
    missed: float = 0.1
    """Fraction of frames it misses (both hands)."""
    shape_noise_m: float = 0.005
    """Gaussian noise per coordinate of the wrist-relative 3D keypoints, metres."""
    size_error: float = 0.15
    """Standard deviation of the log of the hand's scale error (per hand, per window)."""
    min_visible: int = 11
    """A hand is detected when at least this many of its 21 landmarks are visible."""


@dataclasses.dataclass(frozen=True)
class Window:
    clip_id: str
    source: str
    activity: str
    seed: int
    trajectory: HeadTrajectory
    truth: MotionState
    """(1, T, ...) the true rotations and shape."""
    joints: Tensor
    """(T, 52, 3) true joints in the world."""
    landmarks: Tensor
    """(T, 2, 21, 3) true landmarks in the RGB camera frame."""


@dataclasses.dataclass(frozen=True)
class WindowResult:
    window: Window
    errors: dict[str, dict[str, float]]
    """Method -> column (`COLUMNS`) -> error in mm (NaN: not defined)."""
    seen: int
    """Hand-frames the detector saw (of 2 x 128)."""
    failed_placements: int
    """Seen hand-frames whose 3D keypoints could not be placed on the 2D ones."""


@dataclasses.dataclass(frozen=True)
class Detections:
    keypoints_2d: Tensor
    """(T, 2, 21, 2) noisy pixels of the visible landmarks; NaN elsewhere."""
    keypoints_3d: Tensor
    """(T, 2, 21, 3) noisy wrist-relative landmarks in camera axes (row 0 zero); NaN where the hand is not seen."""
    seen: Tensor
    """(T, 2) bool: the hand was detected."""


def true_landmarks(body: BodyModel, camera: CameraModel, w: dict[str, np.ndarray]) -> tuple[Tensor, MotionState]:
    """Landmarks (T, 2, 21, 3) in the camera frame of a dataset window, and its `MotionState` (1, T, ...)."""
    T = w["T_world_root"].shape[0]
    betas = torch.from_numpy(w["betas"][: body.num_betas]).to(F64)
    truth = MotionState(
        betas=betas.expand(1, T, -1),
        body_rotations=torch.from_numpy(w["body_rotations"]).to(F64)[None],
        contacts=torch.zeros(1, T, 21, dtype=F64),
        hand_rotations=torch.from_numpy(w["hand_rotations"]).to(F64)[None],
    )
    shaped = body.with_shape(betas)
    posed = shaped.with_pose(torch.from_numpy(w["T_world_root"]).to(F64), truth.local_rotations[0])
    Ts = posed.Ts_world_joint[:, list(LANDMARK_JOINTS[0] + LANDMARK_JOINTS[1])]  # (T, 42, 4, 4)
    world = Ts[..., :3, 3] + (Ts[..., :3, :3] @ landmark_offsets(shaped).flatten(0, 1)[..., None])[..., 0]
    T_camera_world = se3.inverse(torch.from_numpy(w["T_world_cpf"]).to(F64) @ camera.T_cpf_camera)
    points = (T_camera_world[:, None, :3, :3] @ world[..., None])[..., 0] + T_camera_world[:, None, :3, 3]
    return points.unflatten(1, (2, NUM_LANDMARKS)), truth


def in_view(camera: CameraModel, landmarks: Tensor, detector: Detector) -> tuple[Tensor, Tensor]:
    """Visible landmarks (T, 2, 21) and hands with at least `min_visible` of them (T, 2)."""
    visible = camera.visible(landmarks)
    return visible, visible.sum(dim=-1) >= detector.min_visible


def pick_windows(
    dataset: MotionDataset, body: BodyModel, camera: CameraModel, count: int, seed: int, detector: Detector
) -> tuple[list[tuple[int, int]], dict[tuple[str, str], int]]:
    """`count` windows whose hands are in view in >= 10 % of hand-frames, round-robin over sources, then activities.

    Returns (clip, start) pairs and the number of candidate windows per (source, activity).
    """
    groups: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    for clip, start in test_windows(dataset, WINDOW):
        landmarks, _ = true_landmarks(body, camera, dataset.window(clip, start, WINDOW))
        if in_view(camera, landmarks, detector)[1].double().mean() >= 0.1:
            info = dataset.info(clip)
            groups[(info.source, info.activity)].append((clip, start))
    rng = np.random.default_rng(seed)
    names = sorted(groups)
    rank = {name: sum(other[0] == name[0] for other in names[:i]) for i, name in enumerate(names)}
    names.sort(key=lambda name: (rank[name], name[0]))  # sources take turns
    queues = [[groups[name][i] for i in rng.permutation(len(groups[name]))] for name in names]
    picked = []
    while len(picked) < count and any(queues):
        picked += [queue.pop() for queue in queues if queue][: count - len(picked)]
    return picked, {name: len(members) for name, members in sorted(groups.items())}


def load_window(dataset: MotionDataset, clip: int, start: int, body: BodyModel, camera: CameraModel, seed: int) -> Window:
    w = dataset.window(clip, start, WINDOW)
    info = dataset.info(clip)
    timestamps = np.round(np.arange(WINDOW) * 1e9 / 30.0).astype(np.int64)
    trajectory = HeadTrajectory(timestamps, w["T_world_cpf"].astype(np.float64), info.clip_id, {}, np.eye(3))
    landmarks, truth = true_landmarks(body, camera, w)
    # The seed depends on the window (as in `egoallo eval`), not on its place in the list.
    return Window(info.clip_id, info.source, info.activity, seed + 100_003 * clip + start, trajectory, truth,
                  torch.from_numpy(w["joints_world"]).to(F64), landmarks)


def detect(window: Window, camera: CameraModel, detector: Detector) -> Detections:
    """What the synthetic detector reports for the window (seeded by the window)."""
    g = torch.Generator().manual_seed(window.seed)
    visible, hand = in_view(camera, window.landmarks, detector)
    seen = hand & (torch.rand(hand.shape[0], 1, generator=g, dtype=F64) >= detector.missed)
    pixels = camera.project(window.landmarks)
    pixels = pixels + detector.pixel_noise * torch.randn(pixels.shape, generator=g, dtype=F64)
    keypoints_2d = torch.where((visible & seen[..., None])[..., None], pixels, torch.nan)
    shape = window.landmarks + detector.shape_noise_m * torch.randn(window.landmarks.shape, generator=g, dtype=F64)
    scale = torch.exp(detector.size_error * torch.randn(1, 2, 1, 1, generator=g, dtype=F64))
    shape = scale * (shape - shape[:, :, :1])
    keypoints_3d = torch.where(seen[..., None, None], shape, torch.nan)
    return Detections(keypoints_2d, keypoints_3d, seen)


def placed_keypoints(camera: CameraModel, detections: Detections) -> Tensor:
    """(T, 2, 21, 3) the 3D keypoints moved onto the 2D ones, as the hands cost does (NaN where unseen or failed)."""
    seen = detections.seen
    pixels = detections.keypoints_2d[seen]
    used = pixels.isfinite().all(dim=-1) & camera.in_image(torch.nan_to_num(pixels))
    translation, ok = place_keypoints(camera, detections.keypoints_3d[seen], torch.nan_to_num(pixels), used.to(F64))
    out = torch.full_like(detections.keypoints_3d, torch.nan)
    out[seen] = torch.where(ok[:, None, None], detections.keypoints_3d[seen] + translation[:, None], torch.nan)
    return out


def hand_errors(joints: Tensor, truth: Tensor, seen: Tensor) -> dict[str, float]:
    """Errors (mm) of `joints (T, 2, 16, 3)` against `truth`: all 16 per hand and wrists, where seen and overall.

    NaN joints (a failed placement) are left out.
    """
    error = 1000.0 * (joints - truth).norm(dim=-1)  # (T, 2, 16)
    return {
        "hands_seen": float(error[seen].nanmean()),
        "hands_all": float(error.nanmean()),
        "wrists_seen": float(error[..., 0][seen].nanmean()),
        "wrists_all": float(error[..., 0].nanmean()),
    }


def per_hand(joints: Tensor) -> Tensor:
    """(T, 2, 16, 3) the hand joints of `joints (T, 52, 3)`."""
    return torch.stack([joints[:, HAND_JOINTS[0]], joints[:, HAND_JOINTS[1]]], dim=1)


def egoallo(window: Window, denoiser: EgoDenoiser, body: BodyModel, mode: frozenset[str], observations: Observations) -> Tensor:
    """(T, 52, 3) one sample of `estimate_body_motion` (floor at z = 0) with post guidance `mode`."""
    config = SamplingConfig(num_samples=1, seed=window.seed, guidance=mode)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="hands: ignored")  # noisy keypoints pushed off the image
        result = estimate_body_motion(window.trajectory, denoiser, body, floor_z=0.0, config=config, observations=observations)
    return torch.from_numpy(result.joints_world[0]).to(F64)


def evaluate(window: Window, denoiser: EgoDenoiser, body: BodyModel, camera: CameraModel, detector: Detector) -> WindowResult:
    """Errors of every method on one window."""
    detections = detect(window, camera, detector)
    truth = per_hand(window.joints)
    T_world_cpf = torch.tensor(window.trajectory.T_world_cpf)
    T_world_camera = T_world_cpf @ camera.T_cpf_camera
    placed = placed_keypoints(camera, detections)[:, :, JOINT_LANDMARKS]
    placed_world = (T_world_camera[:, None, None, :3, :3] @ placed[..., None])[..., 0] + T_world_camera[:, None, None, :3, 3]
    hands_2d = HandObservations(camera, keypoints_2d=detections.keypoints_2d)
    hands_3d = dataclasses.replace(hands_2d, keypoints_3d_camera=detections.keypoints_3d)
    wrists = wrist_observations(body.to(dtype=F64), window.truth, T_world_cpf)
    runs = {
        METHODS[0]: (frozenset(), Observations()),
        METHODS[2]: (frozenset({"hands"}), Observations(hands=hands_2d)),
        METHODS[3]: (frozenset({"hands"}), Observations(hands=hands_3d)),
        METHODS[4]: (frozenset({"wrist3d"}), Observations(wrist3d=wrists)),
    }
    errors = {name: hand_errors(per_hand(egoallo(window, denoiser, body, *run)), truth, detections.seen) for name, run in runs.items()}
    alone = hand_errors(placed_world, truth, detections.seen)
    errors[METHODS[1]] = {k: v if k.endswith("seen") else math.nan for k, v in alone.items()}
    failed = int(placed[detections.seen].isnan().any(dim=-1).any(dim=-1).sum())
    return WindowResult(window, errors, int(detections.seen.sum()), failed)


def mean_and_error(values: list[float]) -> str:
    v = np.asarray(values)
    if np.isnan(v).any():
        return "—"
    return f"{v.mean():.1f} ± {v.std(ddof=1) / math.sqrt(len(v)):.1f}" if len(v) > 1 else f"{v.mean():.1f}"


def print_tables(results: list[WindowResult]) -> None:
    print(f"\n### Hand joints (wrists + 30 finger joints) and wrists, mm; mean ± standard error over {len(results)} windows\n")
    print("| method | hand joints, hand seen | hand joints, all frames | wrists, hand seen | wrists, all frames |")
    print("|---|---|---|---|---|")
    for name in METHODS:
        print(f"| {name} | " + " | ".join(mean_and_error([r.errors[name][c] for r in results]) for c in COLUMNS) + " |")
    seen = mean_and_error([100.0 * r.seen / (2 * WINDOW) for r in results])
    failed, total = sum(r.failed_placements for r in results), sum(r.seen for r in results)
    print(f"\nHand-frames seen by the detector: {seen} % per window ({total} in all); "
          f"3D keypoints that could not be placed on the 2D ones: {failed} of them.")
    sources = sorted({r.window.source for r in results})
    print("\n### Hand joints where the hand is seen (mm), by source (windows)\n")
    print("| method | " + " | ".join(f"{s} ({sum(r.window.source == s for r in results)})" for s in sources) + " |")
    print("|---|" + "---|" * len(sources))
    for name in METHODS:
        cells = [mean_and_error([r.errors[name]["hands_seen"] for r in results if r.window.source == s]) for s in sources]
        print(f"| {name} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True, help="dataset.h5 from `egoallo data build`")
    parser.add_argument("--windows", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    body = BodyModel.load_default()
    camera = load_rgb_camera(SHARED / "aria" / "aea_recording_rgb8frames.vrs")
    _, denoiser = load_denoiser(DEFAULT_CHECKPOINT)
    detector = Detector()
    dataset = MotionDataset(args.dataset, "test")
    picked, candidates = pick_windows(dataset, body.to(dtype=F64), camera, args.windows, args.seed, detector)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {machine()}; {detector}")
    listed = ", ".join(f"{source} {activity} {n}" for (source, activity), n in candidates.items())
    print(f"{sum(candidates.values())} of {len(test_windows(dataset, WINDOW))} test windows have the hands in view in "
          f">= 10 % of hand-frames ({listed}); using {len(picked)}:")
    results = []
    for clip, start in picked:
        result = evaluate(load_window(dataset, clip, start, body.to(dtype=F64), camera, args.seed), denoiser, body, camera, detector)
        results.append(result)
        errors = ", ".join(f"{result.errors[m]['hands_seen']:.0f}" for m in METHODS)
        print(f"- {result.window.clip_id} @ {start} ({result.window.activity}): hands seen in "
              f"{100.0 * result.seen / (2 * WINDOW):.0f} % of hand-frames; hand joints there {errors} mm", flush=True)
    print_tables(results)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
