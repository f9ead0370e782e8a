"""`OUT/summary.csv`: a row per recording of a corpus run, and the lines printed at its end."""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path

from ..files import write_bytes_atomic

STATUSES = ("ok", "skipped", "failed", "pending")
"""ok: estimated in this run; skipped: its result was already there, made from the same inputs, options and
checkpoint; failed: the error column says why; pending: not run (the run was interrupted first)."""

PLAUSIBILITY = (
    "penetration_share", "deepest_penetration_m", "skating_share", "pelvis_height_min_m", "pelvis_height_max_m",
    "wrist_above_shoulder_share", "largest_jump_m",
)
"""The result's `metadata["plausibility"]` figures (egoallo.body.plausibility), each its worst over the samples."""
_LOWEST_IS_WORST = {"pelvis_height_min_m"}

COLUMNS = ("recording", "status", "frames", "motion_s", "coverage", "seconds", "worker_peak_mb", "error", *PLAUSIBILITY)


@dataclasses.dataclass(frozen=True)
class Row:
    """One recording's line of the summary."""

    recording: str
    status: str
    frames: int | None = None
    motion_s: float | None = None
    """Seconds of motion in the result (frames / fps)."""
    coverage: float | None = None
    """Share of the tracked frames that were estimated (`metadata["coverage"]`)."""
    seconds: float | None = None
    """Wall time its estimate took (when it was made: for a skipped one, in the run that made it)."""
    worker_peak_mb: float | None = None
    """Peak resident memory of the worker process that made it, so far (MiB)."""
    error: str = ""
    plausibility: dict[str, float] = dataclasses.field(default_factory=dict)

    def values(self) -> dict[str, str]:
        """The CSV cells of the row, by column."""
        cells = {
            "recording": self.recording, "status": self.status, "frames": _cell(self.frames),
            "motion_s": _cell(self.motion_s, 3), "coverage": _cell(self.coverage, 4), "seconds": _cell(self.seconds, 2),
            "worker_peak_mb": _cell(self.worker_peak_mb, 0), "error": self.error,
        }
        return cells | {k: _cell(self.plausibility.get(k), 4) for k in PLAUSIBILITY}


def _cell(value: float | int | None, digits: int | None = None) -> str:
    if value is None:
        return ""
    return str(value) if digits is None else f"{value:.{digits}f}"


def result_row(recording: str, status: str, metadata: dict, seconds: float | None, peak_mb: float | None) -> Row:
    """A row from a result's metadata (frames, coverage and plausibility as `egoallo infer` recorded them)."""
    covered = metadata.get("coverage") or {}
    frames = covered.get("frames_estimated")
    tracked = covered.get("frames_tracked")
    figures = metadata.get("plausibility") or {}
    worst = {
        k: (min if k in _LOWEST_IS_WORST else max)(figures[k]) for k in PLAUSIBILITY if figures.get(k)
    }
    fps = metadata.get("batch", {}).get("fps")
    return Row(
        recording=recording, status=status, frames=frames,
        motion_s=frames / fps if frames and fps else None,
        coverage=frames / tracked if frames is not None and tracked else None,
        seconds=seconds, worker_peak_mb=peak_mb, plausibility=worst,
    )


def write_summary(path: Path, rows: list[Row]) -> Path:
    """`rows` as a CSV with a header (`COLUMNS`), written atomically."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(row.values() for row in rows)
    return write_bytes_atomic(path, text.getvalue().encode())


def summary_lines(rows: list[Row], wall_s: float, workers: int, summary: Path, shown_errors: int = 10) -> list[str]:
    """What a corpus run prints at its end: counts, speed of this run's estimates, the failures, the summary's path."""
    counts = {status: sum(r.status == status for r in rows) for status in STATUSES}
    done = [r for r in rows if r.status == "ok"]
    motion = sum(r.motion_s or 0.0 for r in done)
    head = f"{len(rows)} recordings: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    if done and wall_s > 0:
        head += (f"; {len(done)} estimated ({motion / 60:.1f} min of motion) in {wall_s:.1f} s on {workers} "
                 f"worker(s): {len(done) / wall_s * 60:.1f} recordings/min, {motion / wall_s:.1f}x real time")
    lines = [head]
    failed = [r for r in rows if r.status == "failed"]
    lines += [f"failed: {r.recording}: {r.error}" for r in failed[:shown_errors]]
    if len(failed) > shown_errors:
        lines.append(f"... and {len(failed) - shown_errors} more failed (see the summary)")
    lines.append(f"summary: {summary}")
    return lines
