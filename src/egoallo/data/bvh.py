"""BVH motion-capture files: parsing and forward kinematics.

Conventions:

- Euler angles are degrees, applied in the listed channel order as intrinsic
  rotations: channels `Zrotation Xrotation Yrotation` give
  `R_local = Rz(a1) @ Rx(a2) @ Ry(a3)`.
- A joint's local transform is `[R_local | t_local]` with `t_local` from the
  OFFSET and the position channels (see `PositionMode`); world transforms are
  `T_world[j] = T_world[parent[j]] @ T_local[j]` (column vectors).
- `forward_kinematics` scales file units to metres (`unit_scale`, default
  centimetres) and optionally maps Y-up to Z-up with the fixed rotation that
  sends +Y to +Z and keeps x: `(x, y, z) -> (x, -z, y)`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np

PositionMode = Literal["auto", "add_offset", "absolute"]

POSITION_CHANNELS = ("Xposition", "Yposition", "Zposition")
ROTATION_CHANNELS = ("Xrotation", "Yrotation", "Zrotation")
_CANONICAL_CHANNEL = {name.lower(): name for name in POSITION_CHANNELS + ROTATION_CHANNELS}

# Maps Y-up coordinates to Z-up ones: (x, y, z) -> (x, -z, y).
Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])

MAX_VALUE = 1e9
"""Largest OFFSET or channel magnitude accepted (file units or degrees): beyond it forward kinematics overflows."""
FRAME_TIME_RANGE_S = (1e-5, 60.0)
MAX_DEPTH = 256
"""Deepest joint nesting accepted (real skeletons have fewer than 30 levels)."""

_FRAMES_RE = re.compile(r"^Frames\s*:\s*(\S+)$", re.IGNORECASE)
_FRAME_TIME_RE = re.compile(r"^Frame\s+Time\s*:\s*(\S+)$", re.IGNORECASE)


class BvhError(ValueError):
    """A BVH file is malformed; the message names the file and, where possible, the line."""


@dataclasses.dataclass(frozen=True, eq=False)
class EndSites:
    """`End Site` leaf points: extra points rigidly attached to a joint."""

    parents: np.ndarray
    """Index of the joint each end site hangs from. (E,) int."""
    offsets: np.ndarray
    """Offset in the parent joint's frame, file units. (E, 3)"""


