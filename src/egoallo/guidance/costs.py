"""Guidance costs on sampled motion and the `guide` entry point.

The variables are the local rotations of joints 1..21 (and 22..51 with hands)
of every frame. The root is not free: as in the paper it follows from the
rotations through Eq. 5, `T_world_root = T_world_cpf · T_root_cpf(Θ, β)^-1`, so
every world position below moves when any joint on the path between it and
the head rotates. Jacobians are analytic: with the placement, perturbing joint
j by `R_j ← R_j·exp(δ)` moves joint k's world position by
`s_kj · hat(x_k − x_j) · R_world_j · δ`, with `s_kj = [j on the head's chain] −
[j a strict ancestor of k]` (the common chain cancels: it turns head and k together).

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

Later terms (hand keypoint reprojection, HaMeR wrists) add a mode, a field of
`Observations` and a function returning a `Residual`.
"""

from __future__ import annotations

import dataclasses
import functools
import time
import warnings

import torch
from torch import Tensor

from ..body import BodyModel
from ..body.model import ShapedBody
from ..body.skeleton import JOINT_INDEX, NUM_JOINTS, PARENTS
from ..geometry import se3, so3
from ..prior.state import MotionState
from .solver import LMConfig, Residual, SolverLog, levenberg_marquardt

MODES = frozenset({"feet", "wrist3d"})
TORSO_JOINTS = (0, 1, 2, 3, 6, 9, 12, 13, 14)
"""pelvis, left/right hip, spine1-3, neck, left/right collar."""
FOOT_JOINTS = (7, 8, 10, 11)
"""left/right ankle, left/right foot; contact index = joint index − 1."""
WRIST_JOINTS = (20, 21)
PALM_JOINTS = ((22, 25, 28, 31), (37, 40, 43, 46))
"""Per hand (left, right): index1, middle1, pinky1, ring1; their mean is the palm centre."""
_HEAD = JOINT_INDEX["head"]


@dataclasses.dataclass(frozen=True)
class GuidanceWeights:
    """Residual weights (the paper's values)."""

    prior_rotation: float = 1.0
    prior_torso_position: float = 5.0
    smooth_rotation: float = 1.0
    smooth_prior_deviation: float = 10.0
    smooth_second_difference: float = 5.0
    foot_skating: float = 30.0
    wrist_position: float = 50.0
    palm_orientation: float = 10.0


@dataclasses.dataclass(frozen=True)
class WristObservations:
    """Aria wrist-and-palm tracking in the world frame (z up); hands ordered (left, right).

    A hand-frame with any NaN is ignored (with a warning); `valid` marks absent ones.
    """

    wrist_position: Tensor
    """(T, 2, 3)"""
    palm_position: Tensor
    """(T, 2, 3) palm centre (mean of the index, middle, ring and pinky knuckles)."""
    palm_normal: Tensor
    """(T, 2, 3) unit normal of the palm side (facing down in the rest T-pose)."""
    valid: Tensor | None = None
    """(T, 2) bool, or None: all present."""


@dataclasses.dataclass(frozen=True)
class Observations:
    """Measurements used by the modes that need them."""

    wrist3d: WristObservations | None = None


@dataclasses.dataclass(frozen=True)
class GuidanceLog:
    solver: SolverLog
    fell_back: Tensor
    """(S,) the solution was not finite and the unguided sample was returned."""
    ignored_observations: int
    """Hand-frames skipped because their observation had NaN (or a zero-length vector)."""
    mode: frozenset[str]
    time_s: float


@dataclasses.dataclass(frozen=True)
class Kinematics:
    """A body posed and placed by Eq. 5."""

    positions: Tensor
    """(S, T, 52, 3) world joint positions."""
    orientations: Tensor
    """(S, T, 52, 3, 3) world joint orientations."""


