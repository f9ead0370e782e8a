"""Property tests for `egoallo.geometry` against scipy and closed-form identities."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from egoallo.geometry import se3, so3

N = 1000
DTYPES = [torch.float32, torch.float64]
ATOL = {torch.float32: 2e-5, torch.float64: 1e-10}


def _t(x: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x), dtype=dtype)


def _close(actual: torch.Tensor, expected, dtype: torch.dtype, scale: float = 1.0) -> None:
    assert actual.dtype == dtype
    expected = torch.as_tensor(np.asarray(expected), dtype=torch.float64)
    torch.testing.assert_close(actual.double(), expected, atol=ATOL[dtype] * scale, rtol=0.0)


def _wxyz(r: Rotation) -> np.ndarray:
    """Scipy quaternions (x, y, z, w) reordered to (w, x, y, z)."""
    return r.as_quat()[..., [3, 0, 1, 2]]


def _same_quat(q: torch.Tensor, expected: np.ndarray, dtype: torch.dtype) -> None:
    """Compare quaternions up to sign."""
    expected = torch.as_tensor(expected, dtype=torch.float64)
    q = q.double()
    sign = torch.where((q * expected).sum(-1, keepdim=True) < 0, -1.0, 1.0)
    torch.testing.assert_close(q, sign * expected, atol=ATOL[dtype], rtol=0.0)


def _random_axes(rng: np.random.Generator, n: int) -> np.ndarray:
    axes = rng.normal(size=(n, 3))
    return axes / np.linalg.norm(axes, axis=-1, keepdims=True)


def _is_rotation(R: torch.Tensor, dtype: torch.dtype) -> None:
    eye = torch.eye(3, dtype=torch.float64).expand_as(R)
    _close(R.transpose(-1, -2) @ R, eye, dtype, scale=10)
    _close(torch.linalg.det(R), np.ones(R.shape[:-2]), dtype, scale=10)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


# SO(3) against scipy.


@pytest.mark.parametrize("dtype", DTYPES)
def test_from_quat_normalises_and_matches_scipy(rng, dtype):
    r = Rotation.random(N, random_state=rng)
    scale = rng.uniform(0.1, 10.0, size=(N, 1))
    _close(so3.from_quat(_t(_wxyz(r) * scale, dtype)), r.as_matrix(), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_from_quat_xyzw_normalises_and_matches_scipy(rng, dtype):
    r = Rotation.random(N, random_state=rng)
    scale = rng.uniform(0.1, 10.0, size=(N, 1))
    _close(so3.from_quat_xyzw(_t(r.as_quat() * scale, dtype)), r.as_matrix(), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_to_quat_matches_scipy_and_is_canonical(rng, dtype):
    r = Rotation.random(N, random_state=rng)
    q = so3.to_quat(_t(r.as_matrix(), dtype))
    assert q.dtype == dtype and q.shape == (N, 4)
    assert (q[:, 0] >= 0).all()
    _same_quat(q, _wxyz(r), dtype)
    _close(torch.linalg.vector_norm(q, dim=-1), np.ones(N), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_exp_matches_scipy(rng, dtype):
    omega = _random_axes(rng, N) * rng.uniform(0.0, 3 * math.pi, size=(N, 1))
    _close(so3.exp(_t(omega, dtype)), Rotation.from_rotvec(omega).as_matrix(), dtype)
    _close(so3.from_axis_angle(_t(omega, dtype)), Rotation.from_rotvec(omega).as_matrix(), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_log_matches_scipy(rng, dtype):
    r = Rotation.random(N, random_state=rng)
    R = _t(r.as_matrix(), dtype)
    _close(so3.log(R), r.as_rotvec(), dtype, scale=5)
    _close(so3.to_axis_angle(R), r.as_rotvec(), dtype, scale=5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_exp_log_round_trip(rng, dtype):
    R = _t(Rotation.random(N, random_state=rng).as_matrix(), dtype)
    _close(so3.exp(so3.log(R)), R, dtype, scale=5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_slerp_matches_scipy(rng, dtype):
    from scipy.spatial.transform import Slerp

    r0 = Rotation.random(N, random_state=rng)
    # Relative angles over [0, pi), including near identity and near pi.
    angles = np.concatenate(
        [rng.uniform(0.0, math.pi, N - 200), 10.0 ** rng.uniform(-9, -3, 100), math.pi - 10.0 ** rng.uniform(-6, -3, 100)]
    )
    r1 = r0 * Rotation.from_rotvec(_random_axes(rng, N) * angles[:, None])
    t = rng.uniform(0.0, 1.0, N)
    expected = np.stack([Slerp([0.0, 1.0], Rotation.concatenate([a, b]))(w).as_matrix() for a, b, w in zip(r0, r1, t)])
    R0, R1 = _t(r0.as_matrix(), dtype), _t(r1.as_matrix(), dtype)
    actual = so3.slerp(R0, R1, _t(t, dtype))
    assert actual.shape == (N, 3, 3)
    _close(actual, expected, dtype, scale=20)
    _is_rotation(actual, dtype)
    # The ends, identity (no motion), and the shortest arc: the angle travelled is t times the relative angle.
    _close(so3.slerp(R0, R1, _t(np.zeros(N), dtype)), r0.as_matrix(), dtype, scale=5)
    _close(so3.slerp(R0, R1, _t(np.ones(N), dtype)), r1.as_matrix(), dtype, scale=20)
    _close(so3.slerp(R0, R0, _t(t, dtype)), r0.as_matrix(), dtype, scale=5)
    _close(so3.geodesic_angle(R0, actual), t * angles, dtype, scale=2000 if dtype == torch.float32 else 20)
    # Broadcasting: one pair at many fractions, as `live.stream.interpolate` uses it.
    many = so3.slerp(R0[0], R1[0], _t(t[:7], dtype))
    assert many.shape == (7, 3, 3)
    _close(many, Slerp([0.0, 1.0], Rotation.concatenate([r0[0], r1[0]]))(t[:7]).as_matrix(), dtype, scale=20)


def test_slerp_at_pi_stays_on_a_half_turn_arc():
    """At a relative angle of exactly pi either arc is shortest; the result is still a rotation on one of them."""
    R0 = so3.identity((), dtype=torch.float64)
    for axis in [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (1.0, 1.0, 1.0)]:
        a = np.asarray(axis) / np.linalg.norm(axis)
        R1 = _t(2.0 * np.outer(a, a) - np.eye(3), torch.float64)
        out = so3.slerp(R0, R1, _t(np.array([0.0, 0.25, 0.5, 1.0]), torch.float64))
        _is_rotation(out, torch.float64)
        _close(so3.geodesic_angle(R0, out), math.pi * np.array([0.0, 0.25, 0.5, 1.0]), torch.float64, scale=100)
        _close(out[-1], R1, torch.float64, scale=100)
        omega = so3.log(out[2])
        cos = (omega / torch.linalg.vector_norm(omega) * _t(a, torch.float64)).sum()
        _close(cos.abs(), 1.0, torch.float64, scale=100)  # about the same axis


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axes", ["ZXY", "XYZ", "ZYX", "YZX", "ZYZ", "xzx"])
def test_from_euler_intrinsic_matches_scipy(rng, dtype, axes):
    angles = rng.uniform(-math.pi, math.pi, size=(N, 3))
    expected = Rotation.from_euler(axes.upper(), angles).as_matrix()
    _close(so3.from_euler_intrinsic(_t(angles, dtype), axes), expected, dtype)
    degrees = np.rad2deg(angles)
    _close(so3.from_euler_intrinsic(_t(degrees, dtype), axes, degrees=True), expected, dtype)


def test_from_euler_intrinsic_is_product_of_elementary_rotations():
    a = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64)
    R = so3.from_euler_intrinsic(a, "ZXY")
    torch.testing.assert_close(R, so3.rot_z(a[0]) @ so3.rot_x(a[1]) @ so3.rot_y(a[2]))
    with pytest.raises(ValueError):
        so3.from_euler_intrinsic(a, "ZX")
    with pytest.raises(ValueError):
        so3.from_euler_intrinsic(a, "ZXW")


@pytest.mark.parametrize("dtype", DTYPES)
def test_elementary_rotations_match_scipy(rng, dtype):
    theta = rng.uniform(-math.pi, math.pi, size=N)
    for fn, axis in [(so3.rot_x, "x"), (so3.rot_y, "y"), (so3.rot_z, "z")]:
        _close(fn(_t(theta, dtype)), Rotation.from_euler(axis, theta[:, None]).as_matrix(), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_compose_inverse_apply_match_scipy(rng, dtype):
    r1 = Rotation.random(N, random_state=rng)
    r2 = Rotation.random(N, random_state=rng)
    p = rng.normal(size=(N, 3))
    R1, R2 = _t(r1.as_matrix(), dtype), _t(r2.as_matrix(), dtype)
    _close(so3.compose(R1, R2), (r1 * r2).as_matrix(), dtype)
    _close(so3.inverse(R1), r1.inv().as_matrix(), dtype)
    _close(so3.apply(R1, _t(p, dtype)), r1.apply(p), dtype)
    q1, q2 = _t(_wxyz(r1), dtype), _t(_wxyz(r2), dtype)
    _same_quat(so3.quat_multiply(q1, q2), _wxyz(r1 * r2), dtype)
    _same_quat(so3.quat_inverse(q1), _wxyz(r1.inv()), dtype)
    _close(so3.quat_apply(q1, _t(p, dtype)), r1.apply(p), dtype)


def test_quat_inverse_of_non_unit_quaternion(rng):
    q = _t(rng.normal(size=(N, 4)), torch.float64)
    identity = torch.zeros(N, 4, dtype=torch.float64)
    identity[:, 0] = 1.0
    torch.testing.assert_close(so3.quat_multiply(q, so3.quat_inverse(q)), identity)


@pytest.mark.parametrize("dtype", DTYPES)
def test_geodesic_angle_matches_scipy(rng, dtype):
    r1 = Rotation.random(N, random_state=rng)
    r2 = Rotation.random(N, random_state=rng)
    angle = so3.geodesic_angle(_t(r1.as_matrix(), dtype), _t(r2.as_matrix(), dtype))
    _close(angle, (r1.inv() * r2).magnitude(), dtype, scale=5)
    R = _t(r1.as_matrix(), dtype)
    _close(so3.geodesic_angle(R, R), np.zeros(N), dtype, scale=5)


def test_batch_shapes_and_broadcasting(rng):
    omega = _t(rng.normal(size=(2, 5, 3)), torch.float64)
    R = so3.exp(omega)
    assert R.shape == (2, 5, 3, 3)
    assert so3.log(R).shape == (2, 5, 3)
    assert so3.to_quat(R).shape == (2, 5, 4)
    assert so3.project(R).shape == (2, 5, 3, 3)
    assert so3.yaw(R).shape == (2, 5)
    assert so3.apply(R[:, :1], _t(rng.normal(size=(5, 3)), torch.float64)).shape == (2, 5, 3)
    assert so3.compose(R[0], R[:, :1]).shape == (2, 5, 3, 3)
    assert so3.exp(torch.zeros(3)).shape == (3, 3)
    assert so3.identity((4,), dtype=torch.float64).shape == (4, 3, 3)
    T = se3.exp(_t(rng.normal(size=(2, 5, 6)), torch.float64))
    assert T.shape == (2, 5, 4, 4)
    assert se3.log(T).shape == (2, 5, 6)
    assert se3.to_quat_xyz(T).shape == (2, 5, 7)
    assert se3.apply(T, _t(rng.normal(size=(3,)), torch.float64)).shape == (2, 5, 3)
    assert se3.from_rotation_translation(R[0, 0], torch.zeros(7, 3, dtype=torch.float64)).shape == (7, 4, 4)


# Near identity and near pi.


@pytest.mark.parametrize("dtype", DTYPES)
def test_near_identity(rng, dtype):
    angles = 10.0 ** rng.uniform(-8, -4, size=(N, 1))
    omega = _random_axes(rng, N) * angles
    r = Rotation.from_rotvec(omega)
    _close(so3.exp(_t(omega, dtype)), r.as_matrix(), dtype)
    _same_quat(so3.to_quat(_t(r.as_matrix(), dtype)), _wxyz(r), dtype)
    # Relative accuracy of log(exp(w)) in float64, where exp is exact enough.
    if dtype == torch.float64:
        recovered = so3.log(so3.exp(_t(omega, dtype)))
        rel = (recovered - _t(omega, dtype)).norm(dim=-1) / _t(angles[:, 0], dtype)
        assert rel.max() < 1e-7
        recovered = so3.log(_t(r.as_matrix(), dtype))
        torch.testing.assert_close(recovered, _t(omega, dtype), atol=1e-15, rtol=1e-7)
    else:
        _close(so3.log(_t(r.as_matrix(), dtype)), omega, dtype)
    _close(so3.log(so3.identity((3,), dtype=dtype)), np.zeros((3, 3)), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_near_pi(rng, dtype):
    eps = np.concatenate([10.0 ** rng.uniform(-6, -2, size=N - 100), np.zeros(100)])
    angles = math.pi - eps
    axes = _random_axes(rng, N)
    r = Rotation.from_rotvec(axes * angles[:, None])
    R = _t(r.as_matrix(), dtype)

    omega = so3.log(R)
    norm = torch.linalg.vector_norm(omega, dim=-1)
    assert (norm <= math.pi + 1e-6).all()
    _close(norm, angles, dtype, scale=20)
    # The axis matches up to sign (the sign is ambiguous at exactly pi).
    cos = (omega * _t(axes, dtype)).sum(-1) / norm
    _close(cos.abs(), np.ones(N), dtype, scale=5)
    _close(so3.exp(omega), R, dtype, scale=5)
    _same_quat(so3.to_quat(R), _wxyz(r), dtype)

    # Exactly pi about the coordinate axes and a diagonal axis.
    for axis in [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (1.0, 1.0, 1.0)]:
        a = np.asarray(axis) / np.linalg.norm(axis)
        R_pi = _t(2.0 * np.outer(a, a) - np.eye(3), dtype)
        w = so3.log(R_pi)
        _close(torch.linalg.vector_norm(w), math.pi, dtype, scale=5)
        _close(so3.exp(w), R_pi, dtype, scale=5)


# Projection.


@pytest.mark.parametrize("dtype", DTYPES)
def test_project(rng, dtype):
    R = Rotation.random(N, random_state=rng).as_matrix()
    noisy = _t(R + 0.05 * rng.normal(size=(N, 3, 3)), dtype)
    _is_rotation(so3.project(noisy), dtype)
    # A rotation is its own projection.
    _close(so3.project(_t(R, dtype)), R, dtype, scale=5)
    # Matrices containing a reflection still map to proper rotations.
    reflected = _t(R @ np.diag([1.0, 1.0, -1.0]) * rng.uniform(0.5, 2.0, size=(N, 1, 1)), dtype)
    assert (torch.linalg.det(reflected) < 0).all()
    _is_rotation(so3.project(reflected), dtype)


# Gradients.


@pytest.mark.parametrize("dtype", DTYPES)
def test_exp_gradient_at_zero(dtype):
    omega = torch.zeros(3, dtype=dtype, requires_grad=True)
    jac = torch.autograd.functional.jacobian(so3.exp, omega)
    assert torch.isfinite(jac).all()
    # d exp(w) / d w_i at zero is the generator hat(e_i).
    expected = torch.stack([so3.hat(e) for e in torch.eye(3, dtype=dtype)], dim=-1)
    torch.testing.assert_close(jac, expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", [0.0, 1e-8, 1e-4, 1e-2, 0.3])
def test_log_exp_gradient_is_identity_near_zero(rng, dtype, scale):
    omega = _t(rng.normal(size=3) * scale, dtype)
    jac = torch.autograd.functional.jacobian(lambda w: so3.log(so3.exp(w)), omega)
    assert torch.isfinite(jac).all()
    torch.testing.assert_close(jac, torch.eye(3, dtype=dtype), atol=ATOL[dtype] * 10, rtol=0.0)


@pytest.mark.parametrize("scale", [1e-3, 0.2, 0.5, 1.0, 2.0, 3.0])
def test_gradcheck_float64(rng, scale):
    omega = _t(_random_axes(rng, 4) * scale, torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(so3.exp, (omega,))
    assert torch.autograd.gradcheck(lambda w: so3.log(so3.exp(w)), (omega,))
    assert torch.autograd.gradcheck(so3.left_jacobian, (omega,))
    assert torch.autograd.gradcheck(so3.left_jacobian_inverse, (omega,))
    xi = torch.cat([omega.detach(), omega.detach()], dim=-1).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: se3.log(se3.exp(x)), (xi,))


def test_gradients_finite_at_pi_and_identity():
    half_turn = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64))
    for R in [torch.eye(3, dtype=torch.float64), half_turn]:
        R = R.clone().requires_grad_()
        for fn in [so3.log, so3.to_quat, lambda M: so3.geodesic_angle(M, torch.eye(3, dtype=M.dtype))]:
            (grad,) = torch.autograd.grad(fn(R).sum(), R)
            assert torch.isfinite(grad).all()


# Yaw.


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("forward_axis", [0, 1, 2])
def test_remove_yaw(rng, dtype, forward_axis):
    R = _t(Rotation.random(N, random_state=rng).as_matrix(), dtype)
    a = _t(rng.uniform(-math.pi, math.pi, size=N), dtype)
    removed = so3.remove_yaw(R, forward_axis)
    _close(so3.remove_yaw(so3.rot_z(a) @ R, forward_axis), removed, dtype, scale=5)
    _close(removed[..., 1, forward_axis], np.zeros(N), dtype)
    assert (removed[..., 0, forward_axis] >= 0).all()
    _close(so3.yaw_rotation(R, forward_axis) @ removed, R, dtype)
    _is_rotation(removed, dtype)
    # Yaw of a pure z rotation is its angle.
    _close(so3.yaw(so3.rot_z(a), 0), a, dtype)


# SE(3).


@pytest.mark.parametrize("dtype", DTYPES)
def test_se3_exp_matches_matrix_exponential(rng, dtype):
    xi = rng.normal(size=(N, 6))
    twist = torch.zeros(N, 4, 4, dtype=torch.float64)
    twist[:, :3, :3] = so3.hat(_t(xi[:, 3:], torch.float64))
    twist[:, :3, 3] = _t(xi[:, :3], torch.float64)
    _close(se3.exp(_t(xi, dtype)), torch.linalg.matrix_exp(twist), dtype, scale=10)


@pytest.mark.parametrize("dtype", DTYPES)
def test_se3_exp_log_round_trip(rng, dtype):
    omega = _random_axes(rng, N) * rng.uniform(0.0, math.pi - 1e-3, size=(N, 1))
    xi = np.concatenate([rng.normal(size=(N, 3)), omega], axis=-1)
    _close(se3.log(se3.exp(_t(xi, dtype))), xi, dtype, scale=50)
    T = se3.from_rotation_translation(
        _t(Rotation.random(N, random_state=rng).as_matrix(), dtype), _t(rng.normal(size=(N, 3)), dtype)
    )
    _close(se3.exp(se3.log(T)), T, dtype, scale=10)
    # Near identity, pure translation and the exact identity.
    small = _t(xi * 1e-7, dtype)
    _close(se3.log(se3.exp(small)), small, dtype)
    _close(se3.exp(_t(np.concatenate([xi[:, :3], np.zeros((N, 3))], -1), dtype))[:, :3, 3], xi[:, :3], dtype)
    _close(se3.log(se3.identity((2,), dtype=dtype)), np.zeros((2, 6)), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_se3_group_operations(rng, dtype):
    r = Rotation.random(N, random_state=rng)
    t = rng.normal(size=(N, 3))
    p = rng.normal(size=(N, 3))
    T = se3.from_rotation_translation(_t(r.as_matrix(), dtype), _t(t, dtype))
    assert T.dtype == dtype
    _close(se3.rotation(T), r.as_matrix(), dtype)
    _close(se3.translation(T), t, dtype)
    eye = se3.identity((N,), dtype=dtype)
    _close(se3.compose(T, se3.inverse(T)), eye, dtype, scale=5)
    _close(se3.compose(se3.inverse(T), T), eye, dtype, scale=5)
    _close(se3.inverse(T), torch.linalg.inv(T.double()), dtype, scale=5)
    _close(se3.apply(T, _t(p, dtype)), r.apply(p) + t, dtype, scale=5)
    T2 = se3.exp(_t(rng.normal(size=(N, 6)), dtype))
    _close(
        se3.apply(se3.compose(T, T2), _t(p, dtype)),
        se3.apply(T, se3.apply(T2, _t(p, dtype))),
        dtype,
        scale=20,
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_se3_quat_xyz_round_trip(rng, dtype):
    r = Rotation.random(N, random_state=rng)
    t = rng.normal(size=(N, 3))
    wxyz_xyz = np.concatenate([_wxyz(r) * np.sign(_wxyz(r)[:, :1]), t], axis=-1)
    T = se3.from_quat_xyz(_t(wxyz_xyz, dtype))
    _close(se3.rotation(T), r.as_matrix(), dtype)
    _close(se3.translation(T), t, dtype)
    _close(T[:, 3], np.tile([0.0, 0.0, 0.0, 1.0], (N, 1)), dtype)
    _close(se3.to_quat_xyz(T), wxyz_xyz, dtype)
