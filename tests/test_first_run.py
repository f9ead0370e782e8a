"""What a new user meets first: a core install without extras, the example run twice, outputs checked before
any work, files that are not what they claim, commands whose extra is missing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from egoallo.cli.main import main
from egoallo.hands.mediapipe_hands import MediaPipeHands
from egoallo.result import InferenceResult
from egoallo.thirdparty import MissingExtraError

EXTRAS = ("projectaria_tools", "mediapipe", "cv2", "viser", "imageio", "imageio_ffmpeg")

CORE_ONLY = """
import sys

class Absent:
    '''The optional extras are not installed (a core `pip install egoallo`).'''

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {extras!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)

sys.meta_path.insert(0, Absent())
from egoallo.cli.main import main

code = main({infer!r})
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {extras!r} or m.startswith("egoallo.hands")
                or m in ("scipy.signal", "scipy.ndimage", "matplotlib"))
print("infer", code, loaded)
print("export", main({export!r}))
print("render", main({render!r}))
"""


def test_core_install_infers_exports_and_renders_an_mps_csv(shared_dir: Path, tiny_checkpoint: Path, tmp_path: Path):
    aria = shared_dir / "aria"
    result = tmp_path / "r.npz"
    infer = ["infer", str(aria / "mps_closed_loop_trajectory_short.csv"), "--out", str(result),
             "--calibration", str(aria / "mps_online_calibration_first_line.jsonl"),
             "--checkpoint", str(tiny_checkpoint), "--steps", "1"]
    export = ["export", str(result), "--to", "bvh", "--out", str(tmp_path / "r.bvh")]
    render = ["render", str(result), "--out", str(tmp_path / "r.png"), "--frames", "2"]
    code = CORE_ONLY.format(extras=set(EXTRAS), infer=infer, export=export, render=render)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    outcomes = [line for line in done.stdout.splitlines() if line.split(" ")[0] in ("infer", "export", "render")]
    assert outcomes == ["infer 0 []", "export 0", "render 0"], done.stdout + done.stderr
    assert (tmp_path / "r.bvh").is_file() and (tmp_path / "r.png").is_file()


def _without(monkeypatch: pytest.MonkeyPatch, *packages: str) -> None:
    """Make `packages` (and their submodules) unimportable for the test, as if not installed."""
    for name in [m for m in sys.modules if m.split(".")[0] in packages] + list(packages):
        monkeypatch.setitem(sys.modules, name, None)


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_missing_extras_say_which_to_install(shared_dir: Path, tmp_path: Path, monkeypatch, capsys):
    aria = shared_dir / "aria"
    vrs, csv = aria / "aea_recording_rgb8frames.vrs", aria / "mps_closed_loop_trajectory_short.csv"
    result = tmp_path / "r.npz"
    result.write_bytes(b"")  # the extras are checked before the result is read
    _without(monkeypatch, *EXTRAS)
    cases = [
        (["hands", "detect", str(vrs), "--out", str(tmp_path / "h.npz")], "pip install 'egoallo[aria]'"),
        (["infer", str(csv), "--calibration", str(vrs), "--out", str(tmp_path / "i.npz")], "pip install 'egoallo[aria]'"),
        (["view", str(result)], "the browser viewer needs viser: pip install 'egoallo[viewer]'"),
        (["render", str(result), "--out", str(tmp_path / "r.mp4")],
         "writing .mp4 needs imageio with imageio-ffmpeg: pip install 'egoallo[video]'"),
    ]
    for args, message in cases:
        assert main(args) == 2
        assert message in _one_line_error(capsys)
    with pytest.raises(MissingExtraError, match=r"hand detection \(Python 3.8-3.12\) needs mediapipe: pip install 'egoallo\[hands\]'"):
        MediaPipeHands()


def test_the_example_runs_twice_but_a_given_out_is_kept(tiny_checkpoint: Path, tmp_path: Path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["infer", "--example", "--checkpoint", str(tiny_checkpoint), "--steps", "1"]
    assert main(args) == 0
    first = InferenceResult.load(tmp_path / "example_result.npz")
    (tmp_path / "example_result.npz").write_bytes(b"an earlier --example run")
    assert main(args) == 0  # replaces its own output
    again = InferenceResult.load(tmp_path / "example_result.npz")
    np.testing.assert_array_equal(again.joints_world, first.joints_world)  # same seed, same motion
    assert "wrote example_result.npz" in capsys.readouterr().out
    mine = tmp_path / "mine.npz"
    mine.write_bytes(b"keep me")
    assert main([*args, "--out", str(mine)]) == 2
    assert "mine.npz exists; pass --force" in _one_line_error(capsys) and mine.read_bytes() == b"keep me"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["infer", "--example", "--out", "{tmp}/no/r.npz"], "{tmp}/no: output directory does not exist"),
        (["infer", "--example", "--out", "{tmp}/r.txt"], "r.txt: the output must end in .npz"),
        (["infer", "--example", "--out", "/sys/r.npz"], "/sys: cannot write in this directory"),
        (["render", "{tmp}/in.npz", "--out", "{tmp}/r.jpg"], "r.jpg: the output must end in .png or .gif or .mp4"),
        (["export", "{tmp}/in.npz", "--to", "glb", "--out", "{tmp}/no/x.glb"], "output directory does not exist"),
        (["hands", "detect", "{tmp}/in.vrs", "--out", "{tmp}/h.json"], "h.json: the output must end in .npz"),
        (["hands", "import-hamer", "{tmp}/in.npz", "--out", "{tmp}/no/h.npz"], "output directory does not exist"),
        (["data", "make-case", "{tmp}/in.bvh", "--out", "{tmp}/no/case"], "{tmp}/no: output directory does not exist"),
        (["data", "make-case", "{tmp}/in.bvh", "--out", "{tmp}/in.npz"], "in.npz: is a file; expected an output directory"),
        (["data", "make-case", "{tmp}/in.bvh", "--out", "{tmp}"], "exists and is not empty; pass --force"),
        (["body", "render", "--out", "{tmp}/b.jpg"], "b.jpg: the output must end in .png"),
    ],
)
def test_outputs_are_checked_before_any_work(tmp_path: Path, capsys, args: list[str], message: str):
    if args[0] == "infer" and args[-1].startswith("/sys/") and not Path("/sys").is_dir():
        pytest.skip("needs a read-only /sys (Linux)")
    for name in ("in.npz", "in.vrs", "in.bvh"):
        (tmp_path / name).write_bytes(b"not read: the output is refused first")
    assert main([a.format(tmp=tmp_path) for a in args]) == 2
    assert message.format(tmp=tmp_path) in _one_line_error(capsys)


def test_random_bytes_are_not_a_valid_npz(tmp_path: Path, capsys):
    noise = tmp_path / "noise.npz"
    noise.write_bytes(np.random.default_rng(0).bytes(4096))
    assert main(["render", str(noise), "--out", str(tmp_path / "r.png")]) == 2
    assert f"{noise}: not a valid npz" in _one_line_error(capsys)
    assert main(["infer", str(noise), "--out", str(tmp_path / "r.npz")]) == 2
    assert f"{noise}: not a valid npz" in _one_line_error(capsys)
