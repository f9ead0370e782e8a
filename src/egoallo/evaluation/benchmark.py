"""Held-out evaluation: windows of test clips through the inference path, the paper's metrics.

Each test clip of a built `dataset.h5` is cut into consecutive windows of
`window` frames; every window is one input sequence (its true head trajectory),
sampled `samples` times with fixed seeds through `estimate_body_motion` — the
code path of `egoallo infer` — with the floor a user would have
(`EvalConfig.floor`):

- `"points"` (default): a SLAM point cloud's floor, simulated as the true
  floor (z = 0) plus Gaussian error of `floor_noise_m` (2 cm: the floor
  finder's histogram bin; semi-dense SLAM points on a floor scatter by about
  that much), drawn per window with the window's seed;
- `"trajectory"`: no point cloud, the floor `floor_without_points` estimates
  from the whole clip's head trajectory (a user has the whole recording);
- `"stature"`: no point cloud, but the wearer's true stature given, as
  `egoallo infer --stature` takes it: the body's shape fitted to it and the
  floor that body's standing eye height under the whole clip's head;
- `"true"`: the true floor, an upper bound no user has.

With `EvalConfig.stature_range`, every clip is performed again by a body of a
stature drawn uniformly from that range (`reshape_window` with
`betas_with_stature`, the body-shape augmentation; one draw per clip, fixed by
its id), so wearers of many heights are measured whatever the capture's
performers' own statures.

Metrics are averaged per window, then reported as mean ± standard error over
windows: overall, per group (held-out performers: CMU, CMU Daz, ReActIdle;
held-out styles of seen performers: Bandai Namco), per source and per
activity (`source/activity`). With two or more samples, the result's consensus body
(`egoallo.consensus`) is measured too: `mpjpe_consensus` next to `mpjpe_single` (the same window estimated
with one sample, as `--samples 1` gives it), the share of joint errors within the stated intervals of the
spread (`coverage_50` ... `coverage_95`), and the Spearman correlation of spread and error over window x
joint cells (`summary["spread"]`). The headline is the **mean over activities**
(each activity's window mean, averaged with equal weight; its standard error
from the activities' own), next to the mean over windows, so that a common
activity (most windows are idle standing) cannot hide a rare one. Besides the paper's metrics: the floor's error, how often the
predicted feet sink into the true floor (`egoallo.body.plausibility`, against
the true body's standing foot heights), and the share of frames with a wrist
above its shoulder, predicted and true (arms are unseen from the head), and pops: how far the
largest frame-to-frame joint jump exceeds the truth's, and the share of
samples where it does by more than `POP_EXCESS_M`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import zlib
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from tqdm import tqdm

from ..body import BodyModel
from ..body.plausibility import largest_jump, plausibility, wrist_above_shoulder
from ..body.stature import betas_with_stature, stature_eye_height
from ..consensus import ConsensusKind, interval_radius
from ..data.dataset import MotionDataset, reshape_window
from ..files import write_files_atomic
from ..guidance import GuidanceWeights, wrist_observations
from ..inference import GuidedBodies, SamplingConfig, estimate_body_motion, standing_eye_height
from ..inputs.gait import floor_without_points
from ..inputs.stature import stature_floor
from ..inputs.trajectory import HeadTrajectory
from ..observations import Observations
from ..prior.network import EgoDenoiser
from ..prior.state import MotionState
from .metrics import BODY_JOINTS, body_metrics, mpjpe, stature_error_cm

METRICS = ("mpjpe", "pa_mpjpe", "pa_mpjpe_reference", "T_head", "foot_contact", "foot_skate", "wrist_error_mm",
           "stature_error_cm", "floor_error_cm", "penetration_share", "deepest_penetration_cm",
           "wrist_above_shoulder", "wrist_above_shoulder_truth", "jump_excess_cm", "pops")
COVERAGE_LEVELS = (0.5, 0.68, 0.9, 0.95)
"""Stated levels of the spread's intervals whose observed coverage is reported."""
CONSENSUS_METRICS = ("mpjpe_single", "mpjpe_consensus", *(f"coverage_{round(100 * p)}" for p in COVERAGE_LEVELS))
"""Metrics of a run with two or more samples (`EvalConfig.samples`)."""
WRISTS = [20, 21]
UNITS = {"mpjpe": "mm", "pa_mpjpe": "mm", "pa_mpjpe_reference": "mm", "wrist_error_mm": "mm", "T_head": "m", "foot_contact": "",
         "foot_skate": "", "stature_error_cm": "cm", "floor_error_cm": "cm", "penetration_share": "", "deepest_penetration_cm": "cm",
         "wrist_above_shoulder": "", "wrist_above_shoulder_truth": "", "jump_excess_cm": "cm", "pops": "",
         "mpjpe_single": "mm", "mpjpe_consensus": "mm", **{m: "" for m in CONSENSUS_METRICS[2:]}}
