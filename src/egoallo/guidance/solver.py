"""Levenberg–Marquardt over per-frame rotation blocks with a block-banded normal-equation solve.

Variables are `J` rotations per frame, `(S, T, J, 3, 3)` for `S` independent
samples, updated on the right: `R ← R·exp(δ)` with `δ (S, T, J·3)`. Each cost
term's residuals live on windows of `span ≤ 3` consecutive frames, so `JᵀJ`
only has blocks on frame offsets 0, 1 and 2. It is assembled as those blocks
and solved with a block Cholesky over pairs of frames (a block-tridiagonal
matrix of `2·3J` blocks): cost linear in `T`, never a dense `(T·3J)²` matrix.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import torch
from torch import Tensor

from ..geometry import so3

MAX_SPAN = 3


@dataclasses.dataclass(frozen=True)
class Residual:
    """One cost term's residuals on windows of `span` consecutive frames.

    Window `w` covers frames `w .. w + span - 1`; there are `W = T - span + 1` windows.
    """

    values: Tensor
    """(S, W, m)"""
    jacobians: tuple[Tensor, ...] | None = None
    """`span` tensors, d values / d δ of frame `w + k`: (S, W, m, n), or (S, W, J, 3, 3) when `per_joint`."""
    per_joint: bool = False
    """Residual `3j..3j+2` depends only on rotation `j` (m = n = 3J); jacobians hold the 3×3 blocks."""

    @property
    def span(self) -> int:
        return len(self.jacobians) if self.jacobians is not None else 1


ResidualFn = Callable[[Tensor, bool], list[Residual]]
"""`(rotations (S, T, J, 3, 3), with_jacobians) -> residuals` of every cost term."""


@dataclasses.dataclass(frozen=True)
class NormalEquations:
    """`JᵀJ` as frame blocks and the gradient `Jᵀr`."""

    diagonal: Tensor
    """(S, T, n, n) blocks H[t, t]."""
    upper: tuple[Tensor, Tensor]
    """(S, T-1, n, n) blocks H[t, t+1] and (S, T-2, n, n) blocks H[t, t+2]."""
    gradient: Tensor
    """(S, T, n)"""


@dataclasses.dataclass(frozen=True)
class LMConfig:
    initial_damping: float = 0.1
    """λ of the first step (the paper's value); the damped system is `H + λ·diag(H)`."""
    damping_factor: float = 10.0
    """λ is divided by this after an accepted step and multiplied after a rejected one."""
    min_damping: float = 1e-8
    max_damping: float = 1e8
    """Stop a sample whose λ would exceed this (no decreasing step exists)."""
    relative_tolerance: float = 1e-4
    """Stop a sample once an accepted step lowers its cost by less than this fraction."""


@dataclasses.dataclass(frozen=True)
class SolverLog:
    costs: Tensor
    """(I + 1, S) cost of the current solution before the first iteration and after each."""
    accepted: Tensor
    """(I, S) whether each iteration's step was accepted."""
    damping: Tensor
    """(I, S) λ used by each iteration."""
    converged: Tensor
    """(S,) stopped on the relative-decrease test."""
    time_s: float

    @property
    def iterations(self) -> int:
        return self.accepted.shape[0]


def sum_of_squares(residuals: list[Residual]) -> Tensor:
    """(S,) total cost `Σ ‖r‖²`."""
    return sum(r.values.square().sum(dim=(1, 2)) for r in residuals)


def _block_diagonal(blocks: Tensor) -> Tensor:
    """(..., J, 3, 3) -> (..., 3J, 3J) block-diagonal matrices."""
    J = blocks.shape[-3]
    out = blocks.new_zeros(*blocks.shape[:-3], J, 3, J, 3)
    _joint_diagonal(out).copy_(blocks.movedim(-3, -1))
    return out.flatten(-4, -3).flatten(-2, -1)


def _joint_diagonal(matrices: Tensor) -> Tensor:
    """View (..., 3, 3, J) of the 3×3 diagonal blocks of `matrices (..., J, 3, J, 3)`."""
    return torch.diagonal(matrices, dim1=-4, dim2=-2)


def _jtr(residual: Residual, a: int) -> Tensor:
    """(S, W, n) `J_aᵀ r` for every window."""
    Ja = residual.jacobians[a]
    if residual.per_joint:
        r = residual.values.unflatten(-1, (-1, 3))
        return (Ja.mT @ r[..., None])[..., 0].flatten(-2)
    return (Ja.mT @ residual.values[..., None])[..., 0]


def normal_equations(residuals: list[Residual], num_frames: int) -> NormalEquations:
    """Accumulate the frame blocks of `JᵀJ` and `Jᵀr` from every term's windows.

    Per-joint terms are summed as 3×3 blocks first and added to the block diagonals once.
    """
    first = next(r for r in residuals if r.jacobians is not None)
    J0 = first.jacobians[0]
    S, n = J0.shape[0], (J0.shape[-3] * 3 if first.per_joint else J0.shape[-1])
    frames = [max(num_frames - k, 0) for k in range(MAX_SPAN)]
    blocks = [J0.new_zeros(S, f, n, n) for f in frames]
    joint_blocks = [J0.new_zeros(S, f, n // 3, 3, 3) for f in frames]
    gradient = J0.new_zeros(S, num_frames, n)
    for residual in residuals:
        span, W = residual.span, residual.values.shape[1]
        if span > MAX_SPAN:
            raise ValueError(f"residual spans {span} frames; at most {MAX_SPAN} are supported.")
        target = joint_blocks if residual.per_joint else blocks
        for a in range(span):
            gradient[:, a : a + W] += _jtr(residual, a)
            for b in range(a, span):
                target[b - a][:, a : a + W] += residual.jacobians[a].mT @ residual.jacobians[b]
    for block, joint_block in zip(blocks, joint_blocks):
        _joint_diagonal(block.unflatten(-1, (-1, 3)).unflatten(-3, (-1, 3))).add_(joint_block.movedim(-3, -1))
    return NormalEquations(diagonal=blocks[0], upper=(blocks[1], blocks[2]), gradient=gradient)


def _pair_frames(diagonal: Tensor, upper1: Tensor, upper2: Tensor, rhs: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Regroup a bandwidth-2 block matrix as a block-tridiagonal one over pairs of frames.

    Returns diagonal (S, K, 2n, 2n), upper (S, K-1, 2n, 2n) and rhs (S, K, 2n), K = ceil(T / 2);
    an odd T gets one padding frame with an identity block.
    """
    S, T, n, _ = diagonal.shape
    if T % 2:
        eye = torch.eye(n, dtype=diagonal.dtype, device=diagonal.device).expand(S, 1, n, n)
        diagonal = torch.cat([diagonal, eye], dim=1)
        upper1 = torch.cat([upper1, diagonal.new_zeros(S, 1, n, n)], dim=1)
        upper2 = torch.cat([upper2, diagonal.new_zeros(S, 1, n, n)], dim=1)[:, : T - 1]
        rhs = torch.cat([rhs, rhs.new_zeros(S, 1, n)], dim=1)
    K = diagonal.shape[1] // 2
    zero = diagonal.new_zeros(S, max(K - 1, 0), n, n)
    # Pair k holds frames (2k, 2k+1); its block with pair k+1 holds H[2k.., 2k+2..].
    D = torch.cat(
        [
            torch.cat([diagonal[:, 0::2], upper1[:, 0::2]], dim=-1),
            torch.cat([upper1[:, 0::2].mT, diagonal[:, 1::2]], dim=-1),
        ],
        dim=-2,
    )
    U = torch.cat(
        [
            torch.cat([upper2[:, 0::2], zero], dim=-1),
            torch.cat([upper1[:, 1::2], upper2[:, 1::2]], dim=-1),
        ],
        dim=-2,
    )
    return D, U, rhs.unflatten(1, (K, 2)).flatten(-2)


def _solve_block_tridiagonal(D: Tensor, U: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Solve `H x = b` for SPD block-tridiagonal H by block Cholesky.

    Args:
        D: (S, K, m, m) diagonal blocks; U: (S, K-1, m, m) blocks H[k, k+1]; b: (S, K, m).
    Returns:
        x (S, K, m), and ok (S,) False where a pivot block was not positive definite.
    """
    K = D.shape[1]
    L: list[Tensor] = []  # L[k, k]
    C: list[Tensor] = []  # L[k+1, k]
    y: list[Tensor] = []
    ok = torch.ones(D.shape[0], dtype=torch.bool, device=D.device)
    for k in range(K):
        Dk, bk = D[:, k], b[:, k, :, None]
        if k > 0:
            Ck = torch.linalg.solve_triangular(L[-1], U[:, k - 1], upper=False).mT
            C.append(Ck)
            Dk, bk = Dk - Ck @ Ck.mT, bk - Ck @ y[-1]
        Lk, info = torch.linalg.cholesky_ex(Dk)
        ok &= info == 0
        L.append(Lk)
        y.append(torch.linalg.solve_triangular(Lk, bk, upper=False))
    x = [torch.linalg.solve_triangular(L[-1].mT, y[-1], upper=True)]
    for k in range(K - 2, -1, -1):
        x.append(torch.linalg.solve_triangular(L[k].mT, y[k] - C[k].mT @ x[-1], upper=True))
    return torch.stack(x[::-1], dim=1)[..., 0], ok


def solve_banded(diagonal: Tensor, upper: tuple[Tensor, Tensor], rhs: Tensor) -> tuple[Tensor, Tensor]:
    """Solve `H x = rhs` for SPD H given by frame blocks (see `NormalEquations`).

    Returns x (S, T, n) and ok (S,); samples with a non-positive-definite H get NaN.
    """
    _, T, n = rhs.shape
    D, U, b = _pair_frames(diagonal, upper[0], upper[1], rhs)
    x, ok = _solve_block_tridiagonal(D, U, b)
    x = x.unflatten(-1, (2, n)).flatten(1, 2)[:, :T]
    return torch.where(ok[:, None, None], x, torch.nan), ok


def _damped(diagonal: Tensor, damping: Tensor) -> Tensor:
    """`H[t, t] + λ·diag(H)` per sample; the diagonal is floored so every direction is damped."""
    d = torch.diagonal(diagonal, dim1=-2, dim2=-1)
    floor = 1e-9 * d.amax(dim=(1, 2), keepdim=True).clamp_min(1.0)
    return diagonal + torch.diag_embed(damping[:, None, None] * torch.maximum(d, floor))


def retract(rotations: Tensor, delta: Tensor) -> Tensor:
    """`R·exp(δ)` for rotations (S, T, J, 3, 3) and δ (S, T, 3J)."""
    return rotations @ so3.exp(delta.unflatten(-1, (-1, 3)))


def levenberg_marquardt(
    residual_fn: ResidualFn, rotations: Tensor, iterations: int, config: LMConfig = LMConfig()
) -> tuple[Tensor, SolverLog]:
    """Minimise `Σ ‖r‖²` over the rotations (S, T, J, 3, 3), every sample independently.

    Each iteration solves one damped system and keeps the step only where it
    lowers that sample's cost. Returns the refined rotations and the log.
    """
    started = time.perf_counter()
    S, T = rotations.shape[:2]
    residuals = residual_fn(rotations, True)
    equations = normal_equations(residuals, T)
    cost = sum_of_squares(residuals)
    damping = torch.full((S,), config.initial_damping, dtype=rotations.dtype, device=rotations.device)
    active = torch.isfinite(cost)
    converged = torch.zeros_like(active)
    costs, accepted_log, damping_log = [cost], [], []
    for _ in range(iterations):
        damped = _damped(equations.diagonal, damping)
        delta, _ = solve_banded(damped, equations.upper, -equations.gradient)
        candidate = retract(rotations, torch.where(active[:, None, None], delta, 0.0))
        new_cost = sum_of_squares(residual_fn(candidate, False))
        accept = active & torch.isfinite(new_cost) & (new_cost < cost)
        converged |= accept & (cost - new_cost < config.relative_tolerance * cost)
        rotations = torch.where(accept[:, None, None, None, None], candidate, rotations)
        cost = torch.where(accept, new_cost, cost)
        damping_log.append(damping)
        accepted_log.append(accept)
        costs.append(cost)
        damping = torch.where(accept, damping / config.damping_factor, damping * config.damping_factor)
        damping = damping.clamp_min(config.min_damping)
        active = active & ~converged & (damping <= config.max_damping)
        if not active.any():
            break
        if accept.any():
            residuals = residual_fn(rotations, True)
            equations = normal_equations(residuals, T)
    return rotations, SolverLog(
        costs=torch.stack(costs),
        accepted=torch.stack(accepted_log) if accepted_log else torch.zeros(0, S, dtype=torch.bool),
        damping=torch.stack(damping_log) if damping_log else rotations.new_zeros(0, S),
        converged=converged,
        time_s=time.perf_counter() - started,
    )
