"""Rigid transforms given as (4, 4) numpy matrices (from files, calibrations): checked, never repaired."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import UserError


class NotRigidError(UserError, ValueError):
    """A matrix that is not a (4, 4) rigid transform: the message names it and what is wrong."""


def as_rigid_transform(T: Any, name: str) -> np.ndarray:
    """Validate a (4, 4) rigid transform (rotation with det +1, last row 0 0 0 1); returns a float64 copy."""
    M = np.array(T, dtype=np.float64)
    if M.shape != (4, 4):
        raise NotRigidError(f"{name}: expected a (4, 4) matrix, got shape {M.shape}")
    if not np.isfinite(M).all():
        raise NotRigidError(f"{name}: contains NaN or infinite values")
    if not np.allclose(M[3], [0.0, 0.0, 0.0, 1.0], atol=1e-9):
        raise NotRigidError(f"{name}: last row must be [0, 0, 0, 1], got {M[3].tolist()}")
    R = M[:3, :3]
    if not np.allclose(R.T @ R, np.eye(3), atol=1e-5) or np.linalg.det(R) < 0:
        raise NotRigidError(f"{name}: the top-left 3x3 block is not a rotation (orthonormal, det +1)")
    return M
