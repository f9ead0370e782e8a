"""Render the shipped body model in a walking pose: ``docs/body_model.png``.

    PYTHONPATH=src python benchmarks/render_body_model.py --out docs/body_model.png

Three shapes (beta = 0, and beta moved along the stature gradient to a short and a tall body),
each seen from the front and from the side, posed with ``egoallo.body`` (left leg stepping
forward, left arm raised, right elbow and fingers bent, head turned). Drawn with matplotlib
(Agg) as depth-sorted, flat-shaded triangles under an orthographic camera.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402

from egoallo.body.model import BodyModel  # noqa: E402
from egoallo.body.skeleton import JOINT_INDEX, NUM_JOINTS  # noqa: E402


def _rot(axis: str, angle: float) -> torch.Tensor:
    """(3, 3) rotation about a model axis."""
    c, s = np.cos(angle), np.sin(angle)
    m = {
        "x": [[1, 0, 0], [0, c, -s], [0, s, c]],
        "y": [[c, 0, s], [0, 1, 0], [-s, 0, c]],
        "z": [[c, -s, 0], [s, c, 0], [0, 0, 1]],
    }[axis]
    return torch.tensor(m, dtype=torch.float64)


def walking_pose() -> torch.Tensor:
    """(51, 3, 3) local rotations of joints 1..51 (rest frames are identity, +x = left)."""
    R = torch.eye(3, dtype=torch.float64).repeat(NUM_JOINTS - 1, 1, 1)

    def put(name: str, rot: torch.Tensor) -> None:
        R[JOINT_INDEX[name] - 1] = rot

    put("left_hip", _rot("x", -0.55))
    put("left_knee", _rot("x", 0.45))
    put("left_ankle", _rot("x", -0.15))
    put("right_hip", _rot("x", 0.3))
    put("right_knee", _rot("x", 0.35))
    put("spine1", _rot("y", 0.1))
    put("head", _rot("y", 0.35) @ _rot("x", 0.1))
    put("left_collar", _rot("z", 0.2))
    put("left_shoulder", _rot("z", 1.0) @ _rot("y", -0.3))
    put("left_elbow", _rot("y", -0.4))
    put("right_shoulder", _rot("z", 1.25))
    put("right_elbow", _rot("y", 1.2))
    for finger in ("index", "middle", "ring", "pinky"):
        for k in (1, 2, 3):
            put(f"right_{finger}{k}", _rot("z", 0.6))
            put(f"left_{finger}{k}", _rot("z", -0.25))
    put("right_thumb2", _rot("y", 0.4))
    return R


def draw_mesh(ax, verts: np.ndarray, faces: np.ndarray, view: str, offset: float) -> None:
    """Orthographic flat-shaded rendering. verts (V, 3) model frame; view 'front' or 'side'."""
    # Camera on +z looking along -z (sees the body's front; its left is on screen right), or
    # on +x looking along -x (sees the body's left side). `depth` points towards the camera.
    if view == "front":
        right, depth = np.array([1.0, 0, 0]), np.array([0, 0, 1.0])
    else:
        right, depth = np.array([0, 0, -1.0]), np.array([1.0, 0, 0])
    up = np.array([0, 1.0, 0])
    tri = verts[faces]  # (F, 3, 3)
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
    light = 0.8 * depth + 0.4 * up + 0.3 * right
    shade = 0.25 + 0.75 * np.clip(n @ (light / np.linalg.norm(light)), 0, 1)
    visible = n @ depth > 0
    order = np.argsort((tri @ depth).mean(1)[visible])
    t2 = np.stack([tri @ right + offset, tri @ up], -1)[visible][order]
    colors = np.clip(shade[visible][order, None] * np.array([0.85, 0.72, 0.62]), 0, 1)
    ax.add_collection(PolyCollection(t2, facecolors=colors, edgecolors="none", antialiased=False))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=None, help="npz (default: the shipped model)")
    ap.add_argument("--out", type=Path, default=Path("docs/body_model.png"))
    ap.add_argument("--sigma", type=float, default=2.5, help="shape offset along the stature gradient")
    args = ap.parse_args()

    model = BodyModel.load(args.model) if args.model else BodyModel.load_default()
    model = model.to(dtype=torch.float64)
    gradient = torch.as_tensor(np.load(args.model or "src/egoallo/body/assets/anny_smplh.npz")["beta_std_stature"])
    direction = (gradient / gradient.norm()).to(torch.float64)
    betas = torch.stack([-args.sigma * direction, torch.zeros_like(direction), args.sigma * direction])
    shaped = model.with_shape(betas)
    statures = shaped.stature.numpy()
    T = torch.eye(4, dtype=torch.float64).expand(3, 4, 4)
    posed = shaped.with_pose(T, walking_pose().expand(3, -1, -1, -1))
    verts = posed.mesh().vertices.numpy()
    faces = model.faces.numpy()

    fig, axes = plt.subplots(1, 2, figsize=(14, 7.5))
    labels = [f"beta = -{args.sigma:g} g", "beta = 0", f"beta = +{args.sigma:g} g"]
    for ax, view in zip(axes, ("front", "side")):
        for i in range(3):
            offset = 1.1 * (i - 1) if view == "front" else 0.9 * (i - 1)
            draw_mesh(ax, verts[i], faces, view, offset)
            ax.text(offset, -1.25, f"{labels[i]}\nstature {statures[i]:.2f} m", ha="center", fontsize=9)
        ax.set_xlim(-1.75, 1.75) if view == "front" else ax.set_xlim(-1.4, 1.4)
        ax.set_ylim(-1.35, 1.2)
        ax.set_aspect("equal")
        ax.set_axis_off()
        ax.set_title(f"{view} view")
    fig.suptitle(
        "egoallo open body model (from Anny; SMPL-H 52-joint topology), walking pose\n"
        "g = unit stature gradient in beta space",
        fontsize=11,
    )
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"Wrote {args.out} (statures {np.round(statures, 3).tolist()} m)")


if __name__ == "__main__":
    main()
