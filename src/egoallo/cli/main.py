"""The `egoallo` command: a thin layer over the library.

Commands are plain functions whose signatures tyro turns into flags; some are
grouped (`egoallo body render`, `egoallo data build`), others stand alone
(`egoallo train`). A command's module is imported only when that command runs:
`egoallo --help` prints the one-line summaries kept here (`tests/test_cli.py`
checks them against the functions' docstrings), and an input file given first
that does not exist is reported before anything is imported.
"""

from __future__ import annotations

import importlib
import sys
import tempfile
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import UserError, one_line
from ..files import require_file
from ..thirdparty import set_verbose


@dataclass(frozen=True)
class Command:
    target: str
    """"module:function" in this package."""
    summary: str
    """The first line of the function's docstring."""
    input: str | None = None
    """What the first positional argument names (an input file), as the command's own check says it."""


TRAJECTORY = "a head trajectory (Aria MPS .csv, TUM .txt or .npz)"
RESULT = "a result.npz from egoallo infer"

COMMANDS: dict[str, Command | dict[str, Command]] = {
    "infer": Command(
        "infer:infer",
        "Estimate body motion from a head trajectory (Aria MPS CSV, TUM text or .npz) and write result.npz.",
        TRAJECTORY,
    ),
    "batch": Command(
        "batch:batch",
        "Estimate every recording of a corpus (folder or manifest) into OUT/<name>/result.npz, resumably, "
        "locally or on Ray.",
    ),
    "train": Command("train:train", "Train the diffusion motion prior (resumes from OUT/latest; scale out with torchrun)."),
    "eval": Command(
        "evaluate:evaluate_cli",
        "Evaluate the prior (and optionally the no-learning baselines) on held-out windows; writes JSON + markdown.",
    ),
    "render": Command(
        "render:render",
        "Draw a result.npz: a PNG of several instants along the head trajectory, or a GIF/MP4 animation.",
        RESULT,
    ),
    "export": Command(
        "export:export",
        "Export one body of a result.npz: BVH of the 52-joint skeleton, an AMASS-style .npz (for SMPL-H users), "
        "or an animated body mesh (.glb).",
        RESULT,
    ),
    "live": Command(
        "live:live",
        "Estimate the body live from a head-pose stream (a growing file, stdin, UDP, WebSocket, or a replayed recording).",
    ),
    "view": Command(
        "view:view",
        "Open a result.npz in the browser: bodies over time, head trajectory, floor, foot contacts, points.",
        RESULT,
    ),
    "data": {
        "build": Command(
            "data:build", "Retarget the mocap archives (and AMASS) onto the body model and pack OUT/dataset.h5."
        ),
        "make-case": Command(
            "data:make_case",
            "Turn a motion-capture clip (BVH of a known skeleton) into an evaluation case: "
            "OUT/trajectory.csv + OUT/gt.npz.",
            "a BVH motion-capture clip",
        ),
    },
    "body": {
        "render": Command(
            "body:render",
            "Pose the body model (shipped open model, or SMPL-H via --body-model / $EGOALLO_SMPLH_MODEL) "
            "and write a PNG.",
        ),
    },
    "hands": {
        "detect": Command(
            "hands:detect",
            "Detect both hands in an Aria VRS or a video (MediaPipe Hands, CPU) and write hands.npz.",
            "an Aria .vrs recording or a video",
        ),
        "import-hamer": Command(
            "hands:import_hamer",
            "Convert per-frame HaMeR outputs (.npz or .json, docs/hands.md) to hands.npz.",
            "HaMeR outputs (.npz or .json)",
        ),
    },
}

VERBOSE_FLAG = "--verbose"
_NEGATIVE_AXES = {"-x", "-y", "-z", "-X", "-Y", "-Z"}


def resolve(target: str) -> Callable:
    """The command function named by "module:function" (imports its module)."""
    module, name = target.split(":")
    return getattr(importlib.import_module(f"{__package__}.{module}"), name)


