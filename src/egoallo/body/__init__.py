"""Body models with SMPL-H topology (shipped open model or official SMPL-H)."""

from . import skeleton
from .model import BodyModel, BodyModelFileError, Mesh, PosedBody, ShapedBody

__all__ = ["BodyModel", "BodyModelFileError", "Mesh", "PosedBody", "ShapedBody", "skeleton"]
