"""A whole recording -> one result: every usable segment estimated, none dropped, the gaps marked.

A trajectory split at tracking gaps, jumps or SLAM graph changes (`read_trajectory_segments`) is
estimated segment by segment. Each segment is first moved near the origin in float64 (`recentred`),
so world frames with large coordinates (UTM, ECEF) lose nothing to the model's float32, and moved
back afterwards; every output is checked to be finite before anything is written. With several
segments, every sample's bodies are re-placed (Eq. 5: the CPF stays on the head) with the body
shape averaged over the segments: one wearer, one shape. The result's frames are the segments'
frames one after the other; `metadata["segments"]` and `metadata["gaps"]` say where each begins
and what lies between them.

A SLAM reset or another SLAM graph moves the world frame, so the floor is chosen per world frame
(`segment_floors`): from that frame's own point cloud (Aria points carry their graph) or head
trajectory. The result's `floor_z` is the main frame's (`main_frame`); each segment's is in its metadata.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from .body import BodyModel
from .body.plausibility import plausibility
from .errors import UserError
from .consensus import joint_spread
from .inference import SamplingConfig, estimate_body_motion, place_in_world
from .inputs.gait import floor_without_points
from .inputs.points import FloorEstimate, PointCloud, PointCloudError, estimate_floor_z, floor_given
from .inputs.stature import stature_floor
from .inputs.trajectory import HeadTrajectory
from .observations import Observations
from .prior.network import EgoDenoiser
from .prior.state import MotionState
from .result import InferenceResult

ORIGIN_STEP_M = 1.0
"""The re-centring origin is rounded to whole metres (readable offsets; rounding costs no precision)."""

Observe = Callable[[HeadTrajectory], tuple[Observations, dict[str, Any]]]
"""A segment (re-centred) -> its observations for guidance, and what to record about them."""


class ModelOutputError(UserError):
    """The model produced NaN or infinite values (corrupt weights): reported before anything is written."""


@dataclasses.dataclass(frozen=True)
class Part:
    """One segment's estimate in its re-centred frame, with the offset `origin` (3,) that moves it back."""

    result: InferenceResult
    origin: np.ndarray
    segment: HeadTrajectory
    observed: dict[str, Any]
    floor_z: float
    """The segment's floor in the z-up world (not re-centred)."""


def recentred(trajectory: HeadTrajectory) -> tuple[HeadTrajectory, np.ndarray]:
    """`trajectory` moved (in float64) so its mean head position lies within a metre of the origin, and the
    offset (3,) that was subtracted."""
    mean = trajectory.T_world_cpf[:, :3, 3].mean(axis=0)
    origin = np.round(mean / ORIGIN_STEP_M) * ORIGIN_STEP_M + 0.0  # (+ 0.0: no negative zeros)
    T = trajectory.T_world_cpf.copy()
    T[:, :3, 3] -= origin
    return dataclasses.replace(trajectory, T_world_cpf=T), origin


def segment_floors(
    segments: list[HeadTrajectory],
    *,
    fps: float,
    eye_height: float,
    floor_z: float | None = None,
    cloud: PointCloud | None = None,
    stature_known: bool = False,
) -> tuple[list[FloorEstimate], list[str]]:
    """One floor per segment, chosen per world frame (`HeadTrajectory.world_frame`) from that frame's segments,
    and notes on how. A floor given (`floor_z`) and a point cloud without graph ids belong to the main frame
    (`main_frame`); another frame's floor comes from its own graph's points (Aria points with graph ids) or its
    own head trajectory: `eye_height` under the head's standing height, the wearer's (method "stature") when
    `stature_known`. Raises `ValueError` when the given floor is not under the head."""
    main = main_frame(segments)
    chosen: dict[int, FloorEstimate] = {}
    notes: list[str] = []
    for frame in dict.fromkeys(s.world_frame for s in segments):
        group = [s for s in segments if s.world_frame == frame]
        points = frame_points(cloud, group[0], frame == main)
        given = floor_z if frame == main else None
        chosen[frame], note = frame_floor(group, fps, eye_height, given, points, cloud.source if cloud else "",
                                          stature_known)
        notes += [note] if note else []
        if frame != main and (floor_z is not None or (cloud is not None and points is None)):
            given_by = "--floor-z" if floor_z is not None else f"{cloud.source} (points without graph ids)"
            notes.append(f"segments in world frame {frame} ({group[0].rows}: another SLAM map) stand on the floor "
                         f"from their own trajectory (z = {chosen[frame].z:.3f} m), not on {given_by}, which "
                         f"belongs to world frame {main}")
    return [chosen[s.world_frame] for s in segments], notes


