"""Head trajectories from Aria MPS CSV, TUM text and `.npz`, in a z-up, gravity-aligned world.

Every reader returns `T_world_cpf` in a world whose gravity is -z, the rotation `R_zup_input`
that took the file's world there, and `metadata` saying what was read, assumed and repaired.

Bad input is either repaired (the repair is listed in `metadata["repairs"]` and counted in
`metadata["counts"]`) or refused with a `TrajectoryError` naming the file, the line (or
pose index) and what was expected:

| input | outcome |
|---|---|
| missing/empty file, no data rows, unknown format | error |
| wrong number of columns, text where a number belongs, missing pose column | error (line, column) |
| quaternion norm off by <= 0.1 | renormalised; counted when off by > 1e-4 |
| quaternion norm off by > 0.1, non-rotation matrix, reflection | error (line) |
| NaN/infinite values, zero quaternion | row dropped, counted |
| timestamp equal to the previous one | later row dropped, counted |
| timestamp going backwards | error (line) |
| TUM timestamps in ms, µs or ns (median pose interval 1 ms-1 s in that unit) | read in that unit, noted in the repairs |
| TUM pose interval 1 ms-1 s in none of s, ms, µs, ns | error |
| gap > `max_gap_s`, `graph_uid`/`session_uid` change | split into segments; `read_trajectory` keeps the longest |
| position jump faster than a person moves (> `max_speed_mps` over > `min_jump_m`) | split there, like a gap |
| (every split) | each piece's `world_frame` says which pieces share a world frame: one per `graph_uid`/`session_uid`; without them, a jump (a SLAM reset) starts a new one |
| timestamp beyond the int64 nanosecond range, coordinate beyond `MAX_COORDINATE_M` | error (line) |
| fewer than `min_poses` poses or shorter than `min_duration_s` | error |
| gravity columns all zero/NaN | error (unless `up` is given) |
| no gravity information | z-up assumed (`metadata["assumptions"]`), or error with `require_gravity` |
| `up` disagrees with the file's gravity columns | error |
| CPF upside down on average (e.g. OpenCV camera poses read as CPF) | error |

projectaria-tools' MPS CSV readers are not used: on a malformed row they print a message and
return the rows before it, return nothing when a column is missing, and hide quaternion
norms (zero quaternions become NaN rotations), so the CSV is parsed here, driven by the header.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from egoallo.errors import InputFileError
from egoallo.files import NpzError, load_npz, npz_names, read_input_bytes, why_not_a_file
from egoallo.geometry.rigid import NotRigidError, as_rigid_transform
from egoallo.inputs.calibration import DEFAULT_ARIA_T_DEVICE_CPF, CalibrationError, load_calibration
from egoallo.inputs.csv_columns import decode_text, drop_repeated_timestamps, read_numeric_columns

QUAT_MAX_NORM_ERROR = 0.1  # beyond this a quaternion is refused, not renormalised
QUAT_COUNT_NORM_ERROR = 1e-4  # renormalisations larger than this are counted in the metadata
MATRIX_MAX_ORTHO_ERROR = 1e-2  # max |R^T R - I| re-orthonormalised (SVD) rather than refused
MATRIX_COUNT_ORTHO_ERROR = 1e-6
UP_CONFLICT_DEG = 10.0  # `up` vs the file's gravity columns
UPRIGHT_MIN = -0.25  # mean world-z of the CPF's +y below this: the head is upside down
UPRIGHT_WARN = 0.5  # below this: warn that the up axis or calibration may be wrong
UPSIDE_DOWN_MAX_S = 0.5  # a stretch this long upside down (world-z of the CPF's +y below UPRIGHT_MIN) is refused
_AXES = {"x": 0, "y": 1, "z": 2}
# TUM timestamps are seconds; a file in another unit is recognised by the median interval between
# its poses, taken to lie between 1 ms and 1 s (1 to 1000 poses per second) in the right unit.
TEXT_PARSE_BYTES_PER_BYTE = 30.0
"""Peak memory of reading a text trajectory, per byte of its (inflated) text: 23 measured (`ru_maxrss`,
400,000 TUM rows, 31 MB), with a margin."""
TUM_TIME_UNITS = (("seconds", 0), ("milliseconds", 3), ("microseconds", 6), ("nanoseconds", 9))
TUM_POSE_INTERVAL_S = (1e-3, 1.0)
MAX_TIMESTAMP_NS = 2**63 - 1  # timestamps are int64 nanoseconds
MAX_COORDINATE_M = 1e10  # float64 still resolves 2 um here; beyond it a head's motion would be lost to rounding


class TrajectoryError(InputFileError):
    """Unusable trajectory input."""


@dataclass(frozen=True)
class ReadOptions:
    """Limits applied by the readers."""

    max_gap_s: float = 0.5  # split where consecutive poses are further apart
    max_speed_mps: float = 12.0  # split where the head jumps faster than this (a sprint peaks near 10 m/s) ...
    min_jump_m: float = 0.5  # ... over more than this (shorter jumps are tracking noise at any pose rate)
    min_poses: int = 2
    min_duration_s: float = 0.1
    require_gravity: bool = False  # error instead of assuming z-up when gravity is unknown
    check_upright: bool = True  # error when the CPF's up axis points down on average


@dataclass(frozen=True, eq=False)
class HeadTrajectory:
    """CPF poses over time in a z-up world (gravity -z), with provenance.

    `R_zup_input` (3, 3) rotates the file's own world into this one; `T_input_world` maps back.
    """

    timestamps_ns: np.ndarray  # (T,) int64, strictly increasing
    T_world_cpf: np.ndarray  # (T, 4, 4) float64
    source: str
    metadata: dict[str, Any] = field(default_factory=dict)
    R_zup_input: np.ndarray = field(default_factory=lambda: np.eye(3))  # (3, 3)

    def __post_init__(self) -> None:
        t = np.array(self.timestamps_ns, dtype=np.int64)
        T = np.array(self.T_world_cpf, dtype=np.float64)
        R = np.array(self.R_zup_input, dtype=np.float64)
        if t.ndim != 1 or T.shape != (len(t), 4, 4) or R.shape != (3, 3):
            raise TrajectoryError(self.source, f"shapes {t.shape}, {T.shape}, {R.shape}; expected (T,), (T, 4, 4), (3, 3)")
        if len(t) == 0 or not np.isfinite(T).all() or np.any(t[1:] <= t[:-1]):
            raise TrajectoryError(self.source, "expected >= 1 finite pose with strictly increasing timestamps")
        for name, value in (("timestamps_ns", t), ("T_world_cpf", T), ("R_zup_input", R)):
            value.setflags(write=False)
            object.__setattr__(self, name, value)

    def __len__(self) -> int:
        return len(self.timestamps_ns)

    @property
    def duration_s(self) -> float:
        return float(self.timestamps_ns[-1] - self.timestamps_ns[0]) / 1e9

    @property
    def rows(self) -> str:
        """The rows of the file this segment was read from ("lines 2-301"), else its source."""
        summaries, index = self.metadata.get("segments"), self.metadata.get("segment_index")
        return summaries[index]["rows"] if summaries and index is not None else self.source

    @property
    def world_frame(self) -> int:
        """The world frame this segment's poses are in (segments of one recording with equal numbers share it)."""
        summaries, index = self.metadata.get("segments"), self.metadata.get("segment_index")
        return summaries[index].get("world_frame", 0) if summaries and index is not None else 0

    @property
    def graph_uid(self) -> str | None:
        """The Aria MPS SLAM graph this segment was tracked in, when the file says."""
        summaries, index = self.metadata.get("segments"), self.metadata.get("segment_index")
        return summaries[index].get("graph_uid") if summaries and index is not None else None

    @property
    def T_input_world(self) -> np.ndarray:
        """(4, 4) from this z-up world to the input file's world: `T_input_x = T_input_world @ T_world_x`."""
        T = np.eye(4)
        T[:3, :3] = self.R_zup_input.T
        return T

    def resample(self, fps: float = 30.0, max_gap_s: float = 0.5) -> HeadTrajectory:
        """Uniform timestamps from the first pose at `fps` (linear translation, slerp rotation).

        Refuses to interpolate across gaps longer than `max_gap_s` (the readers split there).
        """
        import torch  # here, not at the top: importing this module needs no torch

        from egoallo.geometry import so3

        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        t = self.timestamps_ns
        if len(t) > 1 and np.diff(t.astype(np.float64)).max() > max_gap_s * 1e9:
            i = int(np.argmax(np.diff(t.astype(np.float64))))
            raise TrajectoryError(
                self.source,
                f"gap of {(t[i + 1] - t[i]) / 1e9:.3f} s after {(t[i] - t[0]) / 1e9:.3f} s; refusing to interpolate "
                f"across gaps longer than {max_gap_s} s (read it with max_gap_s <= {max_gap_s} to split there)",
            )
        step_ns = 1e9 / fps
        frames = int(np.floor((t[-1] - t[0]) / step_ns + 1e-4)) + 1  # tolerate microsecond-rounded timestamps
        if frames < 2:
            raise TrajectoryError(self.source, f"spans {self.duration_s:.3f} s: fewer than 2 frames at {fps} fps")
        out_t = np.minimum(t[0] + np.round(np.arange(frames) * step_ns).astype(np.int64), t[-1])
        rel, out_rel = (t - t[0]) / 1e9, (out_t - t[0]) / 1e9
        # Slerp as scipy's `Slerp`: each frame time in (rel[i], rel[i + 1]] (the first key's time in the first).
        key = np.clip(np.searchsorted(rel, out_rel) - 1, 0, len(rel) - 2)
        fraction = torch.tensor((out_rel - rel[key]) / (rel[key + 1] - rel[key]), dtype=torch.float64)
        R = torch.tensor(self.T_world_cpf[:, :3, :3], dtype=torch.float64)
        T = np.tile(np.eye(4), (frames, 1, 1))
        T[:, :3, :3] = so3.slerp(R[key], R[key + 1], fraction).numpy()
        T[:, :3, 3] = np.stack([np.interp(out_rel, rel, self.T_world_cpf[:, i, 3]) for i in range(3)], axis=-1)
        metadata = {**self.metadata, "resampled": {"fps": fps, "from_poses": len(self), "frames": frames}}
        return HeadTrajectory(out_t, T, self.source, metadata, self.R_zup_input)


