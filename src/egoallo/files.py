"""Writing files atomically, and the program's own `.npz` files (results, hand detections)."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np

from .errors import UserError


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to a temporary file beside `path`, then rename it over `path` (a `UserError` if impossible)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as e:
        raise UserError(f"{path}: cannot write the file ({e.strerror or e}).") from None
    finally:
        if tmp.is_file():
            tmp.unlink()
    return path


def write_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray], *, what: str, force: bool = False) -> Path:
    """`arrays` compressed into `path`, atomically.

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
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return write_bytes_atomic(path, buffer.getvalue())


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
