"""Guidance speed on this CPU: LM wall time against sequence length, and LM against Adam.

    python benchmarks/benchmark_guidance.py [--frames 128 256 512 1024] [--threads 1] [--dtype float32]

The motion is synthetic: a person standing with feet planted (contact 1) while
the spine, neck and arms move, and the "sample" adds smooth random rotation
offsets to every joint, so the feet slide. Prints markdown tables.
"""

from __future__ import annotations

import argparse
import math
import time

from egoallo.threads import prefer_passive_waiting

prefer_passive_waiting()  # before torch and scipy start their thread pools, as the egoallo command does

import torch  # noqa: E402

from egoallo.body import BodyModel  # noqa: E402
from egoallo.geometry import se3, so3  # noqa: E402
from egoallo.guidance import LMConfig, build_problem, guide, levenberg_marquardt  # noqa: E402
from egoallo.guidance.feet import FOOT_JOINTS  # noqa: E402
from egoallo.guidance.solver import sum_of_squares  # noqa: E402
from egoallo.prior.state import MotionState  # noqa: E402
from _common import machine  # noqa: E402

F64 = torch.float64


def synthetic_sample(body: BodyModel, T: int, seed: int = 0) -> tuple[MotionState, torch.Tensor]:
    """A planted-feet motion's head poses (T, 4, 4) and a sample (1, T, ...) with sliding feet."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(T, dtype=F64)[:, None, None] / 30.0
    waves = torch.zeros(T, 21, 3, dtype=F64)
    waves[:, [5, 11, 15, 16, 17, 18], :] = 0.3 * torch.sin(2 * math.pi * 0.4 * t + torch.rand(6, 3, generator=g) * 6)
    truth = so3.exp(waves)
    R_zup = so3.rot_x(torch.tensor(math.pi / 2, dtype=F64))
    T_world_root = se3.from_rotation_translation(R_zup, torch.tensor([0.0, 0.0, 0.95], dtype=F64)).expand(T, 4, 4)
    T_world_cpf = body.to(dtype=F64).with_shape(torch.zeros(16, dtype=F64)).with_pose(T_world_root, truth).T_world_cpf
    freq = 0.2 + 0.6 * torch.rand(21, 3, generator=g, dtype=F64)
    phase = 6.0 * torch.rand(21, 3, generator=g, dtype=F64)
    sample = truth @ so3.exp(0.08 * torch.sin(2 * math.pi * freq * t + phase))
    contacts = torch.zeros(1, T, 21, dtype=F64)
    contacts[..., [j - 1 for j in FOOT_JOINTS]] = 1.0
    return MotionState(torch.zeros(1, T, 16, dtype=F64), sample[None], contacts, None), T_world_cpf


def scaling_table(body: BodyModel, frames: list[int], iterations: int, dtype: torch.dtype) -> None:
    print(f"\n### LM 'post' guidance, mode feet, {iterations} iterations (no early stop), {dtype}\n")
    print("| frames | wall time (s) | CPU time (s) | CPU ms / iteration | CPU µs / frame·iteration |")
    print("|---|---|---|---|---|")
    fixed = LMConfig(relative_tolerance=0.0)
    guide(body, *synthetic_sample(body, 32), mode={"feet"}, iterations=2, dtype=dtype)  # warm-up
    for T in frames:
        state, T_world_cpf = synthetic_sample(body, T)
        start, cpu = time.perf_counter(), time.process_time()
        _, log = guide(body, state, T_world_cpf, mode={"feet"}, iterations=iterations, solver=fixed, floor_z=0.0,
                       dtype=dtype)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        n = log.solver.iterations
        print(f"| {T} | {wall:.2f} | {cpu:.2f} | {1000 * cpu / n:.0f} | {1e6 * cpu / (n * T):.0f} |", flush=True)


TOLERANCES = (0.10, 0.01)
"""Targets: within 10 % and 1 % of LM's converged cost."""


def _adam(
    problem, lr: float, targets: list[float], max_iterations: int
) -> tuple[list[tuple[int, float] | None], float]:
    """Adam on tangent offsets from the sample.

    Returns (iteration, seconds) at which each target is first reached (or None), and the final cost.
    """
    delta = torch.zeros(*problem.prior.shape[:-2], 3, dtype=F64, requires_grad=True)
    optimizer = torch.optim.Adam([delta], lr=lr)
    reached: list[tuple[int, float] | None] = [None] * len(targets)
    start = time.perf_counter()
    cost = math.inf
    for i in range(1, max_iterations + 1):
        optimizer.zero_grad()
        loss = sum_of_squares(problem.residuals(problem.prior @ so3.exp(delta), False)).sum()
        loss.backward()
        optimizer.step()
        cost = loss.item()
        for k, target in enumerate(targets):
            if reached[k] is None and cost <= target:
                reached[k] = (i, time.perf_counter() - start)
        if reached[-1] is not None:
            break
    return reached, cost


def _cell(reached: tuple[int, float] | None, max_iterations: int) -> str:
    return f"{reached[0]} / {reached[1]:.2f}" if reached is not None else f"not in {max_iterations}"


def lm_vs_adam(body: BodyModel, T: int, lrs: list[float], max_adam: int) -> None:
    state, T_world_cpf = synthetic_sample(body, T)
    problem = build_problem(body, state, T_world_cpf, mode={"feet"})
    _, log = levenberg_marquardt(problem.residuals, problem.prior, 50, LMConfig(relative_tolerance=1e-6))
    best = float(log.costs[-1, 0])
    targets = [(1 + tol) * best for tol in TOLERANCES]
    lm_cells = []
    for target in targets:
        k = int((log.costs[:, 0] <= target).nonzero()[0])
        start = time.perf_counter()
        levenberg_marquardt(problem.residuals, problem.prior, k, LMConfig(relative_tolerance=0.0))
        lm_cells.append(_cell((k, time.perf_counter() - start), 0))
    print(
        f"\n### LM vs Adam, {T} frames, mode feet, same total cost (sample's cost {float(log.costs[0, 0]):.4g}, "
        f"LM converged {best:.4g})\n"
    )
    header = " | ".join(f"within {100 * tol:g} %: iterations / s" for tol in TOLERANCES)
    print(f"| optimizer | {header} | cost at stop |")
    print("|---|" + "---|" * len(TOLERANCES) + "---|")
    print(f"| LM (λ₀ = 0.1) | {' | '.join(lm_cells)} | {best:.4g} |")
    for lr in lrs:
        reached, cost = _adam(problem, lr, targets, max_adam)
        print(f"| Adam lr {lr:g} | {' | '.join(_cell(r, max_adam) for r in reached)} | {cost:.4g} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs="+", default=[128, 256, 512, 1024])
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--adam-frames", type=int, default=128)
    parser.add_argument("--adam-lr", type=float, nargs="+", default=[0.001, 0.003, 0.01])
    parser.add_argument("--adam-iterations", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--skip-adam", action="store_true", help="only the scaling table")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    body = BodyModel.load_default()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {machine()}"
    )
    scaling_table(body, args.frames, args.iterations, getattr(torch, args.dtype))
    if not args.skip_adam:
        lm_vs_adam(body, args.adam_frames, args.adam_lr, args.adam_iterations)


if __name__ == "__main__":
    main()
