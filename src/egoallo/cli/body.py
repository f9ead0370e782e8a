"""`egoallo body ...`: pose the body model and draw it."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from ..errors import UserError
from ..files import check_output, require_file
from .checks import check_range

MAX_BETA = 100.0
"""Shape coefficients beyond this are no body (fitted ones stay within about 25)."""


def render(
    out: Path = Path("body.png"),
    pose: Literal["tpose", "walk", "wave"] = "walk",
    betas: tuple[float, ...] = (),
    body_model: Path | None = None,
    force: bool = False,
) -> None:
    """Pose the body model (shipped open model, or SMPL-H via --body-model / $EGOALLO_SMPLH_MODEL) and write a PNG.

    Args:
        out: Output image (.png).
        pose: A named demonstration pose.
        betas: Shape coefficients (the first ones; the rest are 0).
        body_model: A body model .npz (official SMPL-H `model.npz` or this project's format).
        force: Overwrite `out` if it exists.
    """
    check_output(out, (".png",), force=force)
    for beta in betas:
        check_range("--betas", beta, -MAX_BETA, MAX_BETA)
    if body_model is not None:
        require_file(body_model, "a body model .npz")
    import torch

    from ..body import BodyModel, poses
    from ..viz.render import View, render_meshes

    body = BodyModel.load_from_env_or_default(body_model)
    if len(betas) > body.num_betas:
        raise UserError(f"got {len(betas)} betas; the model '{body.name}' has {body.num_betas}.")
    shaped = body.with_shape(torch.tensor(betas, dtype=torch.float32))
    T_world_root = torch.eye(4)
    T_world_root[:3, :3] = poses.Y_UP_TO_Z_UP
    posed = shaped.with_pose(T_world_root, poses.local_rotations(pose))
    vertices = posed.mesh().vertices
    vertices = vertices - torch.tensor([0.0, 0.0, float(vertices[:, 2].min())])
    stature = float(shaped.stature)
    title = f"{body.name}, pose '{pose}', stature {stature:.2f} m"
    views = [View(0.0, 10.0, "front"), View(90.0, 10.0, "side"), View(-35.0, 25.0, title)]
    render_meshes(out, [(vertices.numpy(), body.faces.numpy())], views)
    print(f"wrote {out} ({title})")
