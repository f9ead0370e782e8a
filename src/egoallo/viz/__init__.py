"""Offscreen pictures of bodies and skeletons (matplotlib, CPU)."""

from .render import render_meshes

__all__ = ["render_meshes"]
