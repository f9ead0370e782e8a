"""Build the training set: retarget every clip, cache it per clip, pack one HDF5.

Layout of `out_dir`:

- `egoallo_build.json`: marks the directory as a build of this tool and
  records the settings (body model fingerprint, retarget config); a resumed
  build must use the same settings.
- `clips/<clip_id>.npz`: one file per clip, written atomically (temp file in
  the same directory, then `os.replace`). Keys: `betas (B,)`,
  `T_world_root (T, 4, 4)`, `local_rotations (T, 51, 3, 3)`, `joints_world
  (T, 52, 3)`, `T_world_cpf (T, 4, 4)` (all float32), `contacts (T, 52)` uint8,
  `metadata` (JSON string: clip info, fps, has_hands, fit errors).
- `build_log.jsonl`: one line per clip that was not built (`clip_id`,
  `source`, `kind`, `message`), appended as the build runs, in archive order.
- `dataset.h5`, `splits.json`, `summary.json`: written at the end.

The build is resumable: clips with an npz or a log line are skipped. Output is
deterministic (byte-identical for any number of workers, save the timing in
`summary.json`): clips are processed with one torch thread each, results are
consumed in archive order, and npz/HDF5 files carry no timestamps.

`dataset.h5` layout: `/clips/<clip_id>` groups holding `T_world_root (T,4,4)`,
`body_rotations (T,21,3,3)`, `hand_rotations (T,30,3,3)` (identity without
hands), `joints_world (T,52,3)`, `T_world_cpf (T,4,4)` (float32),
`contacts (T,52)` uint8 and `betas (B,)`, chunked by `CHUNK_FRAMES` frames.
Only `hand_rotations` is (LZF) compressed: it is all identity for sources
without fingers, while compressing the other series saves ~25% of space and
costs ~2.5x in random-window read speed. Attributes hold the clip info, fps,
has_hands and fit errors.
`/index` is a table of every clip (`INDEX_FIELDS`) for fast listing.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import functools
import hashlib
import io
import json
import math
import multiprocessing
import os
import shutil
import tempfile
import threading
import time
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import h5py
import numpy as np
import torch
from scipy.spatial.transform import Rotation, Slerp
from tqdm import tqdm

from .. import __version__
from ..body import BodyModel, skeleton
from ..files import replaced_atomically, write_bytes_atomic
from .amass import read_amass
from .bvh import parse_bvh
from .motion import Motion
from .retarget import RetargetConfig, contact_labels, retarget
from .skeletons import identify_skeleton
from .sources import (
    AMASS_SPLITS,
    ARCHIVE_SOURCES,
    BANDAI_STYLE_SPLITS,
    CMU_SUBJECT_SPLITS,
    DAZ_SUBJECT_SPLITS,
    DAZ_VALIDATION_CLIPS,
    REACTIDLE_PERFORMER_SPLITS,
    SPLITS,
    ClipInfo,
    archive_path,
    clip_split,
    find_shared_dir,
    iter_amass_files,
    iter_archive_clips,
)

MARKER = "egoallo_build.json"
FORMAT_VERSION = 1
CHUNK_FRAMES = 128
_OUTPUTS = (MARKER, "clips", "build_log.jsonl", "dataset.h5", "splits.json", "summary.json")
_INFO_FIELDS = tuple(f.name for f in dataclasses.fields(ClipInfo))
INDEX_TEXT_FIELDS = ("clip_id", "source", "split", "activity", "style", "performer")
INDEX_FIELDS = INDEX_TEXT_FIELDS + ("num_frames", "fps", "has_hands", "mean_error_mm")
"""Columns of `/index`; text columns hold "" for a missing style / performer."""


class BuildError(ValueError):
    """The output directory or the requested settings are refused."""


class ClipRejected(ValueError):
    """A clip parsed and fitted but is unusable (too short, non-finite)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


@dataclasses.dataclass(frozen=True)
class SplitRow:
    source: str
    split: str
    clips: int
    frames: int
    hours: float


