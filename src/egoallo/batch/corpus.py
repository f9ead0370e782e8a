"""The recordings of a corpus: Aria MPS layouts and loose trajectory files found in a folder, or a manifest.

A recording is found in a folder by its `slam/closed_loop_trajectory.csv` (older MPS outputs: `trajectory/`),
as plain MPS output, Nymeria and Aria Everyday Activities lay it out (README, `egoallo batch`); its companions are
taken from beside it: the point cloud (`semidense_points.csv.gz`, else `global_points.csv.gz`), the online
calibration (`online_calibration.jsonl`), the wrist and palm tracking (`../hand_tracking/wrist_and_palm_poses.csv`)
and the `.vrs`. Wrist-worn recordings (Nymeria's `recording_lwrist`, `recording_rwrist`) are not heads and are
left out. Outside those recordings, every TUM `.txt`, trajectory `.npz` and MPS-style trajectory `.csv` is a
recording of its own (a file is taken when its first line looks like one). A manifest (CSV or JSONL) names
each recording's files instead.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import zipfile
from pathlib import Path

from ..errors import InputFileError, UserError
from ..inputs.stature import check_stature

TRAJECTORY_NAME = "closed_loop_trajectory.csv"
SLAM_FOLDERS = ("slam", "trajectory")
"""The folder that holds the trajectory: `slam/` in current MPS outputs, `trajectory/` in older ones."""
POINT_NAMES = ("semidense_points.csv.gz", "global_points.csv.gz", "semidense_points.csv", "global_points.csv")
CALIBRATION_NAME = "online_calibration.jsonl"
WRIST_PALM_PATH = Path("hand_tracking") / "wrist_and_palm_poses.csv"
WRIST_FOLDERS = frozenset({"recording_lwrist", "recording_rwrist"})
"""Nymeria's wristband recordings: SLAM trajectories of a wrist, not a head."""
MANIFEST_SUFFIXES = (".csv", ".jsonl")
MANIFEST_FILES = ("points", "calibration", "wrist_palm", "hands", "vrs")
MANIFEST_COLUMNS = ("trajectory", *MANIFEST_FILES, "stature", "name")


@dataclasses.dataclass(frozen=True)
class Recording:
    """One recording of a corpus: its name (where its result goes, `OUT/<name>/result.npz`) and its files."""

    name: str
    trajectory: Path
    points: Path | None = None
    calibration: Path | None = None
    wrist_palm: Path | None = None
    hands: Path | None = None
    vrs: Path | None = None
    stature_m: float | None = None
    """The wearer's height (a manifest's `stature` column), as `egoallo infer --stature` takes it."""

    def files(self) -> dict[str, Path]:
        """Its files by role ("trajectory", "points", ...), those it has."""
        roles = ("trajectory", *MANIFEST_FILES)
        return {role: getattr(self, role) for role in roles if getattr(self, role) is not None}


def recordings_in(corpus: Path) -> list[Recording]:
    """The recordings of `corpus` (a folder, or a manifest `.csv`/`.jsonl`), sorted by name; a `UserError` for
    a corpus that does not exist, a bad manifest, or one without recordings."""
    if corpus.is_dir():
        found = find_recordings(corpus)
        where = (f"{corpus}: no recordings found (looked for Aria MPS slam/{TRAJECTORY_NAME}, TUM .txt, "
                 "trajectory .npz and MPS trajectory .csv files; a manifest .csv/.jsonl names other layouts).")
    elif corpus.is_file() and corpus.suffix.lower() in MANIFEST_SUFFIXES:
        found = read_manifest(corpus)
        where = f"{corpus}: the manifest lists no recordings."
    else:
        raise UserError(f"{corpus}: not found; expected a corpus folder or a manifest (.csv or .jsonl).")
    if not found:
        raise UserError(where)
    return sorted(found, key=lambda r: r.name)


def find_recordings(corpus: Path) -> list[Recording]:
    """The Aria MPS recordings and the loose trajectory files under the folder `corpus` (hidden folders skipped)."""
    mps, loose = [], []
    claimed: set[Path] = set()
    for folder, subfolders, files in os.walk(corpus):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        here = Path(folder)
        if TRAJECTORY_NAME in files and here.name in SLAM_FOLDERS:
            recording = mps_recording(corpus, here)
            claimed.add(recording_folder(here))
            if recording is not None:
                mps.append(recording)
        loose += [here / name for name in sorted(files) if not name.startswith(".")]
    inside = lambda path: any(folder in path.parents for folder in claimed)  # noqa: E731
    files = [path for path in loose if not inside(path) and looks_like_trajectory(path)]
    return mps + loose_recordings(corpus, files, {r.name for r in mps})


def recording_folder(slam: Path) -> Path:
    """The folder of the recording whose SLAM outputs are in `slam`: `<rec>/mps/slam` -> `<rec>`,
    `mps_<name>_vrs/slam` -> `mps_<name>_vrs`."""
    base = slam.parent
    return base.parent if base.name == "mps" else base


def mps_recording(corpus: Path, slam: Path) -> Recording | None:
    """The recording of the MPS `slam` folder with its companions; None for a wrist-worn recording."""
    folder = recording_folder(slam)
    if folder.name in WRIST_FOLDERS:
        return None
    name = folder.relative_to(corpus).as_posix() if folder != corpus else corpus.resolve().name
    points = next((slam / n for n in POINT_NAMES if (slam / n).is_file()), None)
    calibration = slam / CALIBRATION_NAME
    wrist_palm = slam.parent / WRIST_PALM_PATH
    return Recording(
        name=name,
        trajectory=slam / TRAJECTORY_NAME,
        points=points,
        calibration=calibration if calibration.is_file() else None,
        wrist_palm=wrist_palm if wrist_palm.is_file() else None,
        vrs=vrs_of(folder, slam.parent),
    )


