"""Guidance: banded solve, analytic Jacobians, LM behaviour, foot and wrist guidance, NaN safety."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from egoallo import guidance
from egoallo.body import BodyModel
from egoallo.geometry import se3, so3
from egoallo.cameras import CameraModel
from egoallo.guidance import (
    GuidanceWeights,
    build_problem,
    guide,
    levenberg_marquardt,
    wrist_observations,
)
from egoallo.guidance.feet import FOOT_CONTACT_LIFT_M, FOOT_JOINTS
from egoallo.guidance.kinematics import place
from egoallo.guidance.solver import (
    Residual,
    _block_diagonal,
    normal_equations,
    solve_banded,
)
from egoallo.inference import place_in_world
from egoallo.observations import HandObservations, Observations, WristObservations
from egoallo.prior.state import MotionState

F64 = torch.float64


@pytest.fixture(scope="module")
def body() -> BodyModel:
    return BodyModel.load_default()


def _axis_angle(axis: list[float], angle: Tensor) -> Tensor:
    return so3.exp(torch.tensor(axis, dtype=F64) * angle[..., None])


def _planted_motion(body: BodyModel, T: int) -> tuple[MotionState, Tensor, Tensor]:
    """Standing still with both feet planted (contact 1) while the spine, neck and right arm move.

    Returns the state (1, T, ...), its head poses T_world_cpf (T, 4, 4) and joints (T, 52, 3).
    """
    t = torch.arange(T, dtype=F64) / 30.0
    rot = torch.eye(3, dtype=F64).repeat(T, 21, 1, 1)
    rot[:, 15] = _axis_angle([0, 0, 1], torch.full((T,), -1.2))  # left shoulder: arm down
    rot[:, 16] = _axis_angle([0, 0, 1], 0.8 * torch.sin(2 * math.pi * 0.7 * t) + 1.0)
    rot[:, 5] = _axis_angle([1, 0, 0], 0.25 * torch.sin(2 * math.pi * 0.5 * t))  # spine2 bends
    rot[:, 11] = _axis_angle([0, 1, 0], 0.4 * torch.sin(2 * math.pi * 0.3 * t))  # neck turns
    R_zup = so3.rot_x(torch.tensor(math.pi / 2, dtype=F64))
    T_world_root = se3.from_rotation_translation(R_zup, torch.tensor([0.0, 0.0, 0.95], dtype=F64)).expand(T, 4, 4)
    posed = body.to(dtype=F64).with_shape(torch.zeros(16, dtype=F64)).with_pose(T_world_root, rot)
    contacts = torch.zeros(1, T, 21, dtype=F64)
    contacts[..., [j - 1 for j in FOOT_JOINTS]] = 1.0
    state = MotionState(torch.zeros(1, T, 16, dtype=F64), rot[None], contacts, None)
    return state, posed.T_world_cpf, posed.joints_world


def _perturbed(state: MotionState, offsets: dict[int, tuple[list[float], Tensor]]) -> MotionState:
    """Right-multiply joint `j`'s rotation by `exp(axis · angle(t))` for each `j: (axis, angle (T,))`."""
    rot = state.body_rotations.clone()
    for joint, (axis, angle) in offsets.items():
        rot[:, :, joint - 1] = rot[:, :, joint - 1] @ _axis_angle(axis, angle)
    return MotionState(state.betas, rot, state.contacts, state.hand_rotations)