@dataclasses.dataclass(frozen=True, eq=False)
class BvhPose:
    """World-frame joint transforms for every frame of a clip."""

    positions: np.ndarray
    """Joint positions in metres. (F, J, 3)"""
    rotations: np.ndarray
    """Joint world orientations. (F, J, 3, 3)"""
    end_site_positions: np.ndarray
    """End site positions in metres. (F, E, 3)"""

    def points(self, bvh: Bvh, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Positions `(F, K, 3)` and world orientations `(F, K, 3, 3)` of joints or end sites by name.

        An end site (named as in `Bvh.point_names`) is oriented like the joint it hangs from.
        """
        index = {n: i for i, n in enumerate(bvh.point_names)}
        J = len(bvh.joint_names)
        rows = [index[n] for n in names]
        positions = np.concatenate([self.positions, self.end_site_positions], axis=1)[:, rows]
        owner = [r if r < J else int(bvh.end_sites.parents[r - J]) for r in rows]
        return positions, self.rotations[:, owner]


@dataclasses.dataclass(frozen=True, eq=False)
class Bvh:
    """Contents of a BVH file, in file units."""

    joint_names: tuple[str, ...]
    """Joint names in file (depth-first) order. (J,)"""
    parents: np.ndarray
    """Parent joint index, -1 for roots; parents precede children. (J,) int"""
    offsets: np.ndarray
    """OFFSET of each joint in its parent's frame, file units. (J, 3)"""
    channels: tuple[tuple[str, ...], ...]
    """Channel names of each joint, in file order (e.g. `("Zrotation", "Xrotation", "Yrotation")`). (J,)"""
    end_sites: EndSites
    frame_time: float
    """Seconds per frame."""
    motion: np.ndarray
    """Raw channel values, one row per frame, joints' channels concatenated in file order. (F, C)"""
    source: str
    """Where the text came from (a path, or `<string>`)."""

    @property
    def num_frames(self) -> int:
        return self.motion.shape[0]

    @property
    def point_names(self) -> tuple[str, ...]:
        """Joint names, then one name per end site: `"<joint>/end"` (`"<joint>/end2"`, ... for a joint's further sites)."""
        names = list(self.joint_names)
        seen: dict[int, int] = {}
        for parent in self.end_sites.parents.tolist():
            seen[parent] = seen.get(parent, 0) + 1
            suffix = "" if seen[parent] == 1 else str(seen[parent])
            names.append(f"{self.joint_names[parent]}/end{suffix}")
        return tuple(names)

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time

    def uses_absolute_positions(self) -> bool:
        """The `"auto"` position-mode rule: True means `"absolute"`, False `"add_offset"`.

        Candidates are the non-root joints that have position channels and a
        nonzero OFFSET along those channels' axes. If more than half of them hold
        their OFFSET in the first frame (to 1e-3 relative, 1e-4 absolute), the position
        channels store the whole local translation (the Bandai Namco layout) and
        the file is read as absolute; otherwise (also with no candidates or no
        frames) channel values are added to the OFFSETs.
        """
        if self.num_frames == 0:
            return False
        first = self.motion[0]
        starts = _channel_starts(self.channels)
        matches = candidates = 0
        for j, names in enumerate(self.channels):
            if self.parents[j] < 0:
                continue
            cols = [starts[j] + k for k, c in enumerate(names) if c in POSITION_CHANNELS]
            axes = [POSITION_CHANNELS.index(c) for c in names if c in POSITION_CHANNELS]
            offset = self.offsets[j, axes]
            if not axes or np.linalg.norm(offset) <= 1e-6:
                continue
            candidates += 1
            matches += bool(np.allclose(first[cols], offset, rtol=1e-3, atol=1e-4))
        return 2 * matches > candidates

    def forward_kinematics(
        self,
        *,
        unit_scale: float = 0.01,
        z_up: bool = True,
        position_mode: PositionMode = "auto",
    ) -> BvhPose:
        """World transforms of all joints and end sites for every frame.

        Args:
            unit_scale: metres per file unit (0.01 for centimetre files).
            z_up: map the file's Y-up frame to Z-up, `(x, y, z) -> (x, -z, y)`;
                applied to positions and pre-multiplied onto rotations.
            position_mode: how position channels combine with OFFSETs:
                `"add_offset"`: translation = OFFSET + channel values;
                `"absolute"`: each position channel replaces the matching OFFSET
                component; `"auto"`: see `uses_absolute_positions`.
        """
        if position_mode not in ("auto", "add_offset", "absolute"):
            raise ValueError(f"unknown position_mode {position_mode!r}")
        absolute = position_mode == "absolute" or (
            position_mode == "auto" and self.uses_absolute_positions()
        )
        num_frames, num_joints = self.num_frames, len(self.joint_names)
        starts = _channel_starts(self.channels)

        translations = np.broadcast_to(self.offsets, (num_frames, num_joints, 3)).copy()
        max_rot = max(sum(c in ROTATION_CHANNELS for c in names) for names in self.channels)
        angles = np.zeros((num_frames, num_joints, max_rot))
        axes = np.zeros((num_joints, max_rot, 3))  # Zero axis: identity rotation.
        for j, names in enumerate(self.channels):
            slot = 0
            for k, name in enumerate(names):
                values = self.motion[:, starts[j] + k]
                if name in POSITION_CHANNELS:
                    axis = POSITION_CHANNELS.index(name)
                    if absolute:
                        translations[:, j, axis] = values
                    else:
                        translations[:, j, axis] += values
                else:
                    angles[:, j, slot] = values
                    axes[j, slot, ROTATION_CHANNELS.index(name)] = 1.0
                    slot += 1
        local_rotations = _compose_axis_rotations(axes, np.deg2rad(angles))
        translations *= unit_scale

        # The up-axis change is a world-frame rotation: applying it to the roots propagates it.
        world_from_file = Y_UP_TO_Z_UP if z_up else np.eye(3)
        rotations = np.empty((num_frames, num_joints, 3, 3))
        positions = np.empty((num_frames, num_joints, 3))
        roots, *levels = _depth_levels(self.parents)
        rotations[:, roots] = world_from_file @ local_rotations[:, roots]
        positions[:, roots] = translations[:, roots] @ world_from_file.T
        for level in levels:
            parents = self.parents[level]
            parent_rotations = rotations[:, parents]
            rotations[:, level] = parent_rotations @ local_rotations[:, level]
            positions[:, level] = positions[:, parents] + np.einsum(
                "fjab,fjb->fja", parent_rotations, translations[:, level]
            )

        site_parents = self.end_sites.parents
        end_site_positions = positions[:, site_parents] + np.einsum(
            "fjab,jb->fja", rotations[:, site_parents], self.end_sites.offsets * unit_scale
        )
        return BvhPose(positions=positions, rotations=rotations, end_site_positions=end_site_positions)


def read_bvh(path: str | Path) -> Bvh:
    """Read and parse a BVH file."""
    path = Path(path)
    return parse_bvh(path.read_text(encoding="utf-8", errors="replace"), source=str(path))


def parse_bvh(text: str, *, source: str = "<string>") -> Bvh:
    """Parse BVH text. Raises `BvhError` naming `source` for malformed input."""
    lines = text.splitlines()
    motion_index = next((i for i, line in enumerate(lines) if line.strip().upper() == "MOTION"), None)
    if motion_index is None:
        raise BvhError(f"{source}: missing MOTION section")
    tokens = [
        (token, i + 1)
        for i, line in enumerate(lines[:motion_index])
        for token in line.replace("{", " { ").replace("}", " } ").split()
    ]
    if not tokens or tokens[0][0].upper() != "HIERARCHY":
        raise BvhError(f"{source}: missing HIERARCHY header")
    hierarchy = _HierarchyParser(tokens[1:], source, motion_line=motion_index + 1).parse()
    frame_time, frame_lines, num_frames = _parse_motion_header(lines, motion_index, source)
    motion = _parse_frames(frame_lines, num_frames, sum(map(len, hierarchy.channels)), source)
    return Bvh(
        joint_names=tuple(hierarchy.names),
        parents=_frozen(np.array(hierarchy.parents, dtype=np.int64)),
        offsets=_frozen(np.array(hierarchy.offsets, dtype=np.float64).reshape(-1, 3)),
        channels=tuple(hierarchy.channels),
        end_sites=EndSites(
            parents=_frozen(np.array(hierarchy.site_parents, dtype=np.int64)),
            offsets=_frozen(np.array(hierarchy.site_offsets, dtype=np.float64).reshape(-1, 3)),
        ),
        frame_time=frame_time,
        motion=_frozen(motion),
        source=source,
    )


@dataclasses.dataclass
class _HierarchyParser:
    """Recursive-descent parser over `(token, line number)` pairs of the HIERARCHY section."""

    tokens: list[tuple[str, int]]
    source: str
    motion_line: int
    pos: int = 0
    names: list[str] = dataclasses.field(default_factory=list)
    parents: list[int] = dataclasses.field(default_factory=list)
    offsets: list[tuple[float, float, float]] = dataclasses.field(default_factory=list)
    channels: list[tuple[str, ...]] = dataclasses.field(default_factory=list)
    site_parents: list[int] = dataclasses.field(default_factory=list)
    site_offsets: list[tuple[float, float, float]] = dataclasses.field(default_factory=list)

    def parse(self) -> _HierarchyParser:
        while self.pos < len(self.tokens):
            token, line = self._next("ROOT")
            if token == "}":
                raise self._error(line, "unbalanced braces: unexpected '}'")
            if token.upper() != "ROOT":
                raise self._error(line, f"expected ROOT, got {token!r}")
            self._joint(parent=-1, keyword="ROOT", line=line, depth=0)
        if not self.names:
            raise BvhError(f"{self.source}: empty hierarchy (no ROOT joint)")
        if not any(self.channels):
            raise BvhError(f"{self.source}: hierarchy declares no channels")
        return self

    def _error(self, line: int, message: str) -> BvhError:
        return BvhError(f"{self.source}:{line}: {message}")

    def _next(self, expected: str) -> tuple[str, int]:
        if self.pos >= len(self.tokens):
            raise self._error(self.motion_line, f"hierarchy ended while expecting {expected}")
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def _float(self, what: str) -> float:
        token, line = self._next(what)
        try:
            value = float(token)
        except ValueError:
            raise self._error(line, f"non-numeric {what}: {token!r}") from None
        if not abs(value) <= MAX_VALUE:
            raise self._error(line, f"{what} {token!r}: expected a finite number within +-{MAX_VALUE:g}")
        return value

    def _open_brace(self, keyword: str, name: str) -> int:
        token, line = self._next(f"'{{' after {keyword} {name}")
        if token != "{":
            raise self._error(line, f"expected '{{' after {keyword} {name}, got {token!r}")
        return line

    def _offset(self) -> tuple[float, float, float]:
        return (self._float("OFFSET value"), self._float("OFFSET value"), self._float("OFFSET value"))

    def _channels(self, name: str) -> tuple[str, ...]:
        token, line = self._next("channel count")
        if not token.isdigit():
            raise self._error(line, f"CHANNELS of {name}: expected a channel count, got {token!r}")
        names: list[str] = []
        for _ in range(int(token)):
            channel, channel_line = self._next(f"channel name of {name}")
            canonical = _CANONICAL_CHANNEL.get(channel.lower())
            if canonical is None:
                raise self._error(
                    channel_line,
                    f"unknown channel name {channel!r} for joint {name} "
                    f"(CHANNELS {token} declared; valid: {', '.join(_CANONICAL_CHANNEL.values())})",
                )
            if canonical in names:
                raise self._error(channel_line, f"duplicate channel {canonical} for joint {name}")
            names.append(canonical)
        return tuple(names)

    def _block(self, what: str, open_line: int) -> Iterator[tuple[str, int]]:
        """Tokens of the `{ ... }` block of `what` opened at `open_line`, up to its closing brace."""
        while True:
            if self.pos >= len(self.tokens):
                raise self._error(
                    self.motion_line, f"unbalanced braces: '{{' of {what} (line {open_line}) is never closed"
                )
            token, line = self._next("'}'")
            if token == "}":
                return
            yield token, line

    def _joint(self, parent: int, keyword: str, line: int, depth: int) -> None:
        name, _ = self._next(f"{keyword} name")
        if name in ("{", "}"):
            raise self._error(line, f"{keyword} without a name")
        if depth > MAX_DEPTH:
            raise self._error(line, f"{keyword} {name} is nested {depth} joints deep; expected at most {MAX_DEPTH}")
        open_line = self._open_brace(keyword, name)
        index = len(self.names)
        self.names.append(name)
        self.parents.append(parent)
        self.offsets.append((0.0, 0.0, 0.0))
        self.channels.append(())
        offset: tuple[float, float, float] | None = None
        for token, token_line in self._block(f"{keyword} {name}", open_line):
            keyword_upper = token.upper()
            if keyword_upper == "OFFSET":
                offset = self._offset()
            elif keyword_upper == "CHANNELS":
                self.channels[index] = self._channels(name)
            elif keyword_upper == "JOINT":
                self._joint(parent=index, keyword="JOINT", line=token_line, depth=depth + 1)
            elif keyword_upper == "END":
                site, site_line = self._next("'Site' after End")
                if site.upper() != "SITE":
                    raise self._error(site_line, f"expected 'End Site', got 'End {site}'")
                self._end_site(index, name)
            else:
                raise self._error(token_line, f"unexpected token {token!r} in joint {name}")
        if offset is None:
            raise self._error(open_line, f"joint {name} has no OFFSET")
        self.offsets[index] = offset

    def _end_site(self, parent: int, parent_name: str) -> None:
        what = f"End Site of {parent_name}"
        open_line = self._open_brace("End Site of", parent_name)
        offset = None
        for token, line in self._block(what, open_line):
            if token.upper() != "OFFSET":
                raise self._error(line, f"unexpected token {token!r} in {what}")
            offset = self._offset()
        if offset is None:
            raise self._error(open_line, f"{what} has no OFFSET")
        self.site_parents.append(parent)
        self.site_offsets.append(offset)


def _parse_motion_header(
    lines: list[str], motion_index: int, source: str
) -> tuple[float, list[tuple[int, str]], int]:
    """Read `Frames:` and `Frame Time:`; return frame time, the numbered frame lines and the frame count."""
    num_frames: int | None = None
    frame_time: float | None = None
    i = motion_index + 1
    while i < len(lines) and (num_frames is None or frame_time is None):
        line = lines[i].strip()
        i += 1
        if not line:
            continue
        if match := _FRAMES_RE.match(line):
            value = match.group(1)
            if not value.isdigit():
                raise BvhError(f"{source}:{i}: Frames: must be a non-negative integer, got {value!r}")
            num_frames = int(value)
        elif match := _FRAME_TIME_RE.match(line):
            try:
                frame_time = float(match.group(1))
            except ValueError:
                raise BvhError(f"{source}:{i}: non-numeric Frame Time: {match.group(1)!r}") from None
            low, high = FRAME_TIME_RANGE_S
            if not low <= frame_time <= high:
                raise BvhError(f"{source}:{i}: Frame Time must be positive ({low:g} to {high:g} s), got {match.group(1)}")
        else:
            missing = "Frames:" if num_frames is None else "Frame Time:"
            raise BvhError(f"{source}:{i}: missing {missing} line in MOTION (got {line[:40]!r})")
    if num_frames is None or frame_time is None:
        missing = "Frames:" if num_frames is None else "Frame Time:"
        raise BvhError(f"{source}: missing {missing} line in MOTION")
    frame_lines = [(k + 1, lines[k]) for k in range(i, len(lines)) if lines[k].strip()]
    return frame_time, frame_lines, num_frames


def _parse_frames(
    frame_lines: list[tuple[int, str]], num_frames: int, num_channels: int, source: str
) -> np.ndarray:
    """Frame lines to a `(F, C)` array, checking counts and values."""
    if len(frame_lines) < num_frames:
        raise BvhError(
            f"{source}: truncated motion: Frames: says {num_frames} but only "
            f"{len(frame_lines)} frame lines are present ({num_frames - len(frame_lines)} missing)"
        )
    if len(frame_lines) > num_frames:
        line, _ = frame_lines[num_frames]
        raise BvhError(
            f"{source}:{line}: {len(frame_lines)} frame lines but Frames: says {num_frames}"
        )
    if num_frames == 0:
        return np.zeros((0, num_channels))
    try:
        motion = np.loadtxt([text for _, text in frame_lines], dtype=np.float64, comments=None, ndmin=2)
    except ValueError:
        motion = None
    if motion is None or motion.shape[1] != num_channels:
        _raise_frame_error(frame_lines, num_channels, source)
    bad = ~(np.abs(motion) <= MAX_VALUE)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        kind = "non-finite" if not np.isfinite(motion[row, col]) else "out-of-range"
        raise BvhError(
            f"{source}:{frame_lines[row][0]}: {kind} value {motion[row, col]} in frame {row} (channel {col}); "
            f"expected a finite number within +-{MAX_VALUE:g}"
        )
    return motion


def _raise_frame_error(frame_lines: list[tuple[int, str]], num_channels: int, source: str) -> None:
    """Find the first bad frame line and raise a `BvhError` describing it."""
    for frame, (line, text) in enumerate(frame_lines):
        values = text.split()
        if len(values) != num_channels:
            raise BvhError(
                f"{source}:{line}: frame {frame} has {len(values)} values, expected {num_channels} "
                "(the hierarchy's channel count)"
            )
        for col, value in enumerate(values):
            try:
                float(value)
            except ValueError:
                raise BvhError(
                    f"{source}:{line}: non-numeric value {value!r} in frame {frame} (channel {col})"
                ) from None
    raise BvhError(f"{source}: could not read the frame lines")


def _channel_starts(channels: tuple[tuple[str, ...], ...]) -> np.ndarray:
    """Column of each joint's first channel in the motion array. (J,)"""
    return np.concatenate([[0], np.cumsum([len(c) for c in channels])[:-1]]).astype(np.int64)


def _depth_levels(parents: np.ndarray) -> list[np.ndarray]:
    """Joint indices grouped by depth in the tree (roots first)."""
    depth = np.zeros(len(parents), dtype=np.int64)
    for j, p in enumerate(parents):
        depth[j] = 0 if p < 0 else depth[p] + 1
    return [np.flatnonzero(depth == d) for d in range(depth.max() + 1)]


def _compose_axis_rotations(axes: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Product of rotations about unit axes, first slot leftmost.

    Composed as quaternions (elementwise, much faster than batched 3x3 matmuls).

    Args:
        axes: unit axis per slot; a zero axis contributes the identity. (J, K, 3)
        angles: radians. (F, J, K)
    Returns:
        `R[f, j] = Rot(axes[j, 0], angles[f, j, 0]) @ Rot(axes[j, 1], ...) @ ...`. (F, J, 3, 3)
    """
    num_frames, num_joints, num_slots = angles.shape
    w = np.ones((num_frames, num_joints))
    x, y, z = np.zeros_like(w), np.zeros_like(w), np.zeros_like(w)
    for k in range(num_slots):
        half = 0.5 * angles[..., k]
        c, s = np.cos(half), np.sin(half)
        ax, ay, az = s * axes[:, k, 0], s * axes[:, k, 1], s * axes[:, k, 2]
        w, x, y, z = (
            w * c - x * ax - y * ay - z * az,
            w * ax + c * x + y * az - z * ay,
            w * ay + c * y + z * ax - x * az,
            w * az + c * z + x * ay - y * ax,
        )
    matrices = np.empty((num_frames, num_joints, 3, 3))
    matrices[..., 0, 0] = 1.0 - 2.0 * (y * y + z * z)
    matrices[..., 0, 1] = 2.0 * (x * y - w * z)
    matrices[..., 0, 2] = 2.0 * (x * z + w * y)
    matrices[..., 1, 0] = 2.0 * (x * y + w * z)
    matrices[..., 1, 1] = 1.0 - 2.0 * (x * x + z * z)
    matrices[..., 1, 2] = 2.0 * (y * z - w * x)
    matrices[..., 2, 0] = 2.0 * (x * z - w * y)
    matrices[..., 2, 1] = 2.0 * (y * z + w * x)
    matrices[..., 2, 2] = 1.0 - 2.0 * (x * x + y * y)
    return matrices


def _frozen(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array
