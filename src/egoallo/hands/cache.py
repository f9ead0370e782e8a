"""Where detections are cached: beside the input, else under the user's cache directory.

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

CACHE_DIR_NAME = ".egoallo-hands-cache"


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


def cache_candidates(path: Path, key: str) -> list[Path]:
    """Cache files to try, in order: beside the input, then under `$XDG_CACHE_HOME/egoallo/hands`."""
    name = f"{path.name}.{key}.npz"
    user_cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "egoallo" / "hands"
    return [path.parent / CACHE_DIR_NAME / name, user_cache / name]


def load_cached(path: Path, key: str) -> tuple[HandDetections, Path] | None:
    """The cached detections and their file, or None (a damaged cache file counts as missing)."""
    for candidate in cache_candidates(path, key):
        if candidate.is_file():
            try:
                return HandDetections.load(candidate), candidate
            except UserError:
                continue
    return None


def store(detections: HandDetections, path: Path, key: str) -> Path | None:
    """Write to the first writable cache location; None when neither is."""
    for candidate in cache_candidates(path, key):
        try:
            candidate.parent.mkdir(parents=True, exist_ok=True)
            return detections.save(candidate, force=True)
        except (OSError, UserError):
            continue
    return None
