"""A small painter's-algorithm mesh renderer on matplotlib: no GPU, no display."""

from __future__ import annotations

import dataclasses
import io
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402

from ..files import opened_atomically, replaced_atomically, write_bytes_atomic
from ..progress import progress_bar


@dataclasses.dataclass(frozen=True)
class View:
    """Orthographic camera looking at the scene from `azimuth` degrees about world z (z up)."""

    azimuth_deg: float = 0.0
    elevation_deg: float = 10.0
    title: str = ""

    def rotation(self) -> np.ndarray:
        """(3, 3) world -> camera (x right, y up, z towards the viewer)."""
        a, e = np.radians(self.azimuth_deg), np.radians(self.elevation_deg)
        # Camera on the -y side at azimuth 0, looking along +y.
        right = np.array([np.cos(a), np.sin(a), 0.0])
        forward = np.array([-np.sin(a) * np.cos(e), np.cos(a) * np.cos(e), -np.sin(e)])
        up = np.cross(right, forward)
        return np.stack([right, up, -forward])


def _draw_mesh(ax, vertices: np.ndarray, faces: np.ndarray, view: View, color) -> None:
    cam = vertices @ view.rotation().T
    tri = cam[faces]  # (F, 3, 3)
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    lengths = np.linalg.norm(normals, axis=-1, keepdims=True)
    normals = normals / np.maximum(lengths, 1e-12)
    front = normals[:, 2] > 0
    order = np.argsort(tri[front, :, 2].mean(axis=1))
    light = np.array([0.3, 0.5, 0.8]) / np.linalg.norm([0.3, 0.5, 0.8])
    shade = 0.35 + 0.65 * np.clip(normals[front] @ light, 0.0, 1.0)
    rgb = np.clip(np.asarray(matplotlib.colors.to_rgb(color))[None] * shade[:, None], 0, 1)
    ax.add_collection(PolyCollection(tri[front][order][:, :, :2], facecolors=rgb[order], edgecolors=rgb[order], linewidths=0.3))


def _draw_panel(ax, meshes, view: View, colors, lines, floor_z, bounds: np.ndarray, aspect: float = 1.25,
                markers=None, ghosts=None) -> None:
    """One view of the scene; `bounds (N, 3)` are points the panel must show (fixed across animation
    frames), framed to fill a panel `aspect` times as tall as it is wide. `markers`: `(points (N, 3), rgb (N, 3))`
    dots drawn over everything; `ghosts`: meshes drawn pale before (under) all the others."""
    R = view.rotation()
    if floor_z is not None:
        lo, hi = bounds[:, :2].min(0) - 0.3, bounds[:, :2].max(0) + 0.3
        corners = np.array([[lo[0], lo[1], floor_z], [hi[0], lo[1], floor_z], [hi[0], hi[1], floor_z], [lo[0], hi[1], floor_z]])
        ax.add_collection(PolyCollection([(corners @ R.T)[:, :2]], facecolors="#e8e8e8", edgecolors="#c0c0c0"))
    for vertices, faces in ghosts or []:
        _draw_mesh(ax, vertices, faces, view, GHOST_COLOR)
    # Far meshes first, so nearer bodies cover them.
    depth = [float((vertices @ R.T)[:, 2].mean()) for vertices, _ in meshes]
    for k in np.argsort(depth):
        vertices, faces = meshes[k]
        _draw_mesh(ax, vertices, faces, view, colors[k % len(colors)])
    for points, color, *style in lines or []:
        p = points @ R.T
        ax.plot(p[:, 0], p[:, 1], style[0] if style else "-", color=color, linewidth=1.5, zorder=10)
    for points, rgb in markers or []:
        p = points @ R.T
        ax.scatter(p[:, 0], p[:, 1], s=14, c=rgb, edgecolors="black", linewidths=0.3, zorder=11)
    cam = bounds @ R.T
    center = (cam.max(0) + cam.min(0)) / 2
    extent = cam.max(0) - cam.min(0)
    half = max(extent[0], extent[1] / aspect) / 2 + 0.1
    ax.set_xlim(center[0] - half, center[0] + half)
    ax.set_ylim(center[1] - half * aspect, center[1] + half * aspect)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(view.title, fontsize=9)


DEFAULT_COLORS = ["#8fb3d9", "#d99f8f", "#9fd98f", "#d9cf8f"]
GHOST_COLOR = "#d4d4d4"
"""The samples drawn behind their consensus (`egoallo render --ghosts`)."""
SPREAD_COLORMAP = "plasma"
SPREAD_RANGE_M = (0.0, 1.0)
"""Joint spreads mapped onto the colour map's ends (a larger spread takes the top colour)."""


