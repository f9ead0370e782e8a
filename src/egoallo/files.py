"""Checking paths before work, writing files atomically, and reading and writing `.npz` files."""

from __future__ import annotations

import gzip
import math
import os
import shutil
import signal
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from .errors import UserError

if TYPE_CHECKING:  # numpy is imported where arrays are read or written: path checks start fast
    import numpy as np


def require_file(path: str | os.PathLike, expected: str) -> Path:
    """`path` if it is an existing regular file, else a `UserError` saying what is there and what was `expected`."""
    path = Path(path)
    if why := why_not_a_file(path):
        raise UserError(f"{path}: {why}; expected {expected}.")
    return path


def why_not_a_file(path: str | os.PathLike) -> str | None:
    """Why `path` cannot be read as a regular file ("file not found", "is a directory", "is a named pipe
    (FIFO)", ...), or None when it can."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return f"broken symbolic link (to {os.readlink(path)})" if path.is_symlink() else "file not found"
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    if stat.S_ISREG(mode):
        return None
    kinds = {stat.S_ISDIR: "a directory", stat.S_ISFIFO: "a named pipe (FIFO)", stat.S_ISCHR: "a character device",
             stat.S_ISBLK: "a block device", stat.S_ISSOCK: "a socket"}
    kind = next((name for test, name in kinds.items() if test(mode)), "not a regular file")
    link = f" (through a link to {os.path.realpath(path)})" if path.is_symlink() else ""
    return f"is {kind}{link}, not a regular file"


def _gzip_size(raw_tail: bytes) -> int:
    """The uncompressed size a single-member gzip stream states in its last 4 bytes (modulo 4 GiB)."""
    return int.from_bytes(raw_tail[-4:], "little")


def read_input_bytes(
    path: str | os.PathLike, *, expected: str, error: Callable[[Path, str], Exception], parse_bytes_per_byte: float
) -> bytes:
    """The bytes of the input file `path`, inflated when they are gzip data (whatever the name).

    Bounded before allocating: the file (or its inflated data, read in a streaming way and stopped at the
    limit) may hold at most what the memory available lets a parse needing `parse_bytes_per_byte` bytes per
    byte of data hold. `error(path, message)` is raised for anything else than a regular file, a corrupt
    gzip stream, or data past the limit.
    """
    from .resources import available_memory

    path = Path(path)
    if why := why_not_a_file(path):
        raise error(path, f"{why}; expected {expected}")
    available = available_memory()
    limit = int(available / parse_bytes_per_byte) if available is not None else None
    size = path.stat().st_size
    with path.open("rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
        if not gzipped:
            if limit is not None and size > limit:
                raise error(path, _too_big(size, parse_bytes_per_byte, available, expected))
            f.seek(0)
            return f.read()
        f.seek(max(0, size - 4))
        stated = _gzip_size(f.read(4))
    try:
        if limit is not None and stated > limit and (counted := _inflated_size(path, limit)) > limit:
            raise error(path, _too_big(counted, parse_bytes_per_byte, available, expected, "inflates to more than"))
        with gzip.open(path, "rb") as f:
            data = f.read(limit + 1 if limit is not None else -1)
    except (EOFError, OSError, zlib.error) as e:
        raise error(path, f"corrupt or truncated gzip data ({e}); expected {expected}, gzip-compressed or not") from None
    if limit is not None and len(data) > limit:
        raise error(path, _too_big(len(data), parse_bytes_per_byte, available, expected, "inflates to more than"))
    return data


def _inflated_size(path: Path, stop: int) -> int:
    """The size of gzip data inflated, counted up to just past `stop` bytes in 1 MB chunks."""
    size = 0
    with gzip.open(path, "rb") as f:
        while size <= stop and (chunk := f.read(1 << 20)):
            size += len(chunk)
    return size


def _too_big(size: float, per_byte: float, available: float, expected: str, verb: str = "holds") -> str:
    if verb == "holds":
        need = f"whose reading needs about {size * per_byte / 1e9:.1f} GB of memory, and {available / 1e9:.1f} GB is available"
    else:  # counted up to the limit only
        need = f"more than the {available / 1e9:.1f} GB of memory available lets it read (about {per_byte:g} bytes per byte)"
    return f"{verb} {size / 1e6:,.0f} MB of data, {need}; expected {expected} that fits (cut it into pieces)"


def check_output(path: str | os.PathLike, suffixes: tuple[str, ...], *, force: bool) -> Path:
    """`path` if a file can be written there, checked before any work: a `UserError` for another suffix
    than `suffixes` (e.g. (".png", ".gif")), a missing or unwritable folder, or an existing file without `force`."""
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise UserError(f"{path}: the output must end in {' or '.join(suffixes)}.")
    check_name_length(path)
    if path.is_dir():
        raise UserError(f"{path}: is a directory; expected an output file name ending in {' or '.join(suffixes)}.")
    if path.exists() and not force:
        raise UserError(f"{path} exists; pass --force to overwrite it.")
    check_writable_folder(path.parent)
    return path


def check_name_length(path: Path) -> None:
    """A `UserError` when a part of `path` is longer than a file name may be (255 bytes), or the whole path
    longer than a path may be (4,095 bytes)."""
    if (size := len(os.fsencode(path.absolute()))) > 4095:
        raise UserError(f"{str(path)[:60]}...: the path is {size} bytes long; expected at most 4,095 bytes.")
    for part in path.parts:
        size = len(os.fsencode(part))
        if size > 255:
            raise UserError(f"{path}: the name {part[:40]}... is {size} bytes long; expected at most 255 bytes per name.")


def check_output_folder(path: str | os.PathLike, *, force: bool) -> Path:
    """`path` if files can be written into it (created later when missing; its parent must exist), checked
    before any work: a `UserError` for a file there, a non-empty folder without `force`, or an unwritable place."""
    path = Path(path)
    check_name_length(path)
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
    check_name_length(folder)
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
def _staged(path: Path) -> Iterator[tuple[int, Path]]:
    """An exclusive temporary file beside `path` (descriptor, name), renamed over `path` when the block ends
    without error; removed otherwise. An `OSError` becomes a `UserError` naming `path`."""
    tmp = None
    try:
        fd, tmp = _exclusive_temp(path)
        yield fd, tmp
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        raise UserError(f"{path}: cannot write the file ({e.strerror or e}).") from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


@contextmanager
def replaced_atomically(path: str | os.PathLike) -> Iterator[Path]:
    """A new temporary file beside `path` to write, renamed over `path` when the block ends without error.

    The temporary file is created exclusively under a random name (two writers of one `path` never share it,
    a planted symlink is never followed). A `UserError` if the file cannot be written; `path` is untouched
    then and the temporary file removed. For writers that need a file name; `opened_atomically` hands out
    the open file itself.
    """
    with _staged(Path(path)) as (fd, tmp):
        os.close(fd)
        yield tmp


@contextmanager
def opened_atomically(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """As `replaced_atomically`, but the block gets the temporary file open for binary writing (its name is
    never opened again, so nothing can be swapped in under it)."""
    with _staged(Path(path)) as (fd, _), os.fdopen(fd, "wb") as f:
        yield f


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
        for name, data in contents.items():  # the fresh staging folder is this process's alone
            (staging / name).write_bytes(data)
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
    check_name_length(path)
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


def shortened(value: object, limit: int = 40) -> str:
    """`repr(value)`, cut to `limit` characters with "..." (a 300-digit number stays readable in one line)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}... ({len(text)} characters)"