@dataclasses.dataclass(frozen=True)
class BuildSummary:
    dataset_path: Path
    rows: tuple[SplitRow, ...]
    """Clips, frames and hours per source and split."""
    failures: dict[str, dict[str, int]]
    """source -> failure kind -> clip count (whole log, all runs)."""
    mean_error_mm: dict[str, float | None]
    """source -> mean over clips of the mean fitted-joint error (None: no fit, e.g. AMASS)."""
    processed: int
    """Clips processed by this run (built or failed); 0 when everything was already done."""
    wall_time_s: float

    def to_json(self) -> dict:
        return {
            "dataset": str(self.dataset_path),
            "rows": [dataclasses.asdict(r) for r in self.rows],
            "failures": self.failures,
            "mean_error_mm": self.mean_error_mm,
            "processed": self.processed,
            "wall_time_s": self.wall_time_s,
        }

    def table(self) -> str:
        lines = [f"{'source':<10} {'split':<6} {'clips':>6} {'frames':>9} {'hours':>7}"]
        for r in self.rows:
            lines.append(f"{r.source:<10} {r.split:<6} {r.clips:>6} {r.frames:>9} {r.hours:>7.2f}")
        for source, error in self.mean_error_mm.items():
            lines.append(f"{source}: mean fit error " + ("n/a" if error is None else f"{error:.1f} mm"))
        for source, kinds in self.failures.items():
            lines.append(f"{source}: not built: " + ", ".join(f"{k} x{n}" for k, n in kinds.items()))
        lines.append(f"{self.processed} clips processed in {self.wall_time_s:.1f} s")
        return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class _Task:
    info: ClipInfo
    payload: str | Path
    """BVH text, or the path of an AMASS npz."""
    out_path: Path
    config: RetargetConfig
    min_duration_s: float


@dataclasses.dataclass(frozen=True)
class _Outcome:
    info: ClipInfo
    kind: str | None
    """None when built, else the failure kind (exception class name or a `ClipRejected` kind)."""
    message: str = ""


def build_dataset(
    out_dir: str | os.PathLike,
    *,
    model: BodyModel | str | os.PathLike,
    sources: Iterable[str] = ARCHIVE_SOURCES,
    shared_dir: str | os.PathLike | None = None,
    amass_dir: str | os.PathLike | None = None,
    workers: int = 2,
    limit_per_source: int | None = None,
    config: RetargetConfig = RetargetConfig(),
    min_duration_s: float = 1.0,
    train_fraction: dict[str, float] | None = None,
    splits: Iterable[str] = SPLITS,
    force: bool = False,
    progress: bool = True,
) -> BuildSummary:
    """Build (or resume) a dataset in `out_dir`; see the module docstring.

    Args:
        model: the body model (or its path) everything is retargeted onto.
        sources: archive sources among `ARCHIVE_SOURCES`.
        amass_dir: also build AMASS from this directory (needs an SMPL-H model).
        workers: worker processes; 0 runs in this process.
        limit_per_source: only the first N clips of each source (archive order).
        min_duration_s: clips shorter than this are rejected.
        train_fraction: source -> share of its train clips to build (a fixed subset chosen by a
            hash of the clip id, `in_train_subset`); val and test clips are always built.
        splits: build only clips of these splits now (a later run can add the others; the
            dataset is packed from every clip built so far).
        force: discard a previous build in `out_dir` and start over.
    """
    start = time.perf_counter()
    out_dir = Path(out_dir)
    model = model if isinstance(model, BodyModel) else BodyModel.load(model)
    sources = tuple(sources)
    unknown = [s for s in sources if s not in ARCHIVE_SOURCES]
    if unknown:
        raise BuildError(f"unknown source(s) {unknown}; expected some of {ARCHIVE_SOURCES} (AMASS: pass amass_dir).")
    if workers < 0 or (limit_per_source is not None and limit_per_source < 1):
        raise BuildError(f"workers must be >= 0 and limit_per_source >= 1 (got {workers}, {limit_per_source}).")
    if amass_dir is not None and model.posedirs is None:
        raise BuildError(f"AMASS needs an official SMPL-H body model (AMASS betas are SMPL-H shapes); got '{model.name}'.")
    shared = Path(shared_dir) if shared_dir is not None else (find_shared_dir() if sources else None)
    streams = {s: functools.partial(iter_archive_clips, archive_path(s, shared)) for s in sources}
    if amass_dir is not None:
        streams["amass"] = functools.partial(iter_amass_files, amass_dir)

    splits = tuple(splits)
    if set(splits) - set(SPLITS):
        raise BuildError(f"unknown split(s) {sorted(set(splits) - set(SPLITS))}; expected some of {SPLITS}.")
    train_fraction = dict(sorted((train_fraction or {}).items()))
    if any(not 0.0 < f <= 1.0 for f in train_fraction.values()) or set(train_fraction) - set(ARCHIVE_SOURCES):
        raise BuildError(f"train fractions must be in (0, 1] for archive sources {ARCHIVE_SOURCES}; got {train_fraction}.")
    prepare_out_dir(out_dir, _settings(model, config, min_duration_s, train_fraction), force=force)
    log_path = out_dir / "build_log.jsonl"
    done = {entry["clip_id"] for entry in _read_log(log_path)}
    processed = 0
    with _executor(workers, model) as run, _open_log(log_path) as log:
        for source, stream in streams.items():
            fraction = train_fraction.get(source, 1.0)
            clips = (
                (info, payload) for info, payload in stream()
                if (info.split is None or info.split in splits)
                and (info.split != "train" or in_train_subset(info.clip_id, fraction))
            )
            tasks = _pending_tasks(clips, out_dir, done, limit_per_source, config, min_duration_s)
            bar = tqdm(desc=source, unit="clip", total=limit_per_source, disable=not progress)
            with bar:
                for outcome in run(tasks):
                    processed += 1
                    bar.update()
                    if outcome.kind is not None:
                        _log(log, outcome)
    dataset = out_dir / "dataset.h5"
    if processed or not _h5_matches_clips(dataset, out_dir / "clips"):
        pack_h5(out_dir / "clips", dataset)
    index = read_index(dataset)
    _write_json(out_dir / "splits.json", split_assignment(index))
    summary = _summarize(dataset, index, _read_log(log_path), processed, time.perf_counter() - start)
    _write_json(out_dir / "summary.json", summary.to_json())
    return summary


