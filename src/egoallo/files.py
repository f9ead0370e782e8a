"""Checking paths before work, writing files atomically, and reading and writing `.npz` files."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from .errors import UserError

if TYPE_CHECKING:  # numpy is imported where arrays are read or written: path checks start fast
    import numpy as np


def require_file(path: str | os.PathLike, expected: str) -> Path:
    """`path` if it is an existing file, else a `UserError` saying what was `expected` there."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found; expected {expected}.")
    return path


def check_output(path: str | os.PathLike, suffixes: tuple[str, ...], *, force: bool) -> Path:
    """`path` if a file can be written there, checked before any work: a `UserError` for another suffix
    than `suffixes` (e.g. (".png", ".gif")), a missing or unwritable folder, or an existing file without `force`."""
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise UserError(f"{path}: the output must end in {' or '.join(suffixes)}.")
    if path.is_dir():
        raise UserError(f"{path}: is a directory; expected an output file name ending in {' or '.join(suffixes)}.")
    if path.exists() and not force:
        raise UserError(f"{path} exists; pass --force to overwrite it.")
    check_writable_folder(path.parent)
    return path


def check_output_folder(path: str | os.PathLike, *, force: bool) -> Path:
    """`path` if files can be written into it (created later when missing; its parent must exist), checked
    before any work: a `UserError` for a file there, a non-empty folder without `force`, or an unwritable place."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{path}: is a file; expected an output directory.")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise UserError(f"{path} exists and is not empty; pass --force to overwrite the files in it.")
    check_writable_folder(path if path.is_dir() else path.parent)
    return path


def check_output_files(folder: str | os.PathLike, names: list[str], *, force: bool) -> Path:
    """`folder` if the files `names` can be written into it (it and missing parents are created later), checked
    before any work: a `UserError` for a file at `folder` or above it, an existing file of those names without
    `force`, or an unwritable place."""
    folder = Path(folder)
    for name in names:
        path = folder / name
        if path.is_dir():
            raise UserError(f"{path}: is a directory; expected an output file name.")
        if path.exists() and not force:
            raise UserError(f"{path} exists; pass --force to overwrite it.")
    check_writable_folder(existing_ancestor(folder))
    return folder


def existing_ancestor(path: str | os.PathLike) -> Path:
    """The nearest of `path` and its parents that exists, if it is a directory; else a `UserError`."""
    path = Path(path).absolute()
    found = next(p for p in (path, *path.parents) if p.exists())
    if not found.is_dir():
        raise UserError(f"{found}: is a file; expected an output directory" + (f" (on the way to {path})." if found != path else "."))
    return found


def check_writable_folder(folder: str | os.PathLike) -> Path:
    """`folder` if it exists and a file can be created in it (tried, then removed), else a `UserError`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: output directory does not exist.")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise UserError(f"{folder}: cannot write in this directory ({e.strerror or e}).") from None
    return folder


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _exclusive_temp(path: Path) -> tuple[int, Path]:
    """A new, empty file with a random name beside `path`, created exclusively (`O_EXCL`: an existing name or
    a symlink there is never opened), with the permissions an ordinary new file would get. Its descriptor and path.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:64]}.", suffix=".tmp")
    os.fchmod(fd, 0o666 & ~_umask())
    return fd, Path(tmp)


@contextmanager
def replaced_atomically(path: str | os.PathLike) -> Iterator[Path]:
    """A new temporary file beside `path` to write, renamed over `path` when the block ends without error.

    The temporary file is created exclusively under a random name (two writers of one `path` never share it,
    a planted symlink is never followed). A `UserError` if the file cannot be written; `path` is untouched
    then and the temporary file removed. For writers that need a file name; `opened_atomically` hands out
    the open file itself.
    """
    path = Path(path)
    tmp = None
    try:
        fd, tmp = _exclusive_temp(path)
        os.close(fd)
        yield tmp
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        raise UserError(f"{path}: cannot write the file ({e.strerror or e}).") from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


@contextmanager
def opened_atomically(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """As `replaced_atomically`, but the block gets the temporary file open for binary writing (its name is
    never opened again, so nothing can be swapped in under it)."""
    path = Path(path)
    tmp = None
    try:
        fd, tmp = _exclusive_temp(path)
        with os.fdopen(fd, "wb") as f:
            yield f
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        raise UserError(f"{path}: cannot write the file ({e.strerror or e}).") from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to a new temporary file beside `path`, then rename it over `path` (a `UserError` if impossible)."""
    with opened_atomically(path) as f:
        f.write(data)
    return Path(path)


def write_files_atomic(folder: str | os.PathLike, contents: dict[str, bytes]) -> Path:
    """Write the files `contents` (name -> bytes) into `folder` as one: all of them or none.

    They are written into a new staging folder (random name) beside `folder` first. A missing or empty
    `folder` is then replaced by the staging folder in one rename; into a folder with other files, the files
    are moved one by one with SIGINT and SIGTERM held back, so an interrupt cannot leave some new files
    beside old ones. A `UserError` if the files cannot be written (nothing changed then).
    """
    folder = Path(folder)
    staging = None
    try:
        staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name[:64]}.", suffix=".partial"))
        os.chmod(staging, 0o777 & ~_umask())
        for name, data in contents.items():
            with (staging / name).open("xb") as f:
                f.write(data)
        if not folder.is_dir() or not any(folder.iterdir()):
            os.replace(staging, folder)
        else:
            with signals_held():
                for name in contents:
                    os.replace(staging / name, folder / name)
    except OSError as e:
        raise UserError(f"{folder}: cannot write {', '.join(contents)} ({e.strerror or e}).") from None
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    return folder


@contextmanager
def signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM held back during the block and delivered after it: the block runs to its end."""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


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
    import numpy as np

    # As numpy.savez_compressed, at zlib level 1 (half the time of its level 6, 2 % larger), streamed to disk.
    with opened_atomically(path) as f:
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
            for name, value in arrays.items():
                with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)
    return path


class NpzError(ValueError):
    """Not a valid `.npz`: the message says why, without the file name (callers add it)."""


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All arrays of an existing `.npz` file, never unpickling; an `NpzError` when it is not a valid npz."""
    import numpy as np

    if not zipfile.is_zipfile(path):
        raise NpzError("not a valid npz (expected a zip archive of .npy arrays, as numpy.savez writes)")
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError) as e:
        raise NpzError(f"not a valid npz ({e})") from None


def read_npz(path: str | os.PathLike, *, what: str) -> dict[str, np.ndarray]:
    """All arrays of an .npz (never unpickling), or a `UserError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: {what} file not found.")
    try:
        return load_npz(path)
    except NpzError as e:
        raise UserError(f"{path}: {e}.") from None
