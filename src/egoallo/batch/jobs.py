"""One recording's work in a corpus run: its options, its fingerprint, and the estimate a worker runs.

A result written by a corpus run carries `metadata["batch"]`: the fingerprint of what made it (each input
file's size and modification time, the options that change the estimate, the checkpoint's and body model's
contents, the egoallo and torch versions), the wall time and the worker's peak memory. A rerun skips a
recording whose result carries the same fingerprint. The arrays are those `egoallo infer` writes with the
same flags.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
import zipfile
from importlib import metadata as distribution
from pathlib import Path

from ..errors import UserError, one_line
from ..files import require_file
from ..pipeline import FPS, InferOptions
from .corpus import Recording
from .summary import Row, result_row

RESULT_NAME = "result.npz"
_UNSTAMPED = ("threads",)
"""Options that change how fast, not what: left out of the fingerprint."""
_FILES = ("points", "calibration", "wrist_palm", "hands", "vrs", "checkpoint", "body_model")


@dataclasses.dataclass(frozen=True)
class BatchOptions:
    """What a corpus run shares over its recordings: the `egoallo infer` options without the files a recording
    brings (`infer`), the guidance terms to run where a recording has what they need, and whether to redo all."""

    infer: InferOptions = InferOptions(threads=1)
    guidance: frozenset[str] = frozenset()
    force: bool = False


@dataclasses.dataclass(frozen=True)
class Job:
    """A recording to estimate: with its own options, where its result goes and the fingerprint it will carry."""

    recording: Recording
    options: InferOptions
    result: Path
    fingerprint: str


def options_for(recording: Recording, batch: BatchOptions) -> InferOptions:
    """`egoallo infer`'s options for `recording`: its point cloud (unless `--floor-z` gives the floor), calibration
    (unless `--device-is-cpf`),
    wrist and palm tracking (with `--guidance wrist3d`), hands file or `.vrs` (with `--guidance hands`).
    A `UserError` when a guidance term lacks its file."""
    modes = batch.guidance
    if "wrist3d" in modes and recording.wrist_palm is None:
        raise UserError("--guidance wrist3d: this recording has no wrist and palm tracking "
                        "(hand_tracking/wrist_and_palm_poses.csv, or a manifest's wrist_palm column).")
    if "hands" in modes and recording.hands is None and recording.vrs is None:
        raise UserError("--guidance hands: this recording has no hands file (a manifest's hands column) or .vrs.")
    detect = "hands" in modes and recording.hands is None
    return dataclasses.replace(
        batch.infer,
        guidance=modes - {"hands"} if detect else modes,
        points=recording.points if batch.infer.floor_z is None else None,
        calibration=recording.calibration if not batch.infer.device_is_cpf else None,
        wrist_palm=recording.wrist_palm if "wrist3d" in modes else None,
        hands=recording.hands if "hands" in modes else None,
        vrs=recording.vrs if detect else None,
        stature_m=recording.stature_m if recording.stature_m is not None else batch.infer.stature_m,
    )


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes, or of a folder's files (names and bytes, in name order)."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]:
        digest.update(file.relative_to(path).as_posix().encode() if path.is_dir() else b"")
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def model_digests(options: InferOptions) -> dict[str, str]:
    """Content digests of the checkpoint the options load (as `egoallo infer` picks it) and of the body model."""
    from ..prior.checkpoint import checkpoint_and_sampling
    from ..body.model import DEFAULT_MODEL_PATH, SMPLH_ENV_VAR

    if options.checkpoint is not None and not options.checkpoint.is_dir():
        raise UserError(f"{options.checkpoint}: checkpoint directory not found.")
    checkpoint = checkpoint_and_sampling(options.checkpoint, options.steps)[0]
    body = Path(options.body_model or os.environ.get(SMPLH_ENV_VAR) or DEFAULT_MODEL_PATH)
    require_file(body, "a body model .npz")
    return {"checkpoint": file_digest(Path(checkpoint)), "body_model": file_digest(body)}


def fingerprint(options: InferOptions, trajectory: Path, models: dict[str, str]) -> str:
    """What an estimate depends on, hashed: the input files' sizes and modification times, the options that
    change the result, the model digests (`model_digests`) and the egoallo and torch versions."""
    from .. import __version__

    stamps = {}
    for role, path in {"trajectory": trajectory, **{f: getattr(options, f) for f in _FILES[:5]}}.items():
        if path is not None:
            stat = Path(path).stat()
            stamps[role] = [stat.st_size, stat.st_mtime_ns]
    settings = {
        f.name: sorted(v) if isinstance(v := getattr(options, f.name), frozenset) else v
        for f in dataclasses.fields(options)
        if f.name not in _UNSTAMPED and f.name not in _FILES
    }
    record = {"inputs": stamps, "options": settings, "models": models,
              "versions": [__version__, distribution.version("torch")]}
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()


def stored_metadata(path: Path) -> dict | None:
    """The metadata of an existing result file (only that member is read), or None when it is not a result."""
    import numpy as np

    try:
        with zipfile.ZipFile(path) as archive, archive.open("metadata.npy") as member:
            value = np.lib.format.read_array(member, allow_pickle=False)
        metadata = json.loads(str(value))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    return metadata if isinstance(metadata, dict) else None


def earlier_row(job: Job, force: bool) -> Row | None:
    """The row of a recording that needs no new estimate: `skipped` when its result carries the job's
    fingerprint, `failed` when a file not written by a corpus run is in the way (without `force`); else None."""
    if not job.result.exists():
        return None
    metadata = stored_metadata(job.result)
    made = (metadata or {}).get("batch")
    if not isinstance(made, dict):
        if force:
            return None
        return Row(job.recording.name, "failed", error=f"{job.result} exists and was not written by egoallo batch; "
                   "move it away or pass --force to replace it.")
    if made.get("fingerprint") == job.fingerprint and not force:
        return result_row(job.recording.name, "skipped", metadata, made.get("seconds"), made.get("worker_peak_mb"))
    return None


def run_job(job: Job) -> Row:
    """Estimate one recording and write its result atomically (in a worker process); its summary row.

    Bad input is a `failed` row with the line `egoallo infer` would print; so is a bug, marked
    `internal error`. Never raises for the recording's sake.
    """
    from ..pipeline import estimate_file

    start = time.perf_counter()
    said: list[str] = []
    try:
        estimate = estimate_file(job.recording.trajectory, job.options, say=said.append, progress=False)
        seconds, peak = time.perf_counter() - start, peak_memory_mb()
        made = {"fingerprint": job.fingerprint, "recording": job.recording.name, "fps": FPS, "seconds": seconds,
                "worker_peak_mb": peak}
        result = dataclasses.replace(estimate.result, metadata={**estimate.result.metadata, "batch": made})
        job.result.parent.mkdir(parents=True, exist_ok=True)
        result.save(job.result, force=True)
        return result_row(job.recording.name, "ok", result.metadata, seconds, peak)
    except UserError as e:
        return Row(job.recording.name, "failed", seconds=time.perf_counter() - start, error=one_line(str(e)))
    except Exception as e:  # a bug: reported on its row, the other recordings go on
        return Row(job.recording.name, "failed", seconds=time.perf_counter() - start,
                   error=one_line(f"internal error: {type(e).__name__}: {e}", 300))


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