def prepare_out_dir(out_dir: Path, settings: dict, *, force: bool = False) -> None:
    """Create `out_dir` or check it is a build of this tool with the same settings.

    A non-empty directory without the marker is never written to. `force`
    deletes only this tool's outputs and starts over.
    """
    marker = out_dir / MARKER
    if out_dir.exists() and not out_dir.is_dir():
        raise BuildError(f"{out_dir} exists and is not a directory.")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not marker.is_file():
        raise BuildError(f"{out_dir} is not empty and is not an egoallo dataset build; refusing to write into it.")
    if marker.is_file():
        previous = json.loads(marker.read_text())
        if force:
            for name in _OUTPUTS:
                path = out_dir / name
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        elif previous != settings:
            raise BuildError(f"{out_dir} holds a build made with other settings ({_difference(previous, settings)}); use force (--force) to rebuild it.")
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in (out_dir / "clips").rglob(".*.tmp"):
        stale.unlink()
    _write_json(marker, settings)


def in_train_subset(clip_id: str, fraction: float) -> bool:
    """Whether a clip is in the fixed `fraction` subset: the first 8 bytes of its id's SHA-256, as a share of 2^64, below it."""
    return int.from_bytes(hashlib.sha256(clip_id.encode()).digest()[:8], "big") < fraction * 2.0**64


def _settings(model: BodyModel, config: RetargetConfig, min_duration_s: float, train_fraction: dict[str, float]) -> dict:
    digest = hashlib.sha256()
    for tensor in (model.j_template, model.j_shapedirs, model.cpf_template, model.cpf_shapedirs):
        digest.update(tensor.numpy().tobytes())
    return {
        "tool": "egoallo data build",
        "format": FORMAT_VERSION,
        "egoallo_version": __version__,
        "model": {"name": model.name, "joints_sha256": digest.hexdigest()},
        "retarget_config": dataclasses.asdict(config),
        "min_duration_s": min_duration_s,
        **({"train_fraction": train_fraction} if train_fraction else {}),
    }


def _difference(previous: dict, settings: dict) -> str:
    keys = sorted(k for k in set(previous) | set(settings) if previous.get(k) != settings.get(k))
    return "differs in " + ", ".join(keys)


def _pending_tasks(stream, out_dir, done, limit, config, min_duration_s) -> Iterator[_Task | _Outcome]:
    """Clips of one source still to do; AMASS clips outside the split lists come as "excluded" outcomes."""
    for count, (info, payload) in enumerate(stream):
        if limit is not None and count >= limit:
            return
        out_path = out_dir / "clips" / f"{info.clip_id}.npz"
        if info.clip_id in done or out_path.is_file():
            continue
        if info.split is None:
            yield _Outcome(info, "excluded", "sub-dataset is not in the paper's AMASS split lists")
        else:
            yield _Task(info, payload, out_path, config, min_duration_s)


def _log(log, outcome: _Outcome) -> None:
    entry = {"clip_id": outcome.info.clip_id, "source": outcome.info.source, "kind": outcome.kind, "message": outcome.message}
    log.write(json.dumps(entry) + "\n")
    log.flush()


