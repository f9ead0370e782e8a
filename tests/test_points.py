"""Point cloud readers (Aria MPS CSV, npy/npz, PLY), their errors, and the floor height estimate."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from egoallo.errors import UserError
from egoallo.inputs.points import (
    FloorEstimate,
    PointCloudError,
    PointReadOptions,
    estimate_floor_z,
    floor_from_trajectory,
    read_points,
)

ARIA_HEADER = ["uid", "graph_uid", "px_world", "py_world", "pz_world", "inv_dist_std", "dist_std"]
NO_LIMITS = PointReadOptions(max_dist_std=None, max_inv_dist_std=None)


# --- synthetic rooms -----------------------------------------------------------------------------


def _plane(rng: np.random.Generator, n: int, z: float, x=(-3.0, 3.0), y=(-3.0, 3.0)) -> np.ndarray:
    """(n, 3) points on a horizontal rectangle at height z, 5 mm noise."""
    return np.stack([rng.uniform(*x, n), rng.uniform(*y, n), z + rng.normal(0.0, 0.005, n)], axis=1)


def _walls(rng: np.random.Generator, n: int, z0: float, z1: float, half: float = 3.0) -> np.ndarray:
    """(n, 3) points on the four walls of a square room, heights uniform in [z0, z1]."""
    t, side = rng.uniform(-half, half, n), rng.integers(0, 4, n)
    x = np.where(side < 2, np.where(side == 0, -half, half), t)
    y = np.where(side < 2, t, np.where(side == 2, -half, half))
    return np.stack([x + rng.normal(0, 0.01, n), y + rng.normal(0, 0.01, n), rng.uniform(z0, z1, n)], axis=1)


def _below(rng: np.random.Generator, n: int, floor_z: float, depth: float = 1.0) -> np.ndarray:
    """(n, 3) sparse noise up to `depth` below the floor."""
    return np.stack([rng.uniform(-3, 3, n), rng.uniform(-3, 3, n), rng.uniform(floor_z - depth, floor_z, n)], axis=1)


def _table(rng: np.random.Generator, n: int, z: float) -> np.ndarray:
    return _plane(rng, n, z, (0.5, 1.5), (-0.5, 0.5))


def _furnished_room(rng: np.random.Generator) -> np.ndarray:
    """Floor z=-1.5 (20k points), a table top at -0.75 with more points (30k), walls to 1.0, 1 % noise below."""
    room = np.concatenate([_plane(rng, 20_000, -1.5), _table(rng, 30_000, -0.75), _walls(rng, 20_000, -1.5, 1.0)])
    return rng.permutation(np.concatenate([room, _below(rng, len(room) // 100, -1.5)]))


# --- floor estimate ------------------------------------------------------------------------------


def test_floor_is_lowest_layer_not_the_larger_table() -> None:
    points = _furnished_room(np.random.default_rng(0))
    floor = estimate_floor_z(points)
    assert isinstance(floor, FloorEstimate) and floor.method == "points"
    assert abs(floor.z + 1.5) < 0.01
    assert 19_000 < floor.num_support < 21_000
    assert [round(z, 2) for z, _ in floor.candidates] == [-1.5, -0.75]  # the table is a layer, above the floor
    standing = estimate_floor_z(points, head_z=np.full(50, 0.1))  # CPF 1.6 m above the floor
    assert standing.method == "points_head_band" and abs(standing.z + 1.5) < 0.01


def test_floor_barely_seen_beside_a_table_is_found_with_head_heights() -> None:
    rng = np.random.default_rng(1)
    points = np.concatenate(
        [_plane(rng, 300, -1.6), _table(rng, 10_000, -0.8), _walls(rng, 10_000, -1.6, 0.8), _below(rng, 200, -1.6)]
    )
    assert abs(estimate_floor_z(points).z + 0.8) < 0.01  # without head heights: 300 points are too few
    floor = estimate_floor_z(points, head_z=rng.normal(0.0, 0.02, 600))  # standing, head at z=0
    assert abs(floor.z + 1.6) < 0.01 and floor.method == "points_head_band"
    assert [round(z, 1) for z, _ in floor.candidates] == [-1.6, -0.8]


def test_sitting_wearer_finds_floor_below_table() -> None:
    rng = np.random.default_rng(2)
    points = np.concatenate([_plane(rng, 2_000, 0.0), _table(rng, 20_000, 0.75), _walls(rng, 10_000, 0.0, 2.5)])
    floor = estimate_floor_z(points, head_z=1.2 + rng.normal(0.0, 0.03, 300))  # table 0.45 m below the head
    assert abs(floor.z) < 0.01


def test_head_band_ignores_reflection_below_the_floor() -> None:
    rng = np.random.default_rng(3)
    mirrored_table = _table(rng, 8_000, -0.75)  # a shiny floor mirrors the table 0.75 m below it
    room = [_plane(rng, 5_000, 0.0), _table(rng, 8_000, 0.75), _walls(rng, 5_000, 0.0, 2.0)]
    points = np.concatenate([*room, mirrored_table])
    assert abs(estimate_floor_z(points).z + 0.75) < 0.01  # the lowest layer is the reflection
    assert abs(estimate_floor_z(points, head_z=np.full(10, 1.6)).z) < 0.01


def test_floor_refined_between_bins() -> None:
    rng = np.random.default_rng(4)
    points = np.concatenate([_plane(rng, 5_000, -1.5037), _walls(rng, 2_000, -1.5037, 1.0)])
    assert abs(estimate_floor_z(points, bin_m=0.02).z + 1.5037) < 0.002


def test_no_layer_in_head_band_is_an_error() -> None:
    rng = np.random.default_rng(5)
    points = np.concatenate([_plane(rng, 5_000, 1.0), _walls(rng, 5_000, -1.6, 1.0)])  # ceiling and walls only
    with pytest.raises(PointCloudError, match=r"scan\.csv: no horizontal layer between z=-2\.10 and z=-0\.40"):
        estimate_floor_z(points, head_z=np.zeros(10), source="scan.csv")


@pytest.mark.parametrize(
    ("points", "match"),
    [(np.zeros((4, 2)), r"shape \(4, 2\); expected \(N, 3\)"), (np.full((3, 3), np.nan), "no finite point")],
)
def test_floor_rejects_bad_points(points: np.ndarray, match: str) -> None:
    with pytest.raises(PointCloudError, match=match):
        estimate_floor_z(points)


def test_floor_from_trajectory() -> None:
    rng = np.random.default_rng(6)
    head_z = np.concatenate([1.2 + rng.normal(0, 0.01, 700), 1.65 + rng.normal(0, 0.01, 300)]) - 0.3  # sit, stand
    floor = floor_from_trajectory(head_z, standing_eye_height=1.65)
    assert floor.method == "trajectory" and floor.num_support == 1000 and floor.candidates == ()
    assert abs(floor.z + 0.3) < 0.03
    with pytest.raises(ValueError, match="standing_eye_height"):
        floor_from_trajectory(head_z, standing_eye_height=0.0)
    with pytest.raises(ValueError, match=r"expected \(T,\)"):
        floor_from_trajectory(np.full(5, np.nan), standing_eye_height=1.6)


# --- readers ------------------------------------------------------------------------------------


def _aria_lines(points: np.ndarray, inv_dist_std: np.ndarray, dist_std: np.ndarray) -> list[str]:
    """Aria MPS semi-dense point CSV lines (header first)."""
    rows = [
        f"{i},6fb3a7c2-{i % 3:04d},{x!r},{y!r},{z!r},{inv!r},{dist!r}"
        for i, ((x, y, z), inv, dist) in enumerate(zip(points.tolist(), inv_dist_std.tolist(), dist_std.tolist()))
    ]
    return [",".join(ARIA_HEADER), *rows]


def _write(path: Path, lines: list[str], compress: bool | None = None) -> Path:
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if (path.suffix == ".gz" if compress is None else compress) else data)
    return path


def _sample(n: int = 50, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 3)), rng.uniform(0, 0.004, n), rng.uniform(0, 0.03, n)


@pytest.mark.parametrize("name", ["semidense_points.csv.gz", "global_points.csv", "gzipped_but_named.csv"])
def test_aria_csv_round_trip_and_filter(tmp_path: Path, name: str) -> None:
    xyz, inv, dist = _sample()
    xyz[3] = np.nan  # dropped as non-finite
    dist[5], inv[7] = 0.2, 0.01  # dropped as uncertain
    path = _write(tmp_path / name, _aria_lines(xyz, inv, dist), compress=name.endswith(("gz", "named.csv")))
    cloud = read_points(path)
    keep = np.setdiff1d(np.arange(50), [3, 5, 7])
    np.testing.assert_array_equal(cloud.points, xyz[keep])
    np.testing.assert_array_equal(cloud.dist_std, dist[keep])
    assert cloud.metadata["counts"] == {"rows_read": 50, "dropped_non_finite": 1, "dropped_uncertain": 2, "kept": 47}
    assert cloud.metadata["filter"] == "dist_std <= 0.05, inv_dist_std <= 0.005"
    assert read_points(path, options=PointReadOptions(max_dist_std=0.25)).metadata["counts"]["kept"] == 48
    assert read_points(path, options=NO_LIMITS).metadata["counts"]["kept"] == 49


def test_aria_csv_columns_by_name_and_without_uncertainty(tmp_path: Path) -> None:
    xyz, _, _ = _sample(5)
    lines = ["pz_world,px_world,note,py_world"] + [f"{z!r},{x!r},hi,{y!r}" for x, y, z in xyz.tolist()]
    cloud = read_points(_write(tmp_path / "points.csv", lines))
    np.testing.assert_array_equal(cloud.points, xyz)
    assert cloud.dist_std is None and cloud.metadata["filter"] == "none (no uncertainty columns)"


def test_aria_csv_matches_projectaria_tools(tmp_path: Path) -> None:
    mps = pytest.importorskip("projectaria_tools.core.mps", reason="compares with projectaria-tools (the aria extra)")
    xyz, inv, dist = _sample(200, seed=1)
    path = _write(tmp_path / "semidense_points.csv.gz", _aria_lines(xyz, inv, dist))
    reference = mps.read_global_point_cloud(str(path))
    assert len(reference) == 200
    cloud = read_points(path, options=NO_LIMITS)
    # Theirs differs from the written decimals by up to 1 ulp (ours is exact: see the round trip test).
    np.testing.assert_allclose(cloud.points, np.array([p.position_world for p in reference]), rtol=1e-14, atol=0)
    np.testing.assert_allclose(cloud.dist_std, [p.distance_std for p in reference], rtol=1e-6)  # theirs: float32


def test_npy_npz_round_trip(tmp_path: Path) -> None:
    xyz, _, _ = _sample(20)
    np.save(tmp_path / "points.npy", xyz.astype(np.float32))
    np.savez(tmp_path / "points.npz", points=xyz, colors=np.zeros((20, 3)))
    np.testing.assert_allclose(read_points(tmp_path / "points.npy").points, xyz, rtol=1e-6)
    cloud = read_points(tmp_path / "points.npz")
    np.testing.assert_array_equal(cloud.points, xyz)
    assert cloud.metadata["format"] == "npz" and cloud.metadata["filter"] == "none (no uncertainty columns)"


def _ply_header(fmt: str, n: int, faces: int = 0) -> str:
    lines = ["ply", f"format {fmt} 1.0", "comment made by test_points", f"element vertex {n}"]
    lines += ["property float nx", "property double x", "property float y", "property float z", "property uchar red"]
    lines += [f"element face {faces}", "property list uchar int vertex_indices", "end_header"]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("fmt", ["ascii", "binary_little_endian", "binary_big_endian"])
def test_ply_round_trip(tmp_path: Path, fmt: str) -> None:
    xyz = _sample(30)[0].astype(np.float32).astype(np.float64)
    path = tmp_path / "points.ply"
    if fmt == "ascii":
        rows = [f"0.5 {x!r} {y!r} {z!r} 255" for x, y, z in xyz.tolist()]
        path.write_text(_ply_header(fmt, 30, faces=1) + "\n".join(rows) + "\n3 0 1 2\n")
    else:
        order = "<" if fmt == "binary_little_endian" else ">"
        types = {"nx": "f4", "x": "f8", "y": "f4", "z": "f4", "red": "u1"}
        dtype = np.dtype([(name, order + kind) for name, kind in types.items()])
        rows = np.zeros(30, dtype)
        rows["x"], rows["y"], rows["z"] = xyz.T
        path.write_bytes(_ply_header(fmt, 30).encode() + rows.tobytes())
    cloud = read_points(path)
    np.testing.assert_array_equal(cloud.points, xyz)
    assert cloud.metadata["format"] == f"ply_{fmt}"


# --- reader errors ------------------------------------------------------------------------------


def _aria_file(edit: Callable[[list[str]], list[str]], name: str = "semidense_points.csv.gz") -> Callable[[Path], Path]:
    """A writer of a small Aria CSV whose lines (header first) went through `edit`."""

    def write(directory: Path) -> Path:
        return _write(directory / name, edit(_aria_lines(*_sample(10))))

    return write


def _replace_line(number: int, text: str) -> Callable[[list[str]], list[str]]:
    return lambda lines: [text if i == number - 1 else line for i, line in enumerate(lines)]


def _truncated_gzip(directory: Path) -> Path:
    path = _aria_file(lambda lines: lines)(directory)
    path.write_bytes(path.read_bytes()[:-30])
    return path


def _saved(name: str, **arrays: np.ndarray) -> Callable[[Path], Path]:
    def write(directory: Path) -> Path:
        (np.save(directory / name, arrays["points"]) if name.endswith(".npy") else np.savez(directory / name, **arrays))
        return directory / name

    return write


def _ply(text: str | bytes) -> Callable[[Path], Path]:
    def write(directory: Path) -> Path:
        path = directory / "points.ply"
        path.write_bytes(text.encode() if isinstance(text, str) else text)
        return path

    return write


def _nan_rows(lines: list[str]) -> list[str]:
    return [lines[0]] + [f"{i},g,nan,0,0,0.001,0.001" for i in range(3)]


def _uncertain_rows(lines: list[str]) -> list[str]:
    return [lines[0]] + [f"{i},g,0,0,0,0.001,0.5" for i in range(3)]


BAD_FILES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "missing file": (lambda d: d / "nothing.csv.gz", "not found"),
    "unknown suffix": (lambda d: _write(d / "points.txt", ["1 2 3"]), r"expected \.csv, \.csv\.gz, \.npy"),
    "empty": (lambda d: _write(d / "points.csv", [""]), "empty file"),
    "header only": (_aria_file(lambda lines: lines[:1]), "no data rows"),
    "missing column": (
        _aria_file(lambda lines: [lines[0].replace("pz_world", "pz")] + lines[1:]),
        r"line 1: missing column\(s\) pz_world",
    ),
    "text in number": (_aria_file(_replace_line(5, "3,g,0.1,oops,0.3,0.001,0.01")), r"line 5: py_world is 'oops'"),
    "too few values": (_aria_file(_replace_line(4, "2,g,0.1,0.2")), r"line 4: 4 comma-separated values; expected 7"),
    "extra value": (_aria_file(_replace_line(9, "7,g,1,2,3,0.001,0.01,9")), r"line 9: 8 comma-separated values"),
    "NaN only": (_aria_file(_nan_rows), "no finite point: all 3 rows"),
    "all uncertain": (_aria_file(_uncertain_rows), r"no point left .*dist_std <= 0\.05.*median dist_std 0\.5"),
    "truncated gzip": (_truncated_gzip, "corrupt or truncated gzip"),
    "npy wrong shape": (_saved("points.npy", points=np.zeros((5, 2))), r"shape \(5, 2\).*expected \(N, 3\)"),
    "npy empty": (_saved("points.npy", points=np.zeros((0, 3))), "empty"),
    "npz no points key": (_saved("cloud.npz", xyz=np.zeros((5, 3))), r"no 'points' array \(found: xyz\)"),
    "npz object array": (_saved("cloud.npz", points=np.array([None, 1], dtype=object)), r"not a valid npz"),
    "ply no z": (
        _ply("ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nend_header\n1 2\n"),
        "vertex element lacks z",
    ),
    "ply bad header line": (_ply("ply\nformat ascii 1.0\nelement vertex one\nend_header\n"), "line 3: unexpected"),
    "ply repeated property": (
        _ply("ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float x\nend_header\n1 2\n"),
        "line 5: unexpected header line 'property float x'",
    ),
    "ply short ascii": (_ply(_ply_header("ascii", 3) + "0 1 2 3 4\n"), "1 vertex lines; expected 3"),
    "ply ascii text": (_ply(_ply_header("ascii", 1) + "0 1 x 3 4\n"), "line 13: x, y or z"),
    "ply truncated binary": (_ply(_ply_header("binary_little_endian", 4).encode() + bytes(40)), "truncated"),
    "not ply": (_ply("hello"), "not a PLY file"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_files_raise_clear_errors(tmp_path: Path, case: str) -> None:
    write, match = BAD_FILES[case]
    path = write(tmp_path)
    with pytest.raises(PointCloudError, match=match) as error:
        read_points(path)
    assert isinstance(error.value, UserError) and isinstance(error.value, ValueError)
    assert str(error.value).startswith(str(path))


def test_own_peak_search_and_median_match_scipy() -> None:
    """The floor's histogram search without scipy.signal / scipy.ndimage (1.3 s of imports): same answers."""
    from scipy.ndimage import median_filter
    from scipy.signal import find_peaks

    from egoallo.inputs.points import local_maxima, running_median

    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 7, 50, 400):
        for _ in range(40):
            x = np.convolve(rng.poisson(rng.uniform(0, 5), n).astype(float), np.ones(3), mode="same")
            np.testing.assert_array_equal(local_maxima(x, 3), find_peaks(x, distance=3)[0])
            for size in (1, 3, 27):
                np.testing.assert_array_equal(running_median(x, size), median_filter(x, size=size, mode="constant", cval=0.0))
