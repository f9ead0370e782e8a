"""Optional third-party libraries: imported on use, with the extra to install named when one is missing;
their native log lines (projectaria-tools, MediaPipe/TF-Lite/absl) hidden unless `--verbose`.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Iterator
from types import ModuleType

from .errors import UserError

# Top-level module -> (distribution, the egoallo extra that installs it).
OPTIONAL = {
    "projectaria_tools": ("projectaria-tools", "aria"),
    "mediapipe": ("mediapipe", "hands"),
    "cv2": ("opencv (with mediapipe)", "hands"),
    "viser": ("viser", "viewer"),
    "websockets": ("websockets", "live"),
    "ray": ("ray", "cluster"),
    "imageio": ("imageio with imageio-ffmpeg", "video"),
    "imageio_ffmpeg": ("imageio with imageio-ffmpeg", "video"),
}

_verbose = False


class MissingExtraError(UserError):
    """An optional dependency is not installed; the message names the extra that installs it."""


def require(module: str, purpose: str) -> ModuleType:
    """Import `module` (e.g. "projectaria_tools.core.data_provider"); a `MissingExtraError` when its package is absent.

    `purpose` completes "... needs": e.g. "reading an Aria .vrs".
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        missing = (error.name or "").split(".")[0]
        if missing not in OPTIONAL:
            raise
        distribution, extra = OPTIONAL[missing]
        raise MissingExtraError(f"{purpose} needs {distribution}: pip install 'egoallo[{extra}]'") from None


def set_verbose(verbose: bool) -> None:
    """Show (True) or hide (False, the default) third-party libraries' native log lines."""
    global _verbose
    _verbose = verbose


@contextlib.contextmanager
def native_logs_hidden() -> Iterator[None]:
    """Inside the block, what native code writes to stderr (file descriptor 2) is discarded, unless verbose."""
    if _verbose:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
