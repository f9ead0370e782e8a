"""`egoallo render`: pictures of a result without a browser (offscreen, CPU)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import tyro

from ..errors import UserError
from ..files import check_output, require_file
from ..thirdparty import require
from .checks import check_range


def render(
    result: Annotated[Path, tyro.conf.Positional],
    out: Path = Path("result.png"),
    sample: int | None = None,
    ghosts: bool = False,
    frames: int = 6,
    stride: int = 3,
    fps: float = 10.0,
    azimuth: float = -60.0,
    elevation: float = 20.0,
    body_model: Path | None = None,
    force: bool = False,
) -> None:
    """Draw a result.npz: a PNG of several instants along the head trajectory, or a GIF/MP4 animation.

    Args:
        result: result.npz from `egoallo infer`.
        out: .png (strobe of `frames` instants), .gif or .mp4 (every `stride`-th frame).
        sample: Which sample to draw; default: the consensus of the samples when the result has one (its joints coloured by their spread, joint_spread_m), else sample 0.
        ghosts: Also draw every sample, pale, behind the consensus (a result with one).
        frames: Instants in the PNG.
        stride: Frame step of the animation.
        fps: Animation frame rate.
        body_model: The body model the result was made with (default: $EGOALLO_SMPLH_MODEL or the shipped one).
    """
    suffix = check_output(out, (".png", ".gif", ".mp4"), force=force).suffix.lower()
    check_range("--frames", frames, 1, 100)
    check_range("--stride", stride, 1)
    check_range("--fps", fps, 0.1, 1000.0)
    check_range("--azimuth", azimuth, -360.0, 360.0)
    check_range("--elevation", elevation, -90.0, 90.0)
    if suffix == ".mp4":
        require("imageio_ffmpeg", "writing .mp4")
    require_file(result, "a result.npz from egoallo infer")
    import numpy as np
    import torch

    from ..body import BodyModel
    from ..result import InferenceResult, check_body_model
    from ..viz.render import (SPREAD_COLORMAP, SPREAD_RANGE_M, View, path_lines, render_animation, render_meshes,
                              spread_colors)

    data = InferenceResult.load(result)
    if sample is not None and not 0 <= sample < data.num_samples:
        raise UserError(f"{result}: has {data.num_samples} sample(s); --sample {sample} is out of range.")
    if ghosts and not (sample is None and data.has_consensus):
        raise UserError(f"{result}: --ghosts draws the samples behind their consensus; expected a result of two or "
                        "more samples (egoallo infer --samples N) and no --sample.")
    body = BodyModel.load_from_env_or_default(body_model)
    check_body_model(data, body, str(result))
    # Back to the gravity-aligned frame the model worked in (z up), each segment's floor at z = 0.
    spans = data.segment_spans()
    floors = np.concatenate([np.full(span.end - span.first, span.floor_z) for span in spans])
    T_zup_input = np.linalg.inv(data.T_input_zup)
    joints, T_root, local_rotations, betas = data.body(sample)
    consensus = sample is None and data.has_consensus

    def in_zup(T_world_root: np.ndarray) -> np.ndarray:
        T_world_root = T_zup_input @ T_world_root.astype(np.float64)
        T_world_root[:, 2, 3] -= floors
        return T_world_root

    T_world_root = in_zup(T_root)
    origin = np.r_[np.median(T_world_root[:, :2, 3], axis=0), 0.0]  # a local origin in float64: UTM-scale worlds
    T = len(data.timestamps_ns)
    chosen = np.linspace(0, T - 1, frames).round().astype(int) if suffix == ".png" else np.arange(0, T, stride)

    def meshes(T_world_root: np.ndarray, local: np.ndarray, shape: np.ndarray) -> np.ndarray:
        """(frames, V, 3) the body's mesh at the chosen frames, relative to `origin` (float32 posing would lose
        centimetres at UTM scale)."""
        T_world_root = T_world_root[chosen].copy()
        T_world_root[:, :3, 3] -= origin
        posed = body.with_shape(torch.from_numpy(shape)).with_pose(torch.from_numpy(T_world_root).float(),
                                                                  torch.from_numpy(local[chosen]))
        return posed.mesh().vertices.numpy()

    vertices = meshes(T_world_root, local_rotations, betas)
    ghost_vertices = [meshes(in_zup(data.T_world_root[s]), data.local_rotations[s], data.betas[s])
                      for s in range(data.num_samples)] if ghosts else []
    faces = body.faces.numpy()
    head_path = (T_zup_input @ data.T_world_cpf)[:, :3, 3] - floors[:, None] * [0.0, 0.0, 1.0] - origin
    lines = path_lines(head_path, [(span.first, span.end) for span in spans], "#d62728")
    markers, legend = None, ""
    if consensus:
        joints_zup = joints[chosen].astype(np.float64) @ T_zup_input[:3, :3].T + T_zup_input[:3, 3]
        joints_zup[..., 2] -= floors[chosen, None]
        rgb = spread_colors(data.joint_spread_m[chosen])
        markers = [(j[:22] - origin, c[:22]) for j, c in zip(joints_zup, rgb)]
        level = data.metadata.get("consensus", {}).get("stated_level", 0.9)
        legend = (f"joint colour: spread ({SPREAD_COLORMAP}, {SPREAD_RANGE_M[0] * 100:.0f} cm dark to "
                  f"{SPREAD_RANGE_M[1] * 100:.0f} cm bright): the true joint lies within it {level:.0%} of the time")
    what = f"consensus of {data.num_samples} samples" if consensus else f"sample {sample or 0}"
    stature = float(body.with_shape(torch.from_numpy(betas)).stature) if consensus else data.stature_m[sample or 0]
    title = f"{result.name}: {what}, {T / data.fps:.1f} s, stature {stature:.2f} m"
    if len(spans) > 1:
        title += f", {len(spans) - 1} tracking gap(s) dotted"
    view = View(azimuth, elevation, title)
    if suffix == ".png":
        render_meshes(out, [(v, faces) for v in vertices], [view], lines=lines, panel_size=6.0,
                      markers=markers and [(np.concatenate([m[0] for m in markers]), np.concatenate([m[1] for m in markers]))],
                      legend=legend, ghosts=[(v, faces) for g in ghost_vertices for v in g])
    else:
        render_animation(out, [[(v, faces)] for v in vertices], view, fps=fps, lines=lines, progress=True,
                         markers=markers and [[m] for m in markers],
                         ghosts=[[(g[k], faces) for g in ghost_vertices] for k in range(len(vertices))])
    print(f"wrote {out}")