def _random_problem(body: BodyModel, T: int, hands: bool, S: int = 2):
    g = torch.Generator().manual_seed(0)
    randn = lambda *shape: torch.randn(*shape, generator=g, dtype=F64)
    J = 51 if hands else 21
    rot = so3.exp(0.3 * randn(S, T, J, 3))
    state = MotionState(
        betas=(0.5 * randn(S, 1, 16)).expand(S, T, 16),
        body_rotations=rot[..., :21, :, :],
        contacts=torch.rand(S, T, 21, generator=g, dtype=F64),
        hand_rotations=rot[..., 21:, :, :] if hands else None,
    )
    T_world_cpf = se3.from_rotation_translation(so3.exp(randn(T, 3)), randn(T, 3))
    wrist = randn(T, 2, 3)
    obs = WristObservations(wrist, wrist + 0.1 * randn(T, 2, 3), randn(T, 2, 3))
    mode, hand_obs = {"feet", "wrist3d"}, None
    if hands:  # also every hand keypoint term, through a fisheye camera; Huber both below and above its threshold
        params = torch.tensor([607.0, 718.5, 703.0, 0.40, -0.50, 0.24, 0.99, -1.57, 0.61, -4e-4, -7e-4, -6e-4, -2e-4, 2e-4, -2e-4])
        camera = CameraModel("fisheye624", params.to(F64), 1408, 1408, se3.from_rotation_translation(so3.exp(0.2 * randn(3)), 0.05 * randn(3)))
        keypoints_3d = randn(T, 2, 21, 3) * 0.05
        keypoints_3d[..., 2] += 0.5
        hand_obs = HandObservations(camera, 100.0 + 1200.0 * torch.rand(T, 2, 21, 2, generator=g, dtype=F64), keypoints_3d)
        mode = mode | {"hands"}
    weights = GuidanceWeights(hand_reprojection_huber=0.8)
    problem = build_problem(body, state, T_world_cpf, mode=mode, observations=Observations(obs, hand_obs), weights=weights,
                            floor_z=-0.3)
    x = problem.prior @ so3.exp(0.2 * randn(*problem.prior.shape[:-2], 3))
    return problem, x


def _dense_jacobian(residuals: list[Residual], T: int, n: int) -> Tensor:
    """(S, M, T·n) the stacked Jacobian of all residuals."""
    rows = []
    for r in residuals:
        S, W, m = r.values.shape
        dense = r.values.new_zeros(S, W, m, T, n)
        for a, Ja in enumerate(r.jacobians):
            Ja = _block_diagonal(Ja) if r.per_joint else Ja
            for w in range(W):
                dense[:, w, :, w + a] = Ja[:, w]
        rows.append(dense.reshape(S, W * m, T * n))
    return torch.cat(rows, dim=1)


def _dense_hessian(diagonal: Tensor, upper: tuple[Tensor, Tensor]) -> Tensor:
    S, T, n, _ = diagonal.shape
    H = diagonal.new_zeros(S, T, n, T, n)
    for t in range(T):
        H[:, t, :, t] = diagonal[:, t]
        for k, U in enumerate(upper, start=1):
            if t + k < T:
                H[:, t, :, t + k] = U[:, t]
                H[:, t + k, :, t] = U[:, t].mT
    return H.reshape(S, T * n, T * n)


def _skate(joints: Tensor) -> Tensor:
    """(S,) summed horizontal displacement of the foot joints between frames (z-up world), metres."""
    feet = joints[..., FOOT_JOINTS, :2]
    return (feet[:, 1:] - feet[:, :-1]).norm(dim=-1).sum(dim=(1, 2))


def _mpjpe_mm(a: Tensor, b: Tensor) -> float:
    return float((a[..., :22, :] - b[..., :22, :]).norm(dim=-1).mean()) * 1000


@pytest.mark.parametrize("T", [1, 2, 7, 10])
def test_banded_solve_matches_dense(T: int) -> None:
    g = torch.Generator().manual_seed(T)
    S, n = 2, 6
    A = torch.randn(S, T * n + 5, T * n, generator=g, dtype=F64)
    band = (torch.arange(T)[:, None] - torch.arange(T)[None, :]).abs() <= 2
    mask = band.repeat_interleave(n, 0).repeat_interleave(n, 1)
    H = (A.mT @ A) * mask + T * n * torch.eye(T * n, dtype=F64)  # SPD (diagonally dominant), bandwidth 2 frames
    H = 0.5 * (H + H.mT)
    blocks = H.reshape(S, T, n, T, n)
    diagonal = torch.stack([blocks[:, t, :, t] for t in range(T)], dim=1)
    upper = tuple(
        torch.stack([blocks[:, t, :, t + k] for t in range(T - k)], dim=1) if T > k else H.new_zeros(S, 0, n, n)
        for k in (1, 2)
    )
    assert torch.equal(_dense_hessian(diagonal, upper), H)
    b = torch.randn(S, T, n, generator=g, dtype=F64)
    x, ok = solve_banded(diagonal, upper, b)
    assert ok.all()
    expected = torch.linalg.solve(H, b.reshape(S, T * n, 1)).reshape(S, T, n)
    torch.testing.assert_close(x, expected, atol=1e-8, rtol=0)