def vrs_of(folder: Path, mps: Path) -> Path | None:
    """The recording's `.vrs`: beside `mps_<name>_vrs/` as `<name>.vrs`, else the one `.vrs` in the recording
    folder or its `data/` (AEA, Nymeria); None when absent or not one."""
    if mps.name.startswith("mps_") and mps.name.endswith("_vrs"):
        beside = mps.parent / f"{mps.name[4:-4]}.vrs"
        if beside.is_file():
            return beside
    for place in (folder, folder / "data"):
        found = sorted(place.glob("*.vrs")) if place.is_dir() else []
        if len(found) == 1:
            return found[0]
    return None


def looks_like_trajectory(path: Path) -> bool:
    """Whether a loose file is a head trajectory by its first line or members: a TUM `.txt` (8 numbers),
    an MPS trajectory `.csv` (a `tx_world_device` or `tx_odometry_device` column), an `.npz` with timestamps
    and poses (not a result)."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            with zipfile.ZipFile(path) as archive:
                members = set(archive.namelist())
            times = members & {"timestamps_ns.npy", "timestamps_s.npy"}
            poses = members & {"T_world_cpf.npy", "T_world_head.npy"}
            return bool(times and poses) and "joints_world.npy" not in members
        if suffix in (".txt", ".csv"):
            with open(path, encoding="utf-8", errors="replace") as f:
                head = f.read(4096)
            lines = [line.split("#", 1)[0].strip() for line in head.splitlines()]
            first = next((line for line in lines if line), "")
            if suffix == ".csv":
                return "tx_world_device" in first or "tx_odometry_device" in first
            return len(first.split()) == 8 and _numbers(first.split())
    except (OSError, zipfile.BadZipFile):
        return False
    return False


def _numbers(tokens: list[str]) -> bool:
    try:
        [float(t) for t in tokens]
    except ValueError:
        return False
    return True


def loose_recordings(corpus: Path, files: list[Path], taken: set[str]) -> list[Recording]:
    """A recording per file, named by its path under `corpus` without the suffix (with it where two would clash)."""
    stems = [path.relative_to(corpus).with_suffix("").as_posix() for path in files]
    clash = {s for s in stems if stems.count(s) > 1 or s in taken}
    return [
        Recording(name=path.relative_to(corpus).as_posix() if stem in clash else stem, trajectory=path)
        for path, stem in zip(files, stems)
    ]


def read_manifest(path: Path) -> list[Recording]:
    """The recordings a manifest lists: a CSV with a header, or JSONL (an object per line), with the columns
    `trajectory` (required), `points`, `calibration`, `wrist_palm`, `hands`, `vrs` and `name` (default: the
    trajectory's path without suffix); relative paths are relative to the manifest's folder. A row naming a
    file that does not exist is kept (its recording fails with that message); a malformed row is a `UserError`."""
    rows = _manifest_rows(path)
    recordings, names = [], {}
    for label, row in rows:
        unknown = set(row) - set(MANIFEST_COLUMNS)
        if unknown:
            raise InputFileError(path, f"unknown column(s) {sorted(unknown)}; expected {list(MANIFEST_COLUMNS)}", label)
        values = {k: str(v).strip() for k, v in row.items() if v is not None and str(v).strip()}
        if "trajectory" not in values:
            raise InputFileError(path, "no trajectory; every row needs one", label)
        files = {k: path.parent / values[k] for k in ("trajectory", *MANIFEST_FILES) if k in values}
        name = values.get("name") or Path(values["trajectory"]).with_suffix("").as_posix()
        if Path(name).is_absolute() or ".." in Path(name).parts or name in (".", ""):
            raise InputFileError(path, f"name {name!r} must be a relative path inside OUT (no '..')", label)
        if name in names:
            raise InputFileError(path, f"name {name!r} is also {names[name]}'s; each recording needs its own", label)
        names[name] = label
        stature = None
        if "stature" in values:
            try:
                stature = check_stature(values["stature"], flag="stature")
            except UserError as error:
                raise InputFileError(path, str(error), label) from None
        recordings.append(Recording(name=name, stature_m=stature, **files))
    return recordings


def _manifest_rows(path: Path) -> list[tuple[str, dict]]:
    """(label for messages, row) of a CSV or JSONL manifest."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise InputFileError(path, f"cannot read the manifest ({e}); expected UTF-8 text") from None
    if path.suffix.lower() == ".jsonl":
        rows = []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputFileError(path, f"not JSON ({e.msg}); expected one object per line", f"line {n}") from None
            if not isinstance(row, dict):
                raise InputFileError(path, "expected a JSON object with a 'trajectory' key", f"line {n}")
            rows.append((f"line {n}", row))
        return rows
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or "trajectory" not in [f.strip() for f in reader.fieldnames]:
        raise InputFileError(path, f"no 'trajectory' column in the header; expected columns among {list(MANIFEST_COLUMNS)}")
    rows = []
    for n, row in enumerate(reader, start=2):
        if None in row:
            raise InputFileError(path, "more values than columns in the header", f"line {n}")
        rows.append((f"line {n}", {k.strip(): v for k, v in row.items()}))
    return rows
