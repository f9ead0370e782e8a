"""`egoallo batch` on a generated corpus: throughput with 1 and 2 local workers and on a local Ray cluster,
and what a SIGKILL part-way leaves for the rerun.

    python benchmarks/batch_corpus.py [--work DIR] [--copies 6] [--runs local1,local2,ray1,ray2] [--repeats 1]
        [--kill-demo] [--guidance feet]

The corpus (written under --work, default a temporary folder) is made from the shipped example trajectory
(11 s, 30 Hz) and the real Aria files in ../shared/aria, laid out as Aria Everyday Activities, Nymeria (with a
wristband recording that must be left out) and plain MPS output, plus loose TUM files: variants shifted in
space and time, resampled to 1 kHz like MPS, played forward and back to make longer recordings; and four
broken ones (a truncated CSV, a header without rows, a TUM file with a garbage line, an .npz of the wrong
shape). Each run is `egoallo batch CORPUS --out OUT --guidance feet` with the shipped model in a fresh OUT, timed from the
command's start to its end (worker start-up included): `localN` on N pool workers, `rayN` with `--ray` (a local cluster
of N CPUs started and stopped by the command), `joinN` with `--ray ADDRESS` joining a local cluster of N CPUs
started before the timing (Ray's cost per recording without its start-up; the start-up is printed). With
--repeats R the runs are made R times, every other time in reverse order, and each round's Ray / local pool
wall-time ratios are printed (rounds measured back to back share the machine's state). Prints a markdown table: recordings per minute,
× real time (seconds of motion estimated per second of wall time), the peak resident memory of a worker,
the recordings' own times summed over the wall time (how many workers were busy on average) and the
machine's load average when the run started (other processes on a shared machine slow every run).
With --kill-demo it also runs the corpus on 2 workers, kills the whole command with SIGKILL once a few
recordings are done, prints the summary counts, reruns it and prints them again.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from _common import SHARED
from egoallo.assets import EXAMPLE_TRAJECTORY


def example_rows() -> tuple[list[str], np.ndarray]:
    """The example MPS CSV's header and its rows as numbers (graph_uid column dropped)."""
    lines = EXAMPLE_TRAJECTORY.read_text().splitlines()
    return lines[0].split(","), np.array([[float(v) for v in line.split(",")[1:]] for line in lines[1:]])


def mps_text(header: list[str], rows: np.ndarray) -> str:
    """An MPS trajectory CSV of `rows` (columns after graph_uid; time columns in µs and ns)."""
    out = [",".join(header)]
    for row in rows:
        cells = [f"{int(row[0])}", f"{int(row[1])}", *(f"{v:.8f}" for v in row[2:])]
        out.append(",".join(["egoallo-bench", *cells]))
    return "\n".join(out) + "\n"


def variant(rows: np.ndarray, *, shift_m=(0.0, 0.0, 0.0), shift_s=0.0, repeats=1, rate_hz=30.0) -> np.ndarray:
    """The example moved by `shift_m`, started `shift_s` later, played forward and back `repeats` times (no jump),
    linearly resampled to `rate_hz` (quaternions renormalised)."""
    played = [rows if i % 2 == 0 else rows[::-1] for i in range(repeats)]
    poses = np.concatenate(played)[:, 2:]  # from tx on
    step_us = 1e6 / 30.0
    t_us = np.arange(len(poses)) * step_us
    if rate_hz != 30.0:
        new_t = np.arange(0.0, t_us[-1], 1e6 / rate_hz)
        poses = np.stack([np.interp(new_t, t_us, poses[:, c]) for c in range(poses.shape[1])], axis=1)
        q = poses[:, 3:7]
        poses[:, 3:7] = q / np.linalg.norm(q, axis=1, keepdims=True)
        t_us = new_t
    poses = poses.copy()
    poses[:, :3] += shift_m
    t_us = t_us + shift_s * 1e6
    return np.concatenate([t_us[:, None], t_us[:, None] * 1e3, poses], axis=1)


