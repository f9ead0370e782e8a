"""Batched, differentiable SO(3) operations in PyTorch.

Rotations are represented as matrices with shape `(..., 3, 3)`. Quaternions are
scalar-first `(w, x, y, z)` with shape `(..., 4)`. Rotation vectors ("axis-angle",
tangent vectors) have shape `(..., 3)`. Every function accepts arbitrary leading
batch dimensions, preserves dtype and device, and is differentiable with autograd;
functions with a removable singularity at the identity use Taylor series there.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _horner(x: Tensor, coeffs: list[float]) -> Tensor:
    """Evaluate `sum_k coeffs[k] * x**k`."""
    out = torch.full_like(x, coeffs[-1])
    for c in reversed(coeffs[:-1]):
        out = out * x + c
    return out


def _sinc_from_sq(x2: Tensor) -> Tensor:
    """`sin(x) / x` as a smooth function of `x2 = x**2`, shape `(...)`."""
    small = x2 < 0.1
    x = torch.sqrt(torch.where(small, torch.ones_like(x2), x2))
    series = _horner(
        torch.where(small, x2, torch.zeros_like(x2)),
        [(-1) ** k / math.factorial(2 * k + 1) for k in range(7)],
    )
    return torch.where(small, series, torch.sin(x) / x)


def _one_minus_cos_over_sq(x2: Tensor) -> Tensor:
    """`(1 - cos(x)) / x**2` from `x2 = x**2`, computed as `sinc(x / 2)**2 / 2`."""
    return 0.5 * _sinc_from_sq(x2 / 4.0) ** 2


def _x_minus_sin_over_cube(x2: Tensor) -> Tensor:
    """`(x - sin(x)) / x**3` from `x2 = x**2`, shape `(...)`."""
    small = x2 < 0.1
    x = torch.sqrt(torch.where(small, torch.ones_like(x2), x2))
    series = _horner(
        torch.where(small, x2, torch.zeros_like(x2)),
        [(-1) ** k / math.factorial(2 * k + 3) for k in range(6)],
    )
    return torch.where(small, series, (x - torch.sin(x)) / x**3)


def _eye_like(x: Tensor) -> Tensor:
    """Identity matrices `(..., 3, 3)` matching the batch shape of `x (..., 3)`."""
    return torch.eye(3, dtype=x.dtype, device=x.device).expand(*x.shape[:-1], 3, 3)


def hat(omega: Tensor) -> Tensor:
    """Skew-symmetric matrix `(..., 3, 3)` with `hat(w) @ p == cross(w, p)`."""
    x, y, z = omega.unbind(-1)
    zero = torch.zeros_like(x)
    return torch.stack(
        [
            torch.stack([zero, -z, y], dim=-1),
            torch.stack([z, zero, -x], dim=-1),
            torch.stack([-y, x, zero], dim=-1),
        ],
        dim=-2,
    )


def vee(K: Tensor) -> Tensor:
    """Inverse of `hat`: `(..., 3, 3) -> (..., 3)`, using the antisymmetric part."""
    return 0.5 * torch.stack(
        [K[..., 2, 1] - K[..., 1, 2], K[..., 0, 2] - K[..., 2, 0], K[..., 1, 0] - K[..., 0, 1]],
        dim=-1,
    )


def identity(
    batch_shape: tuple[int, ...] = (),
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Identity rotations `(*batch_shape, 3, 3)`."""
    return torch.eye(3, dtype=dtype, device=device).expand(*batch_shape, 3, 3).clone()


# Quaternions.