def commands() -> list[tuple[str, Command]]:
    """("infer" or "data build", command) for every command, in usage order."""
    return [
        (f"{name} {sub}".strip(), command)
        for name, entry in COMMANDS.items()
        for sub, command in (entry.items() if isinstance(entry, dict) else [("", entry)])
    ]


def usage() -> str:
    lines = [f"usage: egoallo COMMAND [--help] [{VERBOSE_FLAG}] [flags]", "", "commands:"]
    lines += [f"  egoallo {name:<19} {command.summary}" for name, command in commands()]
    lines += ["", f"{VERBOSE_FLAG}: also show third-party libraries' log lines (projectaria-tools, MediaPipe)."]
    return "\n".join(lines)


def normalize_args(args: list[str]) -> tuple[list[str], bool]:
    """(`args` without `--verbose`, whether it was given); `--up -y` joined into `--up=-y` (tyro reads `-y` as a flag);
    `--ray` without a value (last, or before another flag) made `--ray=local`."""
    verbose = VERBOSE_FLAG in args
    args = [a for a in args if a != VERBOSE_FLAG]
    joined: list[str] = []
    for arg in args:
        if arg in _NEGATIVE_AXES and joined and joined[-1] == "--up":
            joined[-1] = f"--up={arg}"
        else:
            joined.append(arg)
    return [
        "--ray=local" if a == "--ray" and (i + 1 == len(joined) or joined[i + 1].startswith("-")) else a
        for i, a in enumerate(joined)
    ], verbose


def main(argv: list[str] | None = None) -> int:
    argv, verbose = normalize_args(list(sys.argv[1:] if argv is None else argv))
    if argv[:1] in (["-h"], ["--help"]):
        print(usage())
        return 0
    entry = COMMANDS.get(argv[0]) if argv else None
    words = 1
    if isinstance(entry, dict):
        entry = entry.get(argv[1]) if len(argv) > 1 else None
        words = 2
    if entry is None:
        print(usage(), file=sys.stderr)
        return 2
    set_verbose(verbose)
    args = argv[words:]
    previous, warnings.formatwarning = warnings.formatwarning, one_line_warning
    try:
        return run(entry, args, argv, words)
    finally:
        warnings.formatwarning = previous


def run(entry: Command, args: list[str], argv: list[str], words: int) -> int:
    """Run a command; bad input (a `UserError`) exits 2, a bug 1 with the trace written to a file."""
    try:
        if entry.input and args and not args[0].startswith("-") and not {"-h", "--help"} & set(args):
            require_file(args[0], entry.input)  # before tyro and the command's imports: a typo fails fast
        import tyro

        code = tyro.cli(resolve(entry.target), args=args, prog="egoallo " + " ".join(argv[:words]))
    except UserError as e:
        print(f"egoallo: error: {one_line(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("egoallo: interrupted.", file=sys.stderr)
        return 130
    except Exception as e:  # a bug, not bad input: one line here, the full trace in a file
        print(f"egoallo: internal error: {one_line(f'{type(e).__name__}: {e}', 300)} "
              f"(full trace in {write_trace(e, argv)}; please report it)", file=sys.stderr)
        return 1
    return code if type(code) is int else 0  # a command may return its exit code (egoallo batch)


def one_line_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001 (warnings' signature)
    """A Python warning as one line, without the source line."""
    return f"warning: {one_line(f'{category.__name__}: {message}', 300)}\n"


def write_trace(error: BaseException, argv: list[str]) -> str:
    """Write the command `argv` and `error`'s full traceback to a new temporary file; its path (or why not written)."""
    text = "".join(traceback.format_exception(error))
    try:
        with tempfile.NamedTemporaryFile("w", prefix="egoallo-error-", suffix=".txt", delete=False) as f:
            f.write(f"egoallo {' '.join(argv)}\n\n{text}")
        return f.name
    except OSError as failure:
        return f"nowhere: {failure.strerror or failure}"


if __name__ == "__main__":
    sys.exit(main())
