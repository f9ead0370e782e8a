"""Guidance of long recordings in overlapping segments, so memory stays bounded.

The normal equations of a segment are a few hundred kilobytes per frame; an hour
(108,000 frames) at once would need tens of gigabytes. `guide_in_segments` solves
segments of at most `segment` frames, all of about the same length and overlapping by
`overlap`, independently, and blends the rotations across each overlap (geodesic
interpolation with linear weights).
A sequence no longer than one segment is solved whole, exactly as `guide`.

Segments are independent problems, so `workers` of them are solved at once, each on
one thread: the LM solve is thousands of small operations, which a second OpenMP
thread barely speeds up (10 % on 2048 frames) but a second segment at a time does
(1.6× on 2 cores).
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor

from ..body import BodyModel
from ..geometry import so3
from ..prior.state import MotionState
from ..threads import thread_pool, torch_threads
from ..observations import HandObservations, Observations, WristObservations
from .problem import GuidanceLog, guide

SEGMENT_FRAMES = 1024
SEGMENT_OVERLAP = 64


def _slice_state(state: MotionState, frames: slice) -> MotionState:
    """The frames of every per-frame field of `state (S, T, ...)`."""
    hands = state.hand_rotations[:, frames] if state.hand_rotations is not None else None
    return MotionState(state.betas[:, frames], state.body_rotations[:, frames], state.contacts[:, frames], hands)


def _slice_observations(observations: Observations | None, frames: slice) -> Observations | None:
    """The observations of `frames` (every per-frame tensor has the frame first)."""
    if observations is None:
        return None
    wrist, hands = observations.wrist3d, observations.hands
    if wrist is not None:
        wrist = WristObservations(*(None if v is None else v[frames] for v in _fields(wrist)))
    if hands is not None:
        hands = HandObservations(hands.camera, *(None if v is None else v[frames] for v in _fields(hands)[1:]))
    return Observations(wrist3d=wrist, hands=hands)


def _fields(value) -> list:
    """A dataclass's field values, in order (no copies, unlike `dataclasses.astuple`)."""
    return [getattr(value, field.name) for field in dataclasses.fields(value)]


def blend_rotations(a: Tensor, b: Tensor, weight: Tensor) -> Tensor:
    """`a·exp(w·log(aᵀb))` for rotations `a, b (S, T, J, 3, 3)` and weights `(T,)` from 0 (a) to 1 (b)."""
    return a @ so3.exp(weight[None, :, None, None] * so3.log(a.mT @ b))


def guide_in_segments(
    body: BodyModel,
    state: MotionState,
    T_world_cpf: Tensor,
    *,
    observations: Observations | None = None,
    segment: int = SEGMENT_FRAMES,
    overlap: int = SEGMENT_OVERLAP,
    workers: int | None = None,
    **kwargs,
) -> tuple[MotionState, list[GuidanceLog]]:
    """`guide` over segments of `state (S, T, ...)` and `T_world_cpf (T, 4, 4)`; other arguments as `guide`.

    β is averaged over the whole sequence first, so every segment poses the same body.
    `workers`: segments solved at once, each on one torch thread (default: torch's thread count).
    Returns the guided state and one log per segment.
    """
    T = T_world_cpf.shape[0]
    if T <= segment:
        guided, log = guide(body, state, T_world_cpf, observations=observations, **kwargs)
        return guided, [log]
    state = dataclasses.replace(state, betas=state.betas.mean(dim=1, keepdim=True).expand_as(state.betas))
    bounds = segment_bounds(T, segment, overlap)

    def solve(bound: tuple[int, int]) -> tuple[MotionState, GuidanceLog]:
        frames = slice(*bound)
        return guide(body, _slice_state(state, frames), T_world_cpf[frames],
                     observations=_slice_observations(observations, frames), **kwargs)

    workers = min(torch.get_num_threads() if workers is None else workers, len(bounds))
    if workers > 1:
        with torch_threads(1), thread_pool(workers) as pool:
            return _joined(state, bounds, pool.map(solve, bounds))
    return _joined(state, bounds, map(solve, bounds))


def segment_bounds(length: int, segment: int, overlap: int) -> list[tuple[int, int]]:
    """`(start, end)` of the fewest segments of at most `segment` frames that cover `length` frames
    overlapping by `overlap` (±1), all of the same length."""
    if length <= segment:
        return [(0, length)]
    count = math.ceil((length - overlap) / (segment - overlap))
    size = math.ceil((length + (count - 1) * overlap) / count)
    starts = [round(i * (length - size) / (count - 1)) for i in range(count)]
    return [(start, start + size) for start in starts]


def _joined(state: MotionState, bounds: list[tuple[int, int]], solved) -> tuple[MotionState, list[GuidanceLog]]:
    """The guided segments `solved` (in the order of `bounds`) written into `state`, blended across overlaps."""
    body_rotations = state.body_rotations.clone()
    hand_rotations = state.hand_rotations.clone() if state.hand_rotations is not None else None
    logs = []
    previous_end = 0
    for (start, end), (guided, log) in zip(bounds, solved):
        logs.append(log)
        if hand_rotations is None and guided.hand_rotations is not None:  # "hands" adds finger rotations
            hand_rotations = so3.identity((*body_rotations.shape[:2], 30), dtype=body_rotations.dtype)
        shared = previous_end - start  # frames also solved by the previous segment
        weight = torch.arange(1, shared + 1, dtype=body_rotations.dtype) / (shared + 1)
        for whole, part in ((body_rotations, guided.body_rotations), (hand_rotations, guided.hand_rotations)):
            if whole is None:
                continue
            part = part.to(whole.dtype)
            if shared > 0:
                whole[:, start:previous_end] = blend_rotations(whole[:, start:previous_end], part[:, :shared], weight)
            whole[:, previous_end:end] = part[:, shared:]
        previous_end = end
    return dataclasses.replace(state, body_rotations=body_rotations, hand_rotations=hand_rotations), logs