def place(shaped: ShapedBody, rotations: Tensor, T_world_cpf: Tensor) -> Kinematics:
    """Pose `rotations (S, T, 21|51, 3, 3)` and place the root so the CPF is at `T_world_cpf (T, 4, 4)`."""
    at_root = shaped.with_pose(se3.identity((), dtype=rotations.dtype, device=rotations.device), rotations)
    T_world_root = T_world_cpf @ se3.inverse(at_root.T_world_cpf)
    Ts = T_world_root[..., None, :, :] @ at_root.Ts_world_joint
    return Kinematics(positions=Ts[..., :3, 3], orientations=Ts[..., :3, :3])


def _chain(joint: int) -> set[int]:
    """`joint` and its ancestors."""
    out = set()
    while joint >= 0:
        out.add(joint)
        joint = PARENTS[joint]
    return out


@functools.lru_cache
def _signs(num_rotations: int) -> tuple[Tensor, Tensor]:
    """(52, J) how rotation j (joint j + 1) enters joint k's world position and orientation (±1, 0)."""
    head = _chain(_HEAD)
    position = torch.zeros(NUM_JOINTS, num_rotations, dtype=torch.float64)
    orientation = torch.zeros_like(position)
    for k in range(NUM_JOINTS):
        chain = _chain(k)
        for v in range(num_rotations):
            j = v + 1
            position[k, v] = (j in head) - (j in chain and j != k)
            orientation[k, v] = (j in chain) - (j in head)
    return position, orientation


def position_jacobian(kin: Kinematics, joints: tuple[int, ...], num_rotations: int) -> Tensor:
    """(S, T, 3K, 3J) d world position of `joints` / d δ of each rotation."""
    signs = _signs(num_rotations)[0][list(joints)].to(kin.positions)
    x = kin.positions
    lever = x[..., joints, None, :] - x[..., None, 1 : num_rotations + 1, :]  # (S, T, K, J, 3)
    blocks = so3.hat(lever) @ kin.orientations[..., None, 1 : num_rotations + 1, :, :]
    blocks = blocks * signs[:, :, None, None]
    return blocks.transpose(-3, -2).flatten(-4, -3).flatten(-2, -1)


def _direction_jacobian(kin: Kinematics, joints: tuple[int, ...], vectors: Tensor, num_rotations: int) -> Tensor:
    """(S, T, K·V·3, 3J) d vectors / d δ for `vectors (S, T, K, V, 3)` fixed in the frames of `joints`."""
    signs = _signs(num_rotations)[1][list(joints)].to(vectors)
    R = kin.orientations[..., None, None, 1 : num_rotations + 1, :, :]  # (S, T, 1, 1, J, 3, 3)
    blocks = -so3.hat(vectors)[..., None, :, :] @ R  # (S, T, K, V, J, 3, 3)
    blocks = blocks * signs[:, None, :, None, None]
    return blocks.transpose(-3, -2).flatten(-4, -3).flatten(-4, -3).flatten(-2, -1)


def _right_jacobian_inverse(r: Tensor) -> Tensor:
    """(..., 3, 3) `d log(exp(r)·exp(δ)) / dδ`."""
    return so3.left_jacobian_inverse(-r)


def _rotation_residuals(
    deviation: Tensor, velocity: Tensor, weights: GuidanceWeights, with_jacobians: bool
) -> list[Residual]:
    """Prior deviation and the three smoothness terms from `deviation (S, T, J, 3)`, `velocity (S, T-1, J, 3)`."""
    flat = lambda v: v.flatten(-2)
    w_dev, w_vel = weights.smooth_prior_deviation, weights.smooth_rotation
    w_acc = weights.smooth_second_difference
    values = (
        weights.prior_rotation * flat(deviation),
        w_vel * flat(velocity),
        w_dev * flat(deviation[:, 1:] - deviation[:, :-1]),
        w_acc * flat(velocity[:, 1:] - velocity[:, :-1]),
    )
    if not with_jacobians:
        return [Residual(v) for v in values]
    Jd = _right_jacobian_inverse(deviation)
    Jv_right, Jv_left = _right_jacobian_inverse(velocity), so3.left_jacobian_inverse(velocity)
    jacobians = (
        (weights.prior_rotation * Jd,),
        (-w_vel * Jv_left, w_vel * Jv_right),
        (-w_dev * Jd[:, :-1], w_dev * Jd[:, 1:]),
        (w_acc * Jv_left[:, :-1], -w_acc * (Jv_right[:, :-1] + Jv_left[:, 1:]), w_acc * Jv_right[:, 1:]),
    )
    return [Residual(v, j, per_joint=True) for v, j in zip(values, jacobians)]


