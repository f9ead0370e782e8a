"""Checks of numeric flags and files, before any work (one `UserError` line naming the flag and the accepted
range)."""

from __future__ import annotations

import math
from pathlib import Path

from ..errors import UserError

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


def guidance_modes(guidance: tuple[str, ...]) -> frozenset[str]:
    """The guidance terms of `--guidance` ("off" alone: none); a `UserError` for "off" with others."""
    modes = frozenset(guidance) - {"off"}
    if "off" in guidance and modes:
        raise UserError(f"--guidance off cannot be combined with {sorted(modes)}.")
    return modes


def check_dataset(dataset: Path) -> None:
    """A `UserError` unless `dataset` is an existing HDF5 file."""
    if not dataset.is_file():
        raise UserError(f"{dataset}: dataset file not found (build one with `egoallo data build --out DIR`).")
    import h5py

    if not h5py.is_hdf5(dataset):
        raise UserError(f"{dataset}: not an HDF5 file; expected a dataset.h5 from `egoallo data build`.")