POP_EXCESS_M = 0.2
"""A sample pops when its largest frame-to-frame joint jump exceeds the truth's by more than this."""
HELD_OUT_PERFORMER_SOURCES = ("cmu", "cmu_daz", "reactidle", "amass")
"""Sources split by performer: their val/test windows come from people the prior has not seen."""
FloorMode = Literal["points", "trajectory", "stature", "true"]


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    window: int = 128
    samples: int = 1
    num_steps: int = SamplingConfig.num_steps
    eta: float = SamplingConfig.eta
    """DDIM stochasticity (`SamplingConfig.eta`)."""
    seed: int = 0
    max_windows: int | None = None
    """Evaluate only the first N windows (in clip order), for quick checks."""
    window_step: int = 1
    """Evaluate every N-th window (in clip order): a cheaper run over all clips and activities."""
    guidance: frozenset[str] = frozenset()
    """Guidance modes after sampling; "wrist3d" observes the true wrists and palms exactly."""
    guidance_weights: GuidanceWeights = dataclasses.field(default_factory=GuidanceWeights)
    guidance_iterations: int = SamplingConfig.post_iterations
    """Levenberg-Marquardt iterations of the guidance after sampling."""
    floor: FloorMode = "points"
    """Which floor the method gets (see the module docstring)."""
    floor_noise_m: float = 0.02
    """Standard deviation of the simulated point-cloud floor's error."""
    stature_range: tuple[float, float] | None = None
    """(low, high) m: every clip performed by a body of a stature drawn uniformly from it (None: the capture's own)."""
    with_stature: bool = False
    """Give the method the true stature (as `--stature`) whatever the floor (always with floor "stature")."""
    consensus: ConsensusKind = SamplingConfig.consensus
    """With two or more samples: the consensus body (`SamplingConfig.consensus`)."""
    guided: GuidedBodies = SamplingConfig.guided
    """With two or more samples and guidance: which bodies are guided (`SamplingConfig.guided`)."""


@dataclasses.dataclass(frozen=True)
class Consensus:
    """What a predictor of two or more samples adds: the consensus body and spread, and the one-sample estimate."""

    joints_world: np.ndarray
    """(T, 52, 3) the consensus body's joints."""
    joint_spread_m: np.ndarray
    """(T, 52) the radius of the stated 90 % interval around each consensus joint."""
    single: np.ndarray
    """(T, 52, 3) the joints the same window gets with one sample (the same seed)."""


@dataclasses.dataclass(frozen=True)
class WindowResult:
    clip_id: str
    activity: str
    start: int
    source: str
    group: str
    """"held-out performers" or "held-out styles" (seen performers)."""
    metrics: dict[str, float]
    per_joint_mm: list[float]
    """(22,) mean error of each body joint over the window's frames and samples."""
    per_joint_consensus_mm: list[float] | None = None
    """(22,) with two or more samples: mean error of each body joint of the consensus over the frames."""
    per_joint_spread_mm: list[float] | None = None
    """(22,) with two or more samples: mean spread (`joint_spread_m`) of each body joint over the frames."""


@dataclasses.dataclass(frozen=True)
class SkippedCase:
    """A clip or window left out of the averages, and why."""

    clip_id: str
    start: int | None
    reason: str


def test_windows(dataset: MotionDataset, window: int) -> list[tuple[int, int]]:
    """(clip index, start frame) of consecutive full windows in every clip (shorter clips have none)."""
    return [(i, s) for i, n in enumerate(dataset.lengths) for s in range(0, int(n) - window + 1, window)]