@contextlib.contextmanager
def _open_log(path: Path):
    """The log for appending, after completing a last line cut short by an interrupted run."""
    with path.open("a+") as log:
        if log.tell() > 0:
            log.seek(log.tell() - 1)
            if log.read(1) != "\n":
                log.write("\n")
        yield log


def _read_log(path: Path) -> list[dict]:
    """Log entries; a line cut short by an interrupted run is skipped (its clip is retried)."""
    if not path.is_file():
        return []
    entries = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            entries.append(json.loads(line))
    return entries


# --- Running clips, in this process or in workers -------------------------------------------------

_WORKER_MODEL: BodyModel | None = None


def _init_worker(model: BodyModel) -> None:
    global _WORKER_MODEL
    torch.set_num_threads(1)
    _WORKER_MODEL = model
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    """A killed build (SIGTERM/SIGKILL skip the pool's shutdown) must not leave workers behind."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _worker_task(task: _Task) -> _Outcome:
    return process_task(task, _WORKER_MODEL)


@contextlib.contextmanager
def _executor(workers: int, model: BodyModel):
    """Yields `run(items) -> outcomes`, in item order, at most `2 * workers` tasks in flight.

    Items are tasks, or outcomes already known, passed through in their place.
    """
    if workers <= 0:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield lambda items: (i if isinstance(i, _Outcome) else process_task(i, model) for i in items)
        finally:
            torch.set_num_threads(threads)
        return
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(model,)) as pool:
        try:
            yield lambda tasks: _ordered_map(pool, tasks, 2 * workers)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _ordered_map(pool, items: Iterator[_Task | _Outcome], window: int) -> Iterator[_Outcome]:
    pending: collections.deque[concurrent.futures.Future] = collections.deque()
    for item in items:
        if isinstance(item, _Outcome):
            pending.append(concurrent.futures.Future())
            pending[-1].set_result(item)
        else:
            pending.append(pool.submit(_worker_task, item))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def process_task(task: _Task, model: BodyModel) -> _Outcome:
    """Build one clip's npz; every failure except an interrupt becomes an `_Outcome`."""
    try:
        arrays = clip_arrays(task.info, task.payload, model, task.config, task.min_duration_s)
        write_npz_atomic(task.out_path, arrays)
    except ClipRejected as e:
        return _Outcome(task.info, e.kind, str(e))
    except Exception as e:
        return _Outcome(task.info, type(e).__name__, str(e))
    return _Outcome(task.info, None)


def clip_arrays(
    info: ClipInfo, payload: str | Path, model: BodyModel, config: RetargetConfig, min_duration_s: float
) -> dict[str, np.ndarray]:
    """Retarget (BVH text) or read (AMASS path) one clip and pose it: the arrays of its npz."""
    if info.source == "amass":
        motion, fit = _amass_motion(Path(payload), model, config), None
    else:
        bvh = parse_bvh(payload, source=info.clip_id)
        result = retarget(bvh, model, identify_skeleton(bvh), config)
        motion = result.motion
        names = [skeleton.JOINT_NAMES[j] for j in result.mapped_joints]
        fit = {
            "mean_error_mm": result.mean_error_mm,
            "mean_marker_error_mm": float(result.marker_errors_mm.mean()),
            "joint_errors_mm": dict(zip(names, result.joint_errors_mm.tolist())),
        }
    if motion.duration_s < min_duration_s:
        raise ClipRejected("too_short", f"{info.clip_id}: {motion.num_frames} frames = {motion.duration_s:.2f} s < {min_duration_s} s.")
    posed = motion.posed(model)
    metadata = {
        "info": dataclasses.asdict(info),
        "fps": motion.fps,
        "has_hands": motion.has_hands,
        "num_frames": motion.num_frames,
        "fit": fit,
        "motion": motion.metadata,
    }
    arrays = {
        "betas": motion.betas.astype(np.float32),
        "T_world_root": motion.T_world_root.astype(np.float32),
        "local_rotations": motion.local_rotations.astype(np.float32),
        "contacts": motion.contacts.astype(np.uint8),
        "joints_world": posed.joints_world.detach().numpy().astype(np.float32),
        "T_world_cpf": posed.T_world_cpf.detach().numpy().astype(np.float32),
    }
    bad = [k for k, v in arrays.items() if not np.isfinite(v).all()]
    if bad:
        raise ClipRejected("non_finite", f"{info.clip_id}: non-finite values in {', '.join(bad)}.")
    arrays["metadata"] = np.array(json.dumps(metadata, sort_keys=True, default=float))
    return arrays


