"""A corpus run: plan the recordings, estimate those not done yet on a local process pool or a Ray cluster,
keep `OUT/summary.csv` up to date as they end.

Safe to kill: each result is written atomically and the summary is rewritten (atomically) as recordings
end, so SIGKILL loses at most the recordings in flight (a rerun finds the finished results, whatever the
summary said); SIGINT or SIGTERM stop new work, let the running recordings finish and write the summary.
The corpus is only read.
"""

from __future__ import annotations

import dataclasses
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ..errors import UserError, one_line
from ..files import check_writable_folder, existing_ancestor, require_file
from .backends import Backend, LocalPool, RayCluster, WorkerLost
from .corpus import Recording, recordings_in
from .jobs import RESULT_NAME, BatchOptions, Job, earlier_row, fingerprint, model_digests, options_for
from .summary import Row, summary_lines, write_summary

SUMMARY_NAME = "summary.csv"
SAVE_EVERY_S = 2.0
"""The summary is rewritten when a recording ends, at most this often (and at the end): a corpus of thousands
of recordings does not spend its time rewriting it."""
EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 3, 130
"""Exit codes of `egoallo batch`: every recording has its result; some failed (their rows say why); interrupted
before all ran. Bad input to the command itself (nothing ran) is 2, as for every command."""


@dataclasses.dataclass(frozen=True)
class BatchReport:
    """What a corpus run did: a row per recording (in name order), and whether it was interrupted."""

    rows: list[Row]
    interrupted: bool
    wall_s: float
    workers: int
    summary: Path

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_FAILED if any(r.status == "failed" for r in self.rows) else EXIT_OK

    def lines(self) -> list[str]:
        """The closing lines to print."""
        return summary_lines(self.rows, self.wall_s, self.workers, self.summary)


def run_corpus(
    corpus: Path,
    out: Path,
    options: BatchOptions,
    *,
    workers: int | None = None,
    ray: str | None = None,
    say: Callable[[str], None] = print,
    progress: bool = True,
) -> BatchReport:
    """Estimate every recording of `corpus` (a folder or a manifest, `recordings_in`) into
    `out/<name>/result.npz`, skipping those already done, with `workers` processes (default: the cores
    here) or on Ray (`ray`: "local" starts a local cluster, else the address of one to join).

    Bad input to the run itself (no recordings, `out` inside the corpus or not writable, an unreachable Ray
    cluster) is a `UserError` before anything runs; a recording's bad input is its `failed` row.
    """
    recordings = recordings_in(corpus)
    check_out(out, corpus, recordings)
    if workers is not None and workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}.")
    rows, jobs = plan(recordings, out, options)
    backend = RayCluster(ray, workers) if ray is not None else LocalPool(workers)
    summary = out / SUMMARY_NAME
    start = time.perf_counter()
    with backend, stop_requests() as stop:
        out.mkdir(parents=True, exist_ok=True)
        write_summary(summary, _ordered(rows, recordings))
        say(f"{len(recordings)} recordings in {corpus}: {len(jobs)} to estimate on {backend.describe()}"
            + (f", {len(recordings) - len(jobs)} done before or refused" if len(jobs) < len(recordings) else ""))
        run_jobs(jobs, backend, rows, stop, lambda: write_summary(summary, _ordered(rows, recordings)), say, progress)
    interrupted = stop.is_set() and any(r.status == "pending" for r in rows.values())
    final = _ordered(rows, recordings)
    write_summary(summary, final)
    return BatchReport(final, interrupted, time.perf_counter() - start, backend.slots, summary)


def check_out(out: Path, corpus: Path, recordings: list[Recording]) -> None:
    """A `UserError` when `out` is inside the corpus folder, holds one of its input files, or cannot be written."""
    where = out.resolve()
    if corpus.is_dir() and (where == corpus.resolve() or corpus.resolve() in where.parents):
        raise UserError(f"{out}: the output folder is inside the corpus {corpus}; the corpus is never written to, "
                        "choose an --out outside it.")
    for recording in recordings:
        for path in recording.files().values():
            if where in path.resolve().parents:
                raise UserError(f"{out}: the output folder holds an input of recording {recording.name} ({path}); "
                                "choose another --out.")
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: is a file; expected an output directory.")
    check_writable_folder(existing_ancestor(out))


