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
    sample: int = 0,
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
        sample: Which sample to draw.
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
    from ..viz.render import View, path_lines, render_animation, render_meshes

    data = InferenceResult.load(result)
    if not 0 <= sample < data.num_samples:
        raise UserError(f"{result}: has {data.num_samples} sample(s); --sample {sample} is out of range.")
    body = BodyModel.load_from_env_or_default(body_model)
    check_body_model(data, body, str(result))
    # Back to the gravity-aligned frame the model worked in (z up), each segment's floor at z = 0.
    spans = data.segment_spans()
    floors = np.concatenate([np.full(span.end - span.first, span.floor_z) for span in spans])
    T_zup_input = np.linalg.inv(data.T_input_zup)
    T_world_root = T_zup_input @ data.T_world_root[sample].astype(np.float64)
    T_world_root[:, 2, 3] -= floors
    origin = np.r_[np.median(T_world_root[:, :2, 3], axis=0), 0.0]  # a local origin in float64: UTM-scale worlds
    T_world_root[:, :3, 3] -= origin  # would lose centimetres to float32 posing
    shaped = body.with_shape(torch.from_numpy(data.betas[sample]))
    T = len(data.timestamps_ns)
    chosen = np.linspace(0, T - 1, frames).round().astype(int) if suffix == ".png" else np.arange(0, T, stride)
    posed = shaped.with_pose(torch.from_numpy(T_world_root[chosen]).float(), torch.from_numpy(data.local_rotations[sample, chosen]))
    vertices = posed.mesh().vertices.numpy()
    faces = body.faces.numpy()
    head_path = (T_zup_input @ data.T_world_cpf)[:, :3, 3] - floors[:, None] * [0.0, 0.0, 1.0] - origin
    lines = path_lines(head_path, [(span.first, span.end) for span in spans], "#d62728")
    title = f"{result.name}: sample {sample}, {T / data.fps:.1f} s, stature {data.stature_m[sample]:.2f} m"
    if len(spans) > 1:
        title += f", {len(spans) - 1} tracking gap(s) dotted"
    view = View(azimuth, elevation, title)
    if suffix == ".png":
        render_meshes(out, [(v, faces) for v in vertices], [view], lines=lines, panel_size=6.0)
    else:
        render_animation(out, [[(v, faces)] for v in vertices], view, fps=fps, lines=lines, progress=True)
    print(f"wrote {out}")
