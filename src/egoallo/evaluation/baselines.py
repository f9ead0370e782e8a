"""Baselines that need no learning, so the prior's value is visible.

Both return a body placed with Eq. 5 (its CPF on the true head pose), like the
diffusion model's samples.
"""

from __future__ import annotations

import numpy as np
import torch

from ..body import BodyModel
from ..data.dataset import MotionDataset
from ..errors import UserError
from ..inference import place_in_world
from ..inputs.trajectory import HeadTrajectory
from ..prior.conditioning import ConditioningConfig, compute_conditioning
from ..prior.state import MotionState


def _place(body: BodyModel, betas: torch.Tensor, body_rotations: torch.Tensor, trajectory: HeadTrajectory):
    """`betas (16,)`, `body_rotations (T, 21, 3, 3)` -> joints (1, T, 52, 3), stature (1,)."""
    T = body_rotations.shape[0]
    state = MotionState(
        betas=betas.expand(1, T, -1),
        body_rotations=body_rotations[None],
        contacts=torch.zeros(1, T, 21),
        hand_rotations=None,
    )
    b, _, joints = place_in_world(body, state, torch.tensor(trajectory.T_world_cpf, dtype=torch.float32))
    return joints.numpy(), body.with_shape(b).stature.numpy()


def rest_pose_predictor(body: BodyModel):
    """The mean body (β = 0) in its rest pose, hung from the head."""

    def predict(trajectory: HeadTrajectory, seed: int, window: dict, floor_z: float = 0.0):
        T = len(trajectory)
        return _place(body, torch.zeros(body.num_betas), torch.eye(3).expand(T, 21, 3, 3), trajectory)

    return predict


def _descriptor(T_world_cpf: np.ndarray, stride: int) -> np.ndarray:
    """Invariant conditioning (raw, no Fourier features) of a window, every `stride`-th frame, flattened."""
    poses = torch.from_numpy(np.concatenate([T_world_cpf[:1], T_world_cpf])).double()
    raw = compute_conditioning(poses, ConditioningConfig(kind="ours", fourier_freqs=0)).numpy()
    return raw[::stride].reshape(-1)


class NearestNeighbourPredictor:
    """Copy β and body rotations of the training window whose conditioning is nearest (Euclidean)."""

    def __init__(self, body: BodyModel, dataset_path, window: int, *, start_stride: int = 32, frame_stride: int = 4):
        self.body = body
        self.frame_stride = frame_stride
        train = MotionDataset(dataset_path, "train")
        keys, self.entries = [], []
        for clip, length in enumerate(train.lengths):
            for start in range(0, int(length) - window + 1, start_stride):
                w = train.window(clip, start, window)
                keys.append(_descriptor(w["T_world_cpf"].astype(np.float64), frame_stride))
                self.entries.append((w["betas"][:16].copy(), w["body_rotations"].copy()))
        if not keys:
            raise UserError(f"{dataset_path}: the nearest-neighbour baseline needs train clips of at least {window} "
                            "frames, and the train split has none (built with --splits test?).")
        self.keys = np.stack(keys).astype(np.float32)

    def __call__(self, trajectory: HeadTrajectory, seed: int, window: dict, floor_z: float = 0.0):
        above_floor = trajectory.T_world_cpf.copy()
        above_floor[:, 2, 3] -= floor_z  # the training windows' floors are at z = 0
        query = _descriptor(above_floor, self.frame_stride).astype(np.float32)
        nearest = int(np.argmin(((self.keys - query) ** 2).sum(axis=1)))
        betas, rotations = self.entries[nearest]
        return _place(self.body, torch.from_numpy(betas), torch.from_numpy(rotations), trajectory)
