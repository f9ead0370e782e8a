"""Evaluation cases (`egoallo data make-case`): trajectory.csv and gt.npz are written as a pair, both or neither."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from egoallo.body import BodyModel
from egoallo.data.motion import Motion
from egoallo.errors import UserError
from egoallo.evaluation import cases
from egoallo.inputs.trajectory import read_trajectory

CASE_FILES = {"trajectory.csv", "gt.npz"}


@pytest.fixture(scope="module")
def model() -> BodyModel:
    return BodyModel.load_default()


def standing(frames: int = 12, x: float = 0.0) -> Motion:
    """A body standing at rest, its pelvis 0.9 m up at `x`."""
    T_world_root = np.tile(np.eye(4), (frames, 1, 1))
    T_world_root[:, :3, 3] = [x, 0.0, 0.9]
    return Motion("stand", 30.0, np.zeros(16, np.float32), T_world_root, np.tile(np.eye(3), (frames, 51, 1, 1)), False)


def case_x(folder: Path) -> tuple[float, float]:
    """(head x from trajectory.csv, pelvis x from gt.npz): which motion each file of a case came from."""
    head = read_trajectory(folder / "trajectory.csv", device_is_cpf=True)
    with np.load(folder / "gt.npz") as gt:
        return float(head.T_world_cpf[0, 0, 3]), float(gt["T_world_root"][0, 0, 3])


def test_case_written_whole(model, tmp_path) -> None:
    out = cases.make_case(standing(), model, tmp_path / "case")
    assert {p.name for p in out.iterdir()} == CASE_FILES
    assert [p.name for p in tmp_path.iterdir()] == ["case"]  # no staging folder left beside it
    head_x, pelvis_x = case_x(out)
    assert abs(head_x - pelvis_x) < 0.3


def interrupt_writing(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Writing a file called `name` raises KeyboardInterrupt (Ctrl-C in the middle of the case)."""
    real = Path.write_bytes

    def interrupted(self: Path, data: bytes) -> int:
        if self.name == name:
            raise KeyboardInterrupt
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", interrupted)


def test_interrupted_case_leaves_nothing(model, tmp_path, monkeypatch) -> None:
    """An interrupt while the files are written: no case folder, no file, no staging folder."""
    interrupt_writing(monkeypatch, "gt.npz")
    with pytest.raises(KeyboardInterrupt):
        cases.make_case(standing(), model, tmp_path / "case")
    assert list(tmp_path.iterdir()) == []


def test_interrupted_overwrite_keeps_the_old_pair(model, tmp_path, monkeypatch) -> None:
    """--force over a case in a folder with other files: an interrupt while writing keeps the old pair."""
    out = cases.make_case(standing(x=0.0), model, tmp_path / "case")
    (out / "notes.txt").write_text("mine")
    interrupt_writing(monkeypatch, "gt.npz")
    with pytest.raises(KeyboardInterrupt):
        cases.make_case(standing(x=5.0), model, out, force=True)
    assert {p.name for p in out.iterdir()} == CASE_FILES | {"notes.txt"} and case_x(out)[1] == pytest.approx(0.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case"]


INTERRUPT_WHILE_MOVING = """
import json, os, signal, sys
from pathlib import Path
import numpy as np
from egoallo.body import BodyModel
from egoallo.data.motion import Motion
from egoallo.evaluation import cases

def standing(x):
    T = np.tile(np.eye(4), (12, 1, 1))
    T[:, :3, 3] = [x, 0.0, 0.9]
    return Motion("stand", 30.0, np.zeros(16, np.float32), T, np.tile(np.eye(3), (12, 51, 1, 1)), False)

# A shell starts background jobs with SIGINT ignored, and Python keeps it so: restore the usual Ctrl-C.
signal.signal(signal.SIGINT, signal.default_int_handler)
model, out = BodyModel.load_default(), Path(sys.argv[1])
cases.make_case(standing(0.0), model, out)
(out / "notes.txt").write_text("mine")
real, moved = os.replace, []

def replace_then_interrupt(src, dst):
    real(src, dst)
    moved.append(Path(dst).name)
    if len(moved) == 1:
        os.kill(os.getpid(), signal.SIGINT)

os.replace = replace_then_interrupt
try:
    cases.make_case(standing(5.0), model, out, force=True)
    interrupted = False
except KeyboardInterrupt:
    interrupted = True
print(json.dumps({"interrupted": interrupted, "moved": moved}))
"""


def test_interrupt_while_moving_the_pair_is_held_back(tmp_path) -> None:
    """SIGINT arriving after the first file is moved in is delivered only once both are: the new pair, whole.

    Run in a fresh process with Python's own Ctrl-C handler: a test run started in the background
    (CI, `nohup`) inherits SIGINT ignored, and the interrupt would never come."""
    out = tmp_path / "case"
    done = subprocess.run([sys.executable, "-c", INTERRUPT_WHILE_MOVING, str(out)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == {"interrupted": True, "moved": ["trajectory.csv", "gt.npz"]}
    head_x, pelvis_x = case_x(out)
    assert pelvis_x == pytest.approx(5.0) and abs(head_x - pelvis_x) < 0.3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case"]


def test_unwritable_place_is_one_line(model, tmp_path) -> None:
    with pytest.raises(UserError, match=r"missing/case: cannot write trajectory.csv, gt.npz \(No such file or directory\)"):
        cases.make_case(standing(), model, tmp_path / "missing" / "case")