def main_frame(segments: list[HeadTrajectory]) -> int:
    """The world frame holding the most frames (the first of equals): the recording's own frame."""
    totals: dict[int, int] = {}
    for segment in segments:
        totals[segment.world_frame] = totals.get(segment.world_frame, 0) + len(segment)
    return max(totals, key=totals.__getitem__)


def frame_points(cloud: PointCloud | None, segment: HeadTrajectory, main: bool) -> np.ndarray | None:
    """(N, 3) points of `cloud` in `segment`'s world frame (the file's world axes): its SLAM graph's when both
    name graphs, else all of them for the main frame only; None when the cloud says nothing about this frame."""
    if cloud is None:
        return None
    if cloud.graph_uids is not None and segment.graph_uid is not None:
        return cloud.points[cloud.graph_uids == segment.graph_uid]
    return cloud.points if main else None


def frame_floor(
    group: list[HeadTrajectory], fps: float, eye_height: float, floor_z: float | None, points: np.ndarray | None,
    source: str, stature_known: bool = False,
) -> tuple[FloorEstimate, str | None]:
    """The floor under the segments `group` of one world frame: given, else from `points`, else from the head
    trajectory (also when the points show no floor: with a note saying so): the wearer's eye height under the
    head's standing height when `stature_known`, else `floor_without_points` of the longest segment."""
    head = max(group, key=len)
    head_z = np.concatenate([s.T_world_cpf[:, 2, 3] for s in group])
    if floor_z is not None:
        return floor_given(floor_z, head_z), None

    def from_trajectory() -> FloorEstimate:  # only where the points give none: its walking windows cost time
        if stature_known:
            return stature_floor([s.T_world_cpf[:, :3, 3] for s in group], fps, eye_height)
        return floor_without_points(head.T_world_cpf, fps, eye_height)

    if points is None:
        return from_trajectory(), None
    if not len(points):
        return from_trajectory(), (f"{source}: no point in SLAM graph {head.graph_uid} ({head.rows}); "
                                   "using the floor from the trajectory")
    try:
        return estimate_floor_z(points @ head.R_zup_input.T, head_z=head_z, source=source), None
    except PointCloudError as e:
        return from_trajectory(), f"{e}; using the floor from the trajectory instead"


def estimate_recording(
    segments: list[HeadTrajectory],
    denoiser: EgoDenoiser,
    body: BodyModel,
    *,
    floor_z: float | Sequence[float],
    config: SamplingConfig,
    observe: Observe,
    checkpoint: str,
    metadata: dict[str, Any],
    fps: float = 30.0,
    progress: bool = False,
) -> InferenceResult:
    """Every segment (resampled at `fps`, z-up, in time order) estimated and joined into one result.

    `floor_z`: one floor for all segments, or each segment's (`segment_floors`). `observe` gives each re-centred segment's guidance observations; `checkpoint` names the weights in
    errors; `metadata` is added to the result's. Raises `ModelOutputError` on non-finite outputs.
    """
    floors = [float(floor_z)] * len(segments) if np.ndim(floor_z) == 0 else [float(z) for z in floor_z]
    if len(floors) != len(segments):
        raise ValueError(f"{len(floors)} floors for {len(segments)} segments")
    parts = [
        estimate_part(segment, denoiser, body, floor_z=floor, config=config, observe=observe,
                      checkpoint=checkpoint, index=i, fps=fps, progress=progress)
        for i, (segment, floor) in enumerate(zip(segments, floors))
    ]
    if len(parts) > 1:
        results = [part.result for part in parts]
        betas = shared_betas([r.betas for r in results], results)
        consensus = shared_betas([r.betas_consensus[None] for r in results], results) if results[0].has_consensus else None
        parts = [dataclasses.replace(part, result=with_betas(body, part.result, betas, consensus)) for part in parts]
    return joined(parts, body, metadata)


def estimate_part(
    segment: HeadTrajectory,
    denoiser: EgoDenoiser,
    body: BodyModel,
    *,
    floor_z: float,
    config: SamplingConfig,
    observe: Observe,
    checkpoint: str,
    index: int,
    fps: float,
    progress: bool,
) -> Part:
    """One segment estimated in its re-centred frame, checked to be finite."""
    local, origin = recentred(segment)
    observations, observed = observe(local)
    try:
        result = estimate_body_motion(local, denoiser, body, floor_z=floor_z - float(origin[2]), config=config,
                                      observations=observations, fps=fps, progress=progress)
    except torch.linalg.LinAlgError as error:  # SVD projections of NaN rotations inside the sampler
        if "non-finite" not in str(error):
            raise
        raise ModelOutputError(non_finite_message(checkpoint, "rotations while sampling", index)) from None
    for name in ("joints_world", "T_world_root", "local_rotations", "betas", "contacts", "stature_m",
                 "joints_world_consensus", "joint_spread_m"):
        if getattr(result, name) is not None and not np.isfinite(getattr(result, name)).all():
            raise ModelOutputError(non_finite_message(checkpoint, name, index))
    return Part(result, origin, segment, observed, floor_z)