def test_banded_solve_flags_the_system_that_is_not_positive_definite() -> None:
    T, n = 5, 3
    g = torch.Generator().manual_seed(0)
    diagonal = torch.eye(n, dtype=F64).repeat(3, T, 1, 1) * 4.0
    upper = (0.5 * torch.eye(n, dtype=F64).repeat(3, T - 1, 1, 1), torch.zeros(3, T - 2, n, n, dtype=F64))
    diagonal[1, 2, 0, 0] = -1.0  # system 1 is indefinite; 0 and 2 are fine
    b = torch.randn(3, T, n, generator=g, dtype=F64)
    x, ok = solve_banded(diagonal, upper, b)
    assert ok.tolist() == [True, False, True] and x[1].isnan().all()
    for k in (0, 2):
        H = _dense_hessian(diagonal[k : k + 1], tuple(u[k : k + 1] for u in upper))[0]
        torch.testing.assert_close(x[k], torch.linalg.solve(H, b[k].flatten()).reshape(T, n), atol=1e-10, rtol=0)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")  # from torch.func
@pytest.mark.parametrize("hands", [False, True])
def test_analytic_jacobians_and_normal_equations(body: BodyModel, hands: bool) -> None:
    T = 3
    problem, x = _random_problem(body, T, hands, S=1 if hands else 2)
    n = x.shape[-3] * 3
    residuals = problem.residuals(x, True)

    def stacked(delta: Tensor) -> Tensor:
        moved = x @ so3.exp(delta.unflatten(-1, (-1, 3)))
        return torch.cat([r.values.flatten(1) for r in problem.residuals(moved, False)], dim=1)

    auto = torch.func.jacfwd(stacked)(x.new_zeros(x.shape[0], T, n))  # (S, M, S, T, n)
    auto = torch.stack([auto[s, :, s] for s in range(x.shape[0])]).flatten(-2)
    J = _dense_jacobian(residuals, T, n)
    row_scale = auto.abs().amax(dim=-1, keepdim=True).clamp_min(1.0)  # projections far outside the view are large
    torch.testing.assert_close(J / row_scale, auto / row_scale, atol=1e-10, rtol=1e-10)

    eq = normal_equations(residuals, T)
    r = stacked(x.new_zeros(x.shape[0], T, n))
    torch.testing.assert_close(_dense_hessian(eq.diagonal, eq.upper), J.mT @ J, atol=1e-9, rtol=1e-10)
    torch.testing.assert_close(eq.gradient.flatten(1), (J.mT @ r[..., None])[..., 0], atol=1e-9, rtol=1e-10)


def test_place_matches_inference_placement(body: BodyModel) -> None:
    problem, x = _random_problem(body, 5, hands=True)
    state = MotionState(
        problem.shaped.betas.expand(-1, 5, -1), x[..., :21, :, :], torch.zeros(2, 5, 21), x[..., 21:, :, :]
    )
    _, _, joints = place_in_world(body.to(dtype=F64), state, problem.T_world_cpf)
    torch.testing.assert_close(place(problem.shaped, x, problem.T_world_cpf).positions, joints)


def test_lm_cost_decreases_monotonically(body: BodyModel) -> None:
    problem, x = _random_problem(body, 12, hands=False)
    _, log = levenberg_marquardt(problem.residuals, x, iterations=15)
    costs = log.costs
    assert (costs[1:] <= costs[:-1]).all()
    assert log.accepted.sum() >= 5
    assert (costs[-1] < 0.5 * costs[0]).all()
    assert log.time_s > 0 and log.damping[0].eq(0.1).all()


