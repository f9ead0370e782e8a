"""Per-frame conditioning of the denoiser on a head (CPF) trajectory.

Inputs are `T_world_cpf (..., T+1, 4, 4)` in a z-up world with the floor at z = 0;
outputs cover frames 1..T, shape `(..., T, D)`. Four parameterisations (the EgoAllo
paper's Table 1) are available; each packs a few raw numbers per frame and then
Fourier-encodes them (`fourier_encode`):

- `"ours"` (22 raw numbers, 154 encoded): the relative pose
  `T_cpf_tm1_cpf_t = T_world_cpf[t-1]^-1 T_world_cpf[t]` as its top 3x4, row-major
  (12); the CPF height above the floor (1); the CPF rotation with its yaw about world
  z removed, row-major (9). The yaw is that of the CPF's forward axis (+z), so after
  removal the CPF's forward direction projects onto world +x. Invariant to
  translating the world in x/y, rotating it about z, and to where a window starts.
- `"canonicalized"` (12 raw, 84 encoded): EgoEgo-style sequence canonicalisation,
  `T_world_canon0^-1 T_world_cpf[t]` as 3x4, where `T_world_canon0` sits at the CPF
  position of frame 1 (the first conditioned frame, height included) with the
  yaw-only rotation of that frame's CPF. Invariant to world x/y translation and yaw
  rotation, but not to where the window starts.
- `"absolute"` (12 raw, 84 encoded): `T_world_cpf[t]` as 3x4. Invariant to nothing.
- `"absrel"` (24 raw, 168 encoded): `"absolute"` followed by the relative pose.

All four reproduce the reference release's outputs (fixture `egoallo_ref_tiny`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import Tensor

from egoallo.geometry import se3, so3

CondParam = Literal["ours", "canonicalized", "absolute", "absrel"]
COND_PARAMS: tuple[CondParam, ...] = get_args(CondParam)

CPF_FORWARD_AXIS = 2
"""The CPF's forward axis (+z); its projection onto the floor defines the CPF yaw."""


@dataclass(frozen=True)
class ConditioningConfig:
    """Which conditioning to compute, and how to encode it."""

    kind: CondParam = "ours"
    fourier_freqs: int = 3
    """Number of frequencies `2^k, k = 0..fourier_freqs-1` of the Fourier features."""
    include_canonicalized_cpf_rotation: bool = True
    """`"ours"` only: include the yaw-free CPF rotation (9 numbers)."""

    def __post_init__(self) -> None:
        if self.kind not in COND_PARAMS:
            raise ValueError(f"Unknown conditioning {self.kind!r}; expected one of {COND_PARAMS}.")
        if self.fourier_freqs < 0:
            raise ValueError(f"fourier_freqs must be >= 0, got {self.fourier_freqs}.")

    @property
    def raw_dim(self) -> int:
        """Numbers per frame before Fourier encoding."""
        if self.kind == "ours":
            return 22 if self.include_canonicalized_cpf_rotation else 13
        return 24 if self.kind == "absrel" else 12

    @property
    def dim(self) -> int:
        """Numbers per frame after Fourier encoding."""
        return self.raw_dim * (1 + 2 * self.fourier_freqs)


def conditioning_dim(
    kind: CondParam,
    fourier_freqs: int = 3,
    include_canonicalized_cpf_rotation: bool = True,
) -> int:
    """Conditioning size per frame: 154 (`ours`), 84 (`canonicalized`, `absolute`), 168 (`absrel`)."""
    return ConditioningConfig(kind, fourier_freqs, include_canonicalized_cpf_rotation).dim


def fourier_encode(x: Tensor, num_freqs: int) -> Tensor:
    """`(..., d) -> (..., d * (1 + 2 * num_freqs))`.

    Concatenates `x`, `sin(x * 2^k)` and `cos(x * 2^k)` (computed as `sin(... + pi/2)`),
    each block value-major: for each of the `d` values, `k = 0..num_freqs-1`.
    """
    scales = 2.0 ** torch.arange(num_freqs, dtype=x.dtype, device=x.device)
    scaled = (x[..., :, None] * scales).flatten(-2)
    return torch.cat([x, torch.sin(scaled), torch.sin(scaled + math.pi / 2)], dim=-1)


def relative_poses(T_world_cpf: Tensor) -> Tensor:
    """`T_cpf_tm1_cpf_t = T_world_cpf[t-1]^-1 T_world_cpf[t]`: `(..., T+1, 4, 4) -> (..., T, 4, 4)`."""
    return se3.inverse(T_world_cpf[..., :-1, :, :]) @ T_world_cpf[..., 1:, :, :]


def _flat_3x4(T: Tensor) -> Tensor:
    """Top 3x4 of `(..., 4, 4)`, row-major: `(..., 12)`."""
    return T[..., :3, :].flatten(-2)


def raw_conditioning(T_world_cpf: Tensor, config: ConditioningConfig = ConditioningConfig()) -> Tensor:
    """Conditioning before Fourier encoding: `(..., T+1, 4, 4) -> (..., T, config.raw_dim)`."""
    if T_world_cpf.shape[-2:] != (4, 4) or T_world_cpf.ndim < 3 or T_world_cpf.shape[-3] < 2:
        raise ValueError(f"Expected T_world_cpf of shape (..., T+1, 4, 4), T >= 1; got {tuple(T_world_cpf.shape)}.")
    T_current = T_world_cpf[..., 1:, :, :]
    if config.kind == "ours":
        parts = [_flat_3x4(relative_poses(T_world_cpf)), T_current[..., 2, 3:4]]
        if config.include_canonicalized_cpf_rotation:
            R_yaw_free = so3.remove_yaw(se3.rotation(T_current), CPF_FORWARD_AXIS)
            parts.append(R_yaw_free.flatten(-2))
        return torch.cat(parts, dim=-1)
    if config.kind == "canonicalized":
        T_first = T_current[..., :1, :, :]
        R_yaw = so3.yaw_rotation(se3.rotation(T_first), CPF_FORWARD_AXIS)
        T_world_canon0 = se3.from_rotation_translation(R_yaw, se3.translation(T_first))
        return _flat_3x4(se3.inverse(T_world_canon0) @ T_current)
    if config.kind == "absolute":
        return _flat_3x4(T_current)
    return torch.cat([_flat_3x4(T_current), _flat_3x4(relative_poses(T_world_cpf))], dim=-1)


def compute_conditioning(T_world_cpf: Tensor, config: ConditioningConfig = ConditioningConfig()) -> Tensor:
    """Fourier-encoded conditioning for frames 1..T: `(..., T+1, 4, 4) -> (..., T, config.dim)`."""
    return fourier_encode(raw_conditioning(T_world_cpf, config), config.fourier_freqs)
