"""A body of a given stature: the shape coefficients β closest to a start whose body stands that tall.

A body's stature (`ShapedBody.stature`: top of the head to the soles at rest) is the height span of its rest
vertices, linear in β between changes of the highest or lowest vertex. `fit_stature` moves β along the
stature's gradient (Newton steps on that piecewise linear function): the smallest change of β, in the
Euclidean norm, that makes the body stand the given height, so everything else about the shape (proportions,
girth) stays as the start had it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .model import BodyModel

TOLERANCE_M = 1e-4
MAX_ITERATIONS = 10


def fit_stature(body: BodyModel, betas: Tensor, stature_m: float) -> Tensor:
    """`betas (..., B')` (B' <= B) changed as little as possible so that each body stands `stature_m` tall
    (within `TOLERANCE_M`). Returns `(..., B')` in `body`'s dtype."""
    b = betas.to(body.v_template.dtype)
    dy = body.shapedirs[:, 1, : b.shape[-1]]  # (V, B'): how each vertex's height changes per unit β
    for _ in range(MAX_ITERATIONS):
        y = body.with_shape(b).verts_zero[..., 1]  # (..., V)
        error = stature_m - (y.amax(dim=-1) - y.amin(dim=-1))  # (...)
        if bool((error.abs() <= TOLERANCE_M).all()):
            break
        gradient = dy[y.argmax(dim=-1)] - dy[y.argmin(dim=-1)]  # (..., B)
        b = b + (error / gradient.square().sum(dim=-1))[..., None] * gradient
    return b


def betas_with_stature(body: BodyModel, betas: np.ndarray, stature_m: float) -> np.ndarray:
    """`betas (B,)` (any length; the coefficients past the body model's are kept) changed as little as possible
    so that the body stands `stature_m` tall (`fit_stature`), as float64."""
    out = np.array(betas, dtype=np.float64)
    B = min(body.num_betas, out.shape[-1])
    out[:B] = fit_stature(body, torch.from_numpy(out[:B]), stature_m).double().numpy()
    return out


def stature_eye_height(body: BodyModel, stature_m: float) -> float:
    """Standing eye height (the CPF above the soles at rest) of the mean body fitted to `stature_m`."""
    return float(body.with_shape(fit_stature(body, torch.zeros(body.num_betas), stature_m)).eye_height)
