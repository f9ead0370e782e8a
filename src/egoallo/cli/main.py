"""The `egoallo` command: a thin layer over the library.

Commands are plain functions whose signatures tyro turns into flags; some are
grouped (`egoallo body render`, `egoallo data build`), others stand alone
(`egoallo train`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import tyro

from ..errors import UserError

Commands = dict[str, "Callable | Commands"]


def _commands() -> Commands:
    from . import body, data, train

    return {
        "body": {"render": body.render},
        "data": {"build": data.build},
        "train": train.train,
    }


def _usage(commands: Commands) -> str:
    lines = ["usage: egoallo COMMAND [--help] [flags]", "", "commands:"]
    for name, entry in commands.items():
        for sub, fn in entry.items() if isinstance(entry, dict) else [("", entry)]:
            summary = (fn.__doc__ or "").strip().splitlines()[0]
            lines.append(f"  egoallo {(name + ' ' + sub).strip():<13} {summary}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = _commands()
    if argv[:1] in (["-h"], ["--help"]):
        print(_usage(commands))
        return 0
    entry: Callable | Commands | None = commands.get(argv[0]) if argv else None
    words = 1
    if isinstance(entry, dict):
        entry = entry.get(argv[1]) if len(argv) > 1 else None
        words = 2
    if entry is None:
        print(_usage(commands), file=sys.stderr)
        return 2
    try:
        tyro.cli(entry, args=argv[words:], prog="egoallo " + " ".join(argv[:words]))
    except UserError as e:
        print(f"egoallo: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