def format_version(path: Path, data: dict[str, np.ndarray], what: str, expected: int) -> None:
    """A `UserError` unless `data["format_version"]` is the integer `expected` (`what`: "result", "hands")."""
    value = data.get("format_version")
    if value is None:
        raise UserError(f"{path}: no format_version; expected a {what} file of format version {expected}.")
    if value.shape != () or value.dtype.kind not in "iu":
        raise UserError(f"{path}: format_version is {shortened(value.tolist())} ({value.dtype}); expected the integer {expected}.")
    if int(value) != expected:
        raise UserError(f"{path}: {what} format version {shortened(int(value))}, this egoallo reads version {expected}.")


class NpzError(ValueError):
    """Not a valid `.npz`: the message says why, without the file name (callers add it)."""


def load_npz(path: str | os.PathLike, keys: Collection[str] | None = None) -> dict[str, np.ndarray]:
    """The arrays `keys` (all when None; those missing are left out) of an existing `.npz` file, never
    unpickling; an `NpzError` when it is not a valid npz or its arrays need more memory than is available.

    Only the members asked for are read, and their sizes are checked from their headers before allocating.
    """
    import numpy as np

    from .resources import available_memory

    if not zipfile.is_zipfile(path):
        raise NpzError("not a valid npz (expected a zip archive of .npy arrays, as numpy.savez writes)")
    try:
        with zipfile.ZipFile(path) as archive:
            members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()
                       if info.filename.endswith(".npy")}
            wanted = [name for name in members if keys is None or name in keys]
            headers = {}
            for name in wanted:
                with archive.open(members[name]) as member:
                    headers[name] = _npy_header(member, name)
            check_array_memory({name: nbytes for name, (_, nbytes) in headers.items()}, available_memory())
            arrays = {}
            for name in wanted:
                with archive.open(members[name]) as member:
                    arrays[name] = np.lib.format.read_array(member, allow_pickle=False)
            return arrays
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError) as e:
        raise NpzError(f"not a valid npz ({e})") from None


