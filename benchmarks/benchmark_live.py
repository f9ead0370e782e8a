"""Live vs offline on held-out evaluation windows: accuracy, pops, latency and throughput.

Every held-out window of a built dataset (as `egoallo eval` cuts them, with the floor a user
with a point cloud has) goes through offline `estimate_body_motion` (what `egoallo infer` runs)
and through `LiveEstimator` pose by pose (what `egoallo live --replay --speed 0` runs), with
the same seeds. Reported per path: MPJPE, PA-MPJPE, foot skate (the `egoallo eval` metrics),
the largest frame-to-frame joint jump (any of the 22 body joints; mean over windows of each
window's largest, and the largest of all) and the jitter (mean jerk of the body joints)
against the ground truth's; for live also the
latency from a pose's arrival to its body (poses arriving at 30 fps in real time, each push
taking the CPU time it was measured to take, one at a time; all frames, and those after a window's
warm-up) and the throughput.

    python benchmarks/benchmark_live.py --dataset DIR/dataset.h5 --max-windows 20 --out build/live_bench
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from egoallo.prior.checkpoint import checkpoint_and_sampling
from egoallo.body import BodyModel
from egoallo.body.plausibility import largest_jump
from egoallo.evaluation.benchmark import EvalConfig, diffusion_predictor, evaluate, summarize
from egoallo.evaluation.metrics import BODY_JOINTS
from egoallo.inputs.trajectory import HeadTrajectory
from egoallo.live import LiveConfig, LiveEstimator, live_sampling
from egoallo.prior.checkpoint import load_denoiser

REPORTED = ("mpjpe", "pa_mpjpe", "foot_skate")


def jitter(joints: np.ndarray, fps: float = 30.0) -> float:
    """Mean jerk (m/s³) of the body joints of `joints (T, 52, 3)`: the third difference times fps³."""
    body = joints[:, list(BODY_JOINTS)].astype(np.float64)
    return float(np.linalg.norm(np.diff(body, n=3, axis=0), axis=-1).mean() * fps**3)


def simulated_latency(push_s: list[float], released: list[list[int]], fps: float) -> np.ndarray:
    """(frames,) seconds from the arrival of a frame's pose to its body, poses arriving every 1/fps s.

    Push k starts when its pose arrives or the previous push ends, whichever is later, and takes
    `push_s[k]`; `released[k]` are the frames it emitted (frame f's pose is pose f here).
    """
    out, end = [], 0.0
    for k, (seconds, frames) in enumerate(zip(push_s, released)):
        end = max(k / fps, end) + seconds
        out += [end - f / fps for f in frames]
    return np.array(out)


@dataclasses.dataclass
class LiveLog:
    latency_s: list = dataclasses.field(default_factory=list)
    steady_latency_s: list = dataclasses.field(default_factory=list)
    """Frames after the warm-up (whose first bodies wait for the warm-up's last pose)."""
    compute_s: float = 0.0
    frames: int = 0
    jumps_mm: list = dataclasses.field(default_factory=list)
    truth_jumps_mm: list = dataclasses.field(default_factory=list)
    jitter: list = dataclasses.field(default_factory=list)
    truth_jitter: list = dataclasses.field(default_factory=list)

    def motion(self, joints: np.ndarray, truth: np.ndarray) -> None:
        """Record the largest jump and the jitter of one window's prediction `(T, 52, 3)` and truth."""
        self.jumps_mm.append(1000.0 * float(largest_jump(joints)))
        self.truth_jumps_mm.append(1000.0 * float(largest_jump(truth)))
        self.jitter.append(jitter(joints))
        self.truth_jitter.append(jitter(truth))


def live_predictor(denoiser, body: BodyModel, config: LiveConfig, log: LiveLog, warmup_denoiser=None):
    """An `evaluate` predictor running the window pose by pose through `LiveEstimator`."""

    def predict(trajectory: HeadTrajectory, seed: int, window: dict, floor_z: float):
        estimator = LiveEstimator(denoiser, body, T_input_zup=np.eye(4), floor_z=floor_z,
                                  config=dataclasses.replace(config, seed=seed % 2**31), warmup_denoiser=warmup_denoiser)
        push_s, released, frames = [], [], []
        for t, T in zip(trajectory.timestamps_ns, trajectory.T_world_cpf):
            started = time.process_time()
            out = estimator.push(int(t), T)
            push_s.append(time.process_time() - started)
            released.append([f.index for f in out])
            frames += out
        started = time.process_time()
        rest = estimator.finish()
        push_s[-1] += time.process_time() - started
        released[-1] += [f.index for f in rest]
        frames += rest
        latency = simulated_latency(push_s, released, config.fps)
        log.latency_s += latency.tolist()
        log.steady_latency_s += latency[np.concatenate(released) >= config.warmup].tolist()
        log.compute_s += sum(push_s)
        log.frames += len(frames)
        joints = np.stack([f.joints_world for f in frames])
        log.motion(joints, window["joints_world"])
        return joints[None], body.with_shape(estimator.betas).stature.numpy()[None]

    return predict


def offline_jumps(predict, log: LiveLog):
    """`predict` that also records the largest joint jump of each window."""

    def wrapped(trajectory, seed, window, floor_z):
        started = time.process_time()
        joints, stature = predict(trajectory, seed, window, floor_z)
        log.compute_s += time.process_time() - started
        log.frames += joints.shape[1]
        log.motion(joints[0], window["joints_world"])
        return joints, stature

    return wrapped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", type=Path, required=True, help="dataset.h5 from `egoallo data build`")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="default: as the commands (the distilled student)")
    parser.add_argument("--out", type=Path, default=Path("build/live_benchmark"))
    parser.add_argument("--window", type=int, default=128, help="evaluation window (frames)")
    parser.add_argument("--max-windows", type=int, default=None)
    parser.add_argument("--window-step", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--offline-steps", type=int, default=None, help="default: as `egoallo infer`")
    parser.add_argument("--live-window", type=int, default=LiveConfig.window)
    parser.add_argument("--hop", type=int, default=LiveConfig.hop)
    parser.add_argument("--lookahead", type=int, default=LiveConfig.lookahead)
    parser.add_argument("--warmup", type=int, default=LiveConfig.warmup)
    parser.add_argument("--steps", type=int, default=None, help="default: as `egoallo live`")
    parser.add_argument("--guidance-iterations", type=int, default=LiveConfig.guidance_iterations)
    parser.add_argument("--warmup-steps", type=int, default=None, help="default: as `egoallo live`")
    parser.add_argument("--no-guidance", action="store_true", help="neither path guides the feet")
    parser.add_argument("--paths", nargs="+", choices=("offline", "live"), default=("offline", "live"))
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    body = BodyModel.load_default()
    offline_checkpoint, offline_steps, offline_eta = checkpoint_and_sampling(args.checkpoint, args.offline_steps)
    (hop_checkpoint, hop_steps, hop_eta), (warmup_checkpoint, warmup_steps, warmup_eta) = live_sampling(
        args.checkpoint, args.steps, args.warmup_steps)
    models = {path: load_denoiser(path)[1] for path in {offline_checkpoint, warmup_checkpoint, hop_checkpoint}}
    guidance = frozenset() if args.no_guidance else frozenset({"feet"})
    eval_config = EvalConfig(window=args.window, num_steps=offline_steps, eta=offline_eta, max_windows=args.max_windows,
                             window_step=args.window_step, guidance=guidance)
    live_config = LiveConfig(window=args.live_window, hop=args.hop, lookahead=args.lookahead, warmup=args.warmup,
                             num_steps=hop_steps, warmup_steps=warmup_steps, eta=hop_eta, warmup_eta=warmup_eta,
                             guidance=bool(guidance), guidance_iterations=args.guidance_iterations)
    logs = {"offline": LiveLog(), "live": LiveLog()}
    predictors = {
        "offline": offline_jumps(diffusion_predictor(models[offline_checkpoint], body, eval_config), logs["offline"]),
        "live": live_predictor(models[hop_checkpoint], body, live_config, logs["live"], models[warmup_checkpoint]),
    }
    predictors = {name: predictors[name] for name in args.paths}
    checkpoints = {"offline": str(offline_checkpoint), "live_hops": str(hop_checkpoint), "live_warmups": str(warmup_checkpoint)}
    report: dict = {"meta": {"dataset": str(args.dataset), "checkpoints": checkpoints,
                             "eval": {k: str(v) for k, v in dataclasses.asdict(eval_config).items()},
                             "live": dataclasses.asdict(live_config), "threads": args.threads}}
    for name, predict in predictors.items():
        results, skipped = evaluate(args.dataset, predict, body, eval_config, progress=True)
        summary = summarize(results)["all"]
        log = logs[name]
        entry = {m: summary[m] for m in REPORTED}
        entry.update(
            windows=summary["windows"], skipped=len(skipped),
            largest_jump_mm={"mean": float(np.mean(log.jumps_mm)), "max": float(np.max(log.jumps_mm))},
            truth_largest_jump_mm={"mean": float(np.mean(log.truth_jumps_mm)), "max": float(np.max(log.truth_jumps_mm))},
            jitter_m_s3=float(np.mean(log.jitter)), truth_jitter_m_s3=float(np.mean(log.truth_jitter)),
            cpu_s_per_frame=log.compute_s / max(log.frames, 1),
        )
        for key, values in (("latency_s", log.latency_s), ("steady_latency_s", log.steady_latency_s)):
            if values:
                entry[key] = {"median": float(np.median(values)), "p95": float(np.percentile(values, 95)),
                              "max": float(np.max(values))}
        report[name] = entry
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "live_benchmark.json").write_text(json.dumps(report, indent=1) + "\n")
    lines = ["| path | windows | MPJPE (mm) | PA-MPJPE (mm) | foot skate | largest joint jump (mm), mean / max "
             "| truth's (mm), mean / max | jitter (m/s³), truth's | CPU ms / frame | latency (s), median / p95 "
             "| after the warm-up (s), median / p95 |", "|---|" + "---|" * 10]
    for name in predictors:
        e = report[name]
        latency_text, steady_text = (
            f"{e[key]['median']:.3f} / {e[key]['p95']:.3f}" if key in e else "—" for key in ("latency_s", "steady_latency_s")
        )
        lines.append(
            f"| {name} | {e['windows']} | {e['mpjpe']['mean']:.1f} ± {e['mpjpe']['stderr']:.1f} "
            f"| {e['pa_mpjpe']['mean']:.1f} ± {e['pa_mpjpe']['stderr']:.1f} "
            f"| {e['foot_skate']['mean']:.3f} ± {e['foot_skate']['stderr']:.3f} "
            f"| {e['largest_jump_mm']['mean']:.0f} / {e['largest_jump_mm']['max']:.0f} "
            f"| {e['truth_largest_jump_mm']['mean']:.0f} / {e['truth_largest_jump_mm']['max']:.0f} "
            f"| {e['jitter_m_s3']:.0f}, {e['truth_jitter_m_s3']:.0f} "
            f"| {1000 * e['cpu_s_per_frame']:.1f} "
            f"| {latency_text} | {steady_text} |"
        )
    (args.out / "live_benchmark.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