def from_quat(q_wxyz: Tensor) -> Tensor:
    """Quaternion `(..., 4)` in `(w, x, y, z)` order to matrix `(..., 3, 3)`.

    The input is normalised first, so any non-zero quaternion is accepted.
    """
    q = q_wxyz / torch.linalg.vector_norm(q_wxyz, dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    xx, yy, zz = x * x, y * y, z * z
    xy, xz, yz = x * y, x * z, y * z
    wx, wy, wz = w * x, w * y, w * z
    return torch.stack(
        [
            torch.stack([1 - 2 * (yy + zz), 2 * (xy - wz), 2 * (xz + wy)], dim=-1),
            torch.stack([2 * (xy + wz), 1 - 2 * (xx + zz), 2 * (yz - wx)], dim=-1),
            torch.stack([2 * (xz - wy), 2 * (yz + wx), 1 - 2 * (xx + yy)], dim=-1),
        ],
        dim=-2,
    )


def from_quat_xyzw(q_xyzw: Tensor) -> Tensor:
    """Scalar-last quaternion `(..., 4)` in `(x, y, z, w)` order (scipy, Aria MPS, TUM) to matrix `(..., 3, 3)`.

    Normalised first, as `from_quat`.
    """
    return from_quat(q_xyzw.roll(1, dims=-1))


def to_quat(R: Tensor) -> Tensor:
    """Matrix `(..., 3, 3)` to unit quaternion `(..., 4)`, `(w, x, y, z)`, with `w >= 0`.

    Uses Shepperd's method: the component with the largest magnitude is recovered
    from a square root and the others from off-diagonal sums/differences, which is
    accurate for every rotation, including angles near 0 and pi.
    """
    r00, r01, r02 = R[..., 0, 0], R[..., 0, 1], R[..., 0, 2]
    r10, r11, r12 = R[..., 1, 0], R[..., 1, 1], R[..., 1, 2]
    r20, r21, r22 = R[..., 2, 0], R[..., 2, 1], R[..., 2, 2]
    # Radicands equal 4 w^2, 4 x^2, 4 y^2, 4 z^2; the largest is >= 1.
    radicands = torch.stack(
        [
            1 + r00 + r11 + r22,
            1 + r00 - r11 - r22,
            1 - r00 + r11 - r22,
            1 - r00 - r11 + r22,
        ],
        dim=-1,
    )
    # Clamping keeps the unselected candidates (and their gradients) finite.
    s = 2.0 * torch.sqrt(radicands.clamp(min=1e-6))
    sw, sx, sy, sz = s.unbind(-1)
    candidates = torch.stack(
        [
            torch.stack([sw / 4, (r21 - r12) / sw, (r02 - r20) / sw, (r10 - r01) / sw], dim=-1),
            torch.stack([(r21 - r12) / sx, sx / 4, (r01 + r10) / sx, (r02 + r20) / sx], dim=-1),
            torch.stack([(r02 - r20) / sy, (r01 + r10) / sy, sy / 4, (r12 + r21) / sy], dim=-1),
            torch.stack([(r10 - r01) / sz, (r02 + r20) / sz, (r12 + r21) / sz, sz / 4], dim=-1),
        ],
        dim=-2,
    )
    index = radicands.argmax(dim=-1)[..., None, None].expand(*radicands.shape[:-1], 1, 4)
    q = torch.gather(candidates, -2, index)[..., 0, :]
    return torch.where(q[..., :1] < 0, -q, q)


def quat_multiply(q1: Tensor, q2: Tensor) -> Tensor:
    """Hamilton product `q1 * q2` of `(..., 4)` wxyz quaternions."""
    w1, v1 = q1[..., :1], q1[..., 1:]
    w2, v2 = q2[..., :1], q2[..., 1:]
    w = w1 * w2 - (v1 * v2).sum(dim=-1, keepdim=True)
    v = w1 * v2 + w2 * v1 + torch.linalg.cross(v1, v2, dim=-1)
    return torch.cat([w, v], dim=-1)


def quat_inverse(q: Tensor) -> Tensor:
    """Inverse `conj(q) / |q|^2` of a `(..., 4)` wxyz quaternion."""
    conj = torch.cat([q[..., :1], -q[..., 1:]], dim=-1)
    return conj / (q * q).sum(dim=-1, keepdim=True)


def quat_apply(q: Tensor, p: Tensor) -> Tensor:
    """Rotate points `p (..., 3)` by unit wxyz quaternions `q (..., 4)`."""
    w, v = q[..., :1], q[..., 1:]
    v, p = torch.broadcast_tensors(v, p)
    uv = torch.linalg.cross(v, p, dim=-1)
    return p + 2.0 * (w * uv + torch.linalg.cross(v, uv, dim=-1))


# Exponential and logarithm.


def exp(omega: Tensor) -> Tensor:
    """Rotation vector `(..., 3)` to matrix `(..., 3, 3)` (Rodrigues' formula)."""
    theta2 = (omega * omega).sum(dim=-1)
    a = _sinc_from_sq(theta2)[..., None, None]
    b = _one_minus_cos_over_sq(theta2)[..., None, None]
    K = hat(omega)
    return _eye_like(omega) + a * K + b * (K @ K)


def log(R: Tensor) -> Tensor:
    """Matrix `(..., 3, 3)` to rotation vector `(..., 3)` with angle in `[0, pi]`.

    Computed via `to_quat` (accurate near 0 and pi). At exactly pi, the axis sign is
    whichever `to_quat` returns; both signs describe the same rotation.
    """
    q = to_quat(R)
    w, v = q[..., 0], q[..., 1:]
    n2 = (v * v).sum(dim=-1)
    # factor = 2 * atan2(|v|, w) / |v|; series in t^2 = |v|^2 / w^2 near identity.
    small = n2 < 0.01 * w * w
    w_safe = torch.where(small, w, torch.ones_like(w))
    t2 = torch.where(small, n2 / (w_safe * w_safe), torch.zeros_like(n2))
    series = 2.0 / w_safe * _horner(t2, [(-1) ** k / (2 * k + 1) for k in range(8)])
    n_safe = torch.sqrt(torch.where(small, torch.ones_like(n2), n2))
    factor = torch.where(small, series, 2.0 * torch.atan2(n_safe, w) / n_safe)
    return factor[..., None] * v


def slerp(R0: Tensor, R1: Tensor, t: Tensor) -> Tensor:
    """Rotations `(..., 3, 3)` the fraction `t (...)` along the shortest arc from `R0` to `R1` (`(..., 3, 3)`).

    `R0 @ exp(t * log(R0^T @ R1))`, as scipy's `Slerp`: `t = 0` gives `R0`, `t = 1` gives `R1`, and
    `t` outside `[0, 1]` extrapolates. Shapes broadcast. At a relative angle of exactly pi, the arc
    is the one whose axis `log` returns.
    """
    return R0 @ exp(t[..., None] * log(R0.transpose(-1, -2) @ R1))


def from_axis_angle(omega: Tensor) -> Tensor:
    """Alias of `exp`: rotation vector `(..., 3)` to matrix `(..., 3, 3)`."""
    return exp(omega)


def to_axis_angle(R: Tensor) -> Tensor:
    """Alias of `log`: matrix `(..., 3, 3)` to rotation vector `(..., 3)`."""
    return log(R)


def left_jacobian(omega: Tensor) -> Tensor:
    """Left Jacobian `(..., 3, 3)` of SO(3) at `omega (..., 3)`.

    `J = I + (1 - cos t) / t^2 K + (t - sin t) / t^3 K^2` with `K = hat(omega)`.
    """
    theta2 = (omega * omega).sum(dim=-1)
    b = _one_minus_cos_over_sq(theta2)[..., None, None]
    c = _x_minus_sin_over_cube(theta2)[..., None, None]
    K = hat(omega)
    return _eye_like(omega) + b * K + c * (K @ K)


def left_jacobian_inverse(omega: Tensor) -> Tensor:
    """Inverse `(..., 3, 3)` of `left_jacobian(omega)`; valid for angles below 2 pi.

    `J^-1 = I - K / 2 + (1 - (t/2) cot(t/2)) / t^2 K^2` with `K = hat(omega)`.
    """
    theta2 = (omega * omega).sum(dim=-1)
    small = theta2 < 0.1
    safe2 = torch.where(small, torch.ones_like(theta2), theta2)
    half2 = safe2 / 4.0
    # (t/2) cot(t/2) == cos(t/2) / sinc(t/2).
    closed = (1.0 - torch.cos(torch.sqrt(half2)) / _sinc_from_sq(half2)) / safe2
    # Coefficients |B_2n| / (2n)! (Bernoulli numbers), n = 1..6.
    series = _horner(
        torch.where(small, theta2, torch.zeros_like(theta2)),
        [1 / 12, 1 / 720, 1 / 30240, 1 / 1209600, 1 / 47900160, 691 / 1307674368000],
    )
    d = torch.where(small, series, closed)[..., None, None]
    K = hat(omega)
    return _eye_like(omega) - 0.5 * K + d * (K @ K)


# Group operations.


def compose(R1: Tensor, R2: Tensor) -> Tensor:
    """Product `R1 @ R2` of `(..., 3, 3)` rotations (broadcasting)."""
    return R1 @ R2


def inverse(R: Tensor) -> Tensor:
    """Inverse (transpose) of `(..., 3, 3)` rotations."""
    return R.transpose(-1, -2)


def apply(R: Tensor, p: Tensor) -> Tensor:
    """Rotate points `p (..., 3)` by `R (..., 3, 3)` (broadcasting)."""
    return (R @ p[..., None])[..., 0]


def project(M: Tensor) -> Tensor:
    """Nearest rotation `(..., 3, 3)` to `M (..., 3, 3)` in Frobenius norm.

    The orthogonal polar factor of `M` by scaled Newton iteration
    (`X <- (X + X^-T) / 2`, with `X^-T` from cross products of the columns), which
    converges in a few steps for the near-rotations a network predicts and is far
    faster than a batched SVD; entries that do not converge, or whose nearest
    orthogonal matrix is a reflection, take `U diag(1, 1, det(U V^T)) V^T` from
    the SVD `M = U S V^T`.
    """
    X = M / torch.linalg.det(M).abs().clamp(min=1e-12)[..., None, None] ** (1.0 / 3.0)
    eye = torch.eye(3, dtype=M.dtype, device=M.device)
    tolerance = 1e-5 if M.dtype == torch.float32 else 1e-10
    for iteration in range(_POLAR_ITERATIONS):
        X = 0.5 * (X + _inverse_transpose(X))
        if iteration >= 2:  # stop once every entry has converged
            converged = ((X.transpose(-1, -2) @ X - eye).abs().amax(dim=(-1, -2)) < tolerance) & (torch.linalg.det(X) > 0)
            if bool(converged.all()):
                return X
    X = X.clone()
    X[~converged] = _project_svd(M[~converged])
    return X


_POLAR_ITERATIONS = 8


def _inverse_transpose(X: Tensor) -> Tensor:
    """`X^-T` for `X (..., 3, 3)`: the cofactor matrix over the determinant, entry by entry."""
    (a, b, c), (d, e, f), (g, h, i) = (row.unbind(-1) for row in X.unbind(-2))
    cofactor = torch.stack(
        [e * i - f * h, f * g - d * i, d * h - e * g,
         c * h - b * i, a * i - c * g, b * g - a * h,
         b * f - c * e, c * d - a * f, a * e - b * d],
        dim=-1,
    )  # fmt: skip
    det = a * cofactor[..., 0] + b * cofactor[..., 1] + c * cofactor[..., 2]
    return (cofactor / det[..., None]).unflatten(-1, (3, 3))


def _project_svd(M: Tensor) -> Tensor:
    U, _, Vh = torch.linalg.svd(M)
    d = torch.linalg.det(U @ Vh)
    U = torch.cat([U[..., :2], U[..., 2:] * d[..., None, None]], dim=-1)
    return U @ Vh


def geodesic_angle(R1: Tensor, R2: Tensor) -> Tensor:
    """Angle `(...)` in `[0, pi]` of the relative rotation `R1^T @ R2`.

    Uses `atan2(sin, cos)` for accuracy everywhere; the gradient at zero angle is zero.
    """
    R = R1.transpose(-1, -2) @ R2
    s2 = (vee(R) ** 2).sum(dim=-1)
    positive = s2 > 0
    sin = torch.where(positive, torch.sqrt(torch.where(positive, s2, torch.ones_like(s2))), 0.0)
    cos = 0.5 * (R[..., 0, 0] + R[..., 1, 1] + R[..., 2, 2] - 1.0)
    return torch.atan2(sin, cos)


# Elementary rotations and Euler angles.


def rot_x(theta: Tensor) -> Tensor:
    """Rotation `(..., 3, 3)` by `theta (...)` radians about the x axis."""
    c, s = torch.cos(theta), torch.sin(theta)
    one, zero = torch.ones_like(theta), torch.zeros_like(theta)
    return torch.stack(
        [
            torch.stack([one, zero, zero], dim=-1),
            torch.stack([zero, c, -s], dim=-1),
            torch.stack([zero, s, c], dim=-1),
        ],
        dim=-2,
    )


def rot_y(theta: Tensor) -> Tensor:
    """Rotation `(..., 3, 3)` by `theta (...)` radians about the y axis."""
    c, s = torch.cos(theta), torch.sin(theta)
    one, zero = torch.ones_like(theta), torch.zeros_like(theta)
    return torch.stack(
        [
            torch.stack([c, zero, s], dim=-1),
            torch.stack([zero, one, zero], dim=-1),
            torch.stack([-s, zero, c], dim=-1),
        ],
        dim=-2,
    )


def rot_z(theta: Tensor) -> Tensor:
    """Rotation `(..., 3, 3)` by `theta (...)` radians about the z axis."""
    c, s = torch.cos(theta), torch.sin(theta)
    one, zero = torch.ones_like(theta), torch.zeros_like(theta)
    return torch.stack(
        [
            torch.stack([c, -s, zero], dim=-1),
            torch.stack([s, c, zero], dim=-1),
            torch.stack([zero, zero, one], dim=-1),
        ],
        dim=-2,
    )


def from_euler_intrinsic(angles: Tensor, axes: str, degrees: bool = False) -> Tensor:
    """Intrinsic Euler angles `(..., n)` to matrix `(..., 3, 3)`, with `n == len(axes)`.

    `axes` is a string over `"XYZ"` (case-insensitive); `"ZXY"` gives
    `R = rot_z(a[..., 0]) @ rot_x(a[..., 1]) @ rot_y(a[..., 2])`. This is the BVH
    channel convention and matches scipy's uppercase `Rotation.from_euler("ZXY", a)`.
    """
    if angles.shape[-1] != len(axes):
        raise ValueError(f"Expected {len(axes)} angles for axes {axes!r}, got {angles.shape[-1]}.")
    if degrees:
        angles = torch.deg2rad(angles)
    elementary = {"X": rot_x, "Y": rot_y, "Z": rot_z}
    R = identity(angles.shape[:-1], dtype=angles.dtype, device=angles.device)
    for axis, angle in zip(axes.upper(), angles.unbind(-1)):
        if axis not in elementary:
            raise ValueError(f"Invalid axis {axis!r} in {axes!r}; expected X, Y or Z.")
        R = R @ elementary[axis](angle)
    return R


# Heading (yaw) about the world z axis.


def yaw(R: Tensor, forward_axis: int = 0) -> Tensor:
    """Heading `(...)` of `R (..., 3, 3)` about world z: `atan2(R[1, a], R[0, a])`.

    `a = forward_axis` picks the body axis (a column of `R`) whose projection onto the
    world xy plane defines the heading. Undefined when that axis is vertical.
    """
    return torch.atan2(R[..., 1, forward_axis], R[..., 0, forward_axis])


def yaw_rotation(R: Tensor, forward_axis: int = 0) -> Tensor:
    """Pure-yaw rotation `rot_z(yaw(R, forward_axis))`, shape `(..., 3, 3)`."""
    return rot_z(yaw(R, forward_axis))


def remove_yaw(R: Tensor, forward_axis: int = 0) -> Tensor:
    """`rot_z(-yaw(R)) @ R`, shape `(..., 3, 3)`.

    Afterwards the `forward_axis` column projects onto world +x, and the result is
    invariant to left-multiplying `R` by any rotation about world z.
    """
    return rot_z(-yaw(R, forward_axis)) @ R
