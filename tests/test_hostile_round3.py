"""Hostile input, round three (issue #28): the classes that are not a one-line refusal.

Readers bounded by the memory available (gzip bombs, huge text, huge unused npz members; measured peak
memory in a child process), gzip trajectories read like gzip points, a table not taken for the floor, a
short upside-down glitch warned, what `infer` prints after a run, and `render` at UTM scale.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from egoallo.body import BodyModel
from egoallo.cli.main import main
from egoallo.inputs.points import PointCloudError, read_points
from egoallo.inputs.trajectory import TrajectoryError, read_trajectory
from egoallo.result import InferenceResult
from egoallo.run_summary import floor_note, guidance_reach, next_steps, plausibility_warning
from hostile_inputs import mps_text, small_result, tum_text, walk_poses

SRC = Path(__file__).resolve().parents[1] / "src"


def _peak_of(code: str, available_bytes: float) -> tuple[str, float]:
    """Run `code` in a fresh Python with the memory available pinned to `available_bytes`; its last printed
    line and its peak resident memory (MB) above the process before `code` ran."""
    script = f"""
import resource, sys
import numpy, egoallo.resources
egoallo.resources.available_memory = lambda *a, **k: {available_bytes!r}
from egoallo.inputs.points import read_points
from egoallo.inputs.trajectory import read_trajectory
from egoallo.files import load_npz
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    {code}
    print("read")