def tum_text(rows: np.ndarray) -> str:
    return "".join(f"{r[0] / 1e6:.6f} {r[2]:.6f} {r[3]:.6f} {r[4]:.6f} {r[5]:.8f} {r[6]:.8f} {r[7]:.8f} {r[8]:.8f}\n"
                   for r in rows)


def put(path: Path, text: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())


def make_corpus(root: Path, copies: int) -> dict[str, int]:
    """Write the corpus; returns how many recordings of each kind it holds."""
    header, rows = example_rows()
    aria = SHARED / "aria"
    counts = Counter()
    rng = np.random.default_rng(0)
    for i in range(copies):
        shift = rng.uniform(-50, 50, 3).round(2)
        shift[2] = 0.0
        repeats = 1 + i % 6
        # Aria Everyday Activities: <seq>/mps/slam, 1 kHz like MPS for a third of them
        seq = root / "aea" / f"loc{i % 3 + 1}_script{i}_seq1_rec1"
        rate = 1000.0 if i % 3 == 0 else 30.0
        put(seq / "mps" / "slam" / "closed_loop_trajectory.csv",
            mps_text(header, variant(rows, shift_m=shift, shift_s=100 * i, repeats=repeats, rate_hz=rate)))
        shutil.copyfile(aria / "mps_online_calibration_first_line.jsonl", seq / "mps" / "slam" / "online_calibration.jsonl")
        counts["aea"] += 1
        # Nymeria: <seq>/recording_head (a head) and recording_lwrist (not one)
        nym = root / "nymeria" / f"20230607_s{i}_person_act{i % 2}"
        text = mps_text(header, variant(rows, shift_m=-shift, shift_s=7 * i, repeats=1 + (i + 2) % 6))
        put(nym / "recording_head" / "mps" / "slam" / "closed_loop_trajectory.csv", text)
        put(nym / "recording_lwrist" / "mps" / "slam" / "closed_loop_trajectory.csv", text)
        counts["nymeria"] += 1
        # Loose TUM files
        put(root / "tum" / f"walk_{i}.txt", tum_text(variant(rows, shift_m=shift / 2, repeats=1 + (i + 4) % 6)))
        counts["tum"] += 1
    # Plain MPS output of the real short trajectory, with its calibration and wrist/palm tracking
    plain = root / "lab" / "mps_short_vrs"
    put(plain / "slam" / "closed_loop_trajectory.csv", (aria / "mps_closed_loop_trajectory_short.csv").read_bytes())
    shutil.copyfile(aria / "mps_online_calibration_first_line.jsonl", plain / "slam" / "online_calibration.jsonl")
    put(plain / "hand_tracking" / "wrist_and_palm_poses.csv", (aria / "mps_wrist_and_palm_poses_v1.csv").read_bytes())
    counts["plain MPS"] += 1
    # Broken recordings
    good = mps_text(header, rows)
    put(root / "broken" / "truncated" / "mps" / "slam" / "closed_loop_trajectory.csv", good[: len(good) // 2 + 7])
    put(root / "broken" / "no_rows" / "mps" / "slam" / "closed_loop_trajectory.csv", ",".join(header) + "\n")
    put(root / "broken" / "garbage.txt", tum_text(rows[:50]) + "12.0 1 2 3 nan x 0 1\n" + tum_text(rows[50:]))
    np.savez(root / "broken" / "wrong_shape.npz", timestamps_ns=np.arange(10), T_world_cpf=np.zeros((10, 3, 4)))
    counts["broken"] += 4
    return dict(counts)


def egoallo(*args: str) -> list[str]:
    return [sys.executable, "-m", "egoallo.cli.main", *args]


def read_summary(out: Path) -> list[dict[str, str]]:
    with open(out / "summary.csv") as f:
        return list(csv.DictReader(f))


HEAD = """
import logging, sys, ray
ray.init(num_cpus=int(sys.argv[1]), include_dashboard=False, logging_level=logging.WARNING,
         _system_config={"worker_niceness": 0})
print(ray.get_runtime_context().gcs_address, flush=True)
sys.stdin.read()  # until the benchmark closes it
ray.shutdown()
"""


class ray_head:
    """A local Ray cluster of `cpus` CPUs in a process of its own (as `ray start --head` gives, without touching the
    other Ray clusters on the machine); its address, and how long it took to start."""

    def __init__(self, cpus: int) -> None:
        self.cpus = cpus

    def __enter__(self) -> tuple[str, float]:
        start = time.perf_counter()
        self.process = subprocess.Popen([sys.executable, "-c", HEAD, str(self.cpus)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        address = self.process.stdout.readline().strip()
        if not address:
            raise RuntimeError("the Ray head did not start")
        return address, time.perf_counter() - start

    def __exit__(self, *exc: object) -> None:
        self.process.stdin.close()
        self.process.wait()


def timed_run(corpus: Path, out: Path, workers: int, ray: str | None, flags: list[str]) -> dict[str, float | str]:
    """One `egoallo batch` run in a fresh `out` (`ray`: None for the local pool, "local" for `--ray`, else the
    address of a running cluster); its throughput figures."""
    shutil.rmtree(out, ignore_errors=True)
    backend = [] if ray is None else ["--ray"] if ray == "local" else ["--ray", ray]
    command = egoallo("batch", str(corpus), "--out", str(out), "--workers", str(workers), *flags, *backend)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    joins = ray not in (None, "local")  # the head made a token for its cluster (~/.ray/auth_token)
    env = {**os.environ, "RAY_AUTH_MODE": "token"} if joins else None
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    print(f"$ {'RAY_AUTH_MODE=token ' if joins else ''}egoallo batch CORPUS --out OUT --workers {workers} "
          f"{' '.join([*flags, *backend])}  "
          f"(exit {done.returncode})")
    print(done.stdout.strip())
    rows = read_summary(out)
    finished = [r for r in rows if r["status"] in ("ok", "failed")]
    motion = sum(float(r["motion_s"]) for r in rows if r["status"] == "ok")
    peaks = [float(r["worker_peak_mb"]) for r in rows if r["worker_peak_mb"]]
    return {
        "run": f"{RUN_NAMES[ray if ray in (None, 'local') else 'join']}, {workers} worker(s)",
        "recordings": f"{sum(r['status'] == 'ok' for r in rows)} ok + {sum(r['status'] == 'failed' for r in rows)} failed",
        "wall_s": wall,
        "per_min": len(finished) / wall * 60,
        "real_time": motion / wall,
        "peak_mb": max(peaks) if peaks else float("nan"),
        "busy": sum(float(r["seconds"]) for r in finished) / wall,
        "load": load,
    }


def split_run(run: str) -> tuple[str, int]:
    """`"local12"` -> `("local", 12)`: a --runs entry's backend and worker count."""
    match = re.fullmatch(r"(local|ray|join)(\d+)", run)
    if match is None:
        raise SystemExit(f"--runs: {run!r} is not localN, rayN or joinN")
    return match[1], int(match[2])


RUN_NAMES = {None: "local pool", "local": "Ray (local cluster, started by the run)",
             "join": "Ray (joined a running local cluster)"}


def counts(out: Path) -> str:
    """The summary's status counts, then each recording's status."""
    rows = read_summary(out)
    tally = Counter(r["status"] for r in rows)
    return ", ".join(f"{n} {s}" for s, n in sorted(tally.items())) + "".join(
        f"\n    {r['recording']}: {r['status']}" for r in rows)


def kill_demo(corpus: Path, out: Path, after: int, flags: list[str]) -> None:
    """Run on 2 workers, SIGKILL the command (its whole process group) once `after` recordings are done, rerun."""
    shutil.rmtree(out, ignore_errors=True)
    command = egoallo("batch", str(corpus), "--out", str(out), "--workers", "2", *flags)
    print(f"$ egoallo batch CORPUS --out OUT --workers 2 {' '.join(flags)}   # SIGKILL after {after} recordings")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    while process.poll() is None:
        if (out / "summary.csv").is_file() and sum(r["status"] in ("ok", "failed") for r in read_summary(out)) >= after:
            os.killpg(process.pid, signal.SIGKILL)
            break
        time.sleep(0.2)
    process.wait()
    print(process.stdout.read().strip())
    print(f"[exit {process.returncode}] summary.csv after the kill: {counts(out)}")
    results = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.name != "summary.csv")
    stray = [p for p in results if not p.endswith("/result.npz")]
    print(f"files in OUT besides summary.csv: {len(results)} ({len(stray)} not a finished result.npz: {stray})")
    print(f"$ egoallo batch CORPUS --out OUT --workers 2 {' '.join(flags)}   # rerun")
    done = subprocess.run(command, capture_output=True, text=True)
    print(done.stdout.strip())
    print(f"[exit {done.returncode}] summary.csv after the rerun: {counts(out)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None, help="folder for the corpus and outputs (default: temporary)")
    parser.add_argument("--copies", type=int, default=6, help="variants per layout (3 recordings each)")
    parser.add_argument("--runs", default="local1,local2,ray1,ray2",
                        help="comma-separated: localN, rayN, joinN (N workers)")
    parser.add_argument("--repeats", type=int, default=1, help="rounds of the runs, every other one in reverse order")
    parser.add_argument("--kill-demo", action="store_true")
    parser.add_argument("--kill-after", type=int, default=6)
    parser.add_argument("--guidance", default="feet", help="egoallo batch --guidance (default feet)")
    args = parser.parse_args()
    runs = [r for r in args.runs.split(",") if r]
    for run in runs:
        split_run(run)  # a bad entry stops here, before the corpus is made
    work = args.work or Path(tempfile.mkdtemp(prefix="egoallo-batch-bench-"))
    corpus = work / "corpus"
    shutil.rmtree(corpus, ignore_errors=True)
    kinds = make_corpus(corpus, args.copies)
    print(f"corpus {corpus}: {sum(kinds.values())} recordings ({', '.join(f'{n} {k}' for k, n in kinds.items())}) "
          f"on {os.cpu_count()} CPUs")
    flags = ["--guidance", args.guidance]
    if args.kill_demo:
        kill_demo(corpus, work / "out-kill", args.kill_after, flags)
    results, rounds = [], []
    for repeat in range(args.repeats):
        walls = {}
        for run in runs if repeat % 2 == 0 else runs[::-1]:
            kind, workers = split_run(run)
            if kind == "join":
                with ray_head(workers) as (address, started):
                    print(f"(a local Ray cluster of {workers} CPU(s) at {address}, started in {started:.1f} s)")
                    result = timed_run(corpus, work / f"out-{run}", workers, address, flags)
            else:
                result = timed_run(corpus, work / f"out-{run}", workers, "local" if kind == "ray" else None, flags)
            results.append(result)
            walls[run] = result["wall_s"]
        rounds.append(walls)
    pairs = [(r, f"local{split_run(r)[1]}") for r in runs if split_run(r)[0] != "local"]
    pairs = [(r, local) for r, local in pairs if local in runs]
    if pairs:
        print("\nRay / local pool wall time, each round (runs of the same round back to back):")
        for i, walls in enumerate(rounds):
            print(f"  round {i + 1}: " + ", ".join(f"{r} {walls[r] / walls[local]:.3f}" for r, local in pairs))
    if results:
        print("\n| run | recordings | wall (s) | recordings / min | × real time | peak RAM per worker (MiB) "
              "| Σ recording time / wall | load average at start |")
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        for r in results:
            print(f"| {r['run']} | {r['recordings']} | {r['wall_s']:.1f} | {r['per_min']:.1f} | {r['real_time']:.1f} "
                  f"| {r['peak_mb']:.0f} | {r['busy']:.2f} | {r['load']:.1f} |")


if __name__ == "__main__":
    main()
