"""In-process time of `egoallo infer --example --guidance feet --samples N` against N (docs/performance.md).

    python benchmarks/benchmark_samples.py [--samples 1 2 4 8] [--guided consensus samples] [--repeats 3]

One process; the models are loaded and one warm-up estimate runs first. Then every configuration runs once per
round, `--repeats` rounds, the configurations interleaved, so that a machine whose load changes slows all of
them alike and their ratios stay comparable. Timed: `pipeline.estimate_file` (reading the trajectory, the floor,
sampling, guidance, placement, the consensus and spread; not loading the models or writing the file). Printed:
the median and minimum seconds per configuration, and the median over the one-sample median.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--guided", nargs="+", default=["consensus", "samples"],
                        help="which bodies are guided with two or more samples (egoallo infer --guided)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    print(machine())

    from egoallo.assets import EXAMPLE_TRAJECTORY
    from egoallo.pipeline import InferOptions, estimate_file

    configs = [(1, "consensus")] + [(n, g) for n in args.samples if n > 1 for g in args.guided]
    times: dict[tuple[int, str], list[float]] = {c: [] for c in configs}

    def run(samples: int, guided: str) -> float:
        options = InferOptions(device_is_cpf=True, guidance=frozenset({"feet"}), samples=samples, guided=guided,
                               threads=args.threads)
        start = time.perf_counter()
        estimate_file(EXAMPLE_TRAJECTORY, options, say=lambda line: None, progress=False)
        return time.perf_counter() - start

    run(1, "consensus")  # warm-up: imports, the models, first calls
    for _ in range(args.repeats):
        for config in configs:
            times[config].append(run(*config))
    base = statistics.median(times[(1, "consensus")])
    print("| samples | guided | median (s) | min (s) | median / one sample |\n|---|---|---|---|---|")
    for (samples, guided), seconds in times.items():
        median = statistics.median(seconds)
        print(f"| {samples} | {guided if samples > 1 else '(the sample)'} | {median:.2f} | {min(seconds):.2f} | "
              f"{median / base:.2f}x |")


if __name__ == "__main__":
    main()
