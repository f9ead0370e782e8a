"""Noise schedule, training weights and DDIM-style sampling with overlapping windows.

Kept apart from the network (as diffusers splits schedulers from models): the
sampler only needs a function `denoise(x_t, t, window) -> x0` predicting the
clean state of one window.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable

import torch
from torch import Tensor

from ..threads import thread_pool, torch_threads
from .state import MotionState


@dataclasses.dataclass(frozen=True)
class CosineSchedule:
    """Cosine schedule over levels 1..`num_levels` (Nichol & Dhariwal; s = 0.008, β clipped at 0.999)."""

    num_levels: int = 1000
    s: float = 0.008
    max_beta: float = 0.999

    def alpha_bar(self) -> Tensor:
        """(num_levels + 1,) float64: ᾱ_t for t = 0..num_levels (ᾱ_0 = 1)."""
        t = torch.arange(self.num_levels + 1, dtype=torch.float64) / self.num_levels
        f = torch.cos((t + self.s) / (1 + self.s) * math.pi / 2) ** 2
        betas = (1 - f[1:] / f[:-1]).clamp(max=self.max_beta)
        return torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1 - betas, dim=0)])

    def loss_weight(self, t: Tensor) -> Tensor:
        """Per-level x0-loss weight ᾱ/(1-ᾱ) (the SNR, so x0 loss behaves like ε loss) clipped to [0.01, 1]."""
        ab = self.alpha_bar().to(t.device)[t]
        return (ab / (1 - ab)).clamp(0.01, 1.0).float()

    def add_noise(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """x_t = sqrt(ᾱ_t) x0 + sqrt(1-ᾱ_t) ε, with `t (B,)` in 1..num_levels and `x0 (B, T, D)`."""
        ab = self.alpha_bar().to(x0.device)[t].to(x0.dtype)[:, None, None]
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise


def sampling_levels(num_steps: int, num_levels: int = 1000) -> list[int]:
    """Noise levels from `num_levels` down to 0, spaced quadratically (denser near 0)."""
    levels = torch.linspace(math.sqrt(num_levels), 0.0, num_steps + 1) ** 2
    out: list[int] = []
    for level in levels.round().long().tolist():
        if not out or level < out[-1]:
            out.append(level)
    return out


def window_starts(length: int, window: int, overlap: int) -> list[int]:
    """Window start frames covering `length` frames; the last window ends at the last frame."""
    if length <= window:
        return [0]
    stride = window - overlap
    starts = list(range(0, length - window, stride))
    return starts + [length - window]


def _trapezoid(size: int, ramp: int, at_start: bool, at_end: bool) -> Tensor:
    """(size,) blending weights rising over `ramp` frames at the ends that overlap another window."""
    w = torch.ones(size)
    ramp_weights = torch.arange(1, ramp + 1, dtype=torch.float32) / (ramp + 1)
    if not at_start:
        w[:ramp] = ramp_weights
    if not at_end:
        w[size - ramp :] = ramp_weights.flip(0)
    return w


def blending_windows(length: int, window: int, overlap: int, device) -> tuple[Tensor, Tensor]:
    """Frame indices `(K, W)` of each window and its trapezoid blending weights `(K, W)`.

    Weights ramp where windows overlap; `W = min(window, length)`.
    """
    starts = window_starts(length, window, overlap)
    size = min(window, length)
    ramp = min(overlap, size // 2)
    frames = torch.tensor(starts, device=device)[:, None] + torch.arange(size, device=device)
    weights = torch.stack([_trapezoid(size, ramp, k == 0, k == len(starts) - 1) for k in range(len(starts))])
    return frames, weights.to(device)


@dataclasses.dataclass(frozen=True)
class Known:
    """Inpainting: entries of x0 fixed to given values while the rest is sampled.

    Every step's blended x0 prediction takes `x0` where `mask` is set, so the DDIM
    update re-noises the known values and the network sees them at the current noise
    level (replacement on the x0 prediction); the returned x0 holds them exactly.
    Live estimation fixes the frames it already emitted and the body shape this way.
    """

    x0: Tensor
    """(B, T, D) the known values (anything where `mask` is not set)."""
    mask: Tensor
    """bool, broadcastable to (B, T, D): which entries are known."""

    def apply(self, x0: Tensor) -> Tensor:
        """`x0 (B, T, D)` with the known entries replaced."""
        return torch.where(self.mask, self.x0.to(x0), x0)


DEFAULT_STEPS = 30
"""Denoising steps of a prior trained on data, unless asked otherwise."""
DEFAULT_ETA = 0.8
"""DDIM stochasticity of a prior trained on data (a distilled student samples with 0)."""

Denoiser = Callable[[Tensor, Tensor, Tensor], Tensor]
"""`denoise(x_t (B, K, W, D), t (B,), frames (K, W)) -> x0 (B, K, W, D)` for K windows at once;
`frames` holds each window's frame indices in the sequence."""

FRAME_CHUNK = 8192
"""Frames per chunk of the per-frame work of a step (projection, DDIM update): bounds temporary memory."""


