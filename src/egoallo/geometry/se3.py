"""Batched, differentiable SE(3) operations in PyTorch.

Rigid transforms are homogeneous matrices `(..., 4, 4)` mapping points from a local
frame to a parent frame: `p_parent = R @ p_local + t`. The 7-vector layout
`(..., 7)` is `(qw, qx, qy, qz, x, y, z)`, as in the official EgoAllo release.
Tangent vectors `(..., 6)` are ordered `[v (3), omega (3)]`: translational part
first, then the rotation vector.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from . import so3


def from_rotation_translation(R: Tensor, t: Tensor) -> Tensor:
    """Transform `(..., 4, 4)` from rotation `R (..., 3, 3)` and translation `t (..., 3)`.

    Batch dimensions of `R` and `t` broadcast.
    """
    # numpy's, not torch's: torch.broadcast_shapes imports its symbolic-shape machinery on first use (0.5 s).
    batch = np.broadcast_shapes(R.shape[:-2], t.shape[:-1])
    T = torch.zeros(*batch, 4, 4, dtype=R.dtype, device=R.device)
    T[..., :3, :3] = R
    T[..., :3, 3] = t
    T[..., 3, 3] = 1.0
    return T


def rotation(T: Tensor) -> Tensor:
    """Rotation block `(..., 3, 3)` of `T (..., 4, 4)`."""
    return T[..., :3, :3]


def translation(T: Tensor) -> Tensor:
    """Translation `(..., 3)` of `T (..., 4, 4)`."""
    return T[..., :3, 3]


def identity(
    batch_shape: tuple[int, ...] = (),
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Identity transforms `(*batch_shape, 4, 4)`."""
    return torch.eye(4, dtype=dtype, device=device).expand(*batch_shape, 4, 4).clone()


def from_quat_xyz(wxyz_xyz: Tensor) -> Tensor:
    """Transform `(..., 4, 4)` from `(..., 7)` = quaternion `(w, x, y, z)` then position.

    The quaternion is normalised.
    """
    return from_rotation_translation(so3.from_quat(wxyz_xyz[..., :4]), wxyz_xyz[..., 4:])


def to_quat_xyz(T: Tensor) -> Tensor:
    """`(..., 7)` = unit quaternion `(w, x, y, z)` with `w >= 0`, then position."""
    return torch.cat([so3.to_quat(rotation(T)), translation(T)], dim=-1)


def compose(T1: Tensor, T2: Tensor) -> Tensor:
    """Product `T1 @ T2` of `(..., 4, 4)` transforms (broadcasting)."""
    return T1 @ T2


def inverse(T: Tensor) -> Tensor:
    """Closed-form inverse `(R^T, -R^T t)` of `(..., 4, 4)` transforms."""
    R_inv = rotation(T).transpose(-1, -2)
    return from_rotation_translation(R_inv, -so3.apply(R_inv, translation(T)))


def apply(T: Tensor, p: Tensor) -> Tensor:
    """Transform points `p (..., 3)` by `T (..., 4, 4)`: `R @ p + t` (broadcasting)."""
    return so3.apply(rotation(T), p) + translation(T)


def exp(xi: Tensor) -> Tensor:
    """Tangent `xi (..., 6) = [v, omega]` to transform `(..., 4, 4)`.

    `R = so3.exp(omega)` and `t = J(omega) @ v`, with `J` the SO(3) left Jacobian.
    """
    v, omega = xi[..., :3], xi[..., 3:]
    t = so3.apply(so3.left_jacobian(omega), v)
    return from_rotation_translation(so3.exp(omega), t)


def log(T: Tensor) -> Tensor:
    """Transform `(..., 4, 4)` to tangent `(..., 6) = [v, omega]`, angle in `[0, pi]`."""
    omega = so3.log(rotation(T))
    v = so3.apply(so3.left_jacobian_inverse(omega), translation(T))
    return torch.cat([v, omega], dim=-1)
