"""Numeric columns of header-driven CSV files, with errors that name the line and column."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputFileError


def read_numeric_columns(
    path: Path,
    body: list[str],
    labels: np.ndarray,
    header: list[str],
    columns: list[int],
    dtype: type,
    error: type[InputFileError],
) -> np.ndarray:
    """(N, len(columns)) values of comma-separated `body` lines (`labels`: their line numbers).

    On a bad value raises `error` naming the line, the column and what was expected.
    """
    try:
        return np.loadtxt(body, delimiter=",", usecols=columns, dtype=dtype, ndmin=2, comments=None)
    except ValueError as failure:
        parse = int if dtype is np.int64 else float
        for label, line in zip(labels, body):
            fields = line.split(",")
            for c in columns:
                try:
                    parse(fields[c])
                except ValueError:
                    kind = "an integer" if parse is int else "a number"
                    raise error(path, f"column {header[c]!r} holds {fields[c]!r}; expected {kind}", f"line {label}") from None
        raise error(path, f"cannot parse the numeric columns ({failure})") from None
