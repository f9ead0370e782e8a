"""Aria MPS wrist and palm tracking: read the CSV (device frame) and place it in the z-up world.

Layouts, told apart by the header; columns are found by name, in any order, as projectaria-tools
2.3 does. Per hand (`{side}` = left, right), besides `tracking_timestamp_us` (Aria device clock,
the clock of MPS trajectories):

| layout | file | columns |
|---|---|---|
| v1 | wrist_and_palm_poses.csv | `{side}_tracking_confidence`, `t{x,y,z}_{side}_wrist_device`, `t{x,y,z}_{side}_palm_device` |
| v2 | wrist_and_palm_poses.csv | v1 and the unit normals `n{x,y,z}_{side}_palm_device`, `n{x,y,z}_{side}_wrist_device` |
| v3 | hand_tracking_results.csv | `{side}_tracking_confidence`, 21 landmarks `t{x,y,z}_{side}_landmark_{i}_device` (wrist i = 5, palm centre i = 20), `{tx..qw}_{side}_device_wrist`; normals as v2 when present |

Bad input is refused with a `WristPalmError` naming the file, the line and what was expected,
or repaired and counted in `metadata["counts"]`:

| input | outcome |
|---|---|
| missing/empty/binary file, unknown header | error |
| missing column, duplicate column, some but not all normal columns | error (line 1) |
| wrong number of values, text in a number, non-integer timestamp | error (line, column) |
| timestamp going backwards | error (line) |
| confidence <= 0 (MPS writes -1) | that hand untracked: NaN positions and normals |
| NaN/infinite confidence, or in a tracked hand's values | row dropped, counted |
| timestamp equal to the previous one | later row dropped, counted |
| other columns | ignored, listed in `metadata["ignored_columns"]` |

projectaria-tools' reader is not used: on a malformed row (text, NaN, a value too many) it returns
the rows before it, and it returns nothing for a missing or an extra column (checked on 2.3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.spatial.transform import Rotation, Slerp

from egoallo.errors import InputFileError
from egoallo.geometry.rigid import as_rigid_transform
from egoallo.inputs.csv_columns import decode_text, drop_repeated_timestamps, read_numeric_columns
from egoallo.inputs.trajectory import HeadTrajectory
from egoallo.observations import SIDES, WristObservations
TIMESTAMP_COLUMN = "tracking_timestamp_us"
# Per file kind: column patterns of the wrist and the palm centre positions.
POSITION_PATTERNS = {
    "wrist_and_palm_poses": ("t{a}_{side}_wrist_device", "t{a}_{side}_palm_device"),
    "hand_tracking_results": ("t{a}_{side}_landmark_5_device", "t{a}_{side}_landmark_20_device"),
}
NORMAL_PATTERNS = ("n{a}_{side}_wrist_device", "n{a}_{side}_palm_device")
_HAND_TRACKING_EXTRA = [f"t{{a}}_{{side}}_landmark_{i}_device" for i in range(21)]
_DEVICE_WRIST = [f"{c}_{{side}}_device_wrist" for c in ("tx", "ty", "tz", "qx", "qy", "qz", "qw")]


class WristPalmError(InputFileError):
    """Unusable wrist and palm tracking input."""


@dataclass(frozen=True, eq=False)
class WristPalmTrack:
    """Wrist and palm tracking in the Aria device frame (metres); hands ordered (left, right).

    An untracked hand (confidence <= 0) has NaN positions and normals.
    """

    timestamps_ns: np.ndarray  # (N,) int64, strictly increasing: tracking_timestamp_us x 1000
    confidence: np.ndarray  # (N, 2) as in the file
    wrist_device: np.ndarray  # (N, 2, 3)
    palm_device: np.ndarray  # (N, 2, 3)
    wrist_normal_device: np.ndarray | None  # (N, 2, 3) unit; None in a file without normals
    palm_normal_device: np.ndarray | None  # (N, 2, 3) unit; None in a file without normals
    layout: str  # "v1", "v2" or "v3"
    source: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.timestamps_ns)

    @property
    def tracked(self) -> np.ndarray:
        """(N, 2) bool: the hand was tracked (confidence > 0, as projectaria-tools)."""
        return self.confidence > 0


def read_wrist_palm(path: str | Path) -> WristPalmTrack:
    """Read an Aria MPS `wrist_and_palm_poses.csv` (v1, v2) or `hand_tracking_results.csv` (v3)."""
    path = Path(path)
    lines = _text_lines(path)
    header = [name.strip() for name in lines[0].split(",")]
    kind, columns, has_normals, ignored = _columns(path, header)
    numbered = [(n, line) for n, line in enumerate(lines[1:], start=2) if line.strip()]
    if not numbered:
        raise WristPalmError(path, "no data rows after the header; expected one row per tracking timestamp")
    for n, line in numbered:
        if line.count(",") != len(header) - 1:
            raise WristPalmError(
                path,
                f"{line.count(',') + 1} comma-separated values; expected {len(header)} as in the header",
                f"line {n}",
            )
    labels = np.array([n for n, _ in numbered])
    body = [line for _, line in numbered]
    index = {name: i for i, name in enumerate(header)}
    timestamps_us = _numbers(path, body, labels, header, [index[TIMESTAMP_COLUMN]], np.int64)[:, 0]
    beyond = np.flatnonzero(np.abs(timestamps_us) > (2**63 - 1) // 1000)
    if beyond.size:
        raise WristPalmError(path, "timestamp out of range; expected microseconds within 292 years of 0 (int64 "
                             "nanoseconds)", f"line {labels[beyond[0]]}")
    values = _numbers(path, body, labels, header, [index[c] for c in columns], np.float64)
    confidence = values[:, :2]
    vectors = values[:, 2:].reshape(len(body), 2, -1, 3)  # (N, hand, wrist/palm[/wrist normal/palm normal], xyz)
    keep, repairs, counts = _clean(path, timestamps_us, confidence, vectors, labels)
    confidence, vectors = confidence[keep], vectors[keep].copy()
    vectors[confidence <= 0] = np.nan
    counts |= {
        "samples": int(keep.size),
        **{f"tracked_{s}": int((confidence[:, h] > 0).sum()) for h, s in enumerate(SIDES)},
    }
    layout = "v3" if kind == "hand_tracking_results" else "v2" if has_normals else "v1"
    metadata = {
        "format": f"aria_mps_{kind}_csv",
        "layout": layout,
        "frame": "Aria device frame, metres",
        "timestamps": f"{TIMESTAMP_COLUMN} x 1000 (Aria device clock)",
        "counts": counts,
        "repairs": repairs,
        "ignored_columns": ignored,
    }
    return WristPalmTrack(
        timestamps_ns=timestamps_us[keep] * 1000,
        confidence=confidence,
        wrist_device=vectors[:, :, 0],
        palm_device=vectors[:, :, 1],
        wrist_normal_device=vectors[:, :, 2] if has_normals else None,
        palm_normal_device=vectors[:, :, 3] if has_normals else None,
        layout=layout,
        source=str(path),
        metadata=metadata,
    )


def _text_lines(path: Path) -> list[str]:
    expected = "an Aria MPS wrist_and_palm_poses.csv or hand_tracking_results.csv"
    if not path.is_file():
        raise WristPalmError(path, f"not found or not a file; expected {expected}")
    text = decode_text(path, path.read_bytes(), expected, WristPalmError)
    return text.splitlines()


def _columns(path: Path, header: list[str]) -> tuple[str, list[str], bool, list[str]]:
    """File kind, value columns (confidences, then per hand wrist, palm[, normals] xyz), normals?, ignored."""
    if "tx_left_landmark_5_device" in header:
        kind = "hand_tracking_results"
    elif "tx_left_wrist_device" in header:
        kind = "wrist_and_palm_poses"
    else:
        raise WristPalmError(
            path,
            "expected an Aria MPS wrist_and_palm_poses.csv header (tracking_timestamp_us, left_tracking_confidence, "
            "tx_left_wrist_device, ...) or hand_tracking_results.csv header (..., tx_left_landmark_0_device, ...); "
            f"got {','.join(header)[:200]!r}",
            "line 1",
        )
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise WristPalmError(path, f"repeated column(s) {', '.join(repeated)}; expected each once", "line 1")
    position = [c for side in SIDES for pattern in POSITION_PATTERNS[kind] for c in _xyz(pattern, side)]
    required = [TIMESTAMP_COLUMN, *(f"{side}_tracking_confidence" for side in SIDES), *position]
    missing = [c for c in required if c not in header]
    if missing:
        raise WristPalmError(path, f"missing column(s) {', '.join(missing)}; header: {', '.join(header)}", "line 1")
    normal_columns = [c for side in SIDES for pattern in NORMAL_PATTERNS for c in _xyz(pattern, side)]
    present = [c for c in normal_columns if c in header]
    if present and len(present) < len(normal_columns):
        absent = [c for c in normal_columns if c not in header]
        raise WristPalmError(
            path,
            f"has normal column(s) {', '.join(present)} but not {', '.join(absent)}; expected all 12 or none",
            "line 1",
        )
    patterns = POSITION_PATTERNS[kind] + (NORMAL_PATTERNS if present else ())
    columns = [f"{side}_tracking_confidence" for side in SIDES]
    columns += [c for side in SIDES for pattern in patterns for c in _xyz(pattern, side)]
    known = set(required) | set(normal_columns)
    if kind == "hand_tracking_results":
        known |= {c for side in SIDES for p in _HAND_TRACKING_EXTRA for c in _xyz(p, side)}
        known |= {p.format(side=side) for side in SIDES for p in _DEVICE_WRIST}
    return kind, columns, bool(present), [name for name in header if name not in known]


def _xyz(pattern: str, side: str) -> list[str]:
    return [pattern.format(a=a, side=side) for a in "xyz"]


def _numbers(
    path: Path, body: list[str], labels: np.ndarray, header: list[str], columns: list[int], dtype: type
) -> np.ndarray:
    return read_numeric_columns(path, body, labels, header, columns, dtype, WristPalmError)


def _clean(
    path: Path, timestamps_us: np.ndarray, confidence: np.ndarray, vectors: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, list[str], dict[str, int]]:
    """Indices of the rows kept (finite where used, increasing time), repair notes and counts."""
    tracked_bad = (confidence > 0) & ~np.isfinite(vectors).all(axis=(2, 3))
    invalid = np.flatnonzero(~np.isfinite(confidence).all(axis=1) | tracked_bad.any(axis=1))
    if invalid.size == len(labels):
        raise WristPalmError(path, "no usable row: every row has a NaN/infinite confidence or tracked-hand value")
    repairs = (
        [f"dropped {invalid.size} rows with NaN/infinite values (first at line {labels[invalid[0]]})"]
        if invalid.size
        else []
    )
    keep = np.setdiff1d(np.arange(len(labels)), invalid)
    keep, duplicates, note = drop_repeated_timestamps(
        path, timestamps_us, keep, lambda i: f"line {labels[i]}", WristPalmError, lambda i: f"{timestamps_us[i]} us"
    )
    repairs += [note] if note else []
    counts = {
        "rows_read": len(labels),
        "dropped_nonfinite_rows": int(invalid.size),
        "dropped_duplicate_timestamps": duplicates,
    }
    return keep, repairs, counts


def to_world_observations(
    track: WristPalmTrack,
    trajectory: HeadTrajectory,
    T_device_cpf: np.ndarray,
    *,
    max_gap_s: float = 0.15,
    max_offset_s: float = 1.0 / 60.0,
    min_confidence: float = 0.0,
) -> tuple[WristObservations, dict[str, Any]]:
    """Wrist observations at the trajectory's frames, in its z-up world; and counts of what was used.

    Each tracked sample inside the trajectory's time span goes to the world with the head pose
    interpolated at its own timestamp (linear translation, slerp rotation):
    `p_world = T_world_cpf(t) @ inv(T_device_cpf) @ p_device`, normals rotated only. A frame then
    takes the linear interpolation of the hand's tracked samples on either side of it when they
    are at most `max_gap_s` apart (normals renormalised), else the nearest tracked sample within
    `max_offset_s`, else it is invalid. MPS tracks hands at 10-30 Hz, so the default gap bridges
    consecutive samples but not an untracked one. Samples outside the span, and those with
    confidence <= `min_confidence` (EgoAllo's code used 0.7), are ignored and counted.
    """
    T_cpf_device = np.linalg.inv(as_rigid_transform(T_device_cpf, "T_device_cpf"))
    frames_ns = trajectory.timestamps_ns
    inside = (track.timestamps_ns >= frames_ns[0]) & (track.timestamps_ns <= frames_ns[-1])
    T_world_device = _poses_at(trajectory, track.timestamps_ns[inside]) @ T_cpf_device  # (M, 4, 4)
    R, t = T_world_device[:, None, :3, :3], T_world_device[:, None, :3, 3]
    normals = (
        track.palm_normal_device if track.palm_normal_device is not None else np.full_like(track.wrist_device, np.nan)
    )
    world = np.stack(
        [
            (R @ track.wrist_device[inside, :, :, None])[..., 0] + t,
            (R @ track.palm_device[inside, :, :, None])[..., 0] + t,
            (R @ normals[inside, :, :, None])[..., 0],
        ],
        axis=2,
    )  # (M, 2, 3: wrist/palm/palm normal, 3)
    out = np.full((len(frames_ns), 2, 3, 3), np.nan)
    hands = {}
    for h, side in enumerate(SIDES):
        tracked, confident = track.tracked[:, h], track.confidence[:, h] > min_confidence
        use = (tracked & confident)[inside]
        values, between, nearest = _at_frames(
            track.timestamps_ns[inside][use], world[use, h].reshape(-1, 9), frames_ns, max_gap_s, max_offset_s
        )
        out[:, h] = values.reshape(-1, 3, 3)
        hands[side] = {  # the four *_samples counts partition the samples
            "untracked_samples": int((~tracked).sum()),
            "low_confidence_samples": int((tracked & ~confident).sum()),
            "outside_trajectory_samples": int((tracked & confident & ~inside).sum()),
            "matched_samples": int(use.sum()),
            "frames_interpolated": int(between.sum()),
            "frames_nearest": int(nearest.sum()),
            "frames_valid": int((between | nearest).sum()),
        }
    norm = np.linalg.norm(out[:, :, 2], axis=-1, keepdims=True)
    out[:, :, 2] /= np.where(norm > 0, norm, 1.0)
    valid = np.isfinite(out[:, :, :2]).all(axis=(2, 3))
    observations = WristObservations(
        wrist_position=torch.from_numpy(out[:, :, 0].copy()),
        palm_position=torch.from_numpy(out[:, :, 1].copy()),
        palm_normal=torch.from_numpy(out[:, :, 2].copy()),
        valid=torch.from_numpy(valid),
    )
    has_normals = track.palm_normal_device is not None
    info = {
        "source": track.source,
        "layout": track.layout,
        "frames": len(frames_ns),
        "samples": len(track),
        "samples_outside_trajectory": int((~inside).sum()),
        "hands": hands,
        "alignment": (
            f"head pose interpolated at each sample; per frame, linear between tracked samples <= {max_gap_s} s "
            f"apart, else nearest tracked sample within {max_offset_s:.4f} s"
        ),
        "orientation_available": has_normals,
        "palm_normal": (
            f"from the file ({track.layout})"
            if has_normals
            else f"unavailable: this {track.layout} file has no normal columns; palm_normal is NaN, positions only"
        ),
        "warnings": _warnings(track, trajectory, T_device_cpf, hands),
    }
    return observations, info


def _poses_at(trajectory: HeadTrajectory, times_ns: np.ndarray) -> np.ndarray:
    """(M, 4, 4) `T_world_cpf` at `times_ns (M,)` within the trajectory (linear translation, slerp rotation)."""
    t0 = trajectory.timestamps_ns[0]
    rel, query = (trajectory.timestamps_ns - t0) / 1e9, (times_ns - t0) / 1e9
    if len(rel) == 1:
        return np.repeat(trajectory.T_world_cpf, len(times_ns), axis=0)
    T = np.tile(np.eye(4), (len(times_ns), 1, 1))
    T[:, :3, :3] = Slerp(rel, Rotation.from_matrix(trajectory.T_world_cpf[:, :3, :3]))(query).as_matrix()
    T[:, :3, 3] = np.stack([np.interp(query, rel, trajectory.T_world_cpf[:, i, 3]) for i in range(3)], axis=-1)
    return T


def _at_frames(
    samples_ns: np.ndarray, values: np.ndarray, frames_ns: np.ndarray, max_gap_s: float, max_offset_s: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`values (M, D)` at `samples_ns (M,)` taken to `frames_ns (T,)`: (T, D) NaN where none, interpolated (T,), nearest (T,)."""
    out = np.full((len(frames_ns), values.shape[1]), np.nan)
    if len(samples_ns) == 0:
        none = np.zeros(len(frames_ns), dtype=bool)
        return out, none, none
    j = np.searchsorted(samples_ns, frames_ns, side="right")
    before, after = np.clip(j - 1, 0, len(samples_ns) - 1), np.clip(j, 0, len(samples_ns) - 1)
    gap = samples_ns[after] - samples_ns[before]
    between = (j > 0) & (j < len(samples_ns)) & (gap <= max_gap_s * 1e9)
    w = np.where(between, (frames_ns - samples_ns[before]) / np.maximum(gap, 1), 0.0)[:, None]
    out[between] = ((1.0 - w) * values[before] + w * values[after])[between]
    offset_before = np.where(j > 0, frames_ns - samples_ns[before], np.inf)
    offset_after = np.where(j < len(samples_ns), samples_ns[after] - frames_ns, np.inf)
    nearest = ~between & (np.minimum(offset_before, offset_after) <= max_offset_s * 1e9)
    closest = np.where(offset_before <= offset_after, before, after)
    out[nearest] = values[closest[nearest]]
    return out, between, nearest


def _warnings(
    track: WristPalmTrack, trajectory: HeadTrajectory, T_device_cpf: np.ndarray, hands: dict[str, dict[str, int]]
) -> list[str]:
    """Signs that the tracking and the trajectory do not belong together."""
    warnings = []
    outside = sum(h["outside_trajectory_samples"] for h in hands.values())
    if outside and not sum(h["matched_samples"] for h in hands.values()):
        span = track.timestamps_ns[track.tracked.any(axis=1)][[0, -1]] / 1e9
        warnings.append(
            f"none of the {outside} tracked samples ({span[0]:.3f}-{span[1]:.3f} s) lies within the trajectory "
            f"({trajectory.timestamps_ns[0] / 1e9:.3f}-{trajectory.timestamps_ns[-1] / 1e9:.3f} s); expected both "
            "from one recording, on the Aria device clock"
        )
    used = trajectory.metadata.get("T_pose_cpf")
    if (
        trajectory.metadata.get("pose_frame") == "device"
        and used is not None
        and not np.allclose(used, T_device_cpf, atol=1e-6)
    ):
        warnings.append(
            "T_device_cpf differs from the one the trajectory was read with; wrist positions will be offset"
        )
    return warnings