def read_trajectory(
    path: str | Path,
    *,
    calibration: str | Path | np.ndarray | None = None,
    device_is_cpf: bool = False,
    up: str | None = None,
    options: ReadOptions = ReadOptions(),
) -> HeadTrajectory:
    """Read an Aria MPS trajectory CSV, TUM text file or `.npz`; keeps the longest usable segment.

    `calibration`: the transform from the file's pose frame to the CPF: an Aria `.vrs`,
    calibration `.json`/`.jsonl` (giving `T_device_cpf`) or a (4, 4) array. Default: the Aria
    Gen 1 `T_device_cpf` for MPS files; identity for TUM/npz (their poses are taken as CPF
    poses: +x left, +y up, +z forward). `device_is_cpf`: the file's poses already are CPF poses.
    `up`: the file world's up axis ("z", "y", "-y", ...); default from MPS gravity columns,
    else z.
    """
    segments = read_trajectory_segments(
        path, calibration=calibration, device_is_cpf=device_is_cpf, up=up, options=options
    )
    longest = max(segments, key=lambda s: (s.duration_s, len(s)))
    summaries = longest.metadata["segments"]
    if len(summaries) == 1:
        return longest
    kept = summaries[longest.metadata["segment_index"]]
    dropped = sum(s["poses"] for s in summaries) - kept["poses"]
    note = f"read_trajectory keeps the longest segment ({kept['rows']}) and drops {dropped} poses"
    metadata = {
        **longest.metadata,
        "repairs": [*longest.metadata["repairs"], note],
        "counts": {**longest.metadata["counts"], "poses_in_other_segments": dropped},
    }
    return dataclasses.replace(longest, metadata=metadata)