def _amass_motion(path: Path, model: BodyModel, config: RetargetConfig) -> Motion:
    """An AMASS sequence at `config.fps` with contact labels (AMASS's floor is z = 0)."""
    motion = resample_motion(read_amass(path, model), config.fps)
    shaped = model.with_shape(torch.from_numpy(motion.betas))
    rest_height = shaped.rest_joint_heights.double().numpy()
    joints = motion.posed(model).joints_world.double().numpy()
    contacts = contact_labels(joints, rest_height, motion.fps, config.contact_height, config.contact_speed)
    return dataclasses.replace(motion, contacts=contacts)


def resample_motion(motion: Motion, fps: float) -> Motion:
    """`motion` at `fps`: root translation interpolated linearly, rotations slerped."""
    if abs(motion.fps - fps) < 1e-6:
        return motion
    times = np.arange(motion.num_frames) / motion.fps
    new_times = np.arange(0.0, times[-1] + 1e-9, 1.0 / fps)
    rotations = np.concatenate([motion.T_world_root[:, None, :3, :3], motion.local_rotations], axis=1)
    if len(times) < 2:
        new_rotations = rotations
    else:
        new_rotations = np.stack(
            [Slerp(times, Rotation.from_matrix(rotations[:, j]))(new_times).as_matrix() for j in range(52)], axis=1
        )
    T = np.tile(np.eye(4), (len(new_times), 1, 1))
    T[:, :3, :3] = new_rotations[:, 0]
    T[:, :3, 3] = np.stack([np.interp(new_times, times, motion.T_world_root[:, k, 3]) for k in range(3)], axis=-1)
    return dataclasses.replace(motion, fps=fps, T_world_root=T, local_rotations=new_rotations[:, 1:], contacts=None)


# --- Files -----------------------------------------------------------------------------------------


def write_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An uncompressed `.npz` with fixed zip timestamps (byte-identical for equal arrays), replaced atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
            for key, value in arrays.items():
                buffer = io.BytesIO()
                np.lib.format.write_array(buffer, np.asarray(value, order="C"), allow_pickle=False)
                z.writestr(zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0)), buffer.getvalue())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_json(path: Path, value) -> None:
    write_bytes_atomic(path, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode())


def _clip_files(clips_dir: Path) -> dict[str, Path]:
    """clip id -> npz path, sorted by clip id."""
    files = {p.relative_to(clips_dir).with_suffix("").as_posix(): p for p in clips_dir.rglob("*.npz")}
    return dict(sorted(files.items()))


def _h5_matches_clips(dataset: Path, clips_dir: Path) -> bool:
    """The packed dataset holds exactly the built clips, each in the split the current rules give it."""
    if not dataset.is_file():
        return False
    index = read_index(dataset)
    return [r["clip_id"] for r in index] == list(_clip_files(clips_dir)) and all(
        (clip_split(r) or "") == r["split"] for r in index
    )


def pack_h5(clips_dir: Path, dataset: Path) -> None:
    """Pack every clip npz into one HDF5 file (layout in the module docstring), replaced atomically."""
    rows = []
    with replaced_atomically(dataset) as tmp, h5py.File(tmp, "w") as h5:
        for clip_id, path in _clip_files(clips_dir).items():
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
            rows.append(_write_clip(h5.create_group(f"clips/{clip_id}"), arrays))
        h5.create_dataset("index", data=_index_table(rows), track_times=False)


def _write_clip(group: h5py.Group, arrays: dict[str, np.ndarray]) -> dict:
    meta = json.loads(arrays["metadata"].item())
    meta["info"]["split"] = clip_split(meta["info"])  # the current rules, whatever the clip was built under
    rotations = arrays["local_rotations"]
    datasets = {
        "T_world_root": arrays["T_world_root"],
        "body_rotations": rotations[:, :21],
        "hand_rotations": rotations[:, 21:],
        "contacts": arrays["contacts"],
        "joints_world": arrays["joints_world"],
        "T_world_cpf": arrays["T_world_cpf"],
    }
    for name, value in datasets.items():
        chunks = (min(CHUNK_FRAMES, value.shape[0]),) + value.shape[1:]
        compression = "lzf" if name == "hand_rotations" else None
        group.create_dataset(name, data=value, chunks=chunks, compression=compression, track_times=False)
    group.create_dataset("betas", data=arrays["betas"], track_times=False)
    for field, value in meta["info"].items():
        if value is not None:
            group.attrs[field] = value
    fit = meta["fit"] or {}
    group.attrs["fps"] = meta["fps"]
    group.attrs["has_hands"] = meta["has_hands"]
    group.attrs["mean_error_mm"] = fit.get("mean_error_mm", math.nan)
    group.attrs["metadata"] = arrays["metadata"].item()
    row = {f: meta["info"][f] or "" for f in INDEX_TEXT_FIELDS}
    return row | {
        "num_frames": rotations.shape[0],
        "fps": meta["fps"],
        "has_hands": meta["has_hands"],
        "mean_error_mm": fit.get("mean_error_mm", math.nan),
    }


