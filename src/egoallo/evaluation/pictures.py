"""Pictures of held-out windows: the predicted body next to the motion capture it should match."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..body import BodyModel
from ..data.dataset import MotionDataset
from ..inference import SamplingConfig, estimate_body_motion
from ..inputs.trajectory import HeadTrajectory
from ..prior.network import EgoDenoiser
from ..result import InferenceResult
from ..viz.render import View, render_meshes


def predicted_and_true(
    dataset: MotionDataset,
    clip_id: str,
    start: int,
    length: int,
    denoiser: EgoDenoiser,
    body: BodyModel,
    sampling: SamplingConfig,
    floor_z: float,
    path: Path | None,
    frames: int = 5,
) -> InferenceResult:
    """Estimate one window as `egoallo infer` would (given `floor_z`; the truth's floor is z = 0) and, with a
    `path`, draw `frames` instants: the truth (grey) beside the prediction (blue), each turned to face the camera."""
    clip = dataset.clip_ids.index(clip_id)
    w = dataset.window(clip, start, length)
    timestamps = np.round(np.arange(length) * 1e9 / 30.0).astype(np.int64)
    trajectory = HeadTrajectory(timestamps, w["T_world_cpf"].astype(np.float64), clip_id, {}, np.eye(3))
    result = estimate_body_motion(trajectory, denoiser, body, floor_z=floor_z, config=sampling)
    if path is None:
        return result
    picks = np.linspace(0, length - 1, frames).round().astype(int)
    pred = body.with_shape(torch.from_numpy(result.betas[0]).float()).with_pose(
        torch.from_numpy(result.T_world_root[0, picks]).float(), torch.from_numpy(result.local_rotations[0, picks]).float())
    local = np.concatenate([w["body_rotations"], w["hand_rotations"]], axis=1)[picks]
    true = body.with_shape(torch.from_numpy(w["betas"][: body.num_betas]).float()).with_pose(
        torch.from_numpy(w["T_world_root"][picks]).float(), torch.from_numpy(local).float())
    pred_mesh, true_mesh = pred.mesh(), true.mesh()
    faces = pred_mesh.faces.numpy()
    meshes = []
    for k, frame in enumerate(picks):
        # Each frame turned about the true pelvis to face the camera (-y); truth and prediction side by side.
        forward = w["T_world_root"][frame, :3, :3] @ np.array([0.0, 0.0, 1.0])
        yaw = np.arctan2(forward[1], forward[0]) + np.pi / 2
        c, s = np.cos(-yaw), np.sin(-yaw)
        turn = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        centre = np.r_[w["joints_world"][frame, 0, :2], 0.0]
        for vertices, dx in ((true_mesh.vertices[k], 0.0), (pred_mesh.vertices[k], 0.85)):
            meshes.append(((vertices.numpy() - centre) @ turn.T + [2.0 * k + dx, 0.0, 0.0], faces))
    render_meshes(path, meshes, [View(azimuth_deg=0.0, elevation_deg=10.0)], colors=[(0.65, 0.65, 0.65), (0.25, 0.45, 0.85)],
                  panel_size=10.0, panel_aspect=0.3)
    return result