def plan(recordings: list[Recording], out: Path, options: BatchOptions) -> tuple[dict[str, Row], list[Job]]:
    """Each recording's row so far (`skipped`, `failed` for bad options or missing files, else `pending`),
    and the jobs to run."""
    models = model_digests(options.infer)
    rows, jobs = {}, []
    for recording in recordings:
        try:
            require_file(recording.trajectory, "a head trajectory (Aria MPS .csv, TUM .txt or .npz)")
            infer = options_for(recording, options)
            infer.require_files()
            job = Job(recording, infer, out / recording.name / RESULT_NAME,
                      fingerprint(infer, recording.trajectory, models))
        except UserError as e:
            rows[recording.name] = Row(recording.name, "failed", error=one_line(str(e)))
            continue
        earlier = earlier_row(job, options.force)
        if earlier is not None:
            rows[recording.name] = earlier
        else:
            rows[recording.name] = Row(recording.name, "pending", error="not run yet")
            jobs.append(job)
    return rows, jobs


def run_jobs(
    jobs: list[Job],
    backend: Backend,
    rows: dict[str, Row],
    stop: threading.Event,
    saved: Callable[[], None],
    say: Callable[[str], None],
    progress: bool,
) -> None:
    """Run `jobs` with at most `backend.slots` in flight, each row replaced as its job ends and `saved` called
    (at most every `SAVE_EVERY_S`); stops submitting once `stop` is set and waits for those running."""
    from ..progress import progress_bar

    queue = list(reversed(jobs))
    running: dict[object, Job] = {}
    last_save = time.monotonic()
    with progress_bar(total=len(jobs), enabled=progress, unit="recording") as bar:
        tell = bar.write if not bar.disable else say
        while queue or running:
            while queue and len(running) < backend.slots and not stop.is_set():
                job = queue.pop()
                running[backend.submit(job)] = job
            if not running:
                break
            for handle, outcome in backend.wait(list(running)):
                job = running.pop(handle)
                row = outcome if isinstance(outcome, Row) else _lost(job, outcome)
                rows[job.recording.name] = row
                if row.status == "failed":
                    tell(f"failed: {row.recording}: {row.error}")
                elif bar.disable:
                    say(f"ok: {row.recording} ({row.frames} frames in {row.seconds:.1f} s)")
                bar.update(1)
                if time.monotonic() - last_save >= SAVE_EVERY_S:
                    saved()
                    last_save = time.monotonic()
    for job in queue:
        rows[job.recording.name] = Row(job.recording.name, "pending", error="not run: the run was interrupted")


def _lost(job: Job, lost: WorkerLost) -> Row:
    return Row(job.recording.name, "failed", error=f"the worker running it was lost ({lost.reason}); rerun to retry it.")


def _ordered(rows: dict[str, Row], recordings: list[Recording]) -> list[Row]:
    return [rows[r.name] for r in recordings]


class stop_requests:
    """Inside the block, SIGINT and SIGTERM set the returned event (the first says what happens) instead of
    stopping the process; the handlers are restored after. Outside the main thread, nothing is installed."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, say: Callable[[str], None] = print) -> None:
        self.stop, self.say, self.before = threading.Event(), say, {}

    def __enter__(self) -> threading.Event:
        if threading.current_thread() is threading.main_thread():
            self.before = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self.stop

    def _handle(self, signum, frame) -> None:  # noqa: ANN001 (signal's signature)
        if not self.stop.is_set():
            self.say("egoallo batch: stopping: the running recordings finish, then the summary is written "
                     "(SIGKILL stops at once; finished results are kept).")
        self.stop.set()

    def __exit__(self, *exc) -> None:
        for s, handler in self.before.items():
            signal.signal(s, handler)
