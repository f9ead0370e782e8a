"""The program's own `.npz` files (results, hand detections): checked, atomic writes and clear read errors."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from .errors import UserError


def write_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray], *, what: str, force: bool = False) -> Path:
    """Write `arrays` compressed to a temporary file beside `path`, then rename it over `path`.

    Refuses a name not ending in .npz, a missing directory, and an existing file unless `force`.
    `what` names the file in messages ("result", "hand detections").
    """
    path = Path(path)
    if path.suffix != ".npz":
        raise UserError(f"{path}: the {what} file must end in .npz.")
    if path.exists() and not force:
        raise UserError(f"{path} exists; pass --force to overwrite it.")
    if not path.parent.is_dir():
        raise UserError(f"{path.parent}: output directory does not exist.")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
    try:
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, path)
    except OSError as e:
        raise UserError(f"{path}: cannot write ({e.strerror or e}).") from None
    finally:
        if tmp.is_file():
            tmp.unlink()
    return path


def read_npz(path: str | os.PathLike, *, what: str) -> dict[str, np.ndarray]:
    """All arrays of an .npz (never unpickling), or a `UserError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: {what} file not found.")
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise UserError(f"{path}: not a readable .npz ({e}).") from None