def _index_table(rows: list[dict]) -> np.ndarray:
    def text(field: str) -> tuple[str, str]:
        width = max([len(r[field].encode()) for r in rows] + [1])
        return field, f"S{width}"

    dtype = [text(f) for f in INDEX_TEXT_FIELDS]
    dtype += [("num_frames", "i8"), ("fps", "f8"), ("has_hands", "?"), ("mean_error_mm", "f8")]
    table = np.zeros(len(rows), dtype=dtype)
    for i, r in enumerate(rows):
        table[i] = tuple(r[f].encode() if isinstance(r[f], str) else r[f] for f in INDEX_FIELDS)
    return table


def read_index(dataset: Path) -> list[dict]:
    """The `/index` table of a dataset file as dicts (strings decoded)."""
    with h5py.File(dataset, "r") as h5:
        table = h5["index"][()]
    return [{f: (row[f].decode() if isinstance(row[f], bytes) else row[f].item()) for f in INDEX_FIELDS} for row in table]


# --- Summary -----------------------------------------------------------------------------------------


def split_assignment(index: list[dict]) -> dict:
    """The split rules and which styles / subjects / sub-datasets of the built clips went where."""
    observed: dict[str, dict[str, set[str]]] = collections.defaultdict(lambda: collections.defaultdict(set))
    for row in index:
        key = row["performer"] or row["style"] or row["clip_id"].split("/")[1]  # AMASS: the sub-dataset
        observed[row["source"]][row["split"]].add(key)
    return {
        "rules": {
            "bandai": {"by": "style", "held_out": {s: {k: list(v) for k, v in d.items()} for s, d in BANDAI_STYLE_SPLITS.items()}},
            "cmu": {"by": "subject", "subjects": {k: list(v) for k, v in CMU_SUBJECT_SPLITS.items()}, "unlisted": "train"},
            "cmu_daz": {"by": "subject", "subjects": {k: list(v) for k, v in DAZ_SUBJECT_SPLITS.items()}, "unlisted": "train",
                        "clips_moved_to_val": DAZ_VALIDATION_CLIPS},
            "reactidle": {"by": "performer", "held_out": {k: list(v) for k, v in REACTIDLE_PERFORMER_SPLITS.items()}, "unlisted": "train"},
            "amass": {"by": "sub-dataset", "lists": {k: list(v) for k, v in AMASS_SPLITS.items()}, "unlisted": "excluded"},
        },
        "observed": {s: {split: sorted(keys) for split, keys in sorted(d.items())} for s, d in sorted(observed.items())},
    }


def _summarize(dataset: Path, index: list[dict], log: list[dict], processed: int, wall_time_s: float) -> BuildSummary:
    totals: dict[tuple[str, str], list] = {}
    errors: dict[str, list[float]] = collections.defaultdict(list)
    for row in index:
        entry = totals.setdefault((row["source"], row["split"]), [0, 0, 0.0])
        entry[0] += 1
        entry[1] += row["num_frames"]
        entry[2] += row["num_frames"] / row["fps"] / 3600.0
        if math.isfinite(row["mean_error_mm"]):
            errors[row["source"]].append(row["mean_error_mm"])
    order = {s: i for i, s in enumerate(SPLITS)}
    rows = tuple(
        SplitRow(source, split, n, frames, hours)
        for (source, split), (n, frames, hours) in sorted(totals.items(), key=lambda kv: (kv[0][0], order[kv[0][1]]))
    )
    failures: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for entry in log:
        failures[entry["source"]][entry["kind"]] += 1
    sources = sorted({r.source for r in rows})
    return BuildSummary(
        dataset_path=dataset,
        rows=rows,
        failures={s: dict(sorted(c.items())) for s, c in sorted(failures.items())},
        mean_error_mm={s: (float(np.mean(errors[s])) if errors[s] else None) for s in sources},
        processed=processed,
        wall_time_s=wall_time_s,
    )