def read_trajectory_segments(
    path: str | Path,
    *,
    calibration: str | Path | np.ndarray | None = None,
    device_is_cpf: bool = False,
    up: str | None = None,
    options: ReadOptions = ReadOptions(),
) -> list[HeadTrajectory]:
    """Like `read_trajectory`, but every usable segment (split at gaps, jumps and graph changes), in time order.

    `metadata["segments"]` summarises every piece, usable or not; `metadata["segment_index"]` is this one's.
    """
    path = Path(path)
    rows = _parse(path)
    T_pose_cpf, calibration_note = _T_pose_cpf(path, rows.pose_frame, calibration, device_is_cpf)
    index, repairs, counts = _clean(path, rows)
    pieces, splits, jumps, frames = _split(rows, index, options)
    summaries = [{**_summary(rows, piece), "world_frame": frame} for piece, frame in zip(pieces, frames)]
    for summary, reason in zip(summaries[1:], splits):
        summary["after"] = reason
    usable = [i for i, s in enumerate(summaries) if _long_enough(s, options)]
    if not usable:
        longest = max(summaries, key=lambda s: s["duration_s"])
        raise TrajectoryError(
            path,
            f"too short: the longest usable stretch ({longest['rows']}) has {longest['poses']} poses over "
            f"{longest['duration_s']:.3f} s; expected >= {options.min_poses} poses spanning >= "
            f"{options.min_duration_s} s",
        )
    if len(pieces) > 1:
        repairs.append(f"split into {len(pieces)} segments ({'; '.join(splits)})")
    if short := [s for i, s in enumerate(summaries) if i not in usable]:
        repairs.append(
            f"{len(short)} segment(s) too short to use ({', '.join(s['rows'] for s in short)}: "
            f"{sum(s['poses'] for s in short)} poses); expected >= {options.min_poses} poses spanning "
            f">= {options.min_duration_s} s"
        )
    counts["poses_in_short_segments"] = sum(s["poses"] for s in short)
    counts["jumps_split"] = len(jumps)
    shared = {
        "format": rows.fmt,
        "source": str(path),
        "row_labels": "file line numbers" if rows.label_kind == "line" else "pose indices (0-based)",
        "timestamps": rows.timestamp_note,
        "pose_frame": rows.pose_frame,
        "calibration": calibration_note,
        "T_pose_cpf": T_pose_cpf.tolist(),
        "counts": counts,
        "segments": summaries,
        "repairs": repairs,
        "warnings": [f"the head jumps {jump}: a tracking failure, not motion; split there" for jump in jumps],
    }
    return [
        _segment_trajectory(path, rows, pieces[i], T_pose_cpf, up, options, {**shared, "segment_index": i})
        for i in usable
    ]


@dataclass(frozen=True, eq=False)
class _Rows:
    """Poses as parsed, one per data row; invalid rows carry NaN rotations."""

    fmt: str
    pose_frame: str  # "device", "camera", "head" or "cpf"
    label_kind: str  # "line" (1-based file line) or "pose" (0-based index)
    labels: np.ndarray  # (N,) int
    timestamps_ns: np.ndarray  # (N,) int64
    translation: np.ndarray  # (N, 3)
    rotation: np.ndarray  # (N, 3, 3)
    timestamp_note: str
    renormalised: int  # rotations renormalised noticeably while parsing
    renormalised_note: str
    unit_note: str = ""  # timestamps read in another unit than the format's
    segment_ids: np.ndarray | None = None  # (N,) str: graph_uid / session_uid
    segment_column: str = ""
    gravity: np.ndarray | None = None  # (N, 3) in the file's world
    gravity_note: str = ""

    def at(self, i: int) -> str:
        return f"{self.label_kind} {self.labels[i]}"


