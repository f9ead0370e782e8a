"""Pinhole projection, params `[fx, fy, cx, cy]`: `u = fx·x/z + cx`, `v = fy·y/z + cy`."""

from __future__ import annotations

import torch
from torch import Tensor


def project(points: Tensor, params: Tensor) -> Tensor:
    """(..., 2) pinhole pixels of `points (..., 3)`; `params (4,)` = `[fx, fy, cx, cy]`."""
    z = _away_from_zero(points[..., 2])
    return points[..., :2] / z[..., None] * params[:2] + params[2:4]


def project_with_jacobian(points: Tensor, params: Tensor) -> tuple[Tensor, Tensor]:
    """Pinhole pixels (..., 2) of `points (..., 3)` and their Jacobian (..., 2, 3)."""
    z = _away_from_zero(points[..., 2])
    fx, fy = params[0] / z, params[1] / z
    zero = torch.zeros_like(z)
    J = torch.stack(
        [
            torch.stack([fx, zero, -fx * points[..., 0] / z], dim=-1),
            torch.stack([zero, fy, -fy * points[..., 1] / z], dim=-1),
        ],
        dim=-2,
    )
    return project(points, params), J


def _away_from_zero(z: Tensor, eps: float = 1e-9) -> Tensor:
    """`z` with magnitudes below `eps` replaced by `±eps` (pinhole division)."""
    return torch.where(z.abs() < eps, torch.where(z < 0, -eps, eps), z)
