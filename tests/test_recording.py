"""A whole recording: every segment estimated with the gaps marked, large world coordinates kept exactly,
plausibility warnings, and the memory a run needs checked before it starts."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from egoallo.assets import EXAMPLE_TRAJECTORY
from egoallo.body import BodyModel
from egoallo.cli.main import main
from egoallo.errors import UserError
from egoallo.inputs.head_checks import below_floor, frozen, head_warnings, large_coordinates, longest_run, too_fast
from egoallo.inputs.points import PointCloud
from egoallo.inputs.trajectory import HeadTrajectory, read_trajectory_segments
from egoallo.recording import segment_floors
from egoallo.resources import MemoryNeed, available_memory, check_memory
from egoallo.result import InferenceResult, Span, segment_spans
from hostile_inputs import small_result
from test_infer import cpf_of_result

UTM_OFFSET = np.array([512_345.0, 5_412_345.0, 250.0])


def example_rows() -> tuple[list[str], list[list[str]]]:
    with open(EXAMPLE_TRAJECTORY, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def write_rows(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    return path


def with_gaps(path: Path) -> Path:
    """The example (330 poses at 30 fps) with a 2 s gap after pose 110, then two poses alone (too short to
    estimate) before a 3 s gap, then the rest."""
    header, rows = example_rows()
    column = header.index("tracking_timestamp_us")
    for k, row in enumerate(rows):
        row[column] = str(int(row[column]) + 2_000_000 * (k >= 110) + 3_000_000 * (k >= 112))
    return write_rows(path, header, rows)


def infer(tiny_checkpoint: Path, trajectory: Path, out: Path) -> InferenceResult:
    args = ["infer", str(trajectory), "--device-is-cpf", "--out", str(out), "--checkpoint", str(tiny_checkpoint),
            "--steps", "1", "--samples", "2", "--threads", "1"]
    assert main(args) == 0
    return InferenceResult.load(out)


def test_every_segment_is_estimated_and_the_gaps_marked(tiny_checkpoint, tmp_path, capsys) -> None:
    result = infer(tiny_checkpoint, with_gaps(tmp_path / "gaps.csv"), tmp_path / "r.npz")
    assert "in 2 segments (328 of the 330 tracked frames" in capsys.readouterr().out
    segments, gaps = result.metadata["segments"], result.metadata["gaps"]
    assert [(s["first_frame"], s["frames"], s["rows"]) for s in segments] == [(0, 110, "lines 2-111"),
                                                                              (110, 218, "lines 114-331")]
    assert len(gaps) == 1 and gaps[0]["after_frame"] == 109 and gaps[0]["too_short_to_estimate"] == ["lines 112-113"]
    assert [r.split(" before")[0] for r in gaps[0]["reasons"]] == ["gap of 2.033 s", "gap of 3.033 s"]
    assert result.metadata["coverage"] == {"frames_estimated": 328, "frames_tracked": 330, "segments_estimated": 2,
                                           "segments_tracked": 3}
    # Frames keep their input times, and every body's CPF sits on the head pose (Eq. 5 with the shared shape).
    _, rows = example_rows()
    start = (int(rows[112][1]) + 5_000_000 - int(rows[0][1])) * 1000
    assert result.timestamps_ns[110] - result.timestamps_ns[0] == start
    np.testing.assert_allclose(cpf_of_result(result, BodyModel.load_default()),
                               np.broadcast_to(result.T_world_cpf, (2, 328, 4, 4)), atol=2e-4)


def test_a_utm_frame_gives_the_same_body_as_near_the_origin(tiny_checkpoint, tmp_path) -> None:
    header, rows = example_rows()
    columns = [header.index(f"t{a}_world_device") for a in "xyz"]
    for row in rows:
        for column, offset in zip(columns, UTM_OFFSET):
            row[column] = f"{float(row[column]) + offset:.6f}"
    near = infer(tiny_checkpoint, EXAMPLE_TRAJECTORY, tmp_path / "near.npz")
    utm = infer(tiny_checkpoint, write_rows(tmp_path / "utm.csv", header, rows), tmp_path / "utm.npz")
    assert utm.joints_world.dtype == np.float64 and utm.T_world_root.dtype == np.float64
    assert np.abs(utm.joints_world - UTM_OFFSET - near.joints_world).max() < 1e-3  # metres
    assert np.abs(utm.T_world_root[..., :3, 3] - UTM_OFFSET - near.T_world_root[..., :3, 3]).max() < 1e-3
    assert abs(utm.floor_z - UTM_OFFSET[2] - near.floor_z) < 1e-6
    assert any("re-centred in float64" in w for w in utm.metadata["warnings"])


def with_slam_reset(path: Path, drop_m: float = 3.0) -> Path:
    """The example with its last 130 poses in another SLAM graph whose world lies `drop_m` higher (the same
    floor reads z - drop_m there), and a 1 s gap before pose 100 in the first graph."""
    header, rows = example_rows()
    graph, time, z = header.index("graph_uid"), header.index("tracking_timestamp_us"), header.index("tz_world_device")
    for k, row in enumerate(rows):
        row[time] = str(int(row[time]) + 1_000_000 * (k >= 100))
        if k >= 200:
            row[graph], row[z] = "graph-b", f"{float(row[z]) - drop_m:.6f}"
    return write_rows(path, header, rows)


def floor_points(z: float, graph: str, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """`n` points of a floor at height `z` (the example's world, z up) in SLAM graph `graph`."""
    rng = np.random.default_rng(int(z * 100) % 7)
    xyz = np.c_[rng.uniform(-3, 3, (n, 2)) + [0.0, 3.8], rng.normal(z, 0.005, n)]
    return xyz, np.full(n, graph)


def test_each_world_frame_gets_its_own_floor(tmp_path) -> None:
    """Segments split by a gap share the floor; a segment in another SLAM graph gets its own, from its own
    trajectory or its own graph's points, and a given floor or a cloud without graphs is not carried into it."""
    segments = [s.resample(30.0) for s in read_trajectory_segments(with_slam_reset(tmp_path / "reset.csv"),
                                                                 device_is_cpf=True)]
    assert [(len(s), s.world_frame) for s in segments] == [(100, 0), (100, 0), (130, 1)]
    floors, notes = segment_floors(segments, fps=30.0, eye_height=1.55)
    z = [f.z for f in floors]
    assert z[0] == z[1] and abs(z[0] - z[2] - 3.0) < 0.15 and notes == []

    (a, graph_a), (b, graph_b) = floor_points(-0.05, "egoallo-case"), floor_points(-3.05, "graph-b")
    cloud = PointCloud(np.r_[a, b], "points.csv", graph_uids=np.r_[graph_a, graph_b])
    floors, notes = segment_floors(segments, fps=30.0, eye_height=1.55, cloud=cloud)
    assert [round(f.z, 2) for f in floors] == [-0.05, -0.05, -3.05] and notes == []
    assert {f.method for f in floors} == {"points_head_band"}

    for given, cloud in ((-0.05, None), (None, PointCloud(a, "points.ply"))):
        floors, notes = segment_floors(segments, fps=30.0, eye_height=1.55, floor_z=given, cloud=cloud)
        assert round(floors[0].z, 2) == -0.05 and floors[2].method != floors[0].method
        assert abs(floors[2].z - z[2]) < 1e-9 and "world frame 1 (lines 202-331" in notes[0]


def test_a_slam_reset_keeps_each_segment_on_its_floor(tiny_checkpoint, tmp_path) -> None:
    """The whole command: every segment's floor recorded, the result's floor the main frame's, and the
    plausibility figures measured over each segment's own floor (a shared floor would put the third
    segment's feet 3 m under it)."""
    result = infer(tiny_checkpoint, with_slam_reset(tmp_path / "reset.csv"), tmp_path / "r.npz")
    segments = result.metadata["segments"]
    assert [s["world_frame"] for s in segments] == [0, 0, 1]
    assert segments[0]["floor_z"] == segments[1]["floor_z"] and segments[0]["floor_z"] - segments[2]["floor_z"] > 2.5
    assert result.floor_z == segments[0]["floor_z"]  # the main frame: 200 of the 330 frames
    figures = result.metadata["plausibility"]
    assert max(figures["deepest_penetration_m"]) < 1.0 and max(figures["pelvis_height_max_m"]) < 2.0


def test_segment_spans_fall_back_to_the_whole_result() -> None:
    entries = [{"first_frame": 0, "frames": 4, "floor_z": 0.5}, {"first_frame": 4, "frames": 2}]
    assert segment_spans(entries, 6, 0.0) == [Span(0, 4, 0.5), Span(4, 6, 0.0)]
    for broken in (None, [], [{"first_frame": 0, "frames": 5}], [{"first_frame": 1, "frames": 5}],
                   [{"first_frame": 0, "frames": 6, "floor_z": "low"}], [{"first_frame": True, "frames": 6}], [7]):
        assert segment_spans(broken, 6, 0.25) == [Span(0, 6, 0.25)]


def test_render_draws_segments_and_marks_gaps(tmp_path, monkeypatch) -> None:
    """`egoallo render` on a result with a gap and a SLAM reset: the head path is one solid line per segment and a
    dotted grey line over the gap (never a solid line across it), and each segment stands on its own floor."""
    import egoallo.viz.render as render

    body = BodyModel.load_default()
    result = small_result(body)
    T_world_cpf, joints = result.T_world_cpf.copy(), result.joints_world.copy()
    T_world_cpf[3:, 2, 3] -= 3.0  # the second segment's world lies 3 m higher: its floor reads z = -3
    T_world_root = result.T_world_root.copy()
    T_world_root[:, 3:, 2, 3] -= 3.0
    joints[:, 3:, :, 2] -= 3.0
    segments = [{"first_frame": 0, "frames": 3, "floor_z": 0.0}, {"first_frame": 3, "frames": 3, "floor_z": -3.0}]
    result = InferenceResult(**{**vars(result), "T_world_cpf": T_world_cpf, "T_world_root": T_world_root,
                                "joints_world": joints, "metadata": {"segments": segments}})
    result.save(tmp_path / "gaps.npz")
    drawn, real = {}, render.render_meshes

    def drawing(path, meshes, views, **options):  # noqa: ANN001, ANN202 (render_meshes' arguments)
        drawn.update(meshes=meshes, **options)
        return real(path, meshes, views, **options)

    monkeypatch.setattr(render, "render_meshes", drawing)
    assert main(["render", str(tmp_path / "gaps.npz"), "--out", str(tmp_path / "g.png"), "--frames", "6"]) == 0
    assert (tmp_path / "g.png").stat().st_size > 0
    solid = [points for points, _, style in drawn["lines"] if style == "-"]
    dotted = [points for points, color, style in drawn["lines"] if style != "-"]
    origin = np.r_[np.median(T_world_root[0, :, :2, 3], axis=0), 0.0]  # drawn around the median root (UTM scale)
    head = T_world_cpf[:, :3, 3] + np.array([[0, 0, 0]] * 3 + [[0, 0, 3.0]] * 3) - origin
    np.testing.assert_allclose(np.concatenate(solid), head, atol=1e-9)
    assert [len(points) for points in solid] == [3, 3] and len(dotted) == 1
    np.testing.assert_allclose(dotted[0], head[[2, 3]], atol=1e-9)
    lowest = [float(vertices[:, 2].min()) for vertices, _ in drawn["meshes"]]
    assert max(lowest) - min(lowest) < 1.0  # both segments' bodies near z = 0, not 3 m apart


def walk(T: int, speed: float = 1.2, fps: float = 30.0) -> HeadTrajectory:
    """An upright head walking along x at `speed`."""
    poses = np.tile(np.eye(4), (T, 1, 1))
    poses[:, :3, :3] = [[0, 0, 1], [1, 0, 0], [0, 1, 0]]
    poses[:, 0, 3] = speed * np.arange(T) / fps
    poses[:, 2, 3] = 1.6 + 0.02 * np.sin(np.arange(T))
    return HeadTrajectory(np.round(np.arange(T) * 1e9 / fps).astype(np.int64), poses, "walk")


def test_a_teleport_splits_the_trajectory_with_a_warning(tmp_path) -> None:
    lines = [f"{i / 30:.6f} {1.2 * i / 30 + 10.0 * (i >= 60):.4f} 0 1.6 0.5 0.5 0.5 0.5" for i in range(120)]
    (tmp_path / "jump.txt").write_text("\n".join(lines) + "\n")
    segments = read_trajectory_segments(tmp_path / "jump.txt")
    assert [len(s) for s in segments] == [60, 60]
    assert "jumps 10.04 m in 0.033 s (301 m/s) before line 61" in segments[0].metadata["warnings"][0]


def test_plausibility_warnings() -> None:
    normal = walk(300)
    assert head_warnings([normal], floor_z=0.0, fps=30.0) == []
    still = walk(300)
    poses = still.T_world_cpf.copy()
    poses[100:200] = poses[100]
    assert "does not move at all for 3.3 s from 3.3 s" in frozen(HeadTrajectory(still.timestamps_ns, poses, "s"), 30.0)
    assert "moves at up to 20.0 m/s" in too_fast(walk(100, speed=20.0), 30.0)
    assert "below the floor (z = 2.000 m) in 300 of 300 frames" in below_floor([normal], 2.0)
    assert large_coordinates([normal]) is None
    assert longest_run(np.array([True, False, True, True, False])) == (2, 2) and longest_run(np.zeros(3, bool)) == (0, 0)


def test_memory_is_checked_before_a_run() -> None:
    day = MemoryNeed((24 * 3600 * 30,), 16)
    with pytest.raises(UserError, match=r"\(1440.0 min at 30 fps\) x 16 sample\(s\) need about \d+\.\d GB of memory, and "
                                        r"32.0 GB is available; expected a run that fits: the trajectory cut into pieces "
                                        r"of at most \d+\.\d min"):
        check_memory(day, "day.csv", 32e9)
    hour = MemoryNeed((3600 * 30,), 16)
    fitting = hour.samples_fitting(20e9)
    assert 1 <= fitting < 16 and MemoryNeed((3600 * 30,), fitting).bytes <= 20e9 < MemoryNeed((3600 * 30,), fitting + 1).bytes
    with pytest.raises(UserError, match=f"expected a run that fits: --samples {fitting}$"):
        check_memory(hour, "hour.csv", 20e9)
    check_memory(hour, "hour.csv", None)  # unknown memory: no refusal
    check_memory(MemoryNeed((330,), 1), "example.csv", 2e9)
    # Guidance works on at most 2,048 frames at once: its memory grows with the samples, not the length.
    guided = [MemoryNeed((frames,), 2, min(frames, 2048)).bytes - MemoryNeed((frames,), 2).bytes for frames in (3000, 12000)]
    assert guided[0] == guided[1] > 0


def test_available_memory_reads_meminfo_and_the_cgroup_limit(tmp_path) -> None:
    (tmp_path / "meminfo").write_text("MemTotal: 8000000 kB\nMemAvailable:    4000000 kB\n")
    (tmp_path / "cg").mkdir()
    assert available_memory(tmp_path / "meminfo", tmp_path / "cg") == 4000000 * 1024
    (tmp_path / "cg" / "memory.max").write_text("3000000000\n")
    (tmp_path / "cg" / "memory.current").write_text("1000000000\n")
    assert available_memory(tmp_path / "meminfo", tmp_path / "cg") == 2e9
    (tmp_path / "cg" / "memory.max").write_text("max\n")
    assert available_memory(tmp_path / "meminfo", tmp_path / "cg") == 4000000 * 1024
