"""The `egoallo` command: a thin layer over the library.

Commands are grouped (`egoallo body render`, `egoallo data build`); each is a
plain function whose signature tyro turns into flags.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import tyro

from ..errors import UserError


def _commands() -> dict[str, dict[str, Callable]]:
    from . import body, data

    return {
        "body": {"render": body.render},
        "data": {"build": data.build},
    }


def _usage(commands: dict[str, dict[str, Callable]]) -> str:
    lines = ["usage: egoallo GROUP COMMAND [--help] [flags]", "", "commands:"]
    for group, entries in commands.items():
        for name, fn in entries.items():
            summary = (fn.__doc__ or "").strip().splitlines()[0]
            lines.append(f"  egoallo {group} {name:<8} {summary}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = _commands()
    if argv[:1] in (["-h"], ["--help"]):
        print(_usage(commands))
        return 0
    if len(argv) < 2 or argv[0] not in commands or argv[1] not in commands[argv[0]]:
        print(_usage(commands), file=sys.stderr)
        return 2
    fn = commands[argv[0]][argv[1]]
    try:
        tyro.cli(fn, args=argv[2:], prog=f"egoallo {argv[0]} {argv[1]}")
    except UserError as e:
        print(f"egoallo: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