def _parse(path: Path) -> _Rows:
    expected = "an Aria MPS trajectory .csv, a TUM text trajectory or an .npz with timestamps and 4x4 poses"
    if why := why_not_a_file(path):
        raise TrajectoryError(path, f"{why}; expected {expected}")
    if path.suffix.lower() == ".npz":
        return _parse_npz(path)
    raw = read_input_bytes(path, expected=expected, error=TrajectoryError, parse_bytes_per_byte=TEXT_PARSE_BYTES_PER_BYTE)
    text = decode_text(path, raw, expected, TrajectoryError)
    lines = text.splitlines()
    if path.suffix.lower() == ".csv" or "tracking_timestamp_us" in lines[0]:
        return _parse_mps_csv(path, lines)
    return _parse_tum(path, lines)


def _parse_mps_csv(path: Path, lines: list[str]) -> _Rows:
    """Aria MPS closed-loop (`*_world_device`) or open-loop (`*_odometry_device`) CSV, by column names."""
    header = [name.strip() for name in lines[0].split(",")]
    if repeated := sorted({name for name in header if header.count(name) > 1}):
        raise TrajectoryError(path, f"repeated column(s) {', '.join(repeated)}; expected each once", "line 1")
    if "tx_world_device" in header:
        fmt, world, segment_column = "aria_mps_closed_loop_csv", "world", "graph_uid"
    elif "tx_odometry_device" in header:
        fmt, world, segment_column = "aria_mps_open_loop_csv", "odometry", "session_uid"
    else:
        raise TrajectoryError(
            path,
            "line 1: expected an Aria MPS trajectory header with tracking_timestamp_us, tx/ty/tz/qx/qy/qz/qw"
            f"_world_device (closed loop) or _odometry_device (open loop); got {lines[0][:200]!r}",
        )
    pose_columns = [f"{a}_{world}_device" for a in ("tx", "ty", "tz", "qx", "qy", "qz", "qw")]
    missing = [c for c in ["tracking_timestamp_us", *pose_columns] if c not in header]
    if missing:
        raise TrajectoryError(path, f"missing column(s) {', '.join(missing)}; header: {', '.join(header)}", "line 1")
    numbered = [(n, line) for n, line in enumerate(lines[1:], start=2) if line.strip()]
    if not numbered:
        raise TrajectoryError(path, "no data rows after the header; expected one pose per line")
    labels = np.array([n for n, _ in numbered])
    body = [line for _, line in numbered]
    for n, line in numbered:
        if line.count(",") != len(header) - 1:
            raise TrajectoryError(
                path, f"{line.count(',') + 1} comma-separated values; expected {len(header)} as in the header", f"line {n}"
            )
    col = {name: i for i, name in enumerate(header)}
    timestamps_us = _numbers(path, body, labels, header, [col["tracking_timestamp_us"]], np.int64)[:, 0]
    pose = _numbers(path, body, labels, header, [col[c] for c in pose_columns], np.float64)
    gravity_columns = [f"gravity_{a}_{world}" for a in "xyz"]
    present = [c for c in gravity_columns if c in header]
    if present and len(present) < 3:
        raise TrajectoryError(path, f"has {', '.join(present)} but not all of {', '.join(gravity_columns)}", "line 1")
    rotation, renormalised, renormalised_note = _rotations_from_quaternions(path, pose[:, 3:], labels)
    _check_time_range(path, np.abs(timestamps_us) > MAX_TIMESTAMP_NS // 1000, labels, "line")
    return _Rows(
        fmt=fmt,
        pose_frame="device",
        label_kind="line",
        labels=labels,
        timestamps_ns=timestamps_us * 1000,
        translation=pose[:, :3],
        rotation=rotation,
        timestamp_note="tracking_timestamp_us x 1000 (Aria device clock)",
        renormalised=renormalised,
        renormalised_note=renormalised_note,
        segment_ids=(
            np.loadtxt(body, delimiter=",", usecols=col[segment_column], dtype=str, comments=None, ndmin=1)
            if segment_column in col
            else None
        ),
        segment_column=segment_column,
        gravity=_numbers(path, body, labels, header, [col[c] for c in gravity_columns], np.float64) if present else None,
        gravity_note=f"columns {', '.join(gravity_columns)}",
    )


def _numbers(
    path: Path, body: list[str], labels: np.ndarray, header: list[str], columns: list[int], dtype: type
) -> np.ndarray:
    return read_numeric_columns(path, body, labels, header, columns, dtype, TrajectoryError)


def _parse_tum(path: Path, lines: list[str]) -> _Rows:
    """TUM: `timestamp tx ty tz qx qy qz qw` per line (seconds, else a unit told by the pose interval; camera-to-world);
    `#` starts a comment."""
    labels, stamps, values = [], [], []
    for n, line in enumerate(lines, start=1):
        tokens = line.split("#", 1)[0].split()
        if not tokens:
            continue
        if len(tokens) != 8:
            raise TrajectoryError(
                path, f"{len(tokens)} values; expected 8: 'timestamp tx ty tz qx qy qz qw' (TUM)", f"line {n}"
            )
        try:
            stamps.append(Decimal(tokens[0]))
            values.append([float(token) for token in tokens[1:]])
            if not stamps[-1].is_finite():
                raise ValueError
        except (ValueError, ArithmeticError):
            raise TrajectoryError(path, f"expected 8 finite numbers, got {' '.join(tokens)!r}", f"line {n}") from None
        labels.append(n)
    if not values:
        raise TrajectoryError(path, "no poses (only comments); expected lines 'timestamp tx ty tz qx qy qz qw'")
    unit, digits, median = _tum_time_unit(path, stamps)
    label_array = np.array(labels)
    limit = Decimal(MAX_TIMESTAMP_NS).scaleb(digits - 9)  # compared before scaling: 1e999999999 would overflow
    _check_time_range(path, np.array([stamp.copy_abs() > limit for stamp in stamps]), label_array, "line")
    nanoseconds = [round(stamp.scaleb(9 - digits)) for stamp in stamps]
    pose = np.array(values)
    rotation, renormalised, renormalised_note = _rotations_from_quaternions(path, pose[:, 3:], label_array)
    return _Rows(
        fmt="tum",
        pose_frame="camera",
        label_kind="line",
        labels=label_array,
        timestamps_ns=np.array(nanoseconds, dtype=np.int64),
        translation=pose[:, :3],
        rotation=rotation,
        timestamp_note=f"TUM {unit} x 1e{9 - digits}",
        renormalised=renormalised,
        renormalised_note=renormalised_note,
        unit_note="" if digits == 0 else (
            f"timestamps read as {unit}, not the seconds of TUM: the median interval between poses is {median:g}"
        ),
    )


def _tum_time_unit(path: Path, stamps: list[Decimal]) -> tuple[str, int, float]:
    """(unit, its digits below a second, median interval in the file's unit) of TUM timestamps."""
    distinct = np.unique(np.array([float(stamp) for stamp in stamps]))
    if len(distinct) < 2:
        return "seconds", 0, float("nan")  # too short: refused later, with the pose count
    median = float(np.median(np.diff(distinct)))
    low, high = TUM_POSE_INTERVAL_S
    for unit, digits in TUM_TIME_UNITS:
        if low <= median / 10**digits <= high:
            return unit, digits, median
    raise TrajectoryError(
        path,
        f"the median interval between timestamps is {median:g}, which is 1-1000 poses per second in none of "
        "seconds (TUM), milliseconds, microseconds or nanoseconds; expected timestamps in one of these units",
    )


def _parse_npz(path: Path) -> _Rows:
    """`.npz` with `timestamps_ns` (int) or `timestamps_s`, and `T_world_head` or `T_world_cpf` (T, 4, 4)."""
    try:
        arrays = load_npz(path, keys=("timestamps_ns", "timestamps_s", "T_world_cpf", "T_world_head"))
    except NpzError as error:
        raise TrajectoryError(path, str(error)) from None
    time_keys = [k for k in ("timestamps_ns", "timestamps_s") if k in arrays]
    pose_keys = [k for k in ("T_world_cpf", "T_world_head") if k in arrays]
    if len(time_keys) != 1 or len(pose_keys) != 1:
        raise TrajectoryError(
            path,
            "expected exactly one of timestamps_ns / timestamps_s and one of T_world_cpf / T_world_head; "
            f"has {sorted(npz_names(path))}",
        )
    stamps, poses = arrays[time_keys[0]], arrays[pose_keys[0]]
    if stamps.ndim != 1 or poses.shape != (len(stamps), 4, 4):
        raise TrajectoryError(
            path, f"{time_keys[0]} {stamps.shape} and {pose_keys[0]} {poses.shape}; expected (T,) and (T, 4, 4)"
        )
    if len(stamps) == 0:
        raise TrajectoryError(path, "no poses (T = 0)")
    labels = np.arange(len(stamps))
    if stamps.dtype.kind not in ("iu" if time_keys[0] == "timestamps_ns" else "iuf"):
        expected = "integers" if time_keys[0] == "timestamps_ns" else "real numbers"
        raise TrajectoryError(path, f"{time_keys[0]} has dtype {stamps.dtype}; expected {expected}")
    if poses.dtype.kind not in "iuf":
        raise TrajectoryError(path, f"{pose_keys[0]} has dtype {poses.dtype}; expected real numbers")
    if time_keys[0] == "timestamps_ns":
        beyond = stamps.astype(np.uint64) > MAX_TIMESTAMP_NS if stamps.dtype.kind == "u" else stamps < -MAX_TIMESTAMP_NS
        _check_time_range(path, beyond, labels, "pose")
        timestamps_ns = stamps.astype(np.int64)
    else:
        seconds = stamps.astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(seconds))
        if bad.size:
            raise TrajectoryError(path, "timestamps_s is not finite; expected seconds", f"pose {bad[0]}")
        _check_time_range(path, np.abs(seconds) * 1e9 >= 2.0**63, labels, "pose")
        timestamps_ns = np.round(seconds * 1e9).astype(np.int64)
    translation, rotation, renormalised, renormalised_note = _rotations_from_matrices(
        path, poses.astype(np.float64), labels
    )
    return _Rows(
        fmt="npz",
        pose_frame="cpf" if pose_keys[0] == "T_world_cpf" else "head",
        label_kind="pose",
        labels=labels,
        timestamps_ns=timestamps_ns,
        translation=translation,
        rotation=rotation,
        timestamp_note=time_keys[0] if time_keys[0] == "timestamps_ns" else "timestamps_s x 1e9",
        renormalised=renormalised,
        renormalised_note=renormalised_note,
    )


