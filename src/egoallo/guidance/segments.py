"""Guidance of long recordings in overlapping segments, so memory stays bounded.

The normal equations of a segment are a few hundred kilobytes per frame; an hour
(108,000 frames) at once would need tens of gigabytes. `guide_in_segments` solves
segments of `segment` frames overlapping by `overlap` independently and blends
the rotations across each overlap (geodesic interpolation with linear weights).
A sequence no longer than one segment is solved whole, exactly as `guide`.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from ..body import BodyModel
from ..geometry import so3
from ..prior.diffusion import window_starts
from ..prior.state import MotionState
from .costs import GuidanceLog, Observations, WristObservations, guide
from .hands import HandObservations

SEGMENT_FRAMES = 2048
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
    **kwargs,
) -> tuple[MotionState, list[GuidanceLog]]:
    """`guide` over segments of `state (S, T, ...)` and `T_world_cpf (T, 4, 4)`; other arguments as `guide`.

    β is averaged over the whole sequence first, so every segment poses the same body.
    Returns the guided state and one log per segment.
    """
    T = T_world_cpf.shape[0]
    if T <= segment:
        guided, log = guide(body, state, T_world_cpf, observations=observations, **kwargs)
        return guided, [log]
    state = dataclasses.replace(state, betas=state.betas.mean(dim=1, keepdim=True).expand_as(state.betas))
    body_rotations = state.body_rotations.clone()
    hand_rotations = state.hand_rotations.clone() if state.hand_rotations is not None else None
    logs = []
    previous_end = 0
    for start in window_starts(T, segment, overlap):
        frames = slice(start, start + segment)
        guided, log = guide(body, _slice_state(state, frames), T_world_cpf[frames],
                            observations=_slice_observations(observations, frames), **kwargs)
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
            whole[:, previous_end : start + segment] = part[:, shared:]
        previous_end = start + segment
    return dataclasses.replace(state, body_rotations=body_rotations, hand_rotations=hand_rotations), logs
