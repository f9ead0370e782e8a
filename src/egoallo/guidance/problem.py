"""The guidance problem on sampled motion, and the `guide` entry point.

The variables are the local rotations of joints 1..21 (and 22..51 with hands) of every frame; the root follows
from them through Eq. 5 (`kinematics`, which also gives the analytic Jacobians). One module per family of terms:
`prior_terms`, `feet`, `wrist`, `hands`; their weights in `weights`.

Each weight scales its residual, so a term's cost is `(w·‖r‖)²`; rotations in
radians, positions in metres. Terms (window of frames in brackets):

- prior (t): rotation deviation from the sample `log(R̂ᵀR)`; world position of
  the torso joints (pelvis, hips, spine1-3, neck, collars) against the sample's;
- smoothness: rotation change `log(R_tᵀR_{t+1})` (t, t+1); change of the
  deviation from the sample (t, t+1); second difference of rotations (t-1, t, t+1);
- "feet" (t, t+1): world displacement of ankles and feet, scaled by
  `sqrt(c_t·c_{t+1})` of their predicted contact probabilities;
- "wrist3d" (t): Aria wrist tracking: wrist position; palm orientation as the
  wrist→palm direction and the palm normal.
- "hands" (t), from the RGB camera (`egoallo.observations.HandObservations`): 2D reprojection of the
  21 hand landmarks (`hands.LANDMARK_JOINTS`), in normalised image units (pixel error
  divided by the focal length, ≈ radians near the image centre, as the reference's
  `x/z, y/z`), robust (Huber) and scaled by `sqrt(confidence)`; and, from 3D keypoints
  in the camera frame, the wrist position and palm orientation as in "wrist3d". The 3D
  keypoints are first moved (translation only) so they reproject onto the 2D ones, which
  removes an unknown depth offset; without 2D keypoints they are used as given.

With "hands" the 30 finger rotations of each frame are variables too, with their own,
weaker prior and smoothness weights; otherwise they stay as sampled.
"""

from __future__ import annotations

import dataclasses
import time
import warnings

import torch
from torch import Tensor

from ..body import BodyModel
from ..body.model import ShapedBody
from ..geometry import so3
from ..observations import Observations
from ..prior.state import MotionState
from .feet import FOOT_CONTACT_LIFT_M, FOOT_JOINTS, foot_floor, foot_skating
from .hands import HandTargets, hand_reprojection, hand_targets
from .kinematics import place, position_jacobian
from .prior_terms import TORSO_JOINTS, joint_weights, rotation_residuals, torso_position
from .solver import LMConfig, Residual, SolverLog, levenberg_marquardt
from .weights import GuidanceWeights
from .wrist import WristTargets, wrist3d, wrist_targets

MODES = frozenset({"feet", "wrist3d", "hands"})


@dataclasses.dataclass(frozen=True)
class GuidanceLog:
    solver: SolverLog
    fell_back: Tensor
    """(S,) the solution was not finite and the unguided sample was returned."""
    ignored_observations: int
    """wrist3d hand-frames skipped for NaN (or a zero-length vector); hand keypoints outside the image."""
    mode: frozenset[str]
    time_s: float
    counts: dict[str, int] = dataclasses.field(default_factory=dict)
    """What the "hands" mode used and ignored (see `hand_targets`)."""