def _check_prediction(joints: np.ndarray, stature: np.ndarray, num_frames: int) -> None:
    if joints.ndim != 4 or joints.shape[1:] != (num_frames, 52, 3):
        raise ValueError(f"prediction has shape {joints.shape}, expected (S, {num_frames}, 52, 3)")
    if not (np.isfinite(joints).all() and np.isfinite(stature).all()):
        raise ValueError("prediction contains NaN or infinite values")


Predictor = Callable[[HeadTrajectory, int, dict, float], tuple]
"""`predict(trajectory (z-up, true floor at 0), seed, window, floor_z) -> (joints_world (S, T, 52, 3), stature_m (S,))`,
and a third item, a `Consensus`, from a predictor of two or more samples that forms one;
`floor_z` is the floor the method is given; `window` is the dataset window (ground truth), which only
synthetic observations may use."""


def diffusion_predictor(denoiser: EgoDenoiser, body: BodyModel, config: EvalConfig) -> Predictor:
    """The system under test: `estimate_body_motion`, as `egoallo infer` runs it (no guidance)."""

    def predict(trajectory: HeadTrajectory, seed: int, window: dict, floor_z: float = 0.0):
        sampling = SamplingConfig(num_samples=config.samples, num_steps=config.num_steps, eta=config.eta, seed=seed,
                                  guidance=config.guidance, guidance_weights=config.guidance_weights,
                                  post_iterations=config.guidance_iterations, consensus=config.consensus,
                                  guided=config.guided)
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
        if config.floor == "stature" or config.with_stature:  # the wearer's true stature, as `--stature` gives it
            sampling = dataclasses.replace(sampling, stature_m=true_stature(body, window))
        result = estimate_body_motion(trajectory, denoiser, body, floor_z=floor_z, config=sampling, observations=observations)
        if not result.has_consensus:
            return result.joints_world, result.stature_m
        one = dataclasses.replace(sampling, num_samples=1)
        single = estimate_body_motion(trajectory, denoiser, body, floor_z=floor_z, config=one, observations=observations)
        consensus = Consensus(result.joints_world_consensus, result.joint_spread_m, single.joints_world[0])
        return result.joints_world, result.stature_m, consensus

    return predict


def evaluate(
    dataset_path: Path,
    predict: Predictor,
    body: BodyModel,
    config: EvalConfig = EvalConfig(),
    *,
    split: str = "test",
    sources: tuple[str, ...] | None = None,
    progress: bool = True,
) -> tuple[list[WindowResult], list[SkippedCase]]:
    """Every test window through `predict`; a clip shorter than the window or a window whose
    data or prediction is unusable is skipped and listed, never fatal."""
    dataset = MotionDataset(dataset_path, split, sources)
    skipped = [
        SkippedCase(dataset.clip_ids[i], None, f"{n} frames, shorter than the {config.window}-frame window")
        for i, n in enumerate(dataset.lengths) if n < config.window
    ]
    windows = test_windows(dataset, config.window)[:: config.window_step][: config.max_windows]
    results = []
    clip_floors: dict[int, float] = {}
    for clip, start in tqdm(windows, desc=f"eval w{config.window}", disable=not progress):
        try:
            if config.floor in ("trajectory", "stature") and clip not in clip_floors:
                clip_floors[clip] = floor_from_head(body, clip_window(dataset, clip, 0, int(dataset.lengths[clip]), body, config),
                                                    config.floor)
            results.append(_evaluate_window(dataset, clip, start, predict, body, config, clip_floors.get(clip)))
        except (ValueError, RuntimeError, OSError, KeyError) as e:
            skipped.append(SkippedCase(dataset.clip_ids[clip], start, f"{type(e).__name__}: {e}"))
    return results, skipped


def clip_window(dataset: MotionDataset, clip: int, start: int, length: int, body: BodyModel, config: EvalConfig) -> dict:
    """`dataset.window(clip, start, length)`, performed by the clip's body of another stature with
    `config.stature_range` (`drawn_stature`)."""
    w = dataset.window(clip, start, length)
    if config.stature_range is None:
        return w
    stature = drawn_stature(dataset.clip_ids[clip], config.stature_range)
    return reshape_window(w, body, betas_with_stature(body, w["betas"], stature))


