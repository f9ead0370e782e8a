"""Held-out evaluation: windows of test clips through the inference path, the paper's metrics.

Each test clip of a built `dataset.h5` is cut into consecutive windows of
`window` frames; every window is one input sequence (its true head trajectory,
the floor at z = 0 as a SLAM point cloud would give it), sampled `samples`
times with fixed seeds through `estimate_body_motion` — the code path of
`egoallo infer`. Metrics are averaged per window, then reported as mean ±
standard error over windows, overall and per activity.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..body import BodyModel
from ..data.dataset import MotionDataset
from ..inference import SamplingConfig, estimate_body_motion
from ..inputs.trajectory import HeadTrajectory
from ..guidance import Observations, wrist_observations
from ..prior.network import EgoDenoiser
from ..prior.state import MotionState
from .metrics import body_metrics, stature_error_cm

METRICS = ("mpjpe", "pa_mpjpe", "pa_mpjpe_reference", "T_head", "foot_contact", "foot_skate", "wrist_error_mm", "stature_error_cm")
WRISTS = [20, 21]
UNITS = {"mpjpe": "mm", "pa_mpjpe": "mm", "pa_mpjpe_reference": "mm", "wrist_error_mm": "mm", "T_head": "m", "foot_contact": "", "foot_skate": "", "stature_error_cm": "cm"}


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    window: int = 128
    samples: int = 1
    num_steps: int = 30
    seed: int = 0
    max_windows: int | None = None
    """Evaluate only the first N windows (in clip order), for quick checks."""
    window_step: int = 1
    """Evaluate every N-th window (in clip order): a cheaper run over all clips and activities."""
    guidance: frozenset[str] = frozenset()
    """Guidance modes after sampling; "wrist3d" observes the true wrists and palms exactly."""


@dataclasses.dataclass(frozen=True)
class WindowResult:
    clip_id: str
    activity: str
    start: int
    metrics: dict[str, float]


def test_windows(dataset: MotionDataset, window: int) -> list[tuple[int, int]]:
    """(clip index, start frame) of consecutive full windows in every clip (shorter clips are skipped)."""
    return [(i, s) for i, n in enumerate(dataset.lengths) for s in range(0, int(n) - window + 1, window)]


Predictor = Callable[[HeadTrajectory, int, dict], tuple[np.ndarray, np.ndarray]]
"""`predict(trajectory (z-up, floor at 0), seed, window) -> (joints_world (S, T, 52, 3), stature_m (S,))`;
`window` is the dataset window (ground truth), which only synthetic observations may use."""


def diffusion_predictor(denoiser: EgoDenoiser, body: BodyModel, config: EvalConfig) -> Predictor:
    """The system under test: `estimate_body_motion`, as `egoallo infer` runs it (no guidance)."""

    def predict(trajectory: HeadTrajectory, seed: int, window: dict):
        sampling = SamplingConfig(num_samples=config.samples, num_steps=config.num_steps, seed=seed, guidance=config.guidance)
        observations = None
        if "wrist3d" in config.guidance:
            truth = MotionState(
                betas=torch.from_numpy(window["betas"][:16]).double().expand(1, len(trajectory), 16),
                body_rotations=torch.from_numpy(window["body_rotations"]).double()[None],
                contacts=torch.zeros(1, len(trajectory), 21, dtype=torch.float64),
                hand_rotations=torch.from_numpy(window["hand_rotations"]).double()[None],
            )
            T_world_cpf = torch.from_numpy(trajectory.T_world_cpf)
            observations = Observations(wrist3d=wrist_observations(body.to(dtype=torch.float64), truth, T_world_cpf))
        result = estimate_body_motion(trajectory, denoiser, body, floor_z=0.0, config=sampling, observations=observations)
        return result.joints_world, result.stature_m

    return predict


def evaluate(
    dataset_path: Path,
    predict: Predictor,
    body: BodyModel,
    config: EvalConfig = EvalConfig(),
    *,
    split: str = "test",
    progress: bool = True,
) -> list[WindowResult]:
    dataset = MotionDataset(dataset_path, split)
    windows = test_windows(dataset, config.window)[:: config.window_step][: config.max_windows]
    results = []
    for clip, start in tqdm(windows, desc=f"eval w{config.window}", disable=not progress):
        w = dataset.window(clip, start, config.window)
        info = dataset.info(clip)
        timestamps = np.round(np.arange(config.window) * 1e9 / 30.0).astype(np.int64)
        trajectory = HeadTrajectory(timestamps, w["T_world_cpf"].astype(np.float64), info.clip_id, {}, np.eye(3))
        # The seed depends on the window, not its position in the list: runs over different subsets pair up.
        joints, stature = predict(trajectory, config.seed + 100_003 * clip + start, w)
        values = body_metrics(joints, w["joints_world"])
        values["wrist_error_mm"] = 1000.0 * np.linalg.norm(joints[:, :, WRISTS] - w["joints_world"][None, :, WRISTS], axis=-1).mean(axis=(1, 2))
        gt_stature = float(body.with_shape(torch.from_numpy(w["betas"])).stature)
        values["stature_error_cm"] = stature_error_cm(stature, gt_stature)
        results.append(WindowResult(info.clip_id, info.activity, start, {m: float(np.mean(values[m])) for m in METRICS}))
    return results


def summarize(results: list[WindowResult]) -> dict:
    """Mean and standard error over windows: overall and per activity."""

    def stats(rows: list[WindowResult]) -> dict:
        out = {"windows": len(rows)}
        for m in METRICS:
            v = np.array([r.metrics[m] for r in rows])
            out[m] = {"mean": float(v.mean()), "stderr": float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else 0.0}
        return out

    groups: dict[str, list[WindowResult]] = defaultdict(list)
    for r in results:
        groups[r.activity].append(r)
    return {"all": stats(results), "activities": {a: stats(rows) for a, rows in sorted(groups.items())}}


def markdown_table(summary: dict, title: str) -> str:
    header = "| " + title + " | windows | " + " | ".join(f"{m} ({UNITS[m]})" if UNITS[m] else m for m in METRICS) + " |"
    lines = [header, "|" + "---|" * (len(METRICS) + 2)]

    def row(name: str, s: dict) -> str:
        cells = [f"{s[m]['mean']:.4g} ± {s[m]['stderr']:.2g}" for m in METRICS]
        return f"| {name} | {s['windows']} | " + " | ".join(cells) + " |"

    lines.append(row("**all**", summary["all"]))
    lines += [row(a, s) for a, s in summary["activities"].items()]
    return "\n".join(lines)


def write_report(out_dir: Path, name: str, results: list[WindowResult], meta: dict) -> dict:
    """`name.json` (per-window rows + summary) and `name.md`; written atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summarize(results)
    payload = {"meta": meta, "summary": summary, "windows": [dataclasses.asdict(r) for r in results]}
    for suffix, text in ((".json", json.dumps(payload, indent=1)), (".md", markdown_table(summary, name))):
        path = out_dir / f"{name}{suffix}"
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text + "\n")
        os.replace(tmp, path)
    return summary