def non_finite_message(checkpoint: str, what: str, index: int) -> str:
    """The one-line refusal of a checkpoint whose outputs (`what`) are not finite in segment `index`."""
    return (
        f"{checkpoint}: the model produced NaN or infinite {what} (segment {index}); expected finite values: "
        "the weights are corrupt or do not belong to this model; nothing was written"
    )


def shared_betas(shapes: list[np.ndarray], results: list[InferenceResult]) -> np.ndarray:
    """(S, B) the body shapes `shapes` (one `(S, B)` per segment of `results`) averaged over the segments,
    weighted by their frames."""
    frames = np.array([len(r.timestamps_ns) for r in results], dtype=np.float64)
    stacked = np.stack([b.astype(np.float64) for b in shapes])  # (K, S, B)
    return (stacked * frames[:, None, None]).sum(axis=0) / frames.sum()


def with_betas(body: BodyModel, result: InferenceResult, betas: np.ndarray,
               betas_consensus: np.ndarray | None = None) -> InferenceResult:
    """`result` with body shape `betas (S, B)` (its consensus with `betas_consensus (1, B)`), re-placed by Eq. 5 so
    the CPF stays on the head pose; the spread measured again around the re-placed consensus."""
    T_input_zup = result.T_input_zup
    T_zup_cpf = torch.from_numpy(np.linalg.inv(T_input_zup) @ result.T_world_cpf)
    T_world_root, joints, stature = replaced(body, result.local_rotations, betas, T_zup_cpf, T_input_zup)
    changed = dict(betas=betas.astype(np.float32), T_world_root=T_world_root, joints_world=joints, stature_m=stature)
    if betas_consensus is not None and result.has_consensus:
        T_root_c, joints_c, _ = replaced(body, result.local_rotations_consensus[None], betas_consensus, T_zup_cpf,
                                         T_input_zup)
        changed |= dict(betas_consensus=betas_consensus[0].astype(np.float32), T_world_root_consensus=T_root_c[0],
                        joints_world_consensus=joints_c[0], joint_spread_m=joint_spread(joints, joints_c[0].astype(np.float64)))
    return dataclasses.replace(result, **changed)


