"""The `egoallo` command: a thin layer over the library.

Commands are plain functions whose signatures tyro turns into flags; some are
grouped (`egoallo body render`, `egoallo data build`), others stand alone
(`egoallo train`).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

import tyro

from ..errors import UserError

# Command -> "module:function" in this package, imported only when used (or for --help).
COMMANDS = {
    "infer": "infer:infer",
    "train": "train:train",
    "eval": "evaluate:evaluate_cli",
    "render": "render:render",
    "export": "export:export",
    "view": "view:view",
    "data": {"build": "data:build", "make-case": "data:make_case"},
    "body": {"render": "body:render"},
    "hands": {"detect": "hands:detect", "import-hamer": "hands:import_hamer"},
}


def _resolve(target: str) -> Callable:
    module, name = target.split(":")
    return getattr(importlib.import_module(f"{__package__}.{module}"), name)


def _usage() -> str:
    lines = ["usage: egoallo COMMAND [--help] [flags]", "", "commands:"]
    for name, entry in COMMANDS.items():
        for sub, target in entry.items() if isinstance(entry, dict) else [("", entry)]:
            summary = (_resolve(target).__doc__ or "").strip().splitlines()[0]
            lines.append(f"  egoallo {(name + ' ' + sub).strip():<13} {summary}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["-h"], ["--help"]):
        print(_usage())
        return 0
    entry = COMMANDS.get(argv[0]) if argv else None
    words = 1
    if isinstance(entry, dict):
        entry = entry.get(argv[1]) if len(argv) > 1 else None
        words = 2
    if entry is None:
        print(_usage(), file=sys.stderr)
        return 2
    try:
        tyro.cli(_resolve(entry), args=argv[words:], prog="egoallo " + " ".join(argv[:words]))
    except UserError as e:
        print(f"egoallo: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
