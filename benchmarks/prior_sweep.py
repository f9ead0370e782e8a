"""The prior's size × training length × sampling balance sweep (#23), measured on the activity-balanced validation.

    python benchmarks/prior_sweep.py --dataset DIR/dataset.h5 --runs runs/sweep \
        [--presets default medium large] [--balance-powers 1.0 0.5] [--steps 20000] [--keep-every 2500] \
        [--threads 1] [--max-hours 2.5] [--val-activities sit stairs ...] [--docs docs] \
        [--init-from src/egoallo/assets/checkpoint --learning-rate 2e-4 --warmup-steps 200]

For every preset and balance power, one training run `RUN = RUNS/<preset>_b<power>` on the train split (every
clip of every source, `egoallo data build` without `--train-fraction`), with one learning-rate schedule of
`--steps` steps (with `--init-from`, a fine-tune of that checkpoint, `RUNS/<preset>_ft_b<power>`, whose step 0 is
the checkpoint itself) and a snapshot of the weights every `--keep-every` steps (`RUN/step_<N>`). Every snapshot is then
evaluated on the val split, which holds one clip per rare activity (docs/dataset.md): 128-frame windows, every
2nd, foot guidance, the point-cloud floor a user has, 1 sample, seed 0, the checkpoint's 30 DDIM steps. The
choice uses the **mean over activity groups** of that evaluation.

Where a run keeps its state: `RUN/latest` (weights, optimizer, step; written every 250 steps, swapped in
atomically), `RUN/step_<N>` (snapshots), `RUN/loss_log.csv`, `RUN/val/step_<N>/` (the evaluation reports).
Killed at any moment (or stopped by `--max-hours`), the same command resumes every run from its `latest` and
evaluates only the snapshots without a report. Writes `DOCS/prior_sweep.md` (the table) and
`DOCS/prior_sweep.png` (validation against steps per size and balance).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from _common import machine
from egoallo.data.sources import DAZ_VALIDATION_CLIPS

RARE = tuple(DAZ_VALIDATION_CLIPS.values())
"""The activities the val split must hold (`egoallo train --val-activities`): those moved to it for validation."""
TRAIN = ("--val-every", "500", "--checkpoint-every", "250",
         "--seed", "0", "--mirror-probability", "0.5", "--reshape-probability", "0.3", "--val-balance-power", "0")
"""The recipe of the shipped prior's last stages (its PROVENANCE.md), with the balanced validation loss."""


