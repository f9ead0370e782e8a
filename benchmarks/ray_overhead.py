"""Where `egoallo batch --ray`'s time goes on a local cluster: its start, Ray's own processes, the workers' idle
time between recordings, the shutdown.

    python benchmarks/ray_overhead.py [--work DIR] [--copies 6] [--workers 2] [--idle-s 30]

Starts a local cluster as `egoallo batch --ray` does (`RayCluster`), on the corpus of `batch_corpus.py` (made under
--work). Prints: the time to import Ray and to start the cluster, and the CPU seconds its processes (the
driver's descendants) used by then; the CPU seconds each of them uses over --idle-s seconds with nothing to run;
then, with the recordings run one per worker as `run_jobs` runs them (each task wrapped to note its process
and its start and end), per worker the delay before its first recording, its idle time between recordings
(the driver's round trip) and its longest such gap; and the shutdown's time.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from batch_corpus import make_corpus
from egoallo.batch.backends import RayCluster
from egoallo.batch.corpus import recordings_in
from egoallo.batch.jobs import BatchOptions, Job, run_job
from egoallo.batch.runner import plan
from egoallo.pipeline import InferOptions


def timed_job(job: Job) -> tuple[int, float, float]:
    """`run_job` in a Ray worker: its process id, start and end (wall clock)."""
    start = time.time()
    run_job(job)
    return os.getpid(), start, time.time()


def cpu_seconds_below(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) of each process below `pid`, keyed by 'pid name'."""
    parents, usage = {}, {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            line = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (ValueError, OSError):
            continue
        if not entry.name.isdigit():
            continue
        fields = stat.rpartition(")")[2].split()
        parents[int(entry.name)] = int(fields[1])
        name = line.split()[0].rsplit("/", 1)[-1] if line.strip() else "?"
        if name.startswith("python"):
            name = next((w.rsplit("/", 1)[-1] for w in line.split()[1:] if w.endswith(".py")), name)
        usage[int(entry.name)] = (name, (int(fields[11]) + int(fields[12])) / tick)
    below, grown = {pid}, True
    while grown:
        more = {p for p, parent in parents.items() if parent in below} - below
        below |= more
        grown = bool(more)
    return {f"{p} {usage[p][0]}": usage[p][1] for p in below - {pid} if p in usage}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--copies", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--idle-s", type=float, default=30.0)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="egoallo-ray-overhead-"))
    corpus, out = work / "corpus", work / "out-overhead"
    if not corpus.is_dir():
        make_corpus(corpus, args.copies)
    shutil.rmtree(out, ignore_errors=True)
    rows, jobs = plan(recordings_in(corpus), out, BatchOptions(infer=InferOptions(threads=1), guidance=frozenset({"feet"})))
    print(f"{len(jobs)} recordings, {args.workers} worker(s), {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} at the start")

    start = time.perf_counter()
    import ray

    imported = time.perf_counter()
    cluster = RayCluster("local", args.workers).__enter__()
    started = time.perf_counter()
    at_start = cpu_seconds_below(os.getpid())
    print(f"import ray {imported - start:.2f} s; start the local cluster {started - imported:.2f} s; "
          f"its {len(at_start)} processes used {sum(at_start.values()):.1f} CPU s by then")
    time.sleep(args.idle_s)
    idle = cpu_seconds_below(os.getpid())
    used = {k: v - at_start.get(k, 0.0) for k, v in idle.items()}
    print(f"over {args.idle_s:.0f} s with nothing to run: {sum(used.values()):.2f} CPU s ("
          + ", ".join(f"{k} {v:.2f}" for k, v in sorted(used.items(), key=lambda kv: -kv[1]) if v >= 0.01) + ")")

    remote = ray.remote(num_cpus=1, max_retries=0)(timed_job)
    queue, running, spans = list(reversed(jobs)), [], []
    begin = time.time()
    while queue or running:
        while queue and len(running) < cluster.slots:
            running.append(remote.remote(queue.pop()))
        done, running = ray.wait(running, num_returns=1)
        spans += ray.get(done)
    end = time.time()
    by_worker = collections.defaultdict(list)
    for pid, s, e in spans:
        by_worker[pid].append((s, e))
    for pid, times in sorted(by_worker.items()):
        times.sort()
        gaps = [b[0] - a[1] for a, b in zip(times, times[1:])]
        print(f"worker {pid}: {len(times)} recordings, first one {times[0][0] - begin:.2f} s after the first "
              f"submission, idle between recordings {sum(gaps):.2f} s in all (longest {max(gaps, default=0):.3f} s), "
              f"done {end - times[-1][1]:.2f} s before the last result came back")
    print(f"recordings: {end - begin:.1f} s")
    stop = time.perf_counter()
    cluster.__exit__(None, None, None)
    print(f"shutdown {time.perf_counter() - stop:.2f} s")


if __name__ == "__main__":
    sys.exit(main())
