"""Inference speed and memory on this machine's CPU: in-process and whole `egoallo infer` runs.

    python benchmarks/benchmark_inference.py [--inputs example 60 3600] [--threads 1 2] [--guidance off feet]
                                          [--repeats 3] [--busy]

Inputs: the shipped example (11 s) and, given in seconds, the example looped (played
forwards then backwards, so the head moves continuously) to that length.
Each configuration runs in a fresh process, `--repeats` times:

* in-process: `estimate_body_motion` after one warm-up call (seconds, × real time), with
  OpenMP threads that sleep while they wait, as `egoallo` sets up (`egoallo.threads`);
* whole process: `egoallo infer TRAJ --guidance G --threads N`, start-up included;
* peak RAM: the largest resident set of that `egoallo infer` process (`wait4`);
* CPU seconds (user + system) of both, which a machine shared with other jobs inflates less than wall time.

`--busy` adds rows for the default `egoallo infer INPUT --guidance feet` (threads
chosen by egoallo) of each input on its own and next to one CPU-bound neighbour process
(a Python busy loop), and the same with `OMP_WAIT_POLICY=ACTIVE` (spinning OpenMP threads,
as before egoallo set PASSIVE). Prints markdown tables with the minimum and median.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from _common import cpu_model, machine

def looped_trajectory(frames: int, path: Path) -> Path:
    """The example trajectory played forwards and backwards to `frames` poses at 30 fps, as an .npz."""
    import numpy as np

    from egoallo.assets import EXAMPLE_TRAJECTORY
    from egoallo.inputs.trajectory import read_trajectory

    base = read_trajectory(EXAMPLE_TRAJECTORY, device_is_cpf=True).resample(30.0)
    period = 2 * len(base) - 2
    index = np.arange(frames) % period
    index = np.where(index < len(base), index, period - index)
    timestamps = np.round(np.arange(frames) * 1e9 / 30.0).astype(np.int64)
    np.savez(path, timestamps_ns=timestamps, T_world_cpf=base.T_world_cpf[index])
    return path


def machine_speed() -> str:
    """The CPU's name and three reference speeds, so runs on different machines can be compared."""

    model = cpu_model()
    imports = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch"], check=True)
        imports.append(time.perf_counter() - start)
    code = ("import time, numpy as np; a = np.ones((512, 512), np.float32); a @ a; t = time.perf_counter()\n"
            "for _ in range(50): a @ a\nprint(50 * 2 * 512**3 / (time.perf_counter() - t) / 1e9)")
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    gflops = float(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                  check=True).stdout)
    start = time.perf_counter()
    sum(i * i for i in range(2_000_000))
    python_s = time.perf_counter() - start
    return (f"CPU: {model}; `import torch` {statistics.median(imports):.2f} s (median of 3), one-thread float32 "
            f"matmul {gflops:.0f} GFLOP/s, Python loop of 2 M squares {python_s:.3f} s")


def _infer_args(name: str, folder: Path) -> list[str]:
    """The trajectory arguments of `egoallo infer` for input `name` ("example" or seconds)."""
    if name == "example":
        return ["--example"]
    path = folder / f"trajectory_{name}s.npz"
    if not path.exists():
        looped_trajectory(int(round(float(name) * 30)), path)
    return [str(path), "--up", "z"]


def run_child(command: list[str], env: dict[str, str]) -> tuple[float, float, float, str]:
    """Wall seconds, CPU seconds, peak resident set (GB) and output of a child process."""
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{output}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1e6, output  # ru_maxrss: kilobytes on Linux


def in_process(name: str, threads: int, guidance: str, folder: Path, steps: int | None) -> dict:
    """Child mode: time `estimate_body_motion` after a warm-up; prints JSON."""
    import torch

    from egoallo.assets import EXAMPLE_TRAJECTORY
    from egoallo.prior.checkpoint import checkpoint_and_sampling
    from egoallo.body import BodyModel
    from egoallo.inference import SamplingConfig, estimate_body_motion, standing_eye_height
    from egoallo.inputs.points import floor_from_trajectory
    from egoallo.inputs.trajectory import read_trajectory
    from egoallo.prior.checkpoint import load_denoiser

    torch.set_num_threads(threads)
    args = _infer_args(name, folder)
    if args == ["--example"]:
        trajectory = read_trajectory(EXAMPLE_TRAJECTORY, device_is_cpf=True).resample(30.0)
    else:
        trajectory = read_trajectory(Path(args[0]), up="z").resample(30.0)
    checkpoint, num_steps, eta = checkpoint_and_sampling(None, steps)
    _, denoiser = load_denoiser(checkpoint)
    body = BodyModel.load_default()
    floor = floor_from_trajectory(trajectory.T_world_cpf[:, 2, 3], standing_eye_height(body))
    modes = frozenset() if guidance == "off" else frozenset({guidance})
    warm_up = SamplingConfig(num_steps=2, guidance=modes, post_iterations=2)
    estimate_body_motion(trajectory, denoiser, body, floor_z=floor.z, config=warm_up)
    start, cpu = time.perf_counter(), time.process_time()
    estimate_body_motion(trajectory, denoiser, body, floor_z=floor.z, config=SamplingConfig(num_steps=num_steps, eta=eta, guidance=modes))
    return {"wall": time.perf_counter() - start, "cpu": time.process_time() - cpu, "frames": len(trajectory)}