def _torso_position(
    kin: Kinematics, target: Tensor, weight: float, num_rotations: int, with_jacobians: bool
) -> Residual:
    """Torso joints against the sample's `target (S, T, 9, 3)`."""
    values = weight * (kin.positions[..., TORSO_JOINTS, :] - target).flatten(-2)
    if not with_jacobians:
        return Residual(values)
    return Residual(values, (weight * position_jacobian(kin, TORSO_JOINTS, num_rotations),))


def _foot_skating(
    kin: Kinematics, contact: Tensor, weight: float, num_rotations: int, with_jacobians: bool
) -> Residual:
    """Foot displacement between frames scaled by `contact (S, T-1, 4)`."""
    scale = weight * contact.repeat_interleave(3, dim=-1)  # (S, T-1, 12)
    feet = kin.positions[..., FOOT_JOINTS, :].flatten(-2)
    values = scale * (feet[:, 1:] - feet[:, :-1])
    if not with_jacobians:
        return Residual(values)
    J = position_jacobian(kin, FOOT_JOINTS, num_rotations)
    return Residual(values, (-scale[..., None] * J[:, :-1], scale[..., None] * J[:, 1:]))


@dataclasses.dataclass(frozen=True)
class _WristTargets:
    """Cleaned wrist observations, and the palm's vectors in each wrist frame."""

    position: Tensor
    """(T, 2, 3) observed wrist positions (0 where invalid)."""
    vectors: Tensor
    """(T, 2, 2, 3) observed unit wrist→palm direction and palm normal (0 where invalid)."""
    valid: Tensor
    """(T, 2) 1.0 where the wrist position is observed."""
    vector_valid: Tensor
    """(T, 2, 2) 1.0 where the wrist→palm direction / palm normal is observed (MPS v1 has no normals)."""
    local_vectors: Tensor
    """(S, 1, 2, 2, 3) the same two vectors in each wrist frame of the model."""


def _palm_local(shaped: ShapedBody) -> tuple[Tensor, Tensor]:
    """Per hand in its wrist frame: palm-centre offset (..., 2, 3) and unit palm normal (..., 2, 3).

    At rest every joint frame is aligned with the model frame, so rest offsets are local ones.
    """
    joints = shaped.joints_zero
    wrist = joints[..., WRIST_JOINTS, :]
    offset = torch.stack([joints[..., list(p), :].mean(dim=-2) for p in PALM_JOINTS], dim=-2) - wrist
    across = joints[..., [p[0] for p in PALM_JOINTS], :] - joints[..., [p[2] for p in PALM_JOINTS], :]
    normal = torch.linalg.cross(across, offset)
    normal = normal * -torch.sign(normal[..., 1:2])  # palms face down (-y) in the T-pose
    return offset, normal / normal.norm(dim=-1, keepdim=True)


def wrist_observations(body: BodyModel, state: MotionState, T_world_cpf: Tensor, sample: int = 0) -> WristObservations:
    """What wrist tracking would report for one sample of `state` placed at `T_world_cpf (T, 4, 4)`."""
    dtype = T_world_cpf.dtype
    shaped = body.to(dtype=dtype).with_shape(state.betas[sample : sample + 1].to(dtype).mean(dim=1, keepdim=True))
    kin = place(shaped, state.local_rotations[sample : sample + 1].to(dtype), T_world_cpf)
    offset, normal = _palm_local(shaped)
    R = kin.orientations[0, :, WRIST_JOINTS]  # (T, 2, 3, 3)
    wrist = kin.positions[0, :, WRIST_JOINTS]
    return WristObservations(
        wrist_position=wrist,
        palm_position=wrist + (R @ offset[0, :, :, :, None])[..., 0],
        palm_normal=(R @ normal[0, :, :, :, None])[..., 0],
    )