def replaced(body: BodyModel, local_rotations: np.ndarray, betas: np.ndarray, T_zup_cpf: torch.Tensor,
             T_input_zup: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bodies of `local_rotations (S, T, 51, 3, 3)` and shapes `betas (S, B)` placed by Eq. 5 on the head poses
    `T_zup_cpf (T, 4, 4)`: `T_world_root (S, T, 4, 4)`, `joints_world (S, T, 52, 3)` in the input's world
    (rotated by `T_input_zup`, not yet moved) and `stature_m (S,)`, float32."""
    S, T = local_rotations.shape[:2]
    local = torch.from_numpy(local_rotations)
    shape = torch.from_numpy(betas).float()
    state = MotionState(shape[:, None].expand(S, T, -1), local[:, :, :21], torch.zeros(S, T, 21), local[:, :, 21:])
    _, T_zup_root, joints = place_in_world(body, state, T_zup_cpf)
    return ((T_input_zup @ T_zup_root.double().numpy()).astype(np.float32),
            (joints.double().numpy() @ T_input_zup[:3, :3].T).astype(np.float32),
            body.with_shape(shape).stature.numpy().astype(np.float32))


def moved_back(part: Part) -> InferenceResult:
    """A part's result in the input's world frame, in float64: the re-centring offset added back, and the
    head poses exactly as read."""
    result = part.result
    shift = result.T_input_zup[:3, :3] @ part.origin
    return dataclasses.replace(result.moved(shift), T_world_cpf=part.segment.T_input_world @ part.segment.T_world_cpf)


def joined(parts: list[Part], body: BodyModel, metadata: dict[str, Any]) -> InferenceResult:
    """The parts, moved back, one after the other in one result; segments and gaps in its metadata.

    The sampling, network and guidance records are the longest segment's, the floor the main frame's;
    plausibility figures cover all frames, each over its segment's floor (for foot skating, the two sides of a gap count as
    consecutive frames).
    """
    results = [moved_back(part) for part in parts]
    longest = max(range(len(parts)), key=lambda i: len(results[i].timestamps_ns))
    first, reference = results[0], results[longest]

    def along_time(name: str, axis: int) -> np.ndarray:
        return joined_arrays([getattr(r, name) for r in results], axis)

    consensus = {} if not first.has_consensus else {
        name: along_time(name, 0) for name in ("joints_world_consensus", "T_world_root_consensus",
                                               "local_rotations_consensus", "joint_spread_m")
    }
    over_floor = joined_arrays([above_floor(part, result) for part, result in zip(parts, results)], 1)
    heights = body.with_shape(torch.from_numpy(first.betas)).rest_joint_heights.double().numpy()
    figures = plausibility(over_floor, 0.0, heights, first.fps).to_json()
    return dataclasses.replace(
        first,
        timestamps_ns=along_time("timestamps_ns", 0),
        T_world_cpf=along_time("T_world_cpf", 0),
        joints_world=along_time("joints_world", 1),
        T_world_root=along_time("T_world_root", 1),
        local_rotations=along_time("local_rotations", 1),
        contacts=along_time("contacts", 1),
        **consensus,
        floor_z=next(p.floor_z for p in parts if p.segment.world_frame == main_frame([p.segment for p in parts])),
        metadata={
            **reference.metadata,
            **parts[longest].observed,
            **metadata,
            "plausibility": figures,
            "timing_s": {key: sum(r.metadata["timing_s"][key] for r in results) for key in reference.metadata["timing_s"]},
            "segments": segment_entries(parts, results),
            "gaps": gaps(parts),
            "coverage": coverage(parts),
        },
    )


def joined_arrays(arrays: list[np.ndarray], axis: int) -> np.ndarray:
    """The arrays one after the other along `axis`; a single one as it is (an hour of joints is 0.1 GB a copy)."""
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=axis)


def above_floor(part: Part, result: InferenceResult) -> np.ndarray:
    """(S, T, 52, 3) a moved-back part's joints in the z-up world, heights over its own floor."""
    joints = result.joints_world @ result.T_input_zup[:3, :3]
    joints[..., 2] -= part.floor_z
    return joints


def segment_entries(parts: list[Part], results: list[InferenceResult]) -> list[dict[str, Any]]:
    """Per segment: its first frame in the result, frames, start time, rows, offset and guidance log."""
    entries, first_frame = [], 0
    t0 = int(results[0].timestamps_ns[0])
    for part, result in zip(parts, results):
        frames = len(result.timestamps_ns)
        entries.append({
            "first_frame": first_frame,
            "frames": frames,
            "start_s": (int(result.timestamps_ns[0]) - t0) / 1e9,
            "rows": part.segment.rows,
            "recentred_by_m": part.origin.tolist(),
            "world_frame": part.segment.world_frame,
            "floor_z": part.floor_z,
            "guidance": result.metadata["guidance"],
            **part.observed,
        })
        first_frame += frames
    return entries


def gaps(parts: list[Part]) -> list[dict[str, Any]]:
    """Between consecutive segments: the result frame the gap follows, its length, the reader's reasons for the
    splits and the pieces between them too short to estimate."""
    found, frame = [], 0
    for before, after in zip(parts, parts[1:]):
        frame += len(before.segment)
        summaries = after.segment.metadata.get("segments") or []
        a, b = before.segment.metadata.get("segment_index"), after.segment.metadata.get("segment_index")
        between = summaries[a + 1 : b + 1] if a is not None and b is not None else []
        found.append({
            "after_frame": frame - 1,
            "seconds": float(after.segment.timestamps_ns[0] - before.segment.timestamps_ns[-1]) / 1e9,
            "reasons": [s["after"] for s in between if "after" in s],
            "too_short_to_estimate": [s["rows"] for s in between[:-1]],
        })
    return found


def coverage(parts: list[Part]) -> dict[str, Any]:
    """Frames estimated against the frames of every tracked piece of the recording (too short ones included)."""
    fps = parts[0].result.fps
    summaries = parts[0].segment.metadata.get("segments") or [
        {"duration_s": part.segment.duration_s} for part in parts
    ]
    return {
        "frames_estimated": sum(len(part.segment) for part in parts),
        "frames_tracked": sum(int(np.floor(s["duration_s"] * fps + 1e-4)) + 1 for s in summaries),
        "segments_estimated": len(parts),
        "segments_tracked": len(summaries),
    }