@dataclasses.dataclass(frozen=True)
class GuidanceProblem:
    """Everything the residuals need besides the rotations being optimised."""

    shaped: ShapedBody
    T_world_cpf: Tensor
    """(T, 4, 4)"""
    prior: Tensor
    """(S, T, J, 3, 3) the diffusion sample's rotations."""
    prior_torso: Tensor
    """(S, T, 9, 3) the sample's torso joint positions."""
    weights: GuidanceWeights
    foot_contact: Tensor | None
    """(S, T-1, 4) `sqrt(c_t·c_{t+1})` per foot joint, with "feet"."""
    foot_floor: tuple[Tensor, Tensor] | None
    """With "feet" and a known floor: contact `(S, T, 4)` and target heights `(S, 1, 4)` of the foot joints."""
    wrists: WristTargets | None
    """With "wrist3d"."""
    hands: HandTargets | None
    """With "hands" and 2D keypoints."""
    hand3d: WristTargets | None
    """With "hands" and 3D keypoints: wrist and palm targets in the world."""
    ignored_observations: int
    counts: dict[str, int]

    def residuals(self, rotations: Tensor, with_jacobians: bool) -> list[Residual]:
        """Every term's residuals (and Jacobians) at `rotations (S, T, J, 3, 3)`."""
        J, w = rotations.shape[-3], self.weights
        kin = place(self.shaped, rotations, self.T_world_cpf)
        deviation = so3.log(self.prior.mT @ rotations)
        velocity = so3.log(rotations[:, :-1].mT @ rotations[:, 1:])
        out = rotation_residuals(deviation, velocity, joint_weights(w, J), with_jacobians)
        out.append(torso_position(kin, self.prior_torso, w.prior_torso_position, J, with_jacobians))
        feet = self.foot_contact is not None or self.foot_floor is not None
        J_feet = position_jacobian(kin, FOOT_JOINTS, J) if feet and with_jacobians else None
        if self.foot_contact is not None:
            out.append(foot_skating(kin, self.foot_contact, w.foot_skating, J_feet))
        if self.foot_floor is not None:
            out.append(foot_floor(kin, *self.foot_floor, w.foot_floor, J_feet))
        if self.wrists is not None:
            out.extend(wrist3d(kin, self.wrists, w.wrist_position, w.palm_orientation, J, with_jacobians))
        if self.hands is not None:
            out.append(hand_reprojection(kin, self.hands, w, J, with_jacobians))
        if self.hand3d is not None:
            out.extend(
                wrist3d(kin, self.hand3d, w.hand3d_wrist_position, w.hand3d_palm_orientation, J, with_jacobians)
            )
        return out


def build_problem(
    body: BodyModel,
    state: MotionState,
    T_world_cpf: Tensor,
    *,
    mode: set[str] | frozenset[str],
    observations: Observations | None = None,
    weights: GuidanceWeights = GuidanceWeights(),
    dtype: torch.dtype = torch.float64,
    floor_z: float | None = None,
) -> GuidanceProblem:
    """The guidance problem for a sample `state (S, T, ...)` and the head poses `T_world_cpf (T, 4, 4)`.

    With "hands" and a state without hand rotations, the fingers start from the flat rest pose.
    With "feet" and `floor_z`, foot joints in contact are also drawn to their standing height
    above the floor.
    """
    unknown = set(mode) - MODES
    if unknown:
        raise ValueError(f"unknown guidance mode(s) {sorted(unknown)}; choose from {sorted(MODES)}.")
    observations = observations or Observations()
    if "wrist3d" in mode and observations.wrist3d is None:
        raise ValueError("guidance mode 'wrist3d' needs Observations(wrist3d=WristObservations(...)).")
    if "hands" in mode and observations.hands is None:
        raise ValueError("guidance mode 'hands' needs Observations(hands=HandObservations(...)).")
    if not weights.hand_reprojection_huber > 0:
        raise ValueError(f"hand_reprojection_huber must be positive, got {weights.hand_reprojection_huber}.")
    T = state.body_rotations.shape[-4]
    if T_world_cpf.shape != (T, 4, 4):
        raise ValueError(f"T_world_cpf must be ({T}, 4, 4) to match the state, got {tuple(T_world_cpf.shape)}.")
    shaped = body.to(dtype=dtype).with_shape(state.betas.to(dtype).mean(dim=1, keepdim=True))
    T_world_cpf = T_world_cpf.to(dtype)
    # Finger rotations are variables only when hand keypoints constrain them; the other terms
    # never depend on them (the palm's knuckles move with the wrist), so they stay as sampled.
    prior = state.body_rotations.to(dtype)
    if "hands" in mode:
        fingers = state.hand_rotations.to(dtype) if state.hand_rotations is not None else so3.identity((*prior.shape[:2], 30), dtype=dtype)
        prior = torch.cat([prior, fingers], dim=-3)
    prior_kin = place(shaped, prior, T_world_cpf)
    foot_contact, foot_floor = None, None
    if "feet" in mode:
        c = state.contacts[..., [j - 1 for j in FOOT_JOINTS]].to(dtype).clamp(0.0, 1.0)
        foot_contact = torch.sqrt(c[:, 1:] * c[:, :-1])
        if floor_z is not None:
            target_z = floor_z + shaped.rest_joint_heights[..., FOOT_JOINTS] + FOOT_CONTACT_LIFT_M
            foot_floor = (c, target_z)
    wrists, ignored = None, 0
    if "wrist3d" in mode:
        wrists, ignored = wrist_targets(observations.wrist3d, shaped, T, dtype)
        if ignored:
            warnings.warn(
                f"wrist3d: ignored {ignored} of {2 * T} hand observations with NaN or zero-length vectors.",
                stacklevel=3,
            )
    hands, hand3d, counts = None, None, {}
    if "hands" in mode:
        hands, hand3d, counts = hand_targets(observations.hands, shaped, T_world_cpf)
        outside = counts.get("keypoints_2d_outside_image", 0)
        ignored += outside
        if outside:
            warnings.warn(f"hands: ignored {outside} 2D keypoints outside the image.", stacklevel=3)
        if not counts.get("keypoints_2d_used", 0) and not counts.get("hand3d_frames_used", 0):
            warnings.warn("hands: no usable hand observation; only the prior and smoothness terms act.", stacklevel=3)
    return GuidanceProblem(
        shaped=shaped,
        T_world_cpf=T_world_cpf,
        prior=prior,
        prior_torso=prior_kin.positions[..., TORSO_JOINTS, :],
        weights=weights,
        foot_contact=foot_contact,
        foot_floor=foot_floor,
        wrists=wrists,
        hands=hands,
        hand3d=hand3d,
        ignored_observations=ignored,
        counts=counts,
    )


