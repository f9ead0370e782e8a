"""Progress bars for commands that can take more than a few seconds: tqdm on stderr, only on a terminal."""

from __future__ import annotations

import sys
from collections.abc import Iterable

from tqdm import tqdm

DELAY_S = 1.0
"""A bar appears only once its work has taken this long (quick runs stay quiet)."""


def progress_bar(iterable: Iterable | None = None, *, enabled: bool = True, **kwargs) -> tqdm:
    """A tqdm bar on stderr; shown when `enabled` and stderr is a terminal (never in logs or pipes)."""
    shown = enabled and sys.stderr.isatty()
    return tqdm(iterable, file=sys.stderr, disable=not shown, delay=DELAY_S, dynamic_ncols=True, **kwargs)
