import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from egoallo.cli.main import commands, main, normalize_args, resolve
from egoallo.progress import progress_bar
from egoallo.thirdparty import native_logs_hidden, set_verbose


def test_body_render_writes_a_picture_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "body.png"
    assert main(["body", "render", "--out", str(out), "--pose", "wave", "--betas", "1.0", "-0.5"]) == 0
    image = np.asarray(Image.open(out).convert("L"))
    assert (image < 250).mean() > 0.05  # a body was drawn, not a blank canvas
    assert "stature" in capsys.readouterr().out
    before = out.stat().st_mtime_ns
    assert main(["body", "render", "--out", str(out)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert out.stat().st_mtime_ns == before


def test_bad_model_file_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "model.npz"
    np.savez(bad, v_template=np.zeros((10, 3)))
    assert main(["body", "render", "--out", str(tmp_path / "b.png"), "--body-model", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "model.npz: missing key" in err and "Traceback" not in err


def test_usage_lists_commands(capsys):
    assert main([]) == 2
    assert "egoallo body render" in capsys.readouterr().err
    assert main(["--help"]) == 0


def test_help_summaries_match_the_commands_docstrings():
    for name, command in commands():
        docstring = resolve(command.target).__doc__ or ""
        assert command.summary == docstring.strip().splitlines()[0], f"egoallo {name}: update its summary in cli/main.py"


def _run_python(code: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter (its own sys.modules), output captured."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=600)


LOADED_AFTER = """
import sys
from egoallo.cli.main import main
code = main({args!r})
heavy = ("torch", "numpy", "scipy", "matplotlib", "projectaria_tools", "mediapipe", "viser", "tyro")
commands = sorted(m for m in sys.modules if m.startswith("egoallo.cli.") and m != "egoallo.cli.main")
print(code, sorted(m for m in heavy if m in sys.modules), commands)
"""


def test_help_imports_no_command_module():
    done = _run_python(LOADED_AFTER.format(args=["--help"]))
    assert done.stdout.splitlines()[-1] == "0 [] []"
    assert "egoallo infer" in done.stdout and "--verbose" in done.stdout


def test_a_missing_input_is_reported_before_anything_is_imported(tmp_path):
    done = _run_python(LOADED_AFTER.format(args=["infer", "missing.csv"]), cwd=tmp_path)
    assert done.stdout.splitlines()[-1] == "2 [] []"
    assert done.stderr == (
        "egoallo: error: missing.csv: file not found; expected a head trajectory (Aria MPS .csv, TUM .txt or .npz).\n"
    )


def test_up_with_a_negative_axis_parses(tmp_path, capsys):
    assert normalize_args(["infer", "t.txt", "--up", "-y", "--verbose"]) == (["infer", "t.txt", "--up=-y"], True)
    assert normalize_args(["infer", "t.txt", "--up", "y"]) == (["infer", "t.txt", "--up", "y"], False)
    # Parsed: the command runs and stops at the missing file, not at the flag.
    assert main(["infer", str(tmp_path / "t.txt"), "--up", "-y"]) == 2
    assert "t.txt: file not found" in capsys.readouterr().err


def test_native_logs_are_hidden_unless_verbose(capfd):
    for verbose in (False, True):
        set_verbose(verbose)
        with native_logs_hidden():
            os.write(2, b"[VrsDataProvider][INFO]: noise\n")
        print("after", file=sys.stderr)
    set_verbose(False)
    assert capfd.readouterr().err == "after\n[VrsDataProvider][INFO]: noise\nafter\n"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bars_only_on_a_terminal(monkeypatch):
    assert progress_bar(range(3)).disable  # the tests' stderr is captured, not a terminal
    monkeypatch.setattr(sys, "stderr", _Terminal())
    assert not progress_bar(range(3)).disable
    assert progress_bar(range(3), enabled=False).disable


# Flags that put the input file second, so that the command's own check reports it.
FLAGS_FIRST = {
    "infer": ["--steps", "1"],
    "render": ["--sample", "0"],
    "export": ["--to", "bvh", "--out", "x.bvh"],
    "view": ["--port", "8080"],
    "data make-case": ["--out", "case"],
    "hands detect": ["--every", "1"],
    "hands import-hamer": ["--out", "h.npz"],
}


def test_the_early_input_check_says_what_the_command_says(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with_input = {name for name, command in commands() if command.input}
    assert with_input == set(FLAGS_FIRST)
    for name, flags in FLAGS_FIRST.items():
        words = name.split()
        assert main([*words, "missing.file", *flags]) == 2  # checked before tyro and the command's module
        early = capsys.readouterr().err
        assert main([*words, *flags, "missing.file"]) == 2  # checked by the command
        assert capsys.readouterr().err == early
        assert early.startswith("egoallo: error: missing.file: file not found; expected ")
    with pytest.raises(SystemExit):  # asking for help is not an error about the file
        main(["infer", "missing.file", "--help"])
    assert "usage: egoallo infer" in capsys.readouterr().out
