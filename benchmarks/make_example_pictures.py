"""Regenerate the README's example picture and animation from the shipped checkpoint.

    python benchmarks/make_example_pictures.py [--docs docs]

Runs `egoallo infer --example` (no guidance, seed 0) and `egoallo render` to
`docs/example.png` and `docs/example.gif`, and prints the result's
plausibility figures, among them the share of frames with a wrist above its
shoulder: arms are not observable from the head, so this is the prior's habit.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from egoallo.cli.main import main as egoallo
from egoallo.result import InferenceResult


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=Path, default=Path("docs"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result_path = Path(tmp) / "example_result.npz"
        if egoallo(["infer", "--example", "--out", str(result_path)]) != 0:
            raise SystemExit("egoallo infer --example failed")
        for name in ("example.png", "example.gif"):
            if egoallo(["render", str(result_path), "--out", str(args.docs / name), "--force"]) != 0:
                raise SystemExit(f"egoallo render to {name} failed")
        result = InferenceResult.load(result_path)
    print(json.dumps({"checkpoint": result.metadata["checkpoint"], "plausibility": result.metadata["plausibility"]}))


if __name__ == "__main__":
    main()
