"""Checks of numeric flags, before any work (one `UserError` line naming the flag and the accepted range),
and the set-up the estimating commands share once their flags passed (threads, body model, denoiser)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UserError

if TYPE_CHECKING:
    from ..body import BodyModel
    from ..prior.network import EgoDenoiser

MAX_SEED = 2**63 - 1
"""torch generators take a signed 64-bit seed."""


def check_range(flag: str, value: float, low: float, high: float = math.inf) -> None:
    """A `UserError` unless `low <= value <= high` (NaN is outside every range)."""
    if not low <= value <= high:
        span = f"at least {low:g}" if high == math.inf else f"from {low:g} to {high:g}"
        raise UserError(f"{flag} {value}: expected a number {span}.")


def check_seed(seed: int) -> None:
    """A `UserError` for a seed torch cannot take."""
    if not 0 <= seed <= MAX_SEED:
        raise UserError(f"--seed {seed}: expected an integer from 0 to 2**63 - 1.")


def check_dataset(dataset: Path) -> None:
    """A `UserError` unless `dataset` is an existing HDF5 file."""
    if not dataset.is_file():
        raise UserError(f"{dataset}: dataset file not found (build one with `egoallo data build --out DIR`).")
    import h5py

    if not h5py.is_hdf5(dataset):
        raise UserError(f"{dataset}: not an HDF5 file; expected a dataset.h5 from `egoallo data build`.")


def threads_and_models(
    threads: int | None, work: int, body_model: Path | None, checkpoint: Path | None
) -> tuple[BodyModel, EgoDenoiser, Path]:
    """Set torch's thread count for `work` (frames × samples; see `egoallo.threads`), printing any warning, and
    load the body model and the denoiser. Returns `(body, denoiser, checkpoint directory)`."""
    import torch

    from ..assets import DEFAULT_CHECKPOINT
    from ..body import BodyModel
    from ..prior.checkpoint import load_denoiser
    from ..threads import choose_threads, cores_here

    count, warning = choose_threads(threads, cores_here(), work)
    if warning:
        print(f"warning: {warning}")
    torch.set_num_threads(count)
    checkpoint = checkpoint or DEFAULT_CHECKPOINT
    return BodyModel.load_from_env_or_default(body_model), load_denoiser(checkpoint)[1], checkpoint