def _wrist3d(
    kin: Kinematics, targets: _WristTargets, weights: GuidanceWeights, num_rotations: int, with_jacobians: bool
) -> list[Residual]:
    """Wrist positions and palm orientation against the observations."""
    w_pos = weights.wrist_position * targets.valid[..., None]  # (T, 2, 1)
    w_ori = weights.palm_orientation * targets.vector_valid[..., None]  # (T, 2, 2, 1)
    position = w_pos * (kin.positions[..., WRIST_JOINTS, :] - targets.position)
    R = kin.orientations[..., WRIST_JOINTS, None, :, :]  # (S, T, 2, 1, 3, 3)
    vectors = (R @ targets.local_vectors[..., None])[..., 0]  # (S, T, 2, 2, 3)
    orientation = w_ori * (vectors - targets.vectors)
    if not with_jacobians:
        return [Residual(position.flatten(-2)), Residual(orientation.flatten(-3))]
    J_pos = position_jacobian(kin, WRIST_JOINTS, num_rotations)
    J_ori = _direction_jacobian(kin, WRIST_JOINTS, vectors, num_rotations)
    return [
        Residual(position.flatten(-2), (w_pos.expand(-1, -1, 3).flatten(-2)[..., None] * J_pos,)),
        Residual(orientation.flatten(-3), (w_ori.expand(-1, -1, -1, 3).flatten(-3)[..., None] * J_ori,)),
    ]


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
    wrists: _WristTargets | None
    """With "wrist3d"."""
    ignored_observations: int

    def residuals(self, rotations: Tensor, with_jacobians: bool) -> list[Residual]:
        """Every term's residuals (and Jacobians) at `rotations (S, T, J, 3, 3)`."""
        J = rotations.shape[-3]
        kin = place(self.shaped, rotations, self.T_world_cpf)
        deviation = so3.log(self.prior.mT @ rotations)
        velocity = so3.log(rotations[:, :-1].mT @ rotations[:, 1:])
        out = _rotation_residuals(deviation, velocity, self.weights, with_jacobians)
        out.append(_torso_position(kin, self.prior_torso, self.weights.prior_torso_position, J, with_jacobians))
        if self.foot_contact is not None:
            out.append(_foot_skating(kin, self.foot_contact, self.weights.foot_skating, J, with_jacobians))
        if self.wrists is not None:
            out.extend(_wrist3d(kin, self.wrists, self.weights, J, with_jacobians))
        return out


def _wrist_targets(
    obs: WristObservations, shaped: ShapedBody, num_frames: int, dtype: torch.dtype
) -> tuple[_WristTargets, int]:
    """Clean the observations; returns the targets and how many marked-present hand-frames were unusable."""
    wrist, palm, normal = (t.to(dtype) for t in (obs.wrist_position, obs.palm_position, obs.palm_normal))
    if wrist.shape != (num_frames, 2, 3) or palm.shape != wrist.shape or normal.shape != wrist.shape:
        raise ValueError(
            f"wrist observations must be ({num_frames}, 2, 3), got {tuple(wrist.shape)}, "
            f"{tuple(palm.shape)}, {tuple(normal.shape)}."
        )
    marked = torch.ones(num_frames, 2, dtype=torch.bool) if obs.valid is None else obs.valid.to(torch.bool)
    valid = marked & wrist.isfinite().all(dim=-1)
    direction = palm - wrist
    lengths = torch.stack([direction.norm(dim=-1), normal.norm(dim=-1)], dim=-1)  # (T, 2, 2); NaN where unobserved
    vector_valid = valid[..., None] & lengths.isfinite() & (lengths > 1e-9)
    ignored = int((marked & ~valid).sum())
    vectors = torch.stack([direction, normal], dim=-2) / lengths[..., None]
    vectors = torch.where(vector_valid[..., None], vectors, 0.0)
    offset, palm_normal = _palm_local(shaped)
    local = torch.stack([offset / offset.norm(dim=-1, keepdim=True), palm_normal], dim=-2)
    targets = _WristTargets(
        torch.where(valid[..., None], wrist, 0.0), vectors, valid.to(dtype), vector_valid.to(dtype), local
    )
    return targets, ignored