def _check_time_range(path: Path, beyond: np.ndarray, labels: np.ndarray, kind: str) -> None:
    """A `TrajectoryError` at the first row where `beyond` is set: a time int64 nanoseconds cannot hold."""
    if beyond.any():
        raise TrajectoryError(
            path, "timestamp out of range; expected a time within 292 years of 0 (int64 nanoseconds)",
            f"{kind} {labels[np.argmax(beyond)]}",
        )


def _rotations_from_quaternions(
    path: Path, q_xyzw: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, int, str]:
    """(N, 3, 3) rotations of (N, 4) xyzw quaternions (NaN where zero or not finite), renormalised count, note."""
    import torch  # here, not at the top: importing this module needs no torch

    from egoallo.geometry import so3

    with np.errstate(over="ignore", invalid="ignore"):  # 1e308 components: an infinite norm, a dropped row
        norm = np.linalg.norm(q_xyzw, axis=-1)
    usable = np.isfinite(norm) & (norm > 1e-9)
    error = np.where(usable, np.abs(norm - 1.0), 0.0)
    far = np.flatnonzero(error > QUAT_MAX_NORM_ERROR)
    if far.size:
        raise TrajectoryError(
            path,
            f"quaternion norm {norm[far[0]]:.4g}; expected a unit quaternion (renormalised only within "
            f"{QUAT_MAX_NORM_ERROR} of 1); check the column order qx qy qz qw",
            f"line {labels[far[0]]}",
        )
    rotation = np.full((len(q_xyzw), 3, 3), np.nan)
    if usable.any():
        q = torch.tensor(q_xyzw[usable] / norm[usable, None], dtype=torch.float64)
        rotation[usable] = so3.from_quat_xyzw(q).numpy()
    counted = np.flatnonzero(error > QUAT_COUNT_NORM_ERROR)
    note = (
        f"renormalised {counted.size} quaternions with |norm - 1| up to {error.max():.2g} "
        f"(first at line {labels[counted[0]]})"
        if counted.size
        else ""
    )
    return rotation, int(counted.size), note