except Exception as e:
    print(type(e).__name__, str(e))
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"})
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0 and len(lines) >= 2, done.stderr
    return lines[-2], float(lines[-1])


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """600 MB of a repeated CSV row in 0.6 MB of gzip."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.csv.gz"
    row = b"1,g,0.5,0.5,0.0,0.001,0.01\n" * 40_000  # ~1 MB
    with gzip.open(path, "wb", compresslevel=9) as f:
        f.write(b"uid,graph_uid,px_world,py_world,pz_world,inv_dist_std,dist_std\n")
        for _ in range(600):
            f.write(row)
    return path


@pytest.mark.parametrize("reader", ["read_points", "read_trajectory"])
def test_a_gzip_bomb_is_refused_without_being_inflated(bomb: Path, reader: str) -> None:
    """With 2 GB available, 600 MB of text would need more to parse: refused after counting the inflated size
    in 1 MB chunks, at a peak of a few MB (the whole text would be 600 MB, its parse 6-18 GB)."""
    outcome, peak_mb = _peak_of(f"{reader}({str(bomb)!r})", 2e9)
    error = "PointCloudError" if reader == "read_points" else "TrajectoryError"
    assert outcome.startswith(f"{error} {bomb}: inflates to more than") and "than the 2.0 GB of memory available" in outcome, outcome
    assert peak_mb < 60, peak_mb


def test_a_huge_text_trajectory_is_refused_before_parsing(tmp_path: Path) -> None:
    """A TUM file larger than what the memory available lets it parse (30 bytes per byte) is refused from its
    size, before it is read."""
    path = tmp_path / "long.txt"
    line = "1.000000 0.100000 0.200000 1.600000 0.500000 0.500000 0.500000 0.500000\n"
    path.write_text(line * 200_000)  # 14.4 MB: would need ~430 MB to parse
    outcome, peak_mb = _peak_of(f"read_trajectory({str(path)!r})", 300e6)
    assert outcome.startswith("TrajectoryError") and "holds 14 MB of data" in outcome, outcome
    assert peak_mb < 20, peak_mb


def test_only_the_members_needed_are_read(tmp_path: Path) -> None:
    """A result with a member whose header claims 3 GB: `load` reads only its own members, at no cost."""
    valid = small_result(BodyModel.load_default()).save(tmp_path / "valid.npz")
    path = tmp_path / "with_junk.npz"
    path.write_bytes(valid.read_bytes())
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (375_000_000,)})
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("junk.npy", header.getvalue() + bytes(64))
    result = InferenceResult.load(path)
    assert len(result.timestamps_ns) == 6
    outcome, peak_mb = _peak_of(f"load_npz({str(path)!r}, keys=('betas', 'fps'))", 2e9)
    assert outcome == "read" and peak_mb < 20, (outcome, peak_mb)
    outcome, _ = _peak_of(f"load_npz({str(path)!r})", 2e9)
    assert outcome.startswith("NpzError") and "junk: 3.0 GB as its header says" in outcome, outcome


@pytest.mark.parametrize("name", ["walk.csv.gz", "walk.csv", "walk.txt.gz"])
def test_gzip_trajectories_are_read_like_gzip_points(tmp_path: Path, name: str) -> None:
    text = mps_text() if ".csv" in name else tum_text()
    plain = tmp_path / ("plain.csv" if ".csv" in name else "plain.txt")
    plain.write_text(text)
    packed = tmp_path / name
    packed.write_bytes(gzip.compress(text.encode()))
    a, b = read_trajectory(plain), read_trajectory(packed)
    np.testing.assert_array_equal(a.timestamps_ns, b.timestamps_ns)
    np.testing.assert_array_equal(a.T_world_cpf, b.T_world_cpf)


def test_a_truncated_gzip_trajectory_is_named(tmp_path: Path) -> None:
    path = tmp_path / "walk.csv.gz"
    path.write_bytes(gzip.compress(mps_text().encode())[:-30])
    with pytest.raises(TrajectoryError, match="corrupt or truncated gzip data"):
        read_trajectory(path)


def test_utf16_without_a_bom_is_named(tmp_path: Path) -> None:
    path = tmp_path / "walk.txt"
    path.write_bytes(tum_text().encode("utf-16-le"))
    with pytest.raises(TrajectoryError, match="UTF-16 text, which is not supported"):
        read_trajectory(path)
    points = tmp_path / "points.csv"
    points.write_bytes("uid,graph_uid,px_world,py_world,pz_world\n1,g,0,0,0\n".encode("utf-16"))
    with pytest.raises(PointCloudError, match="UTF-16 text"):
        read_points(points)


def test_repeated_point_columns_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "points.csv"
    path.write_text("uid,px_world,py_world,pz_world,pz_world\n1,0,0,0,25\n")
    with pytest.raises(PointCloudError, match="line 1: repeated column"):
        read_points(path)


def test_a_short_upside_down_glitch_is_warned(tmp_path: Path) -> None:
    t, pose = walk_poses(300)
    pose[100:106, 3:] = [0.5, -0.5, 0.5, -0.5]  # 0.17 s
    path = tmp_path / "glitch.txt"
    path.write_text("".join(f"{a:.6f} " + " ".join(f"{v:.6f}" for v in r) + "\n" for a, r in zip(t, pose)))
    warnings = read_trajectory(path).metadata["warnings"]
    assert any("upside down in 6 poses in 1 stretch(es) under 0.5 s (the longest: line 101 to line 106" in w
               for w in warnings), warnings


def test_a_table_is_not_taken_for_the_floor(tmp_path: Path, tiny_checkpoint: Path, capsys) -> None:
    """The cloud's only layer is 0.6 m under a 1.6 m head: the trajectory floor, with a warning and a note
    naming the points file."""
    walk = tmp_path / "walk.txt"
    t, pose = walk_poses(60)
    walk.write_text("".join(f"{a:.6f} " + " ".join(f"{v:.6f}" for v in r) + "\n" for a, r in zip(t, pose)))
    rng = np.random.default_rng(0)
    table = np.c_[rng.uniform(-0.5, 1.5, (3000, 2)), rng.normal(1.0, 0.003, 3000)]
    points = tmp_path / "table.npy"
    np.save(points, np.r_[table, rng.uniform([-3, -3, 1.2], [3, 3, 2.5], (300, 3))])
    out = tmp_path / "r.npz"
    assert main(["infer", str(walk), "--points", str(points), "--out", str(out), "--checkpoint", str(tiny_checkpoint),
                 "--steps", "1", "--guidance", "off"]) == 0
    printed = capsys.readouterr().out
    assert "only 0.60 m under the head: a table, bed or counter rather than the floor" in printed
    assert f"note: {points} showed no floor under the head" in printed
    result = InferenceResult.load(out)
    assert result.metadata["floor"]["method"] == "trajectory" and result.floor_z < 0.2


def test_what_infer_says_after_a_run(tmp_path: Path, tiny_checkpoint: Path, capsys) -> None:
    """Foot guidance by default, the frames it acted on, and the next commands for the file written."""
    out = tmp_path / "r.npz"
    assert main(["infer", "--example", "--out", str(out), "--checkpoint", str(tiny_checkpoint), "--steps", "1"]) == 0
    printed = capsys.readouterr().out
    result = InferenceResult.load(out)
    assert result.metadata["sampling"]["guidance"] == ["feet"] and "post" in result.metadata["guidance"]
    assert "guidance acted: feet on " in printed and f"of {len(result.timestamps_ns)} frames" in printed
    assert f"next: egoallo render {out} --out {out.with_suffix('.gif')} | egoallo view {out}" in printed
    assert main(["infer", "--example", "--out", str(out), "--force", "--checkpoint", str(tiny_checkpoint), "--steps", "1",
                 "--guidance", "off"]) == 0
    assert "guidance acted" not in capsys.readouterr().out
    assert InferenceResult.load(out).metadata["guidance"] == {}


def test_plausibility_warning_names_every_figure_out_of_range() -> None:
    fine = {"penetration_share": [0.0], "deepest_penetration_m": [0.01], "pelvis_height_min_m": [0.9],
            "pelvis_height_max_m": [1.0], "largest_jump_m": [0.05], "skating_share": [0.9]}
    assert plausibility_warning(fine) is None
    bad = {**fine, "penetration_share": [0.0, 0.39], "pelvis_height_max_m": [2.2]}
    line = plausibility_warning(bad)
    assert "\n" not in line and "share of frames with a foot more than 3 cm below the floor 0.39 (expected 0-0.05)" in line
    assert "highest pelvis height over the floor (m) 2.2 (expected 0.3-1.5)" in line and "skating" not in line


def test_guidance_reach_counts_frames_per_term() -> None:
    contacts = np.zeros((1, 10, 21))
    contacts[0, 2:5, 6] = 0.9  # joint 7 (left_ankle) is contact 6
    wrist = {"hands": {"left": {"frames_valid": 4}, "right": {"frames_valid": 0}}}
    metadata = {"segments": [{"wrist_palm": wrist}, {"wrist_palm": wrist}]}
    line = guidance_reach(metadata, {"feet", "wrist3d"}, contacts, 10)
    assert line == ("guidance acted: feet on 3 of 10 frames (a foot in predicted contact); "
                    "wrist3d on 8 (left) and 0 (right) of 10 frames")
    idle = guidance_reach({"hands": {"counts": {"frames_left": 0, "frames_right": 0}}}, {"hands"}, contacts, 10)
    assert idle.endswith("(hands: nothing to act on, only the prior shaped it)")
    assert guidance_reach({}, {"off"}, contacts, 10) is None


def test_floor_note_and_next_steps() -> None:
    assert floor_note("points", 1.6, None) is None
    assert floor_note("trajectory", 1.58, None).startswith("no point cloud, --floor-z or --stature: the floor was put")
    assert floor_note("trajectory", 1.58, Path("p.ply")).startswith("p.ply showed no floor under the head")
    assert next_steps("out/r.npz") == ("next: egoallo render out/r.npz --out out/r.gif | egoallo view out/r.npz | "
                                       "egoallo export out/r.npz --to glb --out out/r.glb")


def test_render_at_utm_scale_matches_the_same_motion_near_the_origin(tmp_path: Path) -> None:
    """5,400 km from the origin, `render` poses the meshes around a local origin: the picture is the one of
    the same result near the origin (in float32 the meshes would move in 0.5 m steps and shred)."""
    from PIL import Image

    near = small_result(BodyModel.load_default())
    offset = np.array([5.4e6, 2.1e6, 0.0])

    def moved(T: np.ndarray) -> np.ndarray:
        T = T.astype(np.float64)
        T[..., :3, 3] += offset
        return T

    far = dataclasses.replace(near, joints_world=near.joints_world + offset, T_world_root=moved(near.T_world_root),
                              T_world_cpf=moved(near.T_world_cpf))  # T_input_zup: rotation only, as infer writes
    images = []
    for name, result in (("near", near), ("far", far)):
        path = result.save(tmp_path / f"{name}.npz")
        assert main(["render", str(path), "--out", str(tmp_path / f"{name}.png"), "--frames", "2"]) == 0
        images.append(np.asarray(Image.open(tmp_path / f"{name}.png").convert("L"), dtype=np.float64))
    assert images[0].shape == images[1].shape and np.abs(images[0] - images[1]).mean() < 2.0  # titles differ; float32 posing: 22


def test_a_user_error_for_every_far_floor() -> None:
    from egoallo.inputs.points import floor_given

    heads = np.full(100, 1.6)
    assert floor_given(0.0, heads).z == 0.0
    for z in (-0.95, 1.4, -1e5, float("nan")):
        with pytest.raises(ValueError, match="must lie 0.3-2.5 m under it"):
            floor_given(z, heads)
