"""Start-up time of whole `egoallo` commands, as a user runs them: repeated runs as subprocesses.

    python benchmarks/benchmark_startup.py [--repeats 10] [--example-repeats 3] [--top 8] [--points CLOUD]

Times `egoallo --help`, a missing-file error (`egoallo infer missing.csv`) and `egoallo infer --example`
(each run in a fresh temporary folder; wall and CPU time), then lists what each command imports, slowest first
(`python -X importtime`, top-level imports by cumulative time). Prints markdown for
docs/performance.md ("Start-up"). Wall times depend on the machine's load, printed with them.
"""

from __future__ import annotations

import argparse
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from _common import machine

COMMANDS = {
    "egoallo --help": ["--help"],
    "egoallo infer missing.csv": ["infer", "missing.csv"],
    "egoallo infer --example": ["infer", "--example"],
}


def egoallo_command() -> list[str]:
    """The `egoallo` script installed beside this Python, else `python -m egoallo.cli.main`."""
    script = Path(sys.executable).parent / "egoallo"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "egoallo.cli.main"]


def run_times(args: list[str], repeats: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU (user + system) seconds of `repeats` runs of `egoallo ARGS`, each in a new empty folder."""
    walls, cpus = [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as folder:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            subprocess.run([*egoallo_command(), *args], cwd=folder, capture_output=True, check=False)
            walls.append(time.perf_counter() - start)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return walls, cpus


def import_offenders(args: list[str], top: int) -> list[tuple[str, float]]:
    """(module, cumulative seconds) of the `top` slowest top-level imports of `egoallo ARGS`."""
    code = f"from egoallo.cli.main import main; main({args!r})"
    with tempfile.TemporaryDirectory() as folder:
        done = subprocess.run([sys.executable, "-X", "importtime", "-c", code], cwd=folder, capture_output=True, text=True)
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line.split("|")
        if not name.startswith("  "):  # a top-level import (nested ones are indented)
            rows.append((name.strip(), int(cumulative) / 1e6))
    return sorted(rows, key=lambda row: -row[1])[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10, help="runs of the quick commands")
    parser.add_argument("--example-repeats", type=int, default=3, help="runs of infer --example")
    parser.add_argument("--top", type=int, default=8, help="imports listed per command")
    parser.add_argument("--points", type=Path, help="also time `infer --example --points POINTS` (a point cloud)")
    args = parser.parse_args()
    commands = dict(COMMANDS)
    if args.points is not None:
        commands[f"egoallo infer --example --points {args.points.name}"] = ["infer", "--example", "--points", str(args.points.resolve())]
    print(f"{machine()} at the start; Python {platform.python_version()}\n")
    print("| command | runs | wall best (s) | wall median (s) | wall worst (s) | CPU median (s) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, command in commands.items():
        repeats = args.example_repeats if "--example" in command else args.repeats
        walls, cpus = run_times(command, repeats)
        print(f"| `{name}` | {repeats} | {min(walls):.2f} | {statistics.median(walls):.2f} | {max(walls):.2f} "
              f"| {statistics.median(cpus):.2f} |")
    for name, command in commands.items():
        print(f"\nSlowest imports of `{name}` (`python -X importtime`, cumulative):\n")
        print("| module | s |")
        print("|---|---:|")
        for module, seconds in import_offenders(command, args.top):
            print(f"| `{module}` | {seconds:.3f} |")


if __name__ == "__main__":
    main()