def test_feet_guidance_removes_skating(body: BodyModel) -> None:
    T = 64
    truth, T_world_cpf, joints_true = _planted_motion(body, T)
    t = torch.arange(T, dtype=F64) / 30.0
    prior = _perturbed(
        truth,
        {
            1: ([1, 0, 0], 0.15 * torch.sin(2 * math.pi * 0.6 * t)),  # left hip
            2: ([0, 0, 1], 0.10 * torch.sin(2 * math.pi * 0.4 * t + 1)),  # right hip
            4: ([1, 0, 0], 0.15 * torch.sin(2 * math.pi * 0.5 * t + 2)),  # left knee
            3: ([0, 0, 1], 0.08 * torch.sin(2 * math.pi * 0.3 * t)),  # spine1
        },
    )
    body64 = body.to(dtype=F64)
    _, _, joints_prior = place_in_world(body64, prior, T_world_cpf)
    guided, log = guide(body, prior, T_world_cpf, mode={"feet"})
    _, _, joints_guided = place_in_world(body64, guided, T_world_cpf)

    skate_prior, skate_guided = float(_skate(joints_prior)), float(_skate(joints_guided))
    before, after = _mpjpe_mm(joints_prior[0], joints_true), _mpjpe_mm(joints_guided[0], joints_true)
    moved = _mpjpe_mm(joints_guided, joints_prior)
    print(
        f"\nfeet: skate {skate_prior * 1000:.0f} -> {skate_guided * 1000:.0f} mm over {T} frames; "
        f"MPJPE vs planted truth {before:.1f} -> {after:.1f} mm; guided vs sample {moved:.1f} mm; "
        f"{log.solver.iterations} iterations, {log.time_s:.2f} s"
    )
    assert skate_guided <= 0.5 * skate_prior
    assert after <= before and moved < 30.0
    assert not log.fell_back.any() and log.mode == {"feet"}


def test_feet_guidance_puts_planted_feet_on_a_known_floor(body: BodyModel) -> None:
    T = 32
    truth, T_world_cpf, joints_true = _planted_motion(body, T)
    rest = body.to(dtype=F64).with_shape(torch.zeros(16, dtype=F64)).rest_joint_heights[list(FOOT_JOINTS)]
    floor_z = float((joints_true[:, FOOT_JOINTS, 2] - rest).mean()) - FOOT_CONTACT_LIFT_M
    crouch = torch.full((T,), 0.6, dtype=F64)  # both knees bent: the head stays, so the feet lift off the floor
    prior = _perturbed(truth, {4: ([1, 0, 0], crouch), 5: ([1, 0, 0], crouch)})
    body64 = body.to(dtype=F64)
    _, _, joints_prior = place_in_world(body64, prior, T_world_cpf)

    def lift_mm(joints: Tensor) -> float:
        return 1000 * float((joints[0, :, FOOT_JOINTS, 2] - joints_true[:, FOOT_JOINTS, 2]).abs().mean())

    skating_only, _ = guide(body, prior, T_world_cpf, mode={"feet"})
    on_floor, log = guide(body, prior, T_world_cpf, mode={"feet"}, floor_z=floor_z)
    lifts = [lift_mm(place_in_world(body64, s, T_world_cpf)[2]) for s in (prior, skating_only, on_floor)]
    print(f"\nfeet above the floor: sample {lifts[0]:.1f} mm, skating term only {lifts[1]:.1f} mm, with the floor {lifts[2]:.1f} mm")
    assert lifts[0] > 30.0 and lifts[1] > 0.8 * lifts[0]  # skating alone cannot see a constant lift
    assert lifts[2] < 0.3 * lifts[0]
    assert not log.fell_back.any()


def test_wrist3d_guidance_tracks_observed_wrists(body: BodyModel) -> None:
    T = 48
    truth, T_world_cpf, _ = _planted_motion(body, T)
    observed = wrist_observations(body, truth, T_world_cpf)
    offsets = {
        j: (axis, torch.full((T,), 0.4))
        for j, axis in (
            (16, [0, 1, 0]),
            (17, [1, 0, 0]),
            (18, [0, 1, 0]),
            (19, [0, 0, 1]),
            (20, [1, 0, 0]),
            (21, [0, 1, 0]),
        )
    }
    prior = _perturbed(truth, offsets)

    def wrist_error_mm(state: MotionState) -> float:
        got = wrist_observations(body, state, T_world_cpf).wrist_position
        return float((got - observed.wrist_position).norm(dim=-1).mean()) * 1000

    guided, log = guide(body, prior, T_world_cpf, mode={"feet", "wrist3d"}, observations=Observations(observed))
    print(f"\nwrist3d: wrist error {wrist_error_mm(prior):.0f} -> {wrist_error_mm(guided):.1f} mm")
    assert wrist_error_mm(prior) > 100.0
    assert wrist_error_mm(guided) < 30.0
    assert log.ignored_observations == 0


