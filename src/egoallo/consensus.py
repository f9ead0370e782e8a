"""Many samples, one body and how sure it is: the consensus of a result's samples and each joint's spread.

The prior's samples are plausible bodies for the same head motion; where the head says little (arms, legs
while sitting) they disagree. Two consensuses are poses of the body model, never a joint average that
shortens bones:

- `"mean"`: each joint's local rotation averaged over the samples (the chordal L2 mean: the arithmetic mean of
  the matrices projected back onto SO(3)), the shape averaged, contacts averaged; the root then follows from
  the head (Eq. 5), as every sample's does;
- `"bones"`: each body joint's *world* orientation averaged over the samples (the chordal L2 mean), the local
  rotations then read back from the averaged chain (`R̄_parent^T R̄_joint`): every bone points along the
  samples' mean direction, so the joints land near the samples' average joints while every bone keeps its
  length; the head's orientation, which every sample shares, is kept, so the root placed from it (Eq. 5)
  lies under the averaged chain; fingers, shape and contacts as `"mean"`;
- `"medoid"`: the sample whose joints lie nearest the others' (least summed mean joint distance).

`joint_spread_m (T, 52)` is the radius around the consensus joint within which the true joint lies with
probability `STATED_LEVEL` (90 %): the root-mean-square distance of the samples' joints from the consensus
joint (with the small-sample factor `sqrt(S / (S - 1))`), times `SPREAD_SCALE`, measured on the validation
split (docs/uncertainty.md). The intervals of the other levels of `INTERVAL_FACTORS` are multiples of it
measured there too (`interval_radius`): the errors are not Gaussian around the consensus (the samples share
the prior's bias), so their ratios are measured, not assumed.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from .geometry import so3
from .body.skeleton import BODY_PARENTS
from .prior.state import MotionState

ConsensusKind = Literal["mean", "bones", "medoid"]

STATED_LEVEL = 0.9
"""The probability with which the true joint lies within `joint_spread_m` of the consensus joint."""
SPREAD_SCALE = 6.31
"""`joint_spread_m` over the samples' root-mean-square distance from the consensus (small-sample corrected):
the factor that makes the stated 90 % interval cover 90 % of the joint errors on the validation split, for the
shipped 4-step student with 8 samples, foot guidance on the consensus, the floor a point cloud gives: 6.312
over 61,952 frame x body-joint cells of the held-out performers' validation windows (every 4th, dataset build
of 2026-12-07; `python benchmarks/uncertainty_report.py --dataset DIR/dataset.h5 --split val --window-step 4`,
docs/uncertainty.md). Measured again for the `"bones"` consensus, the default since: 6.327, with which 6.31
covers 89.9 % (same run, `--variants bones:consensus`). The samples agree with each other far more closely
than with the truth (they share the prior's bias), hence a factor well above 1."""
INTERVAL_FACTORS = {0.5: 0.256, 0.68: 0.417, 0.9: 1.0, 0.95: 1.348}
"""Radius of the stated interval of each level over `joint_spread_m` (the 90 % radius), measured with
`SPREAD_SCALE` on the validation split (the quantiles of error over spread at each level over the 90 % one)."""


def mean_rotations(rotations: Tensor) -> Tensor:
    """The chordal L2 mean `(...)` of rotations `(S, ..., 3, 3)` over the first axis: the mean matrix projected
    onto SO(3) (identical rotations give themselves)."""
    return so3.project(rotations.mean(dim=0))


def mean_state(state: MotionState) -> MotionState:
    """The `"mean"` consensus `(1, T, ...)` of samples `state (S, T, ...)`: every local rotation averaged and
    projected onto SO(3), the shape and the contacts averaged."""
    hands = None if state.hand_rotations is None else mean_rotations(state.hand_rotations)[None]
    return MotionState(
        betas=state.betas.mean(dim=0, keepdim=True),
        body_rotations=mean_rotations(state.body_rotations)[None],
        contacts=state.contacts.mean(dim=0, keepdim=True),
        hand_rotations=hands,
    )


def bones_state(state: MotionState, R_world_root: Tensor) -> MotionState:
    """The `"bones"` consensus `(1, T, ...)` of samples `state (S, T, ...)` placed with root orientations
    `R_world_root (S, T, 3, 3)`: every body joint's world orientation averaged, the local rotations read back
    from the averaged chain; fingers, shape and contacts as `mean_state`."""
    local = state.body_rotations.to(R_world_root.dtype)
    R_world = [R_world_root]
    for joint in range(1, len(BODY_PARENTS)):
        R_world.append(R_world[BODY_PARENTS[joint]] @ local[..., joint - 1, :, :])
    mean_world = [mean_rotations(R) for R in R_world]  # (T, 3, 3) each
    body = torch.stack([mean_world[BODY_PARENTS[j]].transpose(-1, -2) @ mean_world[j]
                        for j in range(1, len(BODY_PARENTS))], dim=-3)
    return dataclasses.replace(mean_state(state), body_rotations=body[None].to(state.body_rotations.dtype))


def medoid_index(joints: np.ndarray | Tensor) -> int:
    """The sample of `joints (S, T, J, 3)` with the least summed mean joint distance to the others."""
    joints = torch.as_tensor(joints, dtype=torch.float64)
    S = joints.shape[0]
    distance = torch.zeros(S, S, dtype=torch.float64)
    for s in range(S):
        distance[s] = torch.linalg.vector_norm(joints - joints[s], dim=-1).mean(dim=(1, 2))
    return int(distance.sum(dim=1).argmin())


def sample_state(state: MotionState, index: int) -> MotionState:
    """Sample `index` of `state (S, T, ...)`, as `(1, T, ...)`."""
    pick = slice(index, index + 1)
    hands = None if state.hand_rotations is None else state.hand_rotations[pick]
    return MotionState(state.betas[pick], state.body_rotations[pick], state.contacts[pick], hands)


def raw_spread(joints: np.ndarray, consensus: np.ndarray) -> np.ndarray:
    """`(T, J)` root-mean-square distance of the samples' `joints (S, T, J, 3)` from `consensus (T, J, 3)`,
    times `sqrt(S / (S - 1))` (S - 1 samples' worth of spread around a consensus drawn from them); needs S >= 2."""
    S = joints.shape[0]
    if S < 2:
        raise ValueError("a spread needs at least two samples")
    squared = np.zeros(consensus.shape[:-1], dtype=np.float64)
    for s in range(S):  # one sample at a time: no (S, T, J, 3) temporary in float64
        squared += np.square(joints[s].astype(np.float64) - consensus).sum(axis=-1)
    return np.sqrt(squared / (S - 1))


def joint_spread(joints: np.ndarray, consensus: np.ndarray, scale: float = SPREAD_SCALE) -> np.ndarray:
    """`joint_spread_m (T, J)`: the radius of the stated `STATED_LEVEL` interval around `consensus (T, J, 3)`
    from the samples' `joints (S, T, J, 3)`."""
    return (scale * raw_spread(joints, consensus)).astype(np.float32)


def interval_radius(spread_m: np.ndarray, level: float) -> np.ndarray:
    """The radius of the stated `level` interval (one of `INTERVAL_FACTORS`) from `joint_spread_m` (the
    `STATED_LEVEL` radius)."""
    if level not in INTERVAL_FACTORS:
        raise ValueError(f"no interval of level {level} is calibrated; expected one of {sorted(INTERVAL_FACTORS)}")
    return spread_m * INTERVAL_FACTORS[level]