def _rotations_from_matrices(
    path: Path, T: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int, str]:
    """Translations (N, 3), rotations (N, 3, 3) of (N, 4, 4) poses (near-rotations SVD-projected), count, note."""
    finite = np.isfinite(T).all(axis=(1, 2))
    bottom = np.flatnonzero(finite & ~np.isclose(T[:, 3], [0.0, 0.0, 0.0, 1.0], atol=1e-6).all(axis=1))
    if bottom.size:
        raise TrajectoryError(path, f"last row {T[bottom[0], 3].tolist()}; expected [0, 0, 0, 1]", f"pose {bottom[0]}")
    R = np.where(finite[:, None, None], T[:, :3, :3], np.eye(3))
    error = np.abs(np.swapaxes(R, 1, 2) @ R - np.eye(3)).max(axis=(1, 2))
    wrong = np.flatnonzero((error > MATRIX_MAX_ORTHO_ERROR) | (np.linalg.det(R) < 0))
    if wrong.size:
        raise TrajectoryError(
            path, "rotation block is not a rotation (orthonormal with det +1)", f"pose {labels[wrong[0]]}"
        )
    U, _, Vt = np.linalg.svd(R)
    rotation = np.where(finite[:, None, None], U @ Vt, np.nan)
    counted = np.flatnonzero(error > MATRIX_COUNT_ORTHO_ERROR)
    note = (
        f"re-orthonormalised {counted.size} rotations with |R^T R - I| up to {error.max():.2g} "
        f"(first at pose {labels[counted[0]]})"
        if counted.size
        else ""
    )
    return T[:, :3, 3], rotation, int(counted.size), note


def _clean(path: Path, rows: _Rows) -> tuple[np.ndarray, list[str], dict[str, int]]:
    """Indices of the rows kept (finite, increasing time), repair notes and counts."""
    repairs = [rows.unit_note] if rows.unit_note else []
    repairs += [rows.renormalised_note] if rows.renormalised else []
    magnitude = np.where(np.isfinite(rows.translation), np.abs(rows.translation), 0.0)
    far = np.flatnonzero(magnitude.max(axis=1) > MAX_COORDINATE_M)
    if far.size:
        raise TrajectoryError(
            path, f"position {rows.translation[far[0]].tolist()}; expected coordinates within {MAX_COORDINATE_M:g} m "
            "(metres; beyond that float64 cannot resolve a head's motion)", rows.at(far[0]),
        )
    valid = np.isfinite(rows.translation).all(axis=1) & np.isfinite(rows.rotation).all(axis=(1, 2))
    invalid = np.flatnonzero(~valid)
    if invalid.size == len(valid):
        raise TrajectoryError(path, "no valid pose: every row has NaN/infinite values or a zero quaternion")
    if invalid.size:
        repairs.append(
            f"dropped {invalid.size} rows with NaN/infinite values or a zero quaternion (first at {rows.at(invalid[0])})"
        )
    index = np.flatnonzero(valid)
    index, duplicates, note = drop_repeated_timestamps(
        path, rows.timestamps_ns, index, rows.at, TrajectoryError, lambda i: f"{rows.timestamps_ns[i] / 1e9:.6f} s"
    )
    repairs += [note] if note else []
    counts = {
        "rows_read": len(valid),
        "dropped_invalid_rows": int(invalid.size),
        "renormalised_rotations": rows.renormalised,
        "dropped_duplicate_timestamps": duplicates,
        "poses_in_other_segments": 0,
    }
    return index, repairs, counts


