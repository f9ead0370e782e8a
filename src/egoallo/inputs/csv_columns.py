"""Shared pieces of the text-file readers: decoding, numeric columns, increasing timestamps."""

from __future__ import annotations

from collections.abc import Callable
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
                    value = parse(fields[c])
                    if parse is int and not -(2**63) <= value < 2**63:
                        raise ValueError
                except ValueError:
                    kind = "an integer within int64" if parse is int else "a number"
                    raise error(path, f"column {header[c]!r} holds {fields[c]!r}; expected {kind}", f"line {label}") from None
        raise error(path, f"cannot parse the numeric columns ({failure})") from None


def drop_repeated_timestamps(
    path: Path,
    timestamps: np.ndarray,
    keep: np.ndarray,
    where: Callable[[int], str],
    error: type[InputFileError],
    describe: Callable[[int], str],
) -> tuple[np.ndarray, int, str | None]:
    """Rows of `keep` with strictly increasing `timestamps`, dropping exact repeats.

    `where(row)` names a row ("line 12"), `describe(row)` its timestamp ("1.5 s").
    Returns the kept rows, how many repeats were dropped and a repair note (None
    without repeats); a timestamp going backwards raises `error` naming both rows.
    """
    kept = timestamps[keep]
    backwards = np.flatnonzero(kept[1:] < kept[:-1])  # compared, not subtracted: int64 differences can overflow
    if backwards.size:
        before, after = keep[backwards[0]], keep[backwards[0] + 1]
        raise error(
            path,
            f"timestamp goes backwards ({describe(after)} after {describe(before)} at {where(before)}); "
            "expected increasing timestamps",
            where(after),
        )
    repeats = np.flatnonzero(kept[1:] == kept[:-1]) + 1
    if not repeats.size:
        return keep, 0, None
    note = f"dropped {repeats.size} rows repeating the previous timestamp (first at {where(keep[repeats[0]])})"
    return np.delete(keep, repeats), int(repeats.size), note


def _looks_utf16(head: bytes) -> bool:
    """ASCII text in UTF-16 without a BOM: every other byte is zero, the others are not."""
    even, odd = head[0::2], head[1::2]
    return len(head) >= 8 and any(
        a.count(0) == len(a) and b.count(0) == 0 for a, b in ((even, odd), (odd, even))
    )


def decode_text(path: Path, raw: bytes, expected: str, error: type[InputFileError]) -> str:
    """The UTF-8 text of a file's bytes (BOM dropped); UTF-16, binary, undecodable or empty data raises `error`."""
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff") or _looks_utf16(raw[:4096]):
        raise error(path, f"UTF-16 text, which is not supported; expected UTF-8 text ({expected}): convert it, "
                          "e.g. with `iconv -f UTF-16 -t UTF-8`")
    if b"\0" in raw[:4096]:
        raise error(path, f"binary file; expected {expected}")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as failure:
        raise error(path, f"not UTF-8 text ({failure.reason} at byte {failure.start}); expected {expected}") from None
    if not text.strip():
        raise error(path, f"empty file; expected {expected}")
    return text