def egoallo(args: list[str], timeout: float | None = None) -> bool:
    """Run an `egoallo` command; False when it was stopped by `timeout` (seconds)."""
    print("egoallo " + " ".join(args), flush=True)
    try:
        done = subprocess.run([sys.executable, "-m", "egoallo.cli.main", *args], timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    if done.returncode != 0:
        raise SystemExit(f"egoallo {args[0]} failed ({done.returncode})")
    return True


def train(dataset: Path, run: Path, preset: str, power: float, args: argparse.Namespace, deadline: float) -> bool:
    """Train (or resume) one run; False when the time ran out first."""
    state = run / "latest" / "train_state.json"
    if state.is_file() and json.loads(state.read_text())["step"] >= args.steps:
        return True
    command = ["train", "--dataset", str(dataset), "--out", str(run), "--model", preset, "--steps", str(args.steps),
               "--keep-every", str(args.keep_every), "--balance-power", str(power), "--threads", str(args.threads),
               "--learning-rate", f"{args.learning_rate:g}", "--warmup-steps", str(args.warmup_steps),
               *(["--init-from", str(args.init_from)] if args.init_from else []),
               *(["--val-activities", *args.val_activities] if args.val_activities else []), *TRAIN]
    return egoallo(command, timeout=max(deadline - time.monotonic(), 1.0))


def evaluate(dataset: Path, snapshot: Path, out: Path, split: str, deadline: float) -> dict | None:
    """The val report of one snapshot in `out` (evaluated now unless it exists); None when the time ran out."""
    report = out / "egoallo+feet_w128.json"
    if not report.is_file():
        command = ["eval", "--dataset", str(dataset), "--split", split, "--checkpoint", str(snapshot), "--out", str(out),
                   "--windows", "128", "--window-step", "2", "--guidance", "feet", "--floor", "points", "--force"]
        if not egoallo(command, timeout=max(deadline - time.monotonic(), 1.0)):
            return None
    return json.loads(report.read_text())["summary"]


def write_report(rows: list[dict], split: str, docs: Path) -> None:
    """`docs/prior_sweep.md` and `docs/prior_sweep.png` from the evaluated snapshots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = [
        f"# Prior sweep: size × training steps × balance ({split} split)",
        "",
        f"`python benchmarks/prior_sweep.py` on {machine()}. The {split} split (val: one clip per rare activity, docs/dataset.md), "
        "128-frame windows (every 2nd), foot guidance, point-cloud floor, 1 sample, seed 0; MPJPE in mm, "
        "mean ± standard error. Chosen on the mean over activity groups.",
        "",
        "| preset | parameters (M) | balance power | steps | MPJPE, mean over activities | MPJPE, mean over windows "
        "| sitting | stairs | ladder |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        s, acts = r["summary"], r["summary"]["activities"]

        def activity(name: str) -> str:
            hit = next((v for k, v in acts.items() if k.endswith("/" + name)), None)
            return f"{hit['mpjpe']['mean']:.1f}" if hit else "—"

        mean, windows = s["activity_mean"]["mpjpe"], s["all"]["mpjpe"]
        lines.append(f"| {r['preset']} | {r['parameters'] / 1e6:.1f} | {r['power']:g} | {r['step']:,} "
                     f"| **{mean['mean']:.1f} ± {mean['stderr']:.1f}** | {windows['mean']:.1f} ± {windows['stderr']:.1f} "
                     f"| {activity('sit')} | {activity('stairs')} | {activity('ladder')} |")
    (docs / "prior_sweep.md").write_text("\n".join(lines) + "\n")
    fig, ax = plt.subplots(figsize=(6, 4))
    for key in sorted({(r["preset"], r["power"]) for r in rows}):
        points = sorted((r["step"], r["summary"]["activity_mean"]["mpjpe"]["mean"]) for r in rows
                        if (r["preset"], r["power"]) == key)
        ax.plot(*zip(*points), "o-", label=f"{key[0]}, balance {key[1]:g}")
    ax.set_xlabel("training step")
    ax.set_ylabel("val MPJPE, mean over activities (mm)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(docs / "prior_sweep.png", dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--presets", nargs="+", default=["default", "medium", "large"])
    parser.add_argument("--balance-powers", type=float, nargs="+", default=[1.0, 0.5])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--keep-every", type=int, default=2_500)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--split", default="val", help="the split the snapshots are chosen on (val; others only to try it)")
    parser.add_argument("--val-activities", nargs="*", default=list(RARE), help="activities the val split must hold")
    parser.add_argument("--init-from", type=Path, help="fine-tune this checkpoint (its preset must be in --presets)")
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--warmup-steps", type=int, default=300)
    parser.add_argument("--max-hours", type=float, default=float("inf"), help="stop (resumably) after this long")
    parser.add_argument("--docs", type=Path, default=Path(__file__).resolve().parents[1] / "docs")
    args = parser.parse_args()
    print(machine(), flush=True)
    deadline = time.monotonic() + 3600.0 * args.max_hours
    from egoallo.prior.checkpoint import read_config
    from egoallo.prior.network import EgoDenoiser

    rows = []
    for preset in args.presets:
        for power in args.balance_powers:
            run = args.runs / f"{preset}{'_ft' if args.init_from else ''}_b{power:g}"
            finished = train(args.dataset, run, preset, power, args, deadline)
            snapshots = sorted(run.glob("step_*"), key=lambda p: int(p.name.split("_")[1]))
            if args.init_from:
                snapshots.insert(0, args.init_from)
            for snapshot in snapshots:
                step = 0 if snapshot == args.init_from else int(snapshot.name.split("_")[1])
                summary = evaluate(args.dataset, snapshot, run / args.split / f"step_{step}", args.split, deadline)
                if summary is None:
                    break
                parameters = sum(p.numel() for p in EgoDenoiser(read_config(snapshot / "config.json")).parameters())
                rows.append({"preset": preset + (" (fine-tuned)" if args.init_from else ""), "power": power,
                             "step": step, "parameters": parameters, "summary": summary})
            if not finished or time.monotonic() > deadline:
                print(f"stopped at --max-hours {args.max_hours:g}; rerun the same command to resume", flush=True)
                break
        else:
            continue
        break
    if rows:
        write_report(rows, args.split, args.docs)
        print(f"wrote {args.docs / 'prior_sweep.md'} and {args.docs / 'prior_sweep.png'}")


if __name__ == "__main__":
    main()