def drawn_stature(clip_id: str, stature_range: tuple[float, float]) -> float:
    """A stature uniform over `stature_range`, the same for a clip in every run (seeded by its id)."""
    return float(np.random.default_rng(zlib.crc32(clip_id.encode())).uniform(*stature_range))


def true_stature(body: BodyModel, window: dict) -> float:
    """The stature of the window's true body."""
    return float(body.with_shape(torch.from_numpy(window["betas"][: body.num_betas]).float()).stature)


def floor_from_head(body: BodyModel, whole: dict, floor: FloorMode) -> float:
    """The floor under a whole clip's head (`whole`: a `clip_window`) without a point cloud: the trajectory rule
    (`floor_without_points`), or with `floor == "stature"` the eye height of a body of the true stature
    (`stature_eye_height`, as `egoallo infer --stature` places it)."""
    T_world_cpf = whole["T_world_cpf"].astype(np.float64)
    if floor == "stature":
        return stature_floor([T_world_cpf[:, :3, 3]], 30.0, stature_eye_height(body, true_stature(body, whole))).z
    return floor_without_points(T_world_cpf, 30.0, standing_eye_height(body)).z


def given_floor(config: EvalConfig, seed: int, trajectory_floor: float | None) -> float:
    """The floor height (the truth is z = 0) the method gets for one window."""
    if config.floor == "true":
        return 0.0
    if config.floor == "points":
        return float(np.random.default_rng(seed).normal(0.0, config.floor_noise_m))
    if trajectory_floor is None:
        raise ValueError(f"floor mode {config.floor!r} needs the clip's floor estimate")
    return trajectory_floor


def _evaluate_window(dataset: MotionDataset, clip: int, start: int, predict: Predictor, body: BodyModel,
                     config: EvalConfig, trajectory_floor: float | None = None) -> WindowResult:
    w = clip_window(dataset, clip, start, config.window, body, config)
    if not all(np.isfinite(w[k]).all() for k in ("T_world_cpf", "joints_world", "betas")):
        raise ValueError("ground truth contains NaN or infinite values")
    info = dataset.info(clip)
    timestamps = np.round(np.arange(config.window) * 1e9 / 30.0).astype(np.int64)
    trajectory = HeadTrajectory(timestamps, w["T_world_cpf"].astype(np.float64), info.clip_id, {}, np.eye(3))
    # The seed depends on the window, not its position in the list: runs over different subsets pair up.
    seed = config.seed + 100_003 * clip + start
    floor_z = given_floor(config, seed, trajectory_floor)
    joints, stature, *extra = predict(trajectory, seed, w, floor_z)
    _check_prediction(joints, stature, config.window)
    values = body_metrics(joints, w["joints_world"])
    values["wrist_error_mm"] = 1000.0 * np.linalg.norm(joints[:, :, WRISTS] - w["joints_world"][None, :, WRISTS], axis=-1).mean(axis=(1, 2))
    truth = body.with_shape(torch.from_numpy(w["betas"]))
    values["stature_error_cm"] = stature_error_cm(stature, float(truth.stature))
    values["floor_error_cm"] = np.array([100.0 * abs(floor_z)])
    figures = plausibility(joints, 0.0, truth.rest_joint_heights.double().numpy(), 30.0)
    values["penetration_share"] = figures.penetration_share
    values["deepest_penetration_cm"] = 100.0 * figures.deepest_penetration_m
    values["wrist_above_shoulder"] = figures.wrist_above_shoulder_share
    values["wrist_above_shoulder_truth"] = np.array([wrist_above_shoulder(w["joints_world"]).mean()])
    excess = figures.largest_jump_m - largest_jump(w["joints_world"])
    values["jump_excess_cm"] = 100.0 * excess
    values["pops"] = (excess > POP_EXCESS_M).astype(np.float64)
    per_joint = 1000.0 * np.linalg.norm(joints[:, :, list(BODY_JOINTS)] - w["joints_world"][None, :, list(BODY_JOINTS)], axis=-1).mean(axis=(0, 1))
    group = "held-out performers" if info.source in HELD_OUT_PERFORMER_SOURCES else "held-out styles"
    names, per_joint_c, per_joint_s = METRICS, None, None
    if extra:
        names = (*METRICS, *CONSENSUS_METRICS)
        values |= consensus_metrics(extra[0], w["joints_world"])
        error_c, spread = consensus_errors(extra[0], w["joints_world"])
        per_joint_c = [round(float(e), 2) for e in 1000.0 * error_c.mean(axis=0)]
        per_joint_s = [round(float(e), 2) for e in 1000.0 * spread.mean(axis=0)]
    return WindowResult(info.clip_id, info.activity, start, info.source, group,
                        {m: float(np.mean(values[m])) for m in names}, [round(float(e), 2) for e in per_joint],
                        per_joint_c, per_joint_s)