def load_npy(path: str | os.PathLike) -> np.ndarray:
    """The array of an existing `.npy` file, never unpickling, its size checked from its header before
    allocating; an `NpzError` when it is not a valid .npy or needs more memory than is available."""
    import numpy as np

    from .resources import available_memory

    try:
        with open(path, "rb") as f:
            _, nbytes = _npy_header(f, Path(path).name)
            check_array_memory({Path(path).name: nbytes}, available_memory())
            f.seek(0)
            return np.lib.format.read_array(f, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise NpzError(f"not a valid .npy ({e})") from None


def npz_names(path: str | os.PathLike) -> list[str]:
    """The array names of a valid `.npz` (from its zip directory; nothing is read)."""
    with zipfile.ZipFile(path) as archive:
        return [name.removesuffix(".npy") for name in archive.namelist() if name.endswith(".npy")]


ARRAY_COPIES = 3
"""Copies of an array a reader may hold at once (as read, converted, checked)."""


def check_array_memory(nbytes: dict[str, int], available: float | None) -> None:
    """An `NpzError` when arrays of `nbytes` (name -> bytes, from their headers) need more than `available`."""
    need = ARRAY_COPIES * sum(nbytes.values())
    if available is not None and need > available:
        largest = max(nbytes, key=nbytes.__getitem__)
        raise NpzError(f"its arrays ({largest}: {nbytes[largest] / 1e9:.1f} GB as its header says) need about "
                       f"{need / 1e9:.1f} GB of memory to read, and {available / 1e9:.1f} GB is available; "
                       "expected arrays that fit")


def _npy_header(f: BinaryIO, name: str) -> tuple[tuple[int, ...], int]:
    """(shape, bytes) an `.npy` stream's header claims; a `ValueError` for a header numpy cannot read."""
    import numpy as np

    version = np.lib.format.read_magic(f)
    if version not in ((1, 0), (2, 0)):
        raise ValueError(f"{name} has .npy format version {version[0]}.{version[1]}; expected 1.0 or 2.0")
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _, dtype = read_header(f, max_header_size=10_000)
    if dtype.hasobject:
        raise ValueError(f"{name} holds Python objects, which are never unpickled; expected numbers or text")
    return shape, math.prod(shape) * dtype.itemsize


def read_npz(path: str | os.PathLike, *, what: str, keys: Collection[str] | None = None) -> dict[str, np.ndarray]:
    """The arrays `keys` (all when None) of an .npz (never unpickling), or a `UserError` naming the file."""
    path = Path(path)
    if why := why_not_a_file(path):
        raise UserError(f"{path}: {why}; expected a {what} file.")
    try:
        return load_npz(path, keys)
    except NpzError as e:
        raise UserError(f"{path}: {e}.") from None
