"""Levenberg–Marquardt over per-frame rotation blocks with a banded normal-equation solve.

Variables are `J` rotations per frame, `(S, T, J, 3, 3)` for `S` independent
samples, updated on the right: `R ← R·exp(δ)` with `δ (S, T, J·3)`. Each cost
term's residuals live on windows of `span ≤ 3` consecutive frames, so `JᵀJ`
only has blocks on frame offsets 0, 1 and 2. Position terms touch only the
rotations on the chains between the head and their joints; every other rotation
has per-joint terms alone and is coupled to nothing but itself over time. So the
damped system splits into one banded system over the touched rotations and a
3-wide banded system per remaining rotation, each solved by LAPACK's banded
Cholesky (`pbsv`): cost linear in `T`, no loop over frames, never a dense
`(T·3J)²` matrix.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence

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
    """`JᵀJ` as frame blocks, split in two, and the gradient `Jᵀr`.

    Terms whose residuals are not per joint touch only some rotations (`columns`); their
    blocks are kept over those columns alone. Per-joint terms give 3×3 blocks per rotation.
    `JᵀJ` is their sum; a rotation outside `columns` is coupled to nothing but itself
    over time, so the system splits into one banded part over `columns` and one small
    banded system per remaining rotation.
    """

    dense: tuple[Tensor, Tensor, Tensor]
    """(S, T, d, d), (S, T-1, d, d), (S, T-2, d, d): blocks H[t, t+k] over `columns`, k = 0, 1, 2."""
    joint: tuple[Tensor, Tensor, Tensor]
    """(S, T, J, 3, 3), (S, T-1, J, 3, 3), (S, T-2, J, 3, 3): per-rotation blocks H[t, t+k]."""
    columns: Tensor
    """(d,) long: the variables (out of n = 3J) the dense blocks cover, whole rotations."""
    gradient: Tensor
    """(S, T, n)"""
    bandwidths: tuple[int, int]
    """Half-bandwidths of the banded system over `columns` and of each per-rotation system (see `solve_damped`)."""

    def full(self, k: int) -> Tensor:
        """(S, T-k, n, n) blocks H[t, t+k] of the whole `JᵀJ`."""
        joint = self.joint[k]
        out = _block_diagonal(joint)
        index = self.columns
        out[..., index[:, None], index[None, :]] += self.dense[k]
        return out

    @property
    def diagonal(self) -> Tensor:
        """(S, T, n, n) blocks H[t, t]."""
        return self.full(0)

    @property
    def upper(self) -> tuple[Tensor, Tensor]:
        """(S, T-1, n, n) blocks H[t, t+1] and (S, T-2, n, n) blocks H[t, t+2]."""
        return self.full(1), self.full(2)


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
    """(S, W, n) `J_aᵀ r` for every window of a per-joint residual."""
    r = residual.values.unflatten(-1, (-1, 3))
    return (residual.jacobians[a].mT @ r[..., None])[..., 0].flatten(-2)


def _used_columns(residuals: list[Residual], n: int) -> Tensor:
    """(d,) long: the variables of whole rotations on which some non-per-joint residual depends."""
    used = torch.zeros(n // 3, dtype=torch.bool)
    for residual in residuals:
        if residual.jacobians is not None and not residual.per_joint:
            for Ja in residual.jacobians:
                norms = Ja.flatten(0, -2).square().sum(dim=0)  # (n,): a sum is faster than a boolean any
                used |= (norms != 0).unflatten(0, (-1, 3)).any(dim=-1).cpu()
    return (used.nonzero()[:, 0, None] * 3 + torch.arange(3)).flatten()


def normal_equations(residuals: list[Residual], num_frames: int) -> NormalEquations:
    """Accumulate the frame blocks of `JᵀJ` and `Jᵀr` from every term's windows.

    Dense terms are multiplied out over the columns they use; per-joint terms are
    summed as 3×3 blocks.
    """
    first = next(r for r in residuals if r.jacobians is not None)
    J0 = first.jacobians[0]
    S, n = J0.shape[0], (J0.shape[-3] * 3 if first.per_joint else J0.shape[-1])
    columns = _used_columns(residuals, n).to(J0.device)
    frames = [max(num_frames - k, 0) for k in range(MAX_SPAN)]
    dense = [J0.new_zeros(S, f, len(columns), len(columns)) for f in frames]
    joint = [J0.new_zeros(S, f, n // 3, 3, 3) for f in frames]
    gradient = J0.new_zeros(S, num_frames, n)
    for residual in residuals:
        span, W = residual.span, residual.values.shape[1]
        if span > MAX_SPAN:
            raise ValueError(f"residual spans {span} frames; at most {MAX_SPAN} are supported.")
        if residual.per_joint:
            jacobians, target = residual.jacobians, joint
            for a in range(span):
                gradient[:, a : a + W] += _jtr(residual, a)
        else:
            jacobians, target = tuple(Ja[..., columns] for Ja in residual.jacobians), dense
            for a in range(span):
                gradient[:, a : a + W, columns] += (jacobians[a].mT @ residual.values[..., None])[..., 0]
        for a in range(span):
            for b in range(a, span):
                target[b - a][:, a : a + W] += jacobians[a].mT @ jacobians[b]
    joints, others = _coupled_rotations(columns, n // 3)
    # The dense systems also hold the per-joint blocks of their rotations (`_damped_parts`).
    dense_kd = max(_bandwidth(dense), _bandwidth([b[:, :, joints] for b in joint], len(columns)))
    bandwidths = (dense_kd, _bandwidth([b[:, :, others] for b in joint], 3))
    return NormalEquations(
        dense=tuple(dense), joint=tuple(joint), columns=columns, gradient=gradient, bandwidths=bandwidths
    )


def _coupled_rotations(columns: Tensor, num_rotations: int) -> tuple[Tensor, Tensor]:
    """The rotations whose variables are `columns` (long), and a (num_rotations,) mask of the others."""
    joints = columns[::3] // 3
    others = torch.ones(num_rotations, dtype=torch.bool, device=columns.device)
    others[joints] = False
    return joints, others


def _bandwidth(blocks: Sequence[Tensor], n: int | None = None) -> int:
    """Half-bandwidth of the matrix whose frame blocks H[t, t+k] (k = 0, 1, 2) are `blocks[k]`.

    `blocks[k]`: (B, T-k, n, n), or (B, T-k, R, 3, 3) for the 3×3 diagonal blocks of R rotations
    (then `n` = 3R, or 3 for R independent systems of one rotation each).
    """
    kd = 0
    for k, block in enumerate(blocks):
        if not block.numel():
            continue
        used = (block != 0).flatten(0, -3).any(dim=0).cpu()  # (n, n) or (3, 3)
        width = block.shape[-1] if n is None else n
        offsets = k * width + torch.arange(used.shape[-1])[None, :] - torch.arange(used.shape[-1])[:, None]
        kd = max(kd, int(offsets[used].max()) if used.any() else 0)
    return kd


def solve_banded(
    diagonal: Tensor, upper: tuple[Tensor, Tensor], rhs: Tensor, bandwidth: int | None = None
) -> tuple[Tensor, Tensor]:
    """Solve `H x = rhs` for SPD H given by frame blocks (see `NormalEquations.full`).

    Args:
        diagonal: (B, T, n, n) blocks H[t, t]; upper: (B, T-1, n, n) H[t, t+1] and (B, T-2, n, n) H[t, t+2].
        rhs: (B, T, n)
        bandwidth: half-bandwidth of the nonzero entries (at most 3n − 1), if known; else found here.
    Returns:
        x (B, T, n) and ok (B,); systems that are not positive definite get NaN. LAPACK's banded
        Cholesky (`pbsv`) on all B systems at once, one after another in one band matrix (no
        entry couples them): cost linear in B·T.
    """
    from scipy.linalg import lapack  # scipy.linalg is already loaded by the trajectory readers

    B, T, n = rhs.shape
    kd = _bandwidth((diagonal, *upper)) if bandwidth is None else bandwidth
    pad = max(0, kd - 2 * n)
    # Per frame t, the column of blocks [0 (pad rows); H[t-2, t]; H[t-1, t]; H[t, t]] (pad + 3n rows, n columns).
    columns = diagonal.new_zeros(B, T, pad + 3 * n, n)
    columns[:, 2:, pad : pad + n] = upper[1]
    columns[:, 1:, pad + n : pad + 2 * n] = upper[0]
    columns[:, :, pad + 2 * n :] = diagonal
    # Band row q of column c (frame t) is row q + c + 2n − kd of that column (rows above it are the zero pad).
    band = columns.as_strided(
        (B, T, n, kd + 1), ((pad + 3 * n) * n * T, (pad + 3 * n) * n, n + 1, n), (pad + 2 * n - kd) * n
    )
    band = band.reshape(B * T * n, kd + 1).cpu().numpy()  # band.T: LAPACK's upper band storage, Fortran order
    pbsv = lapack.spbsv if band.dtype.name == "float32" else lapack.dpbsv
    b = rhs.reshape(B * T * n, 1).cpu().numpy()
    _, solution, info = pbsv(band.T, b, overwrite_ab=0)
    if info == 0:
        x = torch.from_numpy(solution).reshape(B, T, n).to(rhs.device)
        return x, torch.ones(B, dtype=torch.bool, device=rhs.device)
    # Some system is not positive definite: solve each alone to find which.
    x, ok = torch.full_like(rhs, torch.nan), torch.zeros(B, dtype=torch.bool, device=rhs.device)
    size = T * n
    for k in range(B):
        _, solution, info = pbsv(band[k * size : (k + 1) * size].T, b[k * size : (k + 1) * size])
        if info == 0:
            x[k] = torch.from_numpy(solution).reshape(T, n).to(x.device)
            ok[k] = True
    return x, ok


def _damped_parts(equations: NormalEquations, damping: Tensor) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
    """The damped dense blocks over `columns` and the per-rotation blocks of the other rotations.

    `H + λ·diag(H)` per sample, the diagonal floored so every direction is damped.
    Returns ((S, T-k, d, d) for k = 0, 1, 2) and ((S·R, T-k, 3, 3) for k = 0, 1, 2), R the other rotations.
    """
    S, _, J = equations.joint[0].shape[:3]
    joints, others = _coupled_rotations(equations.columns, J)
    dense = []
    for k in range(MAX_SPAN):
        block = equations.dense[k].clone()
        within = block.unflatten(-1, (-1, 3)).unflatten(-3, (-1, 3))  # (S, T-k, d/3, 3, d/3, 3)
        torch.diagonal(within, dim1=-4, dim2=-2).add_(equations.joint[k][:, :, joints].movedim(-3, -1))
        dense.append(block)
    alone = [equations.joint[k][:, :, others].movedim(2, 1).flatten(0, 1) for k in range(MAX_SPAN)]
    d_dense = torch.diagonal(dense[0], dim1=-2, dim2=-1)  # (S, T, d)
    d_alone = torch.diagonal(alone[0], dim1=-2, dim2=-1).unflatten(0, (S, -1))  # (S, R, T, 3)
    largest = torch.cat([d_dense.flatten(1), d_alone.flatten(1)], dim=1).amax(dim=1)
    floor = 1e-9 * largest.clamp_min(1.0)  # (S,)
    dense[0] = dense[0] + torch.diag_embed(damping[:, None, None] * torch.maximum(d_dense, floor[:, None, None]))
    scale = (damping[:, None, None, None] * torch.maximum(d_alone, floor[:, None, None, None])).flatten(0, 1)
    alone[0] = alone[0] + torch.diag_embed(scale)
    return tuple(dense), tuple(alone)


def solve_damped(equations: NormalEquations, damping: Tensor) -> Tensor:
    """(S, T, n) the step solving `(H + λ·diag(H)) δ = −Jᵀr` (NaN for a sample whose system is not SPD)."""
    dense, alone = _damped_parts(equations, damping)
    rhs = -equations.gradient
    S, T, n = rhs.shape
    columns = equations.columns
    others = torch.ones(n, dtype=torch.bool, device=rhs.device)
    others[columns] = False
    delta = torch.empty_like(rhs)
    if len(columns):
        delta[..., columns] = solve_banded(dense[0], dense[1:], rhs[..., columns], equations.bandwidths[0])[0]
    if others.any():
        rhs_alone = rhs[..., others].unflatten(-1, (-1, 3)).movedim(2, 1).flatten(0, 1)  # (S·R, T, 3)
        x = solve_banded(alone[0], alone[1:], rhs_alone, equations.bandwidths[1])[0]
        delta[..., others] = x.unflatten(0, (S, -1)).movedim(1, 2).flatten(-2)
    return delta


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
    for iteration in range(iterations):
        delta = solve_damped(equations, damping)
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
        if accept.any() and iteration + 1 < iterations:  # (no Jacobians after the last iteration)
            residuals = residual_fn(rotations, True)
            equations = normal_equations(residuals, T)
    return rotations, SolverLog(
        costs=torch.stack(costs),
        accepted=torch.stack(accepted_log) if accepted_log else torch.zeros(0, S, dtype=torch.bool),
        damping=torch.stack(damping_log) if damping_log else rotations.new_zeros(0, S),
        converged=converged,
        time_s=time.perf_counter() - started,
    )