def guide(
    body: BodyModel,
    state: MotionState,
    T_world_cpf: Tensor,
    *,
    mode: set[str] | frozenset[str],
    observations: Observations | None = None,
    weights: GuidanceWeights = GuidanceWeights(),
    iterations: int = 20,
    dtype: torch.dtype = torch.float64,
    solver: LMConfig = LMConfig(),
    floor_z: float | None = None,
) -> tuple[MotionState, GuidanceLog]:
    """Refine sampled rotations with Levenberg–Marquardt ("post" guidance).

    Args:
        state: the sample, `(S, T, ...)`; β is averaged over time as in `place_in_world`.
        T_world_cpf: (T, 4, 4) head poses (z-up world).
        mode: subset of {"feet", "wrist3d", "hands"}; prior and smoothness terms are always on.
        floor_z: floor height in the same world; with "feet", feet in contact stand on it.
    Returns:
        The state with refined body (and hand) rotations, and the log. A sample whose
        solution is not finite is returned unguided, flagged in `log.fell_back`.
    """
    started = time.perf_counter()
    problem = build_problem(
        body, state, T_world_cpf, mode=mode, observations=observations, weights=weights, dtype=dtype, floor_z=floor_z
    )
    rotations, solver_log = levenberg_marquardt(problem.residuals, problem.prior, iterations, solver)
    finite = rotations.flatten(1).isfinite().all(dim=1)
    if not finite.all():
        warnings.warn(
            f"guidance: {int((~finite).sum())} sample(s) gave non-finite rotations; returning them unguided.",
            stacklevel=2,
        )
    rotations = torch.where(finite[:, None, None, None, None], rotations, problem.prior)
    body_rotations = rotations[..., :21, :, :].to(state.body_rotations.dtype)
    hands = rotations[..., 21:, :, :].to(state.body_rotations.dtype) if rotations.shape[-3] == 51 else state.hand_rotations
    guided = dataclasses.replace(state, body_rotations=body_rotations, hand_rotations=hands)
    log = GuidanceLog(
        solver=solver_log,
        fell_back=~finite,
        ignored_observations=problem.ignored_observations,
        mode=frozenset(mode),
        time_s=time.perf_counter() - started,
        counts=problem.counts,
    )
    return guided, log
