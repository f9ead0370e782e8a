"""Where detections are cached: the user's cache directory (`$XDG_CACHE_HOME/egoallo/hands`, by default
`~/.cache/egoallo/hands`), never beside the input (which may lie in a read-only or shared folder).

A cache file is named after the input and a key over its resolved path, size, modification
time, the camera JSON's text and the detection settings, so a changed input or setting misses.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from egoallo.errors import UserError
from egoallo.hands.detections import HandDetections


def cache_dir() -> Path:
    """`$XDG_CACHE_HOME/egoallo/hands`, or `~/.cache/egoallo/hands` when it is not set."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "egoallo" / "hands"


def cache_key(path: Path, intrinsics: Path | None, settings: dict) -> str:
    """16 hex digits identifying the detections of `path` with these settings."""
    stat = path.stat()
    parts = {
        "path": str(path.resolve()),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "intrinsics": intrinsics.read_text(encoding="utf-8", errors="replace") if intrinsics else None,
        "settings": settings,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def cache_file(path: Path, key: str) -> Path:
    """The cache file of the detections of `path` with `key`."""
    return cache_dir() / f"{path.name}.{key}.npz"


def load_cached(path: Path, key: str) -> tuple[HandDetections, Path] | None:
    """The cached detections and their file, or None (a damaged cache file counts as missing)."""
    candidate = cache_file(path, key)
    if not candidate.is_file():
        return None
    try:
        return HandDetections.load(candidate), candidate
    except UserError:
        return None


def store(detections: HandDetections, path: Path, key: str) -> Path | None:
    """Write to the cache; None when the cache directory cannot be written."""
    candidate = cache_file(path, key)
    try:
        candidate.parent.mkdir(parents=True, exist_ok=True)
        return detections.save(candidate, force=True)
    except (OSError, UserError):
        return None
