"""Random access to a built `dataset.h5` (see `dataset_build`) for training.

Windows have a fixed length: a clip shorter than the window (or a window that
runs past the clip's end) is padded by repeating the clip's last frame, and
`mask (L,)` marks the real frames. The HDF5 file is opened lazily, once per
process (a forked or unpickled copy opens its own handle).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
import os
from pathlib import Path

import h5py
import numpy as np
import torch
from torch import Tensor

from ..body import BodyModel
from ..body.skeleton import JOINT_INDEX, MIRROR_INDEX
from ..body import stature
from ..geometry import se3, so3
from .dataset_build import INDEX_FIELDS, read_index
from .sources import SPLITS, ClipInfo

HEAD_JOINT = JOINT_INDEX["head"]
"""The joint `tilt_head_window` pitches (its local rotation is `body_rotations[:, HEAD_JOINT - 1]`)."""

TIME_SERIES = ("T_world_root", "body_rotations", "hand_rotations", "contacts", "joints_world", "T_world_cpf")
"""Per-frame datasets of every clip group, read for each window."""


class MotionDataset:
    """The clips of one split of a dataset file, optionally from some sources only (e.g. `("bandai1", "bandai2")`).

    `balance_power` sets how `random_window` weighs the (source, activity)
    groups: a group is drawn with probability proportional to its number of
    windows to that power, then a window uniformly inside it. 1 draws every
    window alike (large groups dominate: 2.5 h of Bandai Namco walking and
    waving against minutes of sitting); 0 draws every group alike; 0.5, the
    square root, is in between. `merge_groups` draws several groups as one:
    each entry is comma-separated `fnmatch` patterns (`"bandai2/wave-*,bandai2/raise-up-*"`), and the groups
    they match become one group named by the entry, so that one activity recorded in many styles counts once.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        split: str = "train",
        sources: tuple[str, ...] | None = None,
        balance_power: float = 1.0,
        merge_groups: tuple[str, ...] = (),
    ):
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}.")
        self.path = Path(path)
        self.split = split
        self.sources = sources
        rows = [r for r in read_index(self.path) if r["split"] == split and (sources is None or r["source"] in sources)]
        self.clip_ids: tuple[str, ...] = tuple(r["clip_id"] for r in rows)
        self.lengths = np.array([r["num_frames"] for r in rows], dtype=np.int64)
        """(N,) frames per clip."""
        self._rows = rows
        self.groups = tuple(f"{r['source']}/{r['activity']}" for r in rows)
        """(N,) each clip's sampling group, `source/activity`."""
        if not 0.0 <= balance_power <= 1.0:
            raise ValueError(f"balance_power must be in [0, 1], got {balance_power}.")
        self.balance_power = balance_power
        self.merge_groups = tuple(merge_groups)
        self.sampling_groups = tuple(sampling_group(g, self.merge_groups) for g in self.groups)
        """(N,) the group each clip is drawn in: its own, or the `merge_groups` entry that matches it."""
        self._group_index = np.unique(np.array(self.sampling_groups, dtype=str), return_inverse=True)[1] if rows else np.zeros(0, int)
        self._weights: dict[int, np.ndarray] = {}
        self._h5: h5py.File | None = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return len(self.clip_ids)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_h5": None, "_pid": None}

    def _file(self) -> h5py.File:
        if self._h5 is None or self._pid != os.getpid():
            self._h5 = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._h5

    def info(self, clip_idx: int) -> ClipInfo:
        """The clip's `ClipInfo` (from its group attributes)."""
        attrs = self._file()[f"clips/{self.clip_ids[clip_idx]}"].attrs
        return ClipInfo(**{f.name: _text(attrs.get(f.name)) for f in dataclasses.fields(ClipInfo)})

    def index_row(self, clip_idx: int) -> dict:
        """The clip's `/index` row (`INDEX_FIELDS`)."""
        return {f: self._rows[clip_idx][f] for f in INDEX_FIELDS}

    def window(self, clip_idx: int, start: int, length: int) -> dict[str, np.ndarray]:
        """Frames `start : start + length` of a clip, padded to `length`.

        Returns `T_world_root (L, 4, 4)`, `body_rotations (L, 21, 3, 3)`,
        `hand_rotations (L, 30, 3, 3)`, `contacts (L, 52)` uint8,
        `joints_world (L, 52, 3)`, `T_world_cpf (L, 4, 4)`, `betas (B,)`,
        `mask (L,)` bool (False on padding) and `has_hands ()` bool.
        """
        num_frames = int(self.lengths[clip_idx])
        if not 0 <= start < num_frames or length < 1:
            raise IndexError(f"window start {start}, length {length} outside clip {self.clip_ids[clip_idx]} ({num_frames} frames).")
        group = self._file()[f"clips/{self.clip_ids[clip_idx]}"]
        stop = min(start + length, num_frames)
        has_hands = self._rows[clip_idx]["has_hands"]
        out = {name: _pad(group[name][start:stop], length) for name in TIME_SERIES if has_hands or name != "hand_rotations"}
        if not has_hands:  # stored as identity; skip the read
            out["hand_rotations"] = np.broadcast_to(np.eye(3, dtype=np.float32), (length, 30, 3, 3)).copy()
        out["betas"] = group["betas"][()]
        out["mask"] = np.arange(length) < stop - start
        out["has_hands"] = np.array(has_hands)
        return out

    def clip_weights(self, length: int) -> np.ndarray:
        """(N,) probability of drawing a window of `length` frames from each clip (see `balance_power`)."""
        if length not in self._weights:
            starts = np.maximum(self.lengths - length + 1, 1).astype(np.float64)  # clips shorter than `length` count once
            group_windows = np.bincount(self._group_index, weights=starts)
            weights = starts * group_windows[self._group_index] ** (self.balance_power - 1.0)
            self._weights[length] = weights / weights.sum()
        return self._weights[length]

    def random_window(self, rng: np.random.Generator, length: int) -> dict[str, np.ndarray]:
        """A window drawn as `balance_power` says; with power 1, uniformly over all windows of the split."""
        if not len(self):
            raise ValueError(f"{self.path}: split {self.split!r} has no clips.")
        starts = np.maximum(self.lengths - length + 1, 1)
        clip_idx = int(rng.choice(len(self), p=self.clip_weights(length)))
        return self.window(clip_idx, int(rng.integers(starts[clip_idx])), length)


