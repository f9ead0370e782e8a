"""Batched, differentiable SO(3) and SE(3) utilities in PyTorch."""

from . import se3, so3

__all__ = ["se3", "so3"]