def spread_colors(spread_m: np.ndarray) -> np.ndarray:
    """`(..., 3)` RGB in [0, 1] of joint spreads `(...)` in metres on `SPREAD_COLORMAP` over `SPREAD_RANGE_M`."""
    low, high = SPREAD_RANGE_M
    return matplotlib.colormaps[SPREAD_COLORMAP](np.clip((spread_m - low) / (high - low), 0.0, 1.0))[..., :3]
GAP_COLOR = "#7f7f7f"


def path_lines(points: np.ndarray, spans: list[tuple[int, int]], color: str) -> list[tuple[np.ndarray, str, str]]:
    """Polylines of a path `points (T, 3)` cut into segments `spans` (first, end): each segment solid in `color`,
    each gap between two segments a dotted grey line with a cross at both ends, never a solid line across it."""
    lines = [(points[first:end], color, "-") for first, end in spans]
    lines += [(points[[end - 1, following]], GAP_COLOR, "x:") for (_, end), (following, _) in zip(spans, spans[1:])]
    return lines


def render_meshes(
    path: str | os.PathLike,
    meshes: list[tuple[np.ndarray, np.ndarray]],
    views: list[View],
    *,
    colors: list | None = None,
    lines: list[tuple[np.ndarray, str]] | None = None,
    floor_z: float | None = 0.0,
    dpi: int = 100,
    panel_size: float = 4.0,
    panel_aspect: float = 1.25,
    markers: list[tuple[np.ndarray, np.ndarray]] | None = None,
    legend: str = "",
    ghosts: list[tuple[np.ndarray, np.ndarray]] | None = None,
) -> Path:
    """Render `(vertices (V, 3), faces (F, 3))` meshes in a z-up world into one PNG, one panel per view.

    `lines`: optional polylines `(points (N, 3), color[, matplotlib style])` drawn over the meshes
    (e.g. a source skeleton); `markers`: dots `(points (N, 3), rgb (N, 3))` over everything; `legend`: a line
    under the panels; `ghosts`: meshes drawn pale under the others. Written atomically.
    """
    path = Path(path)
    fig, axes = plt.subplots(1, len(views), figsize=(panel_size * len(views), panel_size * panel_aspect), squeeze=False)
    bounds = np.concatenate([v for v, _ in meshes] + [line[0] for line in lines or []])
    for ax, view in zip(axes[0], views):
        _draw_panel(ax, meshes, view, colors or DEFAULT_COLORS, lines, floor_z, bounds, panel_aspect, markers, ghosts)
    if legend:
        fig.text(0.5, 0.01, legend, ha="center", va="bottom", fontsize=8)
    fig.tight_layout(rect=(0, 0.03 if legend else 0, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return write_bytes_atomic(path, buffer.getvalue())


def render_animation(
    path: str | os.PathLike,
    frames: list[list[tuple[np.ndarray, np.ndarray]]],
    view: View,
    *,
    fps: float = 10.0,
    colors: list | None = None,
    lines: list[tuple[np.ndarray, str]] | None = None,
    floor_z: float | None = 0.0,
    dpi: int = 80,
    panel_size: float = 4.0,
    progress: bool = False,
    markers: list[list[tuple[np.ndarray, np.ndarray]]] | None = None,
    ghosts: list[list[tuple[np.ndarray, np.ndarray]]] | None = None,
) -> Path:
    """An animated GIF (Pillow) or MP4 (imageio-ffmpeg, if installed) of per-frame mesh lists, atomically.

    `progress`: a progress bar over the frames on stderr (when it is a terminal); `markers` and `ghosts`: per
    frame, as `render_meshes` takes them.
    """
    from PIL import Image

    path = Path(path)
    bounds = np.concatenate([v for meshes in frames for v, _ in meshes][:: max(1, len(frames) // 20)] + [line[0] for line in lines or []])
    images = []
    for k, meshes in enumerate(progress_bar(frames, enabled=progress, desc=path.name, unit="frame")):
        fig, ax = plt.subplots(figsize=(panel_size, panel_size * 1.25))
        _draw_panel(ax, meshes, view, colors or DEFAULT_COLORS, lines, floor_z, bounds,
                    markers=markers[k] if markers else None, ghosts=ghosts[k] if ghosts else None)
        fig.tight_layout()
        fig.canvas.draw()
        images.append(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
        plt.close(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".gif":
        pil = [Image.fromarray(image) for image in images]
        with opened_atomically(path) as f:
            pil[0].save(f, format="GIF", save_all=True, append_images=pil[1:], duration=int(1000 / fps), loop=0)
    else:
        import imageio.v2 as imageio

        with replaced_atomically(path) as tmp:  # ffmpeg writes to a name
            imageio.mimwrite(tmp, images, fps=fps, format="FFMPEG", codec="libx264", macro_block_size=8)
    return path