def test_nan_observations_are_ignored_with_a_count(body: BodyModel) -> None:
    T = 32
    truth, T_world_cpf, _ = _planted_motion(body, T)
    observed = wrist_observations(body, truth, T_world_cpf)
    wrist = observed.wrist_position.clone()
    wrist[::4, 0] = torch.nan  # 8 left-hand frames
    normal = observed.palm_normal.clone()
    normal[5, 1, 2] = torch.nan  # 1 right-hand frame: only its palm-normal term is dropped (MPS v1 has no normals)
    valid = torch.ones(T, 2, dtype=torch.bool)
    valid[1, 1] = False  # absent: ignored silently
    obs = WristObservations(wrist, observed.palm_position, normal, valid)
    prior = _perturbed(truth, {18: ([0, 1, 0], torch.full((T,), 0.4))})
    with pytest.warns(UserWarning, match="ignored 8 of 64"):
        guided, log = guide(body, prior, T_world_cpf, mode={"wrist3d"}, observations=Observations(obs))
    assert log.ignored_observations == 8
    assert guided.body_rotations.isfinite().all() and not log.fell_back.any()
    err = (wrist_observations(body, guided, T_world_cpf).wrist_position - observed.wrist_position).norm(dim=-1)
    assert float(err.mean()) < 0.03


def test_non_finite_solution_falls_back_to_the_sample(body: BodyModel, monkeypatch: pytest.MonkeyPatch) -> None:
    T = 16
    truth, T_world_cpf, _ = _planted_motion(body, T)
    state = MotionState(
        truth.betas.expand(2, -1, -1),
        truth.body_rotations.expand(2, -1, -1, -1, -1),
        truth.contacts.expand(2, -1, -1),
        None,
    )
    real = guidance.problem.levenberg_marquardt

    def broken(residual_fn, rotations, iterations, config):
        out, log = real(residual_fn, rotations, iterations, config)
        return out.index_fill(0, torch.tensor([1]), torch.nan), log

    monkeypatch.setattr(guidance.problem, "levenberg_marquardt", broken)
    with pytest.warns(UserWarning, match="1 sample"):
        guided, log = guide(body, state, T_world_cpf, mode={"feet"})
    assert log.fell_back.tolist() == [False, True]
    torch.testing.assert_close(guided.body_rotations[1], state.body_rotations[1])
    assert guided.body_rotations.isfinite().all()


def test_nan_steps_are_rejected(body: BodyModel, monkeypatch: pytest.MonkeyPatch) -> None:
    problem, x = _random_problem(body, 6, hands=False)
    monkeypatch.setattr(guidance.solver, "solve_banded", lambda d, u, b, kd=None: (torch.full_like(b, torch.nan), None))
    out, log = levenberg_marquardt(problem.residuals, x, iterations=3)
    assert torch.equal(out, x) and not log.accepted.any()


def test_hands_and_float32(body: BodyModel) -> None:
    T = 16
    truth, T_world_cpf, _ = _planted_motion(body, T)
    g = torch.Generator().manual_seed(1)
    hands = so3.exp(0.2 * torch.randn(1, T, 30, 3, generator=g, dtype=F64))
    state = MotionState(truth.betas, truth.body_rotations, truth.contacts, hands)
    guided, log = guide(body, state, T_world_cpf, mode={"feet"}, dtype=torch.float32, iterations=5)
    assert guided.hand_rotations.shape == hands.shape and guided.hand_rotations.dtype == F64
    assert (log.solver.costs[-1] <= log.solver.costs[0]).all() and not log.fell_back.any()


def test_bad_arguments(body: BodyModel) -> None:
    truth, T_world_cpf, _ = _planted_motion(body, 8)
    with pytest.raises(ValueError, match="unknown guidance mode"):
        guide(body, truth, T_world_cpf, mode={"hamer"})
    with pytest.raises(ValueError, match="needs Observations"):
        guide(body, truth, T_world_cpf, mode={"wrist3d"})
    with pytest.raises(ValueError, match="T_world_cpf"):
        guide(body, truth, T_world_cpf[:4], mode={"feet"})
    assert GuidanceWeights().foot_skating == 30.0