def build_problem(
    body: BodyModel,
    state: MotionState,
    T_world_cpf: Tensor,
    *,
    mode: set[str] | frozenset[str],
    observations: Observations | None = None,
    weights: GuidanceWeights = GuidanceWeights(),
    dtype: torch.dtype = torch.float64,
) -> GuidanceProblem:
    """The guidance problem for a sample `state (S, T, ...)` and the head poses `T_world_cpf (T, 4, 4)`."""
    unknown = set(mode) - MODES
    if unknown:
        raise ValueError(f"unknown guidance mode(s) {sorted(unknown)}; choose from {sorted(MODES)}.")
    observations = observations or Observations()
    if "wrist3d" in mode and observations.wrist3d is None:
        raise ValueError("guidance mode 'wrist3d' needs Observations(wrist3d=WristObservations(...)).")
    T = state.body_rotations.shape[-4]
    if T_world_cpf.shape != (T, 4, 4):
        raise ValueError(f"T_world_cpf must be ({T}, 4, 4) to match the state, got {tuple(T_world_cpf.shape)}.")
    shaped = body.to(dtype=dtype).with_shape(state.betas.to(dtype).mean(dim=1, keepdim=True))
    T_world_cpf = T_world_cpf.to(dtype)
    prior = state.local_rotations.to(dtype)
    prior_kin = place(shaped, prior, T_world_cpf)
    foot_contact = None
    if "feet" in mode:
        c = state.contacts[..., [j - 1 for j in FOOT_JOINTS]].to(dtype).clamp(0.0, 1.0)
        foot_contact = torch.sqrt(c[:, 1:] * c[:, :-1])
    wrists, ignored = None, 0
    if "wrist3d" in mode:
        wrists, ignored = _wrist_targets(observations.wrist3d, shaped, T, dtype)
        if ignored:
            warnings.warn(
                f"wrist3d: ignored {ignored} of {2 * T} hand observations with NaN or zero-length vectors.",
                stacklevel=3,
            )
    return GuidanceProblem(
        shaped=shaped,
        T_world_cpf=T_world_cpf,
        prior=prior,
        prior_torso=prior_kin.positions[..., TORSO_JOINTS, :],
        weights=weights,
        foot_contact=foot_contact,
        wrists=wrists,
        ignored_observations=ignored,
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
) -> tuple[MotionState, GuidanceLog]:
    """Refine sampled rotations with Levenberg–Marquardt ("post" guidance).

    Args:
        state: the sample, `(S, T, ...)`; β is averaged over time as in `place_in_world`.
        T_world_cpf: (T, 4, 4) head poses (z-up world).
        mode: subset of {"feet", "wrist3d"}; prior and smoothness terms are always on.
    Returns:
        The state with refined body (and hand) rotations, and the log. A sample whose
        solution is not finite is returned unguided, flagged in `log.fell_back`.
    """
    started = time.perf_counter()
    problem = build_problem(
        body, state, T_world_cpf, mode=mode, observations=observations, weights=weights, dtype=dtype
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
    hands = None if state.hand_rotations is None else rotations[..., 21:, :, :].to(state.hand_rotations.dtype)
    guided = dataclasses.replace(state, body_rotations=body_rotations, hand_rotations=hands)
    log = GuidanceLog(
        solver=solver_log,
        fell_back=~finite,
        ignored_observations=problem.ignored_observations,
        mode=frozenset(mode),
        time_s=time.perf_counter() - started,
    )
    return guided, log