def merge_patterns(entry: str) -> list[str]:
    """The `fnmatch` patterns of one `merge_groups` entry (comma-separated)."""
    return [pattern.strip() for pattern in entry.split(",")]


def sampling_group(group: str, merge_groups: tuple[str, ...]) -> str:
    """`group` (`source/activity`), or the first `merge_groups` entry with a pattern matching it."""
    for entry in merge_groups:
        if any(fnmatch.fnmatchcase(group, pattern) for pattern in merge_patterns(entry)):
            return entry
    return group


_M = np.diag([-1.0, 1.0, 1.0]).astype(np.float32)
"""Reflection of the body's lateral axis (x in the SMPL-H rest frame; also a vertical plane of the z-up world)."""


def mirror_window(window: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The same motion reflected left-right: the world through the plane x = 0, left and right joints swapped.

    Every joint frame of the rest pose shares the body's axes and the body model
    is left-right symmetric, so a local rotation `R` of joint j becomes
    `M R M` on j's counterpart, the root `M R M` with its translation reflected,
    and the betas are unchanged. Takes and returns `MotionDataset.window` dicts.
    """
    mirror = np.asarray(MIRROR_INDEX)
    out = dict(window)
    for key in ("T_world_root", "T_world_cpf"):
        T = window[key].copy()
        T[..., :3, :3] = _M @ T[..., :3, :3] @ _M
        T[..., :3, 3] = T[..., :3, 3] * _M.diagonal()
        out[key] = T
    local = np.concatenate([window["body_rotations"], window["hand_rotations"]], axis=-3)[..., mirror[1:] - 1, :, :]
    local = _M @ local @ _M
    out["body_rotations"], out["hand_rotations"] = local[..., :21, :, :], local[..., 21:, :, :]
    out["joints_world"] = window["joints_world"][..., mirror, :] * _M.diagonal()
    out["contacts"] = window["contacts"][..., mirror]
    return out


def _posed(window: dict[str, np.ndarray], shaped, **fields: np.ndarray) -> dict[str, np.ndarray]:
    """`window` with `fields` replaced (cast to the window's dtypes) and its joints and head poses recomputed by
    forward kinematics of `shaped` (`body.with_shape` of the window's new shape) from its root and local rotations."""
    out = dict(window)
    out.update({key: np.asarray(value, dtype=window[key].dtype) for key, value in fields.items()})
    local = np.concatenate([out["body_rotations"], out["hand_rotations"]], axis=-3)
    posed = shaped.with_pose(torch.from_numpy(out["T_world_root"]), torch.from_numpy(local))
    out["joints_world"] = posed.joints_world.numpy().astype(window["joints_world"].dtype)
    out["T_world_cpf"] = posed.T_world_cpf.numpy().astype(window["T_world_cpf"].dtype)
    return out


def reshape_window(window: dict[str, np.ndarray], body: BodyModel, betas: np.ndarray) -> dict[str, np.ndarray]:
    """The same motion performed by another body: `betas (B,)` replace the window's.

    Local rotations and the root's orientation are kept; the root's translation
    is scaled by the ratio of the two bodies' rest pelvis heights above their
    soles (longer legs: higher hips, longer strides), and the joints and head
    poses are recomputed by forward kinematics with `body`.
    Contact labels are kept. Takes and returns `MotionDataset.window` dicts.
    """

    def pelvis_height(shaped) -> float:
        return float(shaped.joints_zero[0, 1] - shaped.verts_zero[:, 1].min())

    old = body.with_shape(torch.from_numpy(window["betas"][: body.num_betas]).float())
    new = body.with_shape(torch.from_numpy(np.asarray(betas[: body.num_betas], dtype=np.float32)))
    T_world_root = window["T_world_root"].copy()
    T_world_root[..., :3, 3] *= pelvis_height(new) / pelvis_height(old)
    return _posed(window, new, betas=betas, T_world_root=T_world_root)


def tilt_head_window(window: dict[str, np.ndarray], pitch_rad: float, body: BodyModel) -> dict[str, np.ndarray]:
    """The same motion with the head pitched `pitch_rad` further about its own left-right axis (positive: chin
    down), every frame alike; the rest of the body is kept. The head poses and joints are recomputed by forward
    kinematics with `body`. People carry their heads higher or lower whatever their arms do; in the training
    data several of the groups that carry the head highest (Bandai Namco 1 bye, byebye, respond) raise a hand in
    59-72 % of their frames (benchmarks/example_head_report.py).
    Takes and returns `MotionDataset.window` dicts.
    """
    c, s_ = np.cos(pitch_rad), np.sin(pitch_rad)
    R_pitch = np.array([[1.0, 0.0, 0.0], [0.0, c, -s_], [0.0, s_, c]], dtype=window["body_rotations"].dtype)
    body_rotations = window["body_rotations"].copy()
    body_rotations[:, HEAD_JOINT - 1] = body_rotations[:, HEAD_JOINT - 1] @ R_pitch
    shaped = body.with_shape(torch.from_numpy(window["betas"][: body.num_betas]).float())
    return _posed(window, shaped, body_rotations=body_rotations)


betas_with_stature = stature.betas_with_stature
"""The body-shape augmentation's stature fit (`egoallo.body.stature`), where the scripts import it from."""


def retime_window(window: dict[str, np.ndarray], speed: float, length: int, body: BodyModel) -> dict[str, np.ndarray]:
    """The same motion played `speed` times as fast, resampled to `length` frames.

    Output frame i is the source at time `i · speed` (in source frames): rotations
    (root and local) are interpolated on SO(3), the root's translation linearly,
    contacts and the mask come from the nearest / both neighbouring source frames,
    and the joints and head poses are recomputed by forward kinematics with
    `body`. The source needs `retime_source_length(speed, length)` frames.
    Takes and returns `MotionDataset.window` dicts.
    """
    available = window["mask"].shape[0]
    if not speed > 0 or retime_source_length(speed, length) > available:
        raise ValueError(f"retiming {length} frames at speed {speed} needs {retime_source_length(speed, length)} source frames, got {available}.")
    times = np.arange(length) * speed
    i0 = np.minimum(np.floor(times).astype(int), available - 1)
    i1 = np.minimum(i0 + 1, available - 1)
    alpha = torch.from_numpy(times - i0)[:, None, None, None]

    def slerp(R: np.ndarray) -> Tensor:
        R = torch.from_numpy(R).double()
        R0, R1 = R[i0], R[i1]
        return R0 @ so3.exp(alpha[..., 0] * so3.log(R0.mT @ R1))

    local = np.concatenate([window["body_rotations"], window["hand_rotations"]], axis=-3)
    root = torch.from_numpy(window["T_world_root"]).double()
    T_world_root = se3.from_rotation_translation(
        slerp(window["T_world_root"][:, None, :3, :3])[:, 0],
        root[i0, :3, 3] + alpha[:, 0, 0] * (root[i1, :3, 3] - root[i0, :3, 3]),
    )
    rotations = slerp(local).numpy()
    shaped = body.with_shape(torch.from_numpy(window["betas"][: body.num_betas]).float())
    out = _posed(window, shaped, T_world_root=T_world_root.numpy(), body_rotations=rotations[:, :21],
                 hand_rotations=rotations[:, 21:])
    out["contacts"] = window["contacts"][np.minimum(np.round(times).astype(int), available - 1)]
    out["mask"] = window["mask"][i0] & window["mask"][i1]
    return out


def retime_source_length(speed: float, length: int) -> int:
    """Source frames `retime_window` reads to make `length` frames at `speed`."""
    return math.floor((length - 1) * speed + 1e-9) + 2


def _pad(frames: np.ndarray, length: int) -> np.ndarray:
    missing = length - frames.shape[0]
    if missing == 0:
        return frames
    return np.concatenate([frames, np.repeat(frames[-1:], missing, axis=0)])


def _text(value) -> str | None:
    return value.decode() if isinstance(value, bytes) else value
