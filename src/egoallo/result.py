"""The `result.npz` that `egoallo infer` writes and the viewer/exporters read.

Arrays are in the input trajectory's own world frame (metres). `S` samples,
`T` frames at `fps`; a recording split by tracking gaps holds its segments one
after the other (`metadata["segments"]`, `metadata["gaps"]`). `load` refuses
anything `infer` would not write: missing keys, other shapes or dtypes,
non-finite values, non-rotations, timestamps that do not increase, metadata
that is not a JSON object. A result of two or more samples may hold their consensus (`CONSENSUS_ARRAYS`: all
of them or none; older files have none) and each joint's spread (`egoallo.consensus`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path

import numpy as np

from .body import skeleton
from .errors import UserError
from .files import format_version, read_npz, write_npz
from .inputs.trajectory import MAX_COORDINATE_M

FORMAT_VERSION = 1
ROTATION_TOLERANCE = 1e-3
"""Largest |R^T R - I| entry of a stored rotation (float32 rotations are within 1e-6)."""
FPS_RANGE = (1.0, 1000.0)
"""Frame rates a result may have (infer writes 30)."""
MAX_ABS_BETA = 20.0
"""Largest shape coefficient a result may hold (the prior's stay within about 7; 1e6 is a 128 km mesh)."""
STATURE_RANGE_M = (0.3, 3.0)
"""Statures a result may state."""
MAX_JOINT_FROM_ROOT_M = 3.0
"""Largest distance of a joint from the root (pelvis) pose of its frame: a body spans less."""
CONTACT_RANGE = (-1e-3, 1.0 + 1e-3)
"""Contacts are probabilities."""
STATURE_AGREEMENT_M = 0.02
"""A body model given for a result must give its betas the stature the result states, within this."""

_ARRAYS = {
    "timestamps_ns": ("T",),
    "T_world_cpf": ("T", 4, 4),
    "joints_world": ("S", "T", 52, 3),
    "T_world_root": ("S", "T", 4, 4),
    "local_rotations": ("S", "T", 51, 3, 3),
    "betas": ("S", "B"),
    "contacts": ("S", "T", 21),
    "stature_m": ("S",),
    "T_input_zup": (4, 4),
}
CONSENSUS_ARRAYS = {
    "joints_world_consensus": ("T", 52, 3),
    "T_world_root_consensus": ("T", 4, 4),
    "local_rotations_consensus": ("T", 51, 3, 3),
    "betas_consensus": ("B",),
    "joint_spread_m": ("T", 52),
}
"""The consensus body of the samples and each joint's spread: in a result of two or more samples, all or none."""


@dataclasses.dataclass(frozen=True)
class Span:
    """One segment of a result: frames `first` to `end` (exclusive), standing on a floor at `floor_z`."""

    first: int
    end: int
    floor_z: float


def segment_spans(entries: object, frames: int, floor_z: float) -> list[Span]:
    """Spans from the `metadata["segments"]` entries (`first_frame`, `frames`, optional `floor_z`), or one span of
    all `frames` on `floor_z` when the entries are missing or do not cover the frames one after the other."""
    whole = [Span(0, frames, floor_z)]
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        return whole
    spans, first = [], 0
    for entry in entries:
        start, count, z = entry.get("first_frame"), entry.get("frames"), entry.get("floor_z", floor_z)
        if not (_is_int(start) and _is_int(count) and start == first and count >= 1 and _is_finite_number(z)):
            return whole
        spans.append(Span(start, start + count, float(z)))
        first += count
    return spans if first == frames else whole


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_finite_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclasses.dataclass(frozen=True)
class InferenceResult:
    timestamps_ns: np.ndarray
    """(T,) int64"""
    T_world_cpf: np.ndarray
    """(T, 4, 4) the input head poses (CPF), resampled."""
    joints_world: np.ndarray
    """(S, T, 52, 3) float64 (large world coordinates keep their precision)."""
    T_world_root: np.ndarray
    """(S, T, 4, 4) pelvis poses, float64."""
    local_rotations: np.ndarray
    """(S, T, 51, 3, 3) joints 1..51 relative to their parents."""
    betas: np.ndarray
    """(S, B) body shape per sample."""
    contacts: np.ndarray
    """(S, T, 21) predicted contact probability of joints 1..21."""
    stature_m: np.ndarray
    """(S,) estimated standing height."""
    floor_z: float
    """Floor height along the up axis of the gravity-aligned frame (see `T_input_zup`); a segment in another
    world frame (a SLAM reset) has its own (`segment_spans`)."""
    T_input_zup: np.ndarray
    """(4, 4) from the gravity-aligned (z-up) frame the model worked in to the input's frame."""
    fps: float
    metadata: dict
    joints_world_consensus: np.ndarray | None = None
    """(T, 52, 3) float64: the consensus body's joints (`egoallo.consensus`; `metadata["consensus"]` says which
    kind), or None (one sample, or a file written before consensuses)."""
    T_world_root_consensus: np.ndarray | None = None
    """(T, 4, 4) the consensus body's pelvis poses (placed from the head by Eq. 5, as every sample's)."""
    local_rotations_consensus: np.ndarray | None = None
    """(T, 51, 3, 3) the consensus body's local rotations of joints 1..51."""
    betas_consensus: np.ndarray | None = None
    """(B,) the consensus body's shape."""
    joint_spread_m: np.ndarray | None = None
    """(T, 52) metres: the true joint lies within this distance of the consensus joint with the probability
    `metadata["consensus"]["stated_level"]` (90 %, calibrated on validation: docs/uncertainty.md)."""

    @property
    def num_samples(self) -> int:
        return self.joints_world.shape[0]

    @property
    def has_consensus(self) -> bool:
        return self.joints_world_consensus is not None

    def moved(self, offset: np.ndarray) -> InferenceResult:
        """This result with every world position (joints, roots, head poses, the consensus) moved by
        `offset (3,)`, in float64."""

        def moved(T: np.ndarray) -> np.ndarray:
            T = T.astype(np.float64)
            T[..., :3, 3] += offset
            return T

        consensus = {} if not self.has_consensus else dict(
            joints_world_consensus=self.joints_world_consensus.astype(np.float64) + offset,
            T_world_root_consensus=moved(self.T_world_root_consensus),
        )
        return dataclasses.replace(self, joints_world=self.joints_world.astype(np.float64) + offset,
                                   T_world_root=moved(self.T_world_root), T_world_cpf=moved(self.T_world_cpf),
                                   **consensus)

    def body(self, sample: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """`(joints_world (T, 52, 3), T_world_root (T, 4, 4), local_rotations (T, 51, 3, 3), betas (B,))` of
        sample `sample`, or of the consensus when `sample` is None and the result has one (else sample 0)."""
        if sample is None and self.has_consensus:
            return (self.joints_world_consensus, self.T_world_root_consensus, self.local_rotations_consensus,
                    self.betas_consensus)
        s = 0 if sample is None else sample
        return self.joints_world[s], self.T_world_root[s], self.local_rotations[s], self.betas[s]

    def segment_spans(self) -> list[Span]:
        """The segments of the frames (`metadata["segments"]`), in order; one span of every frame on `floor_z`
        when the metadata does not describe segments that cover the frames one after the other."""
        return segment_spans(self.metadata.get("segments"), len(self.timestamps_ns), self.floor_z)

    def save(self, path: str | os.PathLike, *, force: bool = False) -> Path:
        """Write atomically; refuses to replace an existing file unless `force`."""
        arrays = {k: getattr(self, k) for k in _ARRAYS}
        if self.has_consensus:
            arrays |= {k: getattr(self, k) for k in CONSENSUS_ARRAYS}
        return write_npz(
            path,
            {
                **arrays,
                "joint_names": np.array(skeleton.JOINT_NAMES),
                "floor_z": np.float64(self.floor_z),
                "fps": np.float64(self.fps),
                "format_version": np.int64(FORMAT_VERSION),
                "metadata": np.array(json.dumps(self.metadata, default=str)),
            },
            what="result",
            force=force,
        )

    @staticmethod
    def load(path: str | os.PathLike) -> InferenceResult:
        """Read and check a result file (clear errors for other versions or missing keys)."""
        path = Path(path)
        data = read_npz(path, what="result", keys=(*_ARRAYS, *CONSENSUS_ARRAYS, "floor_z", "fps", "metadata",
                                                    "format_version", "joint_names"))
        format_version(path, data, "result", FORMAT_VERSION)
        dims: dict[str, int] = {}
        for key, spec in _ARRAYS.items():
            if key not in data:
                raise UserError(f"{path}: missing key '{key}'.")
            _check_shape(path, key, data[key].shape, spec, dims)
        consensus = _consensus_arrays(path, data, dims)
        for key in ("floor_z", "fps", "metadata"):
            if key not in data:
                raise UserError(f"{path}: missing key '{key}'.")
            if data[key].shape != ():
                raise UserError(f"{path}: '{key}' has shape {data[key].shape}, expected a single value.")
        arrays = {k: _checked_values(path, k, data[k]) for k in (*_ARRAYS, "floor_z", "fps")}
        _check_layout(path, arrays)
        _check_body(path, arrays)
        _check_joint_names(path, data.get("joint_names"))
        return InferenceResult(
            **{k: arrays[k] for k in _ARRAYS},
            floor_z=float(arrays["floor_z"]),
            fps=float(arrays["fps"]),
            metadata=_metadata(path, data["metadata"]),
            **consensus,
        )


def _check_shape(path: Path, key: str, shape: tuple[int, ...], spec: tuple, dims: dict[str, int]) -> None:
    """A `UserError` unless `shape` fits `spec` (named dimensions agree with `dims`, which records them)."""
    ok = len(shape) == len(spec) and all(
        (dims.setdefault(w, g) == g) if isinstance(w, str) else g == w for g, w in zip(shape, spec)
    )
    if not ok:
        raise UserError(f"{path}: '{key}' has shape {shape}, expected {spec} (with {dims}).")


def _consensus_arrays(path: Path, data: dict, dims: dict[str, int]) -> dict[str, np.ndarray]:
    """The consensus arrays of a result (none in older files): all or none, shapes as `CONSENSUS_ARRAYS`, finite,
    rotations and rigid transforms where they belong, a spread of at least 0 m."""
    present = [k for k in CONSENSUS_ARRAYS if k in data]
    if not present:
        return {}
    if len(present) < len(CONSENSUS_ARRAYS):
        missing = next(k for k in CONSENSUS_ARRAYS if k not in data)
        raise UserError(f"{path}: has '{present[0]}' but no '{missing}'; expected all of {list(CONSENSUS_ARRAYS)} or none.")
    arrays = {}
    for key, spec in CONSENSUS_ARRAYS.items():
        _check_shape(path, key, data[key].shape, spec, dims)
        arrays[key] = _checked_values(path, key, data[key])
    negative = np.argwhere(arrays["joint_spread_m"] < 0)
    if negative.size:
        at = tuple(int(i) for i in negative[0])
        raise UserError(f"{path}: 'joint_spread_m' at {at} is {float(arrays['joint_spread_m'][at]):.6g}; expected "
                        "a spread of at least 0 m.")
    _check_rotations(path, "local_rotations_consensus", arrays["local_rotations_consensus"], rigid=False)
    _check_rotations(path, "T_world_root_consensus", arrays["T_world_root_consensus"], rigid=True)
    far = np.argwhere(np.abs(arrays["joints_world_consensus"]) > MAX_COORDINATE_M)
    if far.size:
        raise UserError(f"{path}: 'joints_world_consensus' at {tuple(int(i) for i in far[0])} lies beyond "
                        f"{MAX_COORDINATE_M:g} m from the origin; expected positions within it.")
    return arrays


def _checked_values(path: Path, key: str, values: np.ndarray) -> np.ndarray:
    """`values` if they are finite real numbers (integers for the timestamps), else a `UserError` at the first bad one."""
    if values.dtype.kind not in ("iu" if key == "timestamps_ns" else "iuf"):
        kind = "integers" if key == "timestamps_ns" else "real numbers"
        raise UserError(f"{path}: '{key}' has dtype {values.dtype}; expected {kind}.")
    bad = np.argwhere(~np.isfinite(values))
    if bad.size:
        at = tuple(int(i) for i in bad[0])
        raise UserError(f"{path}: '{key}' at {at}: {values[at]}; expected finite values.")
    return values


def _check_layout(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Increasing timestamps, a positive frame rate, rotations and rigid transforms where they belong."""
    if arrays["timestamps_ns"].size == 0 or arrays["joints_world"].shape[0] == 0:
        raise UserError(f"{path}: {arrays['joints_world'].shape[1]} frames of {arrays['joints_world'].shape[0]} "
                        "samples; expected at least one of each.")
    stamps = arrays["timestamps_ns"].astype(np.int64)
    if np.any(stamps[1:] <= stamps[:-1]):
        i = int(np.argmax(stamps[1:] <= stamps[:-1]))
        raise UserError(f"{path}: 'timestamps_ns' at ({i + 1},) does not increase; expected increasing timestamps.")
    if not arrays["fps"] > 0:
        raise UserError(f"{path}: 'fps' is {arrays['fps']}; expected a positive frame rate.")
    positions = {"joints_world": arrays["joints_world"], "floor_z": arrays["floor_z"]}
    positions |= {key: arrays[key][..., :3, 3] for key in ("T_world_root", "T_world_cpf", "T_input_zup")}
    for key, values in positions.items():
        far = np.argwhere(np.abs(values) > MAX_COORDINATE_M)
        if far.size:
            raise UserError(f"{path}: '{key}' at {tuple(int(i) for i in far[0])} lies {float(np.abs(values).max()):.3g} m "
                            f"from the origin; expected positions within {MAX_COORDINATE_M:g} m.")
    for key in ("local_rotations", "T_world_root", "T_world_cpf", "T_input_zup"):
        _check_rotations(path, key, arrays[key], rigid=key != "local_rotations")


def _check_rotations(path: Path, key: str, values: np.ndarray, rigid: bool) -> None:
    """A `UserError` at the first entry of `values (..., 3, 3)` (or `(..., 4, 4)` when `rigid`) that is not a
    rotation (a rigid transform)."""
    M = values.astype(np.float64)
    R = M[..., :3, :3] if rigid else M
    error = np.abs(np.swapaxes(R, -1, -2) @ R - np.eye(3)).max(axis=(-1, -2))
    if rigid:
        error = np.maximum(error, np.abs(M[..., 3, :] - [0.0, 0.0, 0.0, 1.0]).max(axis=-1))
    wrong = np.argwhere((error > ROTATION_TOLERANCE) | (np.linalg.det(R) < 0))
    if wrong.size:
        what = "rigid transform (rotation, last row 0 0 0 1)" if rigid else "rotation"
        raise UserError(f"{path}: '{key}' at {tuple(int(i) for i in wrong[0])} is not a {what}; expected one "
                        f"within {ROTATION_TOLERANCE}.")


def _check_body(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """A frame rate the timestamps keep, and a body a person could have: shape, stature, joints around the root,
    contacts that are probabilities."""
    fps = float(arrays["fps"])
    if not FPS_RANGE[0] <= fps <= FPS_RANGE[1]:
        raise UserError(f"{path}: 'fps' is {fps:g}; expected {FPS_RANGE[0]:g} to {FPS_RANGE[1]:g} frames per second.")
    steps = np.diff(arrays["timestamps_ns"].astype(np.float64))
    if steps.size:
        median, period = float(np.median(steps)), 1e9 / fps
        if abs(median - period) > 0.01 * period or steps.min() < 0.99 * period - 1:
            raise UserError(f"{path}: 'timestamps_ns' are {median / 1e9:.6g} s apart (median; the closest "
                            f"{steps.min() / 1e9:.6g} s) but 'fps' is {fps:g}; expected frames 1/fps apart "
                            "(longer only across tracking gaps).")
    checks = (
        ("betas", np.abs(arrays["betas"]), 0.0, MAX_ABS_BETA, "shape coefficients within +-{hi:g}"),
        ("stature_m", arrays["stature_m"], *STATURE_RANGE_M, "statures of {lo:g} to {hi:g} m"),
        ("contacts", arrays["contacts"], 0.0, 1.0, "contact probabilities of {lo:g} to {hi:g}"),
    )
    for key, values, lo, hi, expected in checks:
        slack = 1e-3 if key == "contacts" else 0.0
        wrong = np.argwhere((values < lo - slack) | (values > hi + slack))
        if wrong.size:
            at = tuple(int(i) for i in wrong[0])
            raise UserError(f"{path}: '{key}' at {at} is {float(arrays[key][at]):.6g}; expected {expected.format(lo=lo, hi=hi)}.")
    reach = np.linalg.norm(arrays["joints_world"] - arrays["T_world_root"][:, :, None, :3, 3], axis=-1)
    far = np.argwhere(reach > MAX_JOINT_FROM_ROOT_M)
    if far.size:
        s, t, j = (int(i) for i in far[0])
        raise UserError(f"{path}: 'joints_world' at ({s}, {t}, {j}) lies {reach[s, t, j]:.3g} m from the root "
                        f"('T_world_root'); expected every joint within {MAX_JOINT_FROM_ROOT_M:g} m of it.")


def _check_joint_names(path: Path, names: np.ndarray | None) -> None:
    """The stored joint names, when present, must be this egoallo's, in its order."""
    if names is None:
        return
    stored = [str(n) for n in np.asarray(names).reshape(-1)]
    if stored != list(skeleton.JOINT_NAMES):
        first = next((i for i, (a, b) in enumerate(zip(stored, skeleton.JOINT_NAMES)) if a != b), min(len(stored), 52))
        got = stored[first] if first < len(stored) else "nothing"
        raise UserError(f"{path}: 'joint_names' at ({first},) is {got!r}; expected {skeleton.JOINT_NAMES[first]!r} "
                        f"(the {len(skeleton.JOINT_NAMES)} joints in egoallo's order).")


def check_body_model(result: InferenceResult, body, source: str) -> None:  # noqa: ANN001 (BodyModel: imported late)
    """A `UserError` when `body` is not the body model `result` was made with: its betas would mean another
    shape. Told by the stature `body` gives the betas against the one the result states."""
    import torch

    stature = body.with_shape(torch.from_numpy(np.asarray(result.betas, dtype=np.float32))).stature.double().numpy()
    gap = float(np.abs(stature - result.stature_m).max())
    if gap > STATURE_AGREEMENT_M:
        made_with = result.metadata.get("body_model", "another body model")
        raise UserError(f"{source}: made with {made_with}; body model {body.name} gives its shapes statures "
                        f"{gap * 100:.0f} cm off: another model. Expected the result's own (--body-model).")


def _metadata(path: Path, value: np.ndarray) -> dict:
    """The metadata JSON object, or a `UserError`."""
    try:
        metadata = json.loads(str(value))
    except (json.JSONDecodeError, RecursionError) as error:
        raise UserError(f"{path}: 'metadata' is not valid JSON ({error}); expected a JSON object.") from None
    if not isinstance(metadata, dict):
        raise UserError(f"{path}: 'metadata' is a JSON {type(metadata).__name__}; expected a JSON object.")
    return metadata
