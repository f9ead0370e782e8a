"""Project Aria's FISHEYE624 (FisheyeRadTanThinPrism), params `[f, cx, cy, k0..k5, p0, p1, s0..s3]` (15, one
focal length, as projectaria-tools stores it) or `[fx, fy, cx, cy, ...]` (16).

With `r = |(x, y)|` and `θ = atan2(r, z)`, the distorted angle `θ_d = θ + Σ k_i θ^(2i+3)` gives
`u_r = θ_d·(x, y)/r`; with `ρ² = |u_r|²`, tangential `(p0(2u_x² + ρ²) + 2p1·u_x·u_y, p1(2u_y² + ρ²) + 2p0·u_x·u_y)`
and thin-prism `(s0ρ² + s1ρ⁴, s2ρ² + s3ρ⁴)` terms are added to `u_r`, then `pixel = (fx, fy)·u_d + (cx, cy)`.
`tests/test_cameras.py` checks it against projectaria-tools' own `CameraCalibration.project`.
"""

from __future__ import annotations

import torch
from torch import Tensor


def focal_slice(num_params: int) -> slice:
    """Where the focal length(s) sit: `f` of 15 numbers, else `fx, fy`."""
    return slice(0, 1) if num_params == 15 else slice(0, 2)


def centre_slice(num_params: int) -> slice:
    """Where `cx, cy` sit."""
    return slice(1, 3) if num_params == 15 else slice(2, 4)


def project(points: Tensor, params: Tensor) -> Tensor:
    """(..., 2) FISHEYE624 pixels of `points (..., 3)`; `params (15 | 16,)` as in the module docstring."""
    n = params.shape[-1]
    r, _, theta_d = _angles(points, params)
    ur = points[..., :2] * (theta_d / r)[..., None]
    return _distort(ur, params) * params[focal_slice(n)] + params[centre_slice(n)]


def project_with_jacobian(points: Tensor, params: Tensor) -> tuple[Tensor, Tensor]:
    """FISHEYE624 pixels (..., 2) of `points (..., 3)` and their Jacobian (..., 2, 3)."""
    n = params.shape[-1]
    x, y, z = points.unbind(dim=-1)
    r, theta, theta_d = _angles(points, params)
    k = params[-12:-6] * torch.arange(3, 15, 2, dtype=params.dtype)  # (2i + 3)·k_i
    dtheta_d = 1.0 + theta.square() * _horner(theta.square(), k)  # d θ_d / d θ
    s2 = r.square() + z.square()
    a = theta_d / r  # u_r = a·(x, y)
    radial = dtheta_d * z / (r.square() * s2) - theta_d / r.pow(3)  # (d a / d x) / x = (d a / d y) / y
    da = torch.stack([radial * x, radial * y, -dtheta_d / s2], dim=-1)  # (..., 3)
    xy = points[..., :2]
    d_ur = xy[..., :, None] * da[..., None, :]
    d_ur[..., 0, 0] += a
    d_ur[..., 1, 1] += a
    ur = xy * a[..., None]
    focal = params[focal_slice(n)].expand(2)
    J = focal[:, None] * (_distort_jacobian(ur, params) @ d_ur)
    return _distort(ur, params) * focal + params[centre_slice(n)], J


def _horner(x: Tensor, coeffs: Tensor) -> Tensor:
    """`Σ coeffs[i]·x^i` for `x (...)`."""
    out = torch.zeros_like(x)
    for c in coeffs.flip(0):
        out = out * x + c
    return out


def _angles(points: Tensor, params: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """`r = |(x, y)|` (floored at 1e-12), `θ = atan2(r, z)` and `θ_d = θ + Σ k_i θ^(2i+3)`, each (...)."""
    r = points[..., :2].square().sum(dim=-1).clamp_min(1e-24).sqrt()
    theta = torch.atan2(r, points[..., 2])
    theta2 = theta.square()
    return r, theta, theta * (1.0 + theta2 * _horner(theta2, params[-12:-6]))


def _distort(ur: Tensor, params: Tensor) -> Tensor:
    """(..., 2) tangential and thin-prism distortion added to `ur (..., 2)`."""
    ux, uy = ur[..., 0], ur[..., 1]
    rho2 = ux.square() + uy.square()
    p0, p1, s0, s1, s2, s3 = params[-6:]
    dx = p0 * (2.0 * ux.square() + rho2) + 2.0 * p1 * ux * uy + s0 * rho2 + s1 * rho2.square()
    dy = p1 * (2.0 * uy.square() + rho2) + 2.0 * p0 * ux * uy + s2 * rho2 + s3 * rho2.square()
    return torch.stack([ux + dx, uy + dy], dim=-1)


def _distort_jacobian(ur: Tensor, params: Tensor) -> Tensor:
    """(..., 2, 2) `d _distort / d ur`."""
    ux, uy = ur[..., 0], ur[..., 1]
    rho2 = ux.square() + uy.square()
    p0, p1, s0, s1, s2, s3 = params[-6:]
    prism_x, prism_y = 2.0 * (s0 + 2.0 * s1 * rho2), 2.0 * (s2 + 2.0 * s3 * rho2)
    rows = (
        (1.0 + 6.0 * p0 * ux + 2.0 * p1 * uy + prism_x * ux, 2.0 * p0 * uy + 2.0 * p1 * ux + prism_x * uy),
        (2.0 * p1 * ux + 2.0 * p0 * uy + prism_y * ux, 1.0 + 6.0 * p1 * uy + 2.0 * p0 * ux + prism_y * uy),
    )
    return torch.stack([torch.stack(row, dim=-1) for row in rows], dim=-2)