@torch.no_grad()
def ddim_sample(
    denoise: Denoiser,
    shape: tuple[int, int, int],
    *,
    include_hands: bool,
    schedule: CosineSchedule = CosineSchedule(),
    num_steps: int = DEFAULT_STEPS,
    eta: float = DEFAULT_ETA,
    window: int = 128,
    overlap: int = 32,
    batch_windows: int = 32,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    on_step: Callable[[int, Tensor], Tensor] | None = None,
    known: Known | None = None,
    workers: int | None = None,
) -> Tensor:
    """Sample x0 `(B, T, D)` for a sequence of any length T.

    Every step predicts x0 on overlapping windows, `batch_windows` windows (of all
    B samples) per `denoise` call, blends the predictions with trapezoid weights,
    projects rotations onto SO(3), and takes one DDIM step (stochasticity `eta`).
    `on_step(level, x0)` may refine the blended x0 (e.g. guidance) before the step;
    `known` then fixes parts of it (inpainting, see `Known`).
    With more than one `denoise` call per step, `workers` of them run at once, each on
    one torch thread (default: torch's thread count; `denoise` must then be thread-safe);
    the result does not depend on it.
    Beyond the network, memory is a few copies of the `(B, T, D)` state.
    """
    B, T, D = shape
    alpha_bar = schedule.alpha_bar().to(device)
    x = torch.randn(shape, generator=generator, device=device)
    frames, weights = blending_windows(T, window, overlap, device)
    total_weight = torch.zeros(T, device=device).index_add_(0, frames.flatten(), weights.flatten())
    per_call = max(1, batch_windows // B)
    calls = [(frames[k : k + per_call], weights[k : k + per_call]) for k in range(0, frames.shape[0], per_call)]
    workers = min(torch.get_num_threads() if workers is None else workers, len(calls))
    levels = sampling_levels(num_steps, schedule.num_levels)
    with thread_pool(workers) as pool:
        for level, next_level in zip(levels[:-1], levels[1:]):
            t = torch.full((B,), level, dtype=torch.long, device=device)

            @torch.no_grad()  # per thread: the pool's threads do not inherit the caller's
            def predict(call: tuple[Tensor, Tensor]) -> Tensor:
                chunk, w = call
                return denoise(x[:, chunk], t, chunk) * w[None, :, :, None]

            x0 = torch.zeros_like(x)
            # The pool's threads take torch's thread count (1) at their first call; `on_step` keeps the caller's.
            with torch_threads(1) if pool else contextlib.nullcontext():
                for (chunk, _), predicted in zip(calls, pool.map(predict, calls) if pool else map(predict, calls)):
                    x0.index_add_(1, chunk.flatten(), predicted.flatten(1, 2))
            x0, x = _step(x0, x, total_weight, level, next_level, alpha_bar, include_hands, eta, generator, on_step, known)
    return x0


def _step(
    x0: Tensor,
    x: Tensor,
    total_weight: Tensor,
    level: int,
    next_level: int,
    alpha_bar: Tensor,
    include_hands: bool,
    eta: float,
    generator: torch.Generator | None,
    on_step: Callable[[int, Tensor], Tensor] | None,
    known: Known | None,
) -> tuple[Tensor, Tensor]:
    """The blended window predictions `x0 (B, T, D)` normalised, projected, refined; then the DDIM step of `x`."""
    T = x.shape[1]
    for a in range(0, T, FRAME_CHUNK):
        part = slice(a, a + FRAME_CHUNK)
        x0[:, part] = project_state(x0[:, part] / total_weight[part, None], include_hands)
    if on_step is not None:
        x0 = on_step(next_level, x0)
    if known is not None:
        x0 = known.apply(x0)
    ab, ab_next = alpha_bar[level], alpha_bar[next_level]
    for a in range(0, T, FRAME_CHUNK):
        part = slice(a, a + FRAME_CHUNK)
        noise = torch.randn(x[:, part].shape, generator=generator, device=x.device) if eta > 0 else None
        x[:, part] = ddim_step(x[:, part], x0[:, part], ab, ab_next, eta=eta, noise=noise)
    return x0, x


def ddim_step(x_t: Tensor, x0: Tensor, ab: Tensor, ab_next: Tensor, *, eta: float = 0.0,
              noise: Tensor | None = None) -> Tensor:
    """One DDIM update from level ᾱ=`ab` to the less noisy ᾱ=`ab_next`, given the x0 prediction.

    `ab`, `ab_next` broadcast against `x_t (..., D)`; `noise` (like `x_t`) is needed when `eta > 0`.
    """
    eps = (x_t - ab.sqrt() * x0) / (1 - ab).sqrt()
    if eta == 0:
        return ab_next.sqrt() * x0 + (1 - ab_next).sqrt() * eps
    sigma = eta * ((1 - ab_next) / (1 - ab) * (1 - ab / ab_next)).clamp(min=0).sqrt()
    direction = (1 - ab_next - sigma**2).clamp(min=0).sqrt() * eps
    return ab_next.sqrt() * x0 + direction + sigma * noise


def x0_of_step(x_t: Tensor, x_next: Tensor, ab: Tensor, ab_next: Tensor) -> Tensor:
    """The x0 prediction whose deterministic DDIM step (`eta` = 0) takes `x_t` at ᾱ=`ab` to `x_next` at ᾱ=`ab_next`.

    The inverse of `ddim_step` in its x0 argument: a distilled student learns this target
    from a chain of teacher steps (progressive distillation, Salimans & Ho 2022).
    """
    ratio = ((1 - ab_next) / (1 - ab)).sqrt()
    return (x_next - ratio * x_t) / (ab_next.sqrt() - ratio * ab.sqrt())


def project_state(x0: Tensor, include_hands: bool) -> Tensor:
    """Packed states `(..., D)` with rotations projected onto SO(3) and contacts clamped to [0, 1]."""
    state = MotionState.unpack(x0, include_hands, project_rotations=True)
    return dataclasses.replace(state, contacts=state.contacts.clamp(0.0, 1.0)).pack()