def _summary(values: list[float]) -> str:
    return f"{min(values):.2f} / {statistics.median(values):.2f}"


def benchmark(args: argparse.Namespace, folder: Path) -> None:
    env = dict(os.environ)
    print("| input | threads | guidance | in-process (s), min / median | × real time | CPU (s) | "
          "whole `egoallo infer` (s), min / median | × real time | CPU (s) | peak RAM (GB) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.inputs:
        for threads in args.threads:
            for guidance in args.guidance:
                inside, whole = [], []
                for _ in range(args.repeats):
                    child = [sys.executable, __file__, "--child", json.dumps([name, threads, guidance, str(folder), args.steps])]
                    inside.append(json.loads(run_child(child, env)[3].strip().splitlines()[-1]))
                    steps = [] if args.steps is None else ["--steps", str(args.steps)]
                    command = ["egoallo", "infer", *_infer_args(name, folder), *steps, "--guidance", guidance,
                               "--threads", str(threads), "--out", str(folder / "result.npz"), "--force"]
                    whole.append(run_child(command, env)[:3])
                walls, motion = [r["wall"] for r in inside], inside[0]["frames"] / 30.0
                whole_walls = [w for w, _, _ in whole]
                print(f"| {motion:.1f} s | {threads} | {guidance} | {_summary(walls)} | {motion / min(walls):.1f} | "
                      f"{min(r['cpu'] for r in inside):.2f} | {_summary(whole_walls)} | "
                      f"{motion / min(whole_walls):.1f} | {min(c for _, c, _ in whole):.2f} | "
                      f"{max(r for _, _, r in whole):.2f} |", flush=True)


def busy(args: argparse.Namespace, folder: Path) -> None:
    """`egoallo infer INPUT --guidance feet` (default threads) alone and next to a busy neighbour, per input."""
    print("\n| `egoallo infer INPUT --guidance feet`, default threads | OpenMP waiting | whole process (s), min / median | "
          "CPU (s) |")
    print("|---|---|---|---|")
    for name in args.inputs:
        command = ["egoallo", "infer", *_infer_args(name, folder), "--guidance", "feet",
                   "--out", str(folder / "result.npz"), "--force"]
        length = "11.0 s" if name == "example" else f"{float(name):.1f} s"
        for policy in ("PASSIVE", "ACTIVE"):
            env = {**os.environ, "OMP_WAIT_POLICY": policy}
            for label, neighbour in (("alone", False), ("one CPU-bound neighbour", True)):
                runs = []
                for _ in range(args.repeats):
                    loop = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if neighbour else None
                    try:
                        runs.append(run_child(command, env)[:2])
                    finally:
                        if loop is not None:
                            loop.kill()
                            loop.wait()
                note = " (egoallo's default)" if policy == "PASSIVE" else " (spinning)"
                print(f"| {length}, {label} | {policy}{note} | {_summary([w for w, _ in runs])} | "
                      f"{min(c for _, c in runs):.2f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", nargs="+", default=["example", "60"], help='"example" or seconds')
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--guidance", choices=["off", "feet"], nargs="+", default=["off", "feet"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--busy", action="store_true", help="add the busy-machine rows")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (default: as `egoallo infer`)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        from egoallo.threads import prefer_passive_waiting

        prefer_passive_waiting()  # before torch is imported, as the egoallo command does
        name, threads, guidance, folder, steps = json.loads(args.child)
        print(json.dumps(in_process(name, threads, guidance, Path(folder), steps)))
        return
    print(f"{machine()} at start; {args.repeats} runs each")
    print(f"{machine_speed()}\n")
    with tempfile.TemporaryDirectory() as tmp:
        benchmark(args, Path(tmp))
        if args.busy:
            busy(args, Path(tmp))


if __name__ == "__main__":
    main()
