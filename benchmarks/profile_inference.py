"""Where the time of `egoallo infer --example --guidance feet` goes, stage by stage.

    python benchmarks/profile_inference.py [--threads 1] [--guidance feet|off] [--repeats 3]

Start-up is a fresh interpreter importing what `egoallo infer` imports
(`python -X importtime`); the in-process stages are timed by wrapping the
library's own functions while `estimate_body_motion` runs on the shipped
example (11.0 s, 330 frames). Each run is repeated; the table gives the
fastest and the median. Prints markdown.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from _common import machine

STARTUP_IMPORT = "import egoallo.cli.infer"


def startup(threads: int) -> tuple[float, list[tuple[float, str]]]:
    """Wall seconds of a fresh interpreter importing the infer command; its 8 slowest packages (cumulative)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    command = [sys.executable, "-X", "importtime", "-c", STARTUP_IMPORT]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    slowest: dict[str, float] = {}
    for line in out.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| *(\S+)", line)
        if match and "." not in match.group(2) and match.group(2) != "egoallo":  # packages, not their modules
            slowest[match.group(2)] = max(slowest.get(match.group(2), 0.0), int(match.group(1)) / 1e6)
    top = [(seconds, name) for name, seconds in slowest.items()]
    return wall, sorted(top, reverse=True)[:8]


class Stopwatch:
    """Accumulates wall and CPU time of wrapped functions under labels (nested calls count in both)."""

    def __init__(self) -> None:
        self.total: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.marks: dict[str, list[float]] = defaultdict(list)

    def wrap(self, owner, name: str, label: str) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        def timed(*args, **kwargs):
            start, cpu = time.perf_counter(), time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                self.total[label] += time.perf_counter() - start
                self.cpu[label] += time.process_time() - cpu
                self.calls[label] += 1

        setattr(owner, name, timed)

    def mark(self, owner, name: str, label: str) -> None:
        """Record the time at which each call of `owner.name` returns."""
        original = getattr(owner, name)

        @functools.wraps(original)
        def marked(*args, **kwargs):
            out = original(*args, **kwargs)
            self.marks[label].append(time.perf_counter())
            return out

        setattr(owner, name, marked)


def profile_once(guidance: frozenset[str], steps: int | None) -> dict[str, float]:
    """Seconds per stage of one in-process run on the example."""
    import egoallo.guidance.problem as problem
    import egoallo.guidance.solver as solver
    import egoallo.inference as inference
    import egoallo.prior.diffusion as diffusion
    from egoallo.assets import EXAMPLE_TRAJECTORY
    from egoallo.body import BodyModel
    from egoallo.inputs.points import floor_from_trajectory
    from egoallo.inputs.trajectory import read_trajectory
    from egoallo.prior.checkpoint import checkpoint_and_sampling, load_denoiser

    watch = Stopwatch()
    stages: dict[str, float] = {}
    start = time.perf_counter()
    checkpoint, num_steps, eta = checkpoint_and_sampling(None, steps)
    _, denoiser = load_denoiser(checkpoint)
    body = BodyModel.load_default()
    stages["load checkpoint and body model"] = time.perf_counter() - start
    start = time.perf_counter()
    trajectory = read_trajectory(EXAMPLE_TRAJECTORY, device_is_cpf=True).resample(30.0)
    floor = floor_from_trajectory(trajectory.T_world_cpf[:, 2, 3], inference.standing_eye_height(body))
    stages["read trajectory, floor"] = time.perf_counter() - start

    watch.wrap(inference, "compute_conditioning", "conditioning")
    watch.wrap(inference, "ddim_sample", "sampling")
    watch.wrap(inference, "place_in_world", "placement")
    watch.wrap(problem, "levenberg_marquardt", "lm")
    watch.wrap(problem, "build_problem", "lm setup")
    watch.wrap(problem.GuidanceProblem, "residuals", "lm residuals and Jacobians")
    watch.wrap(solver, "normal_equations", "lm normal equations")
    watch.wrap(solver, "solve_banded", "lm banded solve")
    watch.mark(diffusion, "project_state", "step")
    forward = denoiser.forward
    network = {"s": 0.0, "calls": 0}

    def timed_forward(*args, **kwargs):
        begin = time.perf_counter()
        out = forward(*args, **kwargs)
        network["s"] += time.perf_counter() - begin
        network["calls"] += 1
        return out

    denoiser.forward = timed_forward
    config = inference.SamplingConfig(num_steps=num_steps, eta=eta, guidance=guidance)
    start, cpu = time.perf_counter(), time.process_time()
    result = inference.estimate_body_motion(trajectory, denoiser, body, floor_z=floor.z, config=config)
    stages["estimate_body_motion (in-process total)"] = time.perf_counter() - start
    stages["estimate_body_motion, CPU time"] = time.process_time() - cpu
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result.save(Path(tmp) / "result.npz")
        stages["write result.npz"] = time.perf_counter() - start

    steps = len(watch.marks["step"])
    stages["conditioning"] = watch.total["conditioning"]
    stages[f"network forward ({network['calls']} calls)"] = network["s"]
    stages[f"denoising: per step ({steps} steps)"] = (watch.total["sampling"] - watch.total["conditioning"]) / steps
    stages["denoising: network per step"] = network["s"] / steps
    stages["window handling, blending, SO(3) projection, DDIM update"] = (
        watch.total["sampling"] - watch.total["conditioning"] - network["s"]
    )
    stages["sampling (all steps)"] = watch.total["sampling"]
    stages["sampling, CPU time"] = watch.cpu["sampling"]
    if guidance:
        log = result.metadata["guidance"]["post"]
        iterations = log["iterations"]
        stages[f"guidance total ({iterations} LM iterations)"] = log["time_s"]
        stages["guidance: problem setup"] = watch.total["lm setup"]
        stages["guidance: LM per iteration"] = watch.total["lm"] / max(iterations, 1)
        stages["guidance: residuals and Jacobians"] = watch.total["lm residuals and Jacobians"]
        stages["guidance: normal equations"] = watch.total["lm normal equations"]
        stages["guidance: banded solve"] = watch.total["lm banded solve"]
        stages["guidance (LM), CPU time"] = watch.cpu["lm"]
    stages["placement in the world"] = watch.total["placement"]
    return stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--guidance", choices=["feet", "off"], default="feet")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (default: as `egoallo infer`)")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    guidance = frozenset() if args.guidance == "off" else frozenset({args.guidance})
    walls, tops = [], []
    for _ in range(args.repeats):
        wall, top = startup(args.threads)
        walls.append(wall)
        tops.append(top)
    runs = [profile_once(guidance, args.steps) for _ in range(args.repeats)]
    print(f"torch {torch.__version__}, {args.threads} thread(s), {machine()}; guidance {args.guidance}, "
          f"{args.repeats} runs; wall seconds unless the stage says CPU time\n")
    print("| stage | min (s) | median (s) |")
    print("|---|---|---|")
    startup_label = f"start-up: `{STARTUP_IMPORT}` in a fresh interpreter"
    print(f"| {startup_label} | {min(walls):.3f} | {statistics.median(walls):.3f} |")
    for label in runs[0]:
        values = [run.get(label, float("nan")) for run in runs]
        print(f"| {label} | {min(values):.3f} | {statistics.median(values):.3f} |")
    print("\nSlowest packages imported at start-up (cumulative, first run):\n")
    print(", ".join(f"`{name}` {seconds:.2f} s" for seconds, name in tops[0]))


if __name__ == "__main__":
    main()
