"""Predicted against true stature per performer, with how the truth stands.

    python benchmarks/stature_report.py --dataset DIR/dataset.h5 [--split test] [--sources cmu cmu_daz reactidle]

For every performer of the split: the true body's stature and standing eye height
(CPF over the soles at rest), and over the frames where the truth stands still
(head slower than 0.2 m/s, both ankles within 5 cm of their rest height) the
median head (CPF) height and the median knee angle (180° = straight). Then
the stature `egoallo infer` estimates by default (the shipped student, foot
guidance, the point-cloud floor of `egoallo eval --floor points`), median
over every 2nd 128-frame window, and its signed error. A body that stands
with bent knees holds its head under its standing eye height; a prior that
has learned upright standing reads that as a shorter person.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from egoallo.prior.checkpoint import checkpoint_and_sampling
from egoallo.body import BodyModel
from egoallo.body import skeleton
from egoallo.data.dataset import MotionDataset
from egoallo.evaluation.benchmark import EvalConfig, diffusion_predictor, given_floor, test_windows
from egoallo.inference import standing_eye_height
from egoallo.inputs.trajectory import HeadTrajectory
from egoallo.prior.checkpoint import load_denoiser

STILL_M_S = 0.2
ANKLE_LIFT_M = 0.05


def knee_angles_deg(joints: np.ndarray) -> np.ndarray:
    """`(T, 2)` angle at each knee between thigh and shin of `joints (T, J, 3)`."""
    out = []
    for side in ("left", "right"):
        hip, knee, ankle = (skeleton.JOINT_INDEX[f"{side}_{n}"] for n in ("hip", "knee", "ankle"))
        u, v = joints[:, hip] - joints[:, knee], joints[:, ankle] - joints[:, knee]
        cos = (u * v).sum(-1) / np.linalg.norm(u, axis=-1) / np.linalg.norm(v, axis=-1)
        out.append(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))
    return np.stack(out, axis=1)


def standing_still(clip: dict, rest_ankle_height: float, fps: float = 30.0) -> np.ndarray:
    """`(T,)` frames where the truth stands still: slow head, both ankles down."""
    head = clip["T_world_cpf"][:, :2, 3]
    speed = np.linalg.norm(np.gradient(head, axis=0), axis=-1) * fps
    ankles = [skeleton.JOINT_INDEX["left_ankle"], skeleton.JOINT_INDEX["right_ankle"]]
    down = (clip["joints_world"][:, ankles, 2] < rest_ankle_height + ANKLE_LIFT_M).all(axis=1)
    return (speed < STILL_M_S) & down


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--sources", nargs="+", default=["cmu", "cmu_daz", "reactidle"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    body = BodyModel.load_default()
    checkpoint, steps, eta = checkpoint_and_sampling()
    _, denoiser = load_denoiser(checkpoint)
    config = EvalConfig(window=128, num_steps=steps, eta=eta, guidance=frozenset({"feet"}), floor="points")
    predict = diffusion_predictor(denoiser, body, config)
    data = MotionDataset(args.dataset, args.split, tuple(args.sources))

    truth: dict[str, dict] = {}
    heads, knees, predicted = defaultdict(list), defaultdict(list), defaultdict(list)
    for clip, _ in enumerate(data.clip_ids):
        info = data.info(clip)
        who = f"{info.source} {info.performer}"
        whole = data.window(clip, 0, int(data.lengths[clip]))
        shaped = body.with_shape(torch.from_numpy(whole["betas"]).float())
        rest_ankle = float(shaped.rest_joint_heights[skeleton.JOINT_INDEX["left_ankle"]])
        truth[who] = {"stature": float(shaped.stature),
                      "eye": standing_eye_height(body, whole["betas"])}
        still = standing_still(whole, rest_ankle)
        heads[who].extend(whole["T_world_cpf"][still, 2, 3])
        knees[who].extend(knee_angles_deg(whole["joints_world"][still]).ravel())
    for clip, start in test_windows(data, 128)[::2]:
        info = data.info(clip)
        window = data.window(clip, start, 128)
        times = np.round(np.arange(128) * 1e9 / 30.0).astype(np.int64)
        trajectory = HeadTrajectory(times, window["T_world_cpf"].astype(np.float64), info.clip_id, {}, np.eye(3))
        seed = 100_003 * clip + start
        _, stature = predict(trajectory, seed, window, given_floor(config, seed, None))
        predicted[f"{info.source} {info.performer}"].append(float(stature[0]))

    print(f"{data.split} split, checkpoint {checkpoint.name} ({steps} steps), foot guidance, point-cloud floor")
    print("| performer | true stature (m) | standing eye height (m) | head height standing still, median (m) "
          "| knee angle standing still, median (°) | frames standing still | predicted stature, median (m) "
          "| signed error (cm) | windows |")
    print("|---|---|---|---|---|---|---|---|---|")
    for who, t in sorted(truth.items()):
        if not predicted[who]:
            continue
        head = f"{np.median(heads[who]):.3f}" if heads[who] else "—"
        knee = f"{np.median(knees[who]):.0f}" if knees[who] else "—"
        p = float(np.median(predicted[who]))
        print(f"| {who} | {t['stature']:.3f} | {t['eye']:.3f} | {head} | {knee} | {len(heads[who])} | {p:.3f} "
              f"| {100 * (p - t['stature']):+.1f} | {len(predicted[who])} |")


if __name__ == "__main__":
    main()
