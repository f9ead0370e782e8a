"""Geometry: batched, differentiable SO(3) and SE(3) in PyTorch (`so3`, `se3`), and checks of rigid transforms
given as numpy matrices (`rigid`, which needs no torch)."""

import importlib

__all__ = ["rigid", "se3", "so3"]


def __getattr__(name: str):
    # Submodules load when first used: readers that only check a matrix (`rigid`) do not import torch.
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