def _split(
    rows: _Rows, index: np.ndarray, options: ReadOptions
) -> tuple[list[np.ndarray], list[str], list[str], list[int]]:
    """`index` cut where the time gap exceeds `max_gap_s`, the segment id changes or the position jumps faster
    than a person moves; with the reasons of every cut, of the jumps alone, and each piece's world frame
    (`world_frames`)."""
    t = rows.timestamps_ns[index]
    seconds = np.diff(t.astype(np.float64)) / 1e9  # in float64: an int64 difference can overflow
    gap = seconds > options.max_gap_s
    ids = rows.segment_ids[index] if rows.segment_ids is not None else None
    changed = ids[1:] != ids[:-1] if ids is not None else np.zeros_like(gap)
    distance = np.linalg.norm(np.diff(rows.translation[index], axis=0), axis=-1)
    jump = (distance > options.min_jump_m) & (distance > options.max_speed_mps * seconds) & ~gap & ~changed
    cuts = np.flatnonzero(gap | changed | jump) + 1
    jumps = [
        f"{distance[c - 1]:.2f} m in {seconds[c - 1]:.3f} s ({distance[c - 1] / seconds[c - 1]:.0f} m/s) before "
        f"{rows.at(index[c])}"
        for c in np.flatnonzero(jump) + 1
    ]
    reasons = [
        f"{rows.segment_column} {ids[c - 1]} -> {ids[c]} at {rows.at(index[c])}"
        if changed[c - 1]
        else f"gap of {seconds[c - 1]:.3f} s before {rows.at(index[c])}"
        if gap[c - 1]
        else f"jump of {distance[c - 1]:.2f} m before {rows.at(index[c])}"
        for c in cuts
    ]
    keys = [str(ids[c]) for c in [0, *cuts]] if ids is not None else np.cumsum([0, *jump[cuts - 1]]).tolist()
    return np.split(index, cuts), reasons, jumps, world_frames(keys)


def world_frames(keys: list[Any]) -> list[int]:
    """Per piece, its world frame numbered 0, 1, ... in order of appearance: pieces with equal `keys` (a SLAM
    graph id, or the number of jumps before the piece) share a frame."""
    order = list(dict.fromkeys(keys))
    return [order.index(key) for key in keys]


def _summary(rows: _Rows, piece: np.ndarray) -> dict[str, Any]:
    t = rows.timestamps_ns[piece]
    first, last = rows.labels[piece[0]], rows.labels[piece[-1]]
    summary: dict[str, Any] = {
        "rows": f"{rows.label_kind}s {first}-{last}",
        "poses": len(piece),
        "duration_s": float(t[-1] - t[0]) / 1e9,
    }
    if rows.segment_ids is not None:
        summary[rows.segment_column] = str(rows.segment_ids[piece[0]])
    return summary


def _long_enough(summary: dict[str, Any], options: ReadOptions) -> bool:
    return summary["poses"] >= options.min_poses and summary["duration_s"] >= options.min_duration_s


def _T_pose_cpf(
    path: Path, pose_frame: str, calibration: str | Path | np.ndarray | None, device_is_cpf: bool
) -> tuple[np.ndarray, str]:
    """(4, 4) from the file's pose frame to the CPF, and where it came from."""
    if device_is_cpf and calibration is not None:
        raise TrajectoryError(path, "device_is_cpf=True and a calibration were both given; expected one of them")
    if pose_frame == "cpf" and calibration is not None:
        raise TrajectoryError(path, "the file holds T_world_cpf; a calibration would move the CPF a second time")
    if device_is_cpf or pose_frame == "cpf":
        return np.eye(4), "none: the file's poses are CPF poses"
    if calibration is None:
        if pose_frame == "device":
            return DEFAULT_ARIA_T_DEVICE_CPF.copy(), "assumed: default Aria Gen 1 (DVT-S) T_device_cpf"
        return np.eye(4), f"assumed: the file's {pose_frame} poses are CPF poses (+x left, +y up, +z forward)"
    if isinstance(calibration, (str, Path)):
        loaded = load_calibration(calibration)
        return loaded.T_device_cpf, f"T_device_cpf from {loaded.source} ({loaded.description})"
    try:
        return as_rigid_transform(calibration, f"{path}: calibration (T_{pose_frame}_cpf)"), f"given T_{pose_frame}_cpf"
    except NotRigidError as error:
        raise CalibrationError(str(error)) from None


def _segment_trajectory(
    path: Path,
    rows: _Rows,
    piece: np.ndarray,
    T_pose_cpf: np.ndarray,
    up: str | None,
    options: ReadOptions,
    metadata: dict[str, Any],
) -> HeadTrajectory:
    """One segment in the z-up world, with its gravity alignment and upright check."""
    gravity = rows.gravity[piece] if rows.gravity is not None else None
    gravity_input, gravity_note = _gravity(path, gravity, rows.gravity_note, up, options.require_gravity)
    R_zup_input = rotation_aligning(gravity_input, np.array([0.0, 0.0, -1.0]))
    T_input_pose = np.tile(np.eye(4), (len(piece), 1, 1))
    T_input_pose[:, :3, :3] = rows.rotation[piece]
    T_input_pose[:, :3, 3] = rows.translation[piece]
    T_zup_input = np.eye(4)
    T_zup_input[:3, :3] = R_zup_input
    T_world_cpf = T_zup_input @ T_input_pose @ T_pose_cpf
    upright = float(T_world_cpf[:, 2, 1].mean())
    if options.check_upright and upright < UPRIGHT_MIN:
        raise TrajectoryError(
            path,
            f"the CPF's up axis (+y) points down on average (mean world-z {upright:.2f}): the head would be upside "
            "down. Expected CPF poses (+x left, +y up, +z forward) in a world whose up axis is `up`; OpenCV camera "
            "poses (y down) need calibration=T_camera_cpf",
        )
    flipped = _upside_down_stretch(path, rows, piece, T_world_cpf[:, 2, 1]) if options.check_upright else None
    assumptions = [note for note in (metadata["calibration"], gravity_note) if note.startswith("assumed")]
    warnings = metadata["warnings"] + ([flipped] if flipped else []) + (
        [f"the CPF's up axis is {np.degrees(np.arccos(np.clip(upright, -1, 1))):.0f} deg from world up on average; "
         "if the wearer was upright, check `up` and the calibration"]
        if upright < UPRIGHT_WARN
        else []
    )
    metadata = {
        **metadata,
        "gravity": {"source": gravity_note, "gravity_input": gravity_input.tolist(), "R_zup_input": R_zup_input.tolist()},
        "cpf_up_alignment": upright,
        "assumptions": assumptions,
        "warnings": warnings,
    }
    return HeadTrajectory(rows.timestamps_ns[piece], T_world_cpf, str(path), metadata, R_zup_input)


