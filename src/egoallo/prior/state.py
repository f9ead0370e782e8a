"""The diffusion state x0: shape, body rotations, contacts and (optionally) hand rotations.

Packed per frame as one vector, in the reference's order: β (16), 21 body
rotation matrices row-major (189), 21 contact labels (joints 1..21), then 30
hand rotation matrices (270) when hands are modelled: 226 or 496 numbers.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from ..geometry import so3

NUM_BETAS = 16
BODY_DIM = 21 * 9
CONTACT_DIM = 21
HANDS_DIM = 30 * 9


def state_dim(include_hands: bool) -> int:
    return NUM_BETAS + BODY_DIM + CONTACT_DIM + (HANDS_DIM if include_hands else 0)


@dataclasses.dataclass(frozen=True)
class MotionState:
    """Unpacked x0 for a batch of windows."""

    betas: Tensor
    """(..., T, 16)"""
    body_rotations: Tensor
    """(..., T, 21, 3, 3) local rotations of joints 1..21."""
    contacts: Tensor
    """(..., T, 21) contact labels (probabilities after sampling) of joints 1..21."""
    hand_rotations: Tensor | None
    """(..., T, 30, 3, 3) local rotations of joints 22..51, or None."""

    def pack(self) -> Tensor:
        """(..., T, 226 | 496)"""
        parts = [self.betas, self.body_rotations.flatten(-3), self.contacts]
        if self.hand_rotations is not None:
            parts.append(self.hand_rotations.flatten(-3))
        return torch.cat(parts, dim=-1)

    @staticmethod
    def unpack(x: Tensor, include_hands: bool, project_rotations: bool = False) -> MotionState:
        """Split a packed `(..., T, D)` state; optionally project rotations onto SO(3) (SVD)."""
        expected = state_dim(include_hands)
        if x.shape[-1] != expected:
            raise ValueError(f"state has {x.shape[-1]} numbers per frame, expected {expected}.")
        i = 0
        betas, i = x[..., i : i + NUM_BETAS], i + NUM_BETAS
        body, i = x[..., i : i + BODY_DIM].unflatten(-1, (21, 3, 3)), i + BODY_DIM
        contacts, i = x[..., i : i + CONTACT_DIM], i + CONTACT_DIM
        hands = x[..., i : i + HANDS_DIM].unflatten(-1, (30, 3, 3)) if include_hands else None
        if project_rotations:
            body = so3.project(body)
            hands = so3.project(hands) if hands is not None else None
        return MotionState(betas=betas, body_rotations=body, contacts=contacts, hand_rotations=hands)

    @property
    def local_rotations(self) -> Tensor:
        """(..., T, 21 | 51, 3, 3) body (and hand) rotations for `ShapedBody.with_pose`."""
        if self.hand_rotations is None:
            return self.body_rotations
        return torch.cat([self.body_rotations, self.hand_rotations], dim=-3)
