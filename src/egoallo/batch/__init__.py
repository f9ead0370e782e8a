"""A corpus, not a file: `egoallo infer` over every recording of a folder or a manifest, resumably.

`corpus` finds the recordings (Aria MPS layouts with their companions, loose TUM/npz/MPS trajectory files,
or a manifest); `jobs` gives each its options and fingerprint and runs one estimate; `backends` runs them on
a local process pool or a Ray cluster; `runner.run_corpus` ties them together and keeps `OUT/summary.csv`
(`summary`). A notebook calls `run_corpus` as `egoallo batch` does.
"""

from .corpus import Recording, read_manifest, recordings_in
from .jobs import BatchOptions
from .runner import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, BatchReport, run_corpus
from .summary import COLUMNS, Row

__all__ = [
    "COLUMNS", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "BatchOptions", "BatchReport", "Recording", "Row",
    "read_manifest", "recordings_in", "run_corpus",
]