def consensus_errors(consensus: Consensus, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`(T, 22)` each body joint's consensus error and spread (`joint_spread_m`), metres, against `truth (T, 52, 3)`."""
    body = list(BODY_JOINTS)
    error = np.linalg.norm(consensus.joints_world[:, body].astype(np.float64) - truth[:, body], axis=-1)
    return error, consensus.joint_spread_m[:, body].astype(np.float64)


def consensus_metrics(consensus: Consensus, truth: np.ndarray) -> dict[str, np.ndarray]:
    """The `CONSENSUS_METRICS` of one window: single-sample and consensus MPJPE (mm), and the share of body-joint
    errors within each stated interval of the spread."""
    error, spread = consensus_errors(consensus, truth)
    values = {"mpjpe_single": mpjpe(consensus.single[None], truth), "mpjpe_consensus": mpjpe(consensus.joints_world[None], truth)}
    for level in COVERAGE_LEVELS:
        values[f"coverage_{round(100 * level)}"] = np.array([np.mean(error <= interval_radius(spread, level))])
    return values


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two equally long 1D arrays (ties ranked by order)."""
    ranks = [np.argsort(np.argsort(x, kind="stable")).astype(np.float64) for x in (a, b)]
    return float(np.corrcoef(*ranks)[0, 1])


def spread_summary(rows: list[WindowResult]) -> dict | None:
    """Over window x body-joint cells: Spearman of the mean spread against the consensus's mean error; the mean
    coverage of each stated level. None when the rows have no consensus."""
    if not rows or any(r.per_joint_spread_mm is None for r in rows):
        return None
    spread = np.concatenate([r.per_joint_spread_mm for r in rows])
    error = np.concatenate([r.per_joint_consensus_mm for r in rows])
    coverage = {f"{level:g}": float(np.mean([r.metrics[f"coverage_{round(100 * level)}"] for r in rows]))
                for level in COVERAGE_LEVELS}
    return {"spearman": spearman(spread, error), "cells": int(spread.size), "stated_vs_observed": coverage}


def metric_names(rows: list[WindowResult]) -> tuple[str, ...]:
    """The metrics every row has: `METRICS`, and the `CONSENSUS_METRICS` when all rows have them."""
    return (*METRICS, *CONSENSUS_METRICS) if rows and all(CONSENSUS_METRICS[0] in r.metrics for r in rows) else METRICS


def activity_key(result: WindowResult) -> str:
    """The activity group a window belongs to: `source/activity` (e.g. `cmu_daz/sit`)."""
    return f"{result.source}/{result.activity}"


def _window_stats(rows: list[WindowResult]) -> dict:
    """Mean and standard error over windows of every metric."""
    out: dict = {"windows": len(rows)}
    for m in metric_names(rows):
        v = np.array([r.metrics[m] for r in rows])
        out[m] = {"mean": float(v.mean()), "stderr": float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else 0.0,
                  "median": float(np.median(v))}
    return out


def activity_mean(rows: list[WindowResult]) -> dict:
    """Every metric averaged over the activity groups of `rows` with equal weight, each group first averaged over
    its windows; standard error `sqrt(Σ se_g²) / G` from the groups' own. `activities` counts the groups."""
    groups: dict[str, list[WindowResult]] = defaultdict(list)
    for r in rows:
        groups[activity_key(r)].append(r)
    per_group = [_window_stats(g) for g in groups.values()]
    out: dict = {"windows": len(rows), "activities": len(per_group)}
    for m in metric_names(rows):
        means = np.array([g[m]["mean"] for g in per_group])
        errors = np.array([g[m]["stderr"] for g in per_group])
        out[m] = {"mean": float(means.mean()), "stderr": float(np.sqrt(np.square(errors).sum()) / len(per_group))}
    return out


def summarize(results: list[WindowResult]) -> dict:
    """The mean over activity groups (`activity_mean`, the headline) and the mean over windows, overall and per
    group of performers; then per source and per activity."""

    def by(key: Callable[[WindowResult], str]) -> dict[str, list[WindowResult]]:
        groups: dict[str, list[WindowResult]] = defaultdict(list)
        for r in results:
            groups[key(r)].append(r)
        return dict(sorted(groups.items()))

    groups = by(lambda r: r.group)
    return {
        "activity_mean": activity_mean(results),
        "all": _window_stats(results),
        "groups": {name: _window_stats(rows) for name, rows in groups.items()},
        "group_activity_means": {name: activity_mean(rows) for name, rows in groups.items()},
        "sources": {name: _window_stats(rows) for name, rows in by(lambda r: r.source).items()},
        "activities": {name: _window_stats(rows) for name, rows in by(activity_key).items()},
        **({"spread": spread} if (spread := spread_summary(results)) is not None else {}),
    }


def markdown_table(summary: dict, title: str) -> str:
    names = [m for m in (*METRICS, *CONSENSUS_METRICS) if m in summary["all"]]
    header = "| " + title + " | windows | " + " | ".join(f"{m} ({UNITS[m]})" if UNITS[m] else m for m in names) + " |"
    lines = [header, "|" + "---|" * (len(names) + 2)]

    def row(name: str, s: dict) -> str:
        cells = [f"{s[m]['mean']:.4g} ± {s[m]['stderr']:.2g}" for m in names]
        return f"| {name} | {s['windows']} | " + " | ".join(cells) + " |"

    if "activity_mean" in summary:
        mean = summary["activity_mean"]
        lines.append(row(f"**mean over {mean['activities']} activities**", mean))
    lines.append(row("**all windows**", summary["all"]))
    for g, s in summary.get("groups", {}).items():
        if g in summary.get("group_activity_means", {}):
            mean = summary["group_activity_means"][g]
            lines.append(row(f"*{g}: mean over {mean['activities']} activities*", mean))
        lines.append(row(f"*{g}: all windows*", s))
    lines += [row(f"source {name}", s) for name, s in summary.get("sources", {}).items()]
    lines += [row(a, s) for a, s in summary["activities"].items()]
    if spread := summary.get("spread"):
        coverage = ", ".join(f"{float(k):.0%} -> {v:.1%}" for k, v in spread["stated_vs_observed"].items())
        lines += ["", f"Spread: Spearman {spread['spearman']:.3f} against the consensus's error over {spread['cells']} "
                      f"window x joint cells; stated -> observed coverage of the joint errors: {coverage}"]
    return "\n".join(lines)


def write_report(out_dir: Path, name: str, results: list[WindowResult], meta: dict,
                 skipped: list[SkippedCase] = ()) -> dict:
    """`name.json` (per-window rows, skipped cases, summary) and `name.md`; written as one (both or neither)."""
    if not results:
        raise ValueError(f"{name}: no window could be evaluated ({len(skipped)} skipped).")
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summarize(results)
    payload = {"meta": meta, "summary": summary, "skipped": [dataclasses.asdict(c) for c in skipped],
               "windows": [dataclasses.asdict(r) for r in results]}
    table = markdown_table(summary, name)
    if skipped:
        table += f"\n\nSkipped ({len(skipped)}):\n" + "\n".join(
            f"- {c.clip_id}" + ("" if c.start is None else f" @ {c.start}") + f": {c.reason}" for c in skipped)
    write_files_atomic(out_dir, {f"{name}.json": (json.dumps(payload, indent=1) + "\n").encode(),
                                 f"{name}.md": (table + "\n").encode()})
    return summary

