"""In-memory motion of one body: what every data source is converted into."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..body import BodyModel


@dataclasses.dataclass(frozen=True)
class Motion:
    """A body-model motion clip in a z-up world, metres.

    Rotations of joints 1..51 are relative to their parents in the body model's
    rest frame; sources without fingers keep the hand joints at rest
    (`has_hands=False`).
    """

    name: str
    fps: float
    betas: np.ndarray
    """(B,) shape coefficients, constant over the clip."""
    T_world_root: np.ndarray
    """(T, 4, 4) world pose of the pelvis."""
    local_rotations: np.ndarray
    """(T, 51, 3, 3)"""
    has_hands: bool
    contacts: np.ndarray | None = None
    """(T, 52) contact labels in {0, 1}, or None if not computed."""
    metadata: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        T = self.T_world_root.shape[0]
        if self.T_world_root.shape != (T, 4, 4):
            raise ValueError(f"{self.name}: T_world_root must be (T, 4, 4), got {self.T_world_root.shape}.")
        if self.local_rotations.shape != (T, 51, 3, 3):
            raise ValueError(f"{self.name}: local_rotations must be ({T}, 51, 3, 3), got {self.local_rotations.shape}.")
        if self.contacts is not None and self.contacts.shape != (T, 52):
            raise ValueError(f"{self.name}: contacts must be ({T}, 52), got {self.contacts.shape}.")

    @property
    def num_frames(self) -> int:
        return self.T_world_root.shape[0]

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.fps

    def posed(self, model: BodyModel):
        """The clip posed with `model` (float32 tensors): a `PosedBody` with batch (T,)."""
        shaped = model.with_shape(torch.from_numpy(self.betas.astype(np.float32)))
        return shaped.with_pose(
            torch.from_numpy(self.T_world_root.astype(np.float32)),
            torch.from_numpy(self.local_rotations.astype(np.float32)),
        )