def _upside_down_stretch(path: Path, rows: _Rows, piece: np.ndarray, up_z: np.ndarray) -> str | None:
    """Per frame, not only on average: a `TrajectoryError` when the CPF's up axis (world-z `up_z` (T,)) points
    down for `UPSIDE_DOWN_MAX_S` or longer (a body fitted there turns over), a warning for shorter stretches."""
    down = up_z < UPRIGHT_MIN
    if not down.any():
        return None
    edges = np.flatnonzero(np.diff(np.r_[0, down.astype(np.int8), 0]))
    starts, ends = edges[0::2], edges[1::2] - 1  # inclusive frame ranges of each stretch
    times = rows.timestamps_ns[piece]
    spans = (times[ends] - times[starts]) / 1e9
    longest = int(np.argmax(spans))
    first, last = piece[starts[longest]], piece[ends[longest]]
    where = f"{rows.at(first)} to {rows.at(last)}, {spans[longest]:.2f} s"
    if spans[longest] >= UPSIDE_DOWN_MAX_S:
        raise TrajectoryError(
            path,
            f"the head is upside down (the CPF's up axis points down, world-z < {UPRIGHT_MIN}) from {where}, although "
            f"upright on average: a tracking failure or a flipped stretch; expected a head upright throughout "
            f"(cut that stretch out, or split the file there)",
        )
    return (f"the head is upside down in {int(down.sum())} poses in {len(starts)} stretch(es) under "
            f"{UPSIDE_DOWN_MAX_S} s (the longest: {where}): tracking glitches? bodies there are unreliable")


def _gravity(
    path: Path, gravity: np.ndarray | None, columns: str, up: str | None, require: bool
) -> tuple[np.ndarray, str]:
    """Unit gravity direction in the file's world, and where it came from."""
    from_file = _mean_direction(gravity) if gravity is not None else None
    if gravity is not None and from_file is None and up is None:
        raise TrajectoryError(path, f"{columns} are zero or NaN; expected the gravity vector (or pass `up`)")
    if up is not None:
        gravity_up = -_up_vector(path, up)
        if from_file is not None:
            angle = np.degrees(np.arccos(np.clip(from_file @ gravity_up, -1.0, 1.0)))
            if angle > UP_CONFLICT_DEG:
                raise TrajectoryError(
                    path, f"up={up!r} is {angle:.0f} deg from the gravity in {columns}; expected them to agree"
                )
        return gravity_up, f"up={up!r} option"
    if from_file is not None:
        return from_file, f"{columns} (mean over {len(gravity)} rows)"
    if require:
        raise TrajectoryError(path, "no gravity information; expected gravity columns or an `up` axis")
    return np.array([0.0, 0.0, -1.0]), "assumed: z-up world (no gravity information)"


def _mean_direction(vectors: np.ndarray) -> np.ndarray | None:
    """Unit mean (3,) of (N, 3) vectors ignoring NaN rows; None when it is zero or undefined."""
    finite = vectors[np.isfinite(vectors).all(axis=1)]
    mean = finite.mean(axis=0) if len(finite) else np.zeros(3)
    norm = np.linalg.norm(mean)
    return mean / norm if norm > 1e-6 else None


def _up_vector(path: Path, up: str) -> np.ndarray:
    """(3,) unit axis of "x", "y", "z", optionally signed ("-y")."""
    name = up.strip().lower()
    axis = name.lstrip("+-")
    if axis not in _AXES or len(name) - len(axis) > 1:
        raise TrajectoryError(path, f"up={up!r}; expected one of x, y, z, -x, -y, -z")
    vector = np.zeros(3)
    vector[_AXES[axis]] = -1.0 if name.startswith("-") else 1.0
    return vector


def rotation_aligning(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(3, 3) smallest rotation taking unit vector `a` (3,) to unit vector `b` (3,)."""
    v, c = np.cross(a, b), float(a @ b)
    if c < -1.0 + 1e-12:
        helper = np.eye(3)[np.argmin(np.abs(a))]
        axis = np.cross(a, helper)
        axis /= np.linalg.norm(axis)
        return 2.0 * np.outer(axis, axis) - np.eye(3)
    K = np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])
    return np.eye(3) + K + K @ K / (1.0 + c)
