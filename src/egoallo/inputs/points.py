"""SLAM point clouds (Aria MPS semi-dense CSV, `.npy`/`.npz`, `.ply`) and the floor height they imply.

Readers return the file's finite points, in the file's own world, after dropping uncertain ones:

| input | outcome |
|---|---|
| Aria MPS CSV (`semidense_points.csv.gz`, `global_points.csv.gz`, `.csv`) | columns by header name; gzip by content |
| missing `px_world`/`py_world`/`pz_world` column | error (line 1) |
| wrong number of values, text where a number belongs | error (line, column) |
| NaN/infinite coordinates | row dropped, counted; error when every row is |
| `dist_std` > `max_dist_std` or `inv_dist_std` > `max_inv_dist_std` | row dropped, counted; error when none is left |
| no `dist_std`/`inv_dist_std` column | no uncertainty filter (noted in `metadata["filter"]`) |
| truncated or corrupt gzip, empty file, header only | error |
| `.npy`, or `.npz` with key `points`, not of shape (N, 3) | error |
| `.ply` (ascii, binary little/big endian) without x/y/z vertex properties, truncated | error |

projectaria-tools' `mps.read_global_point_cloud` (checked on 2.3) is not used: on a malformed
row (text, "nan", too few values) it prints to stderr and returns the rows before it; it
returns an empty list for a missing column, a truncated gzip, a file that does not exist or
is not gzipped despite its name. The CSV is parsed here, driven by the header.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from egoallo.errors import InputFileError
from egoallo.files import NpzError, load_npy, load_npz, npz_names, read_input_bytes, why_not_a_file
from egoallo.inputs.csv_columns import decode_text

_ARIA_POSITION = ("px_world", "py_world", "pz_world")
_ARIA_HEADER = "uid, graph_uid, px_world, py_world, pz_world, inv_dist_std, dist_std"
_SUFFIXES = ".csv, .csv.gz, .npy, .npz or .ply"
_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip
CSV_PARSE_BYTES_PER_BYTE = 10.0
"""Peak memory of reading a point cloud, per byte of its (inflated) text: 7 measured (`ru_maxrss`, 400,000
Aria CSV rows, 19.7 MB), with a margin."""
_PLY_FORMATS = {"ascii": "", "binary_little_endian": "<", "binary_big_endian": ">"}


class PointCloudError(InputFileError):
    """Unusable point cloud input."""


@dataclass(frozen=True)
class PointReadOptions:
    """Uncertainty limits for Aria MPS points (None: no limit). Aria's nominal limits are 0.01 / 0.005."""

    max_dist_std: float | None = 0.05  # metres
    max_inv_dist_std: float | None = 0.005  # 1 / metres


@dataclass(frozen=True, eq=False)
class PointCloud:
    """Finite points in the file's world, with provenance (`metadata`: format, counts, filter)."""

    points: np.ndarray  # (N, 3) float64
    source: str
    dist_std: np.ndarray | None = None  # (N,) metres: Aria MPS distance uncertainty, when the file has it
    metadata: dict[str, Any] = field(default_factory=dict)
    graph_uids: np.ndarray | None = None
    """(N,) str: the Aria MPS SLAM graph (world frame) of each point, when the file has a graph_uid column."""


@dataclass(frozen=True)
class FloorEstimate:
    """Floor height in the z-up world and the evidence for it."""

    z: float  # metres
    num_support: int  # points within +-bin_m of z; frames for "trajectory"
    method: str  # "points", "points_head_band", "trajectory" or "given"
    candidates: tuple[tuple[float, int], ...] = ()  # substantial layers (z, support), lowest first


def read_points(path: str | Path, *, options: PointReadOptions = PointReadOptions()) -> PointCloud:
    """Read an Aria MPS semi-dense point CSV (`.csv`/`.csv.gz`), `.npy`, `.npz` (key `points`) or `.ply`."""
    path = Path(path)
    if why := why_not_a_file(path):
        raise PointCloudError(path, f"{why}; expected a point cloud ({_SUFFIXES})")
    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz")):
        return _read_aria_csv(path, options)
    if name.endswith((".npy", ".npz")):
        return _kept(path, name.rsplit(".", 1)[1], _read_array(path), {}, options)
    if name.endswith(".ply"):
        fmt, xyz = _read_ply(path)
        return _kept(path, f"ply_{fmt}", xyz, {}, options)
    raise PointCloudError(path, f"unknown point cloud format; expected {_SUFFIXES}")


def estimate_floor_z(
    points_zup: np.ndarray,
    *,
    head_z: np.ndarray | None = None,
    bin_m: float = 0.02,
    min_points: int = 50,
    min_relative: float = 0.1,
    min_relative_in_band: float = 0.01,
    min_sigma: float = 8.0,
    background_m: float = 0.25,
    head_band_m: tuple[float, float] = (0.4, 2.1),
    max_range_m: float = 50.0,
    source: str = "points",
) -> FloorEstimate:
    """Floor height: the lowest substantial horizontal layer of `points_zup` (N, 3), gravity -z.

    Layers are the local maxima of the histogram of z (bins of `bin_m`, each counting the
    points within +-1.5 bins). A layer's strength is its count above the background, the
    median count within +-`background_m`, so walls and clutter spread over heights do not
    count. A layer is substantial when its strength is >= `min_points`, >= `min_relative`
    times the strongest layer's, and >= `min_sigma` times the square root of the background
    (it stands out from the counting noise of walls). The floor is the lowest substantial
    layer: tables, beds and counters lie above it, and sparse noise below it is not
    substantial. Its z is refined as the median of the points within +-`bin_m` (three times).

    With `head_z` (T,) (CPF heights in the same world), only layers `head_band_m` = (0.4,
    2.1) m below the head's 90th-percentile height count: a standing head is ~1.6 m and a
    sitting one ~1.2 m above the floor, so the band keeps the floor but drops the ceiling,
    high shelves and reflections far below the floor. A table (~0.7-1.0 m below a standing
    head) can be in the band too, but lies above the floor; since the band removes most wrong
    layers, a weak one counts there (`min_relative_in_band` of the strongest in the band), so
    a floor seen barely beside a well-textured table is still found.

    Points further than `max_range_m` from the median height are ignored (SLAM outliers).
    Raises `PointCloudError` (naming `source`) when there is no substantial layer.
    """
    z = _heights(points_zup, source)
    z = z[np.abs(z - np.median(z)) <= max_range_m]
    centers, strengths, backgrounds = _layers(z, bin_m, background_m)
    if head_z is None:
        low, high, relative, method, where = -np.inf, np.inf, min_relative, "points", "anywhere"
    else:
        top = _head_top(head_z)
        low, high = top - head_band_m[1], top - head_band_m[0]
        relative, method = min_relative_in_band, "points_head_band"
        where = (
            f"between z={low:.2f} and z={high:.2f} ({head_band_m[0]}-{head_band_m[1]} m below the head's "
            f"90th-percentile height {top:.2f})"
        )
    in_band = (centers >= low) & (centers <= high)
    strongest = strengths[in_band].max(initial=0.0)
    threshold = max(min_points, relative * strongest)
    substantial = in_band & (strengths >= threshold) & (strengths >= min_sigma * np.sqrt(backgrounds))
    if not substantial.any():
        raise PointCloudError(
            source,
            f"no horizontal layer {where} stands out from the background by >= {threshold:.0f} points and "
            f"{min_sigma} sigma (the strongest: {strongest:.0f} points); expected the floor to be visible",
        )
    heights = [_refine(z, center, bin_m) for center in np.sort(centers[substantial])]
    candidates = tuple((height, _support(z, height, bin_m)) for height in heights)
    if head_z is not None and top - candidates[0][0] < MIN_EYE_ABOVE_FLOOR_M:
        raise PointCloudError(
            source,
            f"the lowest horizontal layer {where} lies at z={candidates[0][0]:.2f}, only {top - candidates[0][0]:.2f} m "
            f"under the head: a table, bed or counter rather than the floor (a standing or sitting eye is >= "
            f"{MIN_EYE_ABOVE_FLOOR_M} m above the floor); expected the floor to be visible",
        )
    return FloorEstimate(candidates[0][0], candidates[0][1], method, candidates)


MIN_EYE_ABOVE_FLOOR_M = 1.0
"""The head's usual top height lies at least this far above a floor: a lower layer is furniture."""


def floor_from_trajectory(head_z: np.ndarray, standing_eye_height: float) -> FloorEstimate:
    """Floor without points: 95th percentile of the CPF height (T,) minus `standing_eye_height`.

    Assumes the wearer stands upright at least some of the time.
    """
    if not standing_eye_height > 0:
        raise ValueError(f"standing_eye_height must be positive, got {standing_eye_height}")
    heights = _finite_heads(head_z)
    z = float(np.percentile(heights, 95)) - standing_eye_height
    return FloorEstimate(z, len(heights), "trajectory")


MIN_HEAD_ABOVE_FLOOR_M = 0.3
"""A given floor must lie at least this far below the head's median height ..."""
MAX_HEAD_ABOVE_FLOOR_M = 2.5
"""... and at most this far (a standing eye of a 2.5 m person is lower)."""


def floor_given(floor_z: float, head_z: np.ndarray) -> FloorEstimate:
    """A floor the user knows (e.g. z = 0 of a VR or SLAM system), checked against the head heights (T,).

    Raises:
        ValueError: the floor is not finite or lies less than `MIN_HEAD_ABOVE_FLOOR_M` or more than
            `MAX_HEAD_ABOVE_FLOOR_M` below the median head height.
    """
    heights = _finite_heads(head_z)
    median = float(np.median(heights))
    if not np.isfinite(floor_z) or not median - MAX_HEAD_ABOVE_FLOOR_M <= floor_z <= median - MIN_HEAD_ABOVE_FLOOR_M:
        raise ValueError(
            f"--floor-z {floor_z:g} m is not a floor under this head: the head's median height is {median:.3f} m, "
            f"so the floor must lie {MIN_HEAD_ABOVE_FLOOR_M}-{MAX_HEAD_ABOVE_FLOOR_M} m under it, between "
            f"{median - MAX_HEAD_ABOVE_FLOOR_M:.3f} and {median - MIN_HEAD_ABOVE_FLOOR_M:.3f} m "
            "(heights along the input's up axis, in its world frame)."
        )
    return FloorEstimate(float(floor_z), len(heights), "given")


# --- floor helpers -----------------------------------------------------------------------------


def _heights(points: np.ndarray, source: str) -> np.ndarray:
    """Finite z values (M,) of (N, 3) points."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise PointCloudError(source, f"points have shape {points.shape}; expected (N, 3)")
    finite = points[np.isfinite(points).all(axis=1)]
    if finite.size == 0:
        raise PointCloudError(source, "no finite point; expected (N, 3) points with N >= 1")
    return finite[:, 2]


def _finite_heads(head_z: np.ndarray) -> np.ndarray:
    heights = np.asarray(head_z, dtype=np.float64)
    if heights.ndim != 1 or not np.isfinite(heights).any():
        raise ValueError(f"head_z has shape {heights.shape}; expected (T,) heights, at least one finite")
    return heights[np.isfinite(heights)]


def _head_top(head_z: np.ndarray) -> float:
    return float(np.percentile(_finite_heads(head_z), 90))


def _layers(z: np.ndarray, bin_m: float, background_m: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Heights (K,) of the histogram's local maxima, their counts above the background (K,), the background (K,)."""
    if not bin_m > 0:
        raise ValueError(f"bin_m must be positive, got {bin_m}")
    # Two empty bins at each end, so that a layer at either end is still a local maximum.
    bins = int(np.ceil((z.max() - z.min()) / bin_m)) + 5
    edges = z.min() - 2 * bin_m + bin_m * np.arange(bins + 1)
    counts, _ = np.histogram(z, edges)
    window = np.convolve(counts, np.ones(3), mode="same")
    background = running_median(window, 2 * round(background_m / bin_m) + 1)
    peaks = local_maxima(window, distance=3)
    return edges[peaks] + bin_m / 2, window[peaks] - background[peaks], background[peaks]


def running_median(x: np.ndarray, size: int) -> np.ndarray:
    """(N,) the median of the `size` (odd) values centred on each of `x (N,)`, zeros beyond its ends (as
    `scipy.ndimage.median_filter(mode="constant")`, without its import time)."""
    half = size // 2
    padded = np.concatenate([np.zeros(half, x.dtype), x, np.zeros(half, x.dtype)])
    return np.median(np.lib.stride_tricks.sliding_window_view(padded, size), axis=-1)


def local_maxima(x: np.ndarray, distance: int) -> np.ndarray:
    """Indices of the local maxima of `x (N,)` (a flat top: its middle, rounded down), keeping of those closer
    than `distance` the highest (as `scipy.signal.find_peaks(x, distance=...)`, without its 1 s import)."""
    peaks, i, n = [], 1, len(x)
    while i < n - 1:
        if x[i - 1] < x[i]:
            ahead = i + 1
            while ahead < n - 1 and x[ahead] == x[i]:
                ahead += 1
            if x[ahead] < x[i]:
                peaks.append((i + ahead - 1) // 2)
                i = ahead
        i += 1
    peaks = np.array(peaks, dtype=np.int64)
    keep = np.ones(len(peaks), dtype=bool)
    for j in np.argsort(x[peaks])[::-1]:  # highest first (ties in numpy's default order, as scipy)
        if keep[j]:
            near = np.abs(peaks - peaks[j]) < distance
            near[j] = False
            keep &= ~near
    return peaks[keep]


def _refine(z: np.ndarray, center: float, bin_m: float) -> float:
    """Median of the heights within +-`bin_m` of `center`, iterated."""
    for _ in range(3):
        near = z[np.abs(z - center) <= bin_m]
        if near.size == 0:
            break
        center = float(np.median(near))
    return center


def _support(z: np.ndarray, center: float, bin_m: float) -> int:
    return int(np.count_nonzero(np.abs(z - center) <= bin_m))


# --- readers -----------------------------------------------------------------------------------


def _kept(
    path: Path, fmt: str, xyz: np.ndarray, stds: dict[str, np.ndarray], options: PointReadOptions,
    graph_uids: np.ndarray | None = None,
) -> PointCloud:
    """The finite, certain enough rows of `xyz` (N, 3) with uncertainty columns `stds` (name -> (N,)) and their
    graph ids `graph_uids` (N,) when known."""
    finite = np.isfinite(xyz).all(axis=1)
    if not finite.any():
        raise PointCloudError(path, f"no finite point: all {len(xyz)} rows have NaN/infinite coordinates")
    limits = {"dist_std": options.max_dist_std, "inv_dist_std": options.max_inv_dist_std}
    applied = {name: limits[name] for name in stds if limits[name] is not None}
    certain = np.ones(len(xyz), dtype=bool)
    for name, limit in applied.items():
        certain &= stds[name] <= limit  # NaN fails
    keep = finite & certain
    rule = ", ".join(f"{name} <= {limit}" for name, limit in applied.items())
    if not keep.any():
        medians = ", ".join(f"median {name} {np.nanmedian(stds[name][finite]):.3g}" for name in applied)
        raise PointCloudError(
            path,
            f"no point left after the uncertainty filter ({rule}) of {int(finite.sum())} finite points "
            f"({medians}); expected some certain points, or loosen max_dist_std / max_inv_dist_std",
        )
    counts = {
        "rows_read": len(xyz),
        "dropped_non_finite": int((~finite).sum()),
        "dropped_uncertain": int((finite & ~certain).sum()),
        "kept": int(keep.sum()),
    }
    missing = "no uncertainty columns" if not stds else "no limits set"
    metadata = {"format": fmt, "counts": counts, "filter": rule or f"none ({missing})"}
    dist_std = stds["dist_std"][keep] if "dist_std" in stds else None
    return PointCloud(xyz[keep], str(path), dist_std, metadata, None if graph_uids is None else graph_uids[keep])


def _read_aria_csv(path: Path, options: PointReadOptions) -> PointCloud:
    """Aria MPS semi-dense / global points, columns by header name."""
    text = _read_text(path)
    header_line, _, body = text.partition("\n")
    header = [name.strip() for name in header_line.split(",")]
    if repeated := sorted({name for name in header if name and header.count(name) > 1}):
        raise PointCloudError(path, f"repeated column(s) {', '.join(repeated)}; expected each once", "line 1")
    missing = [name for name in _ARIA_POSITION if name not in header]
    if missing:
        raise PointCloudError(
            path,
            f"missing column(s) {', '.join(missing)}; expected an Aria MPS point cloud header ({_ARIA_HEADER}), "
            f"got {header_line.strip()[:200]!r}",
            "line 1",
        )
    if not body.strip():
        raise PointCloudError(path, "no data rows after the header; expected one point per line")
    std_names = [name for name in ("dist_std", "inv_dist_std") if name in header]
    values = _csv_columns(path, body, header, [*_ARIA_POSITION, *std_names])
    stds = {name: values[:, 3 + i] for i, name in enumerate(std_names)}
    graphs = _graph_column(body, header, len(values))
    return _kept(path, "aria_mps_csv", values[:, :3], stds, options, graphs)


def _graph_column(body: str, header: list[str], rows: int) -> np.ndarray | None:
    """(rows,) str: the graph_uid of every data row, or None without that column (or a row count that differs)."""
    if "graph_uid" not in header:
        return None
    column = header.index("graph_uid")
    graphs = np.array([line.split(",")[column].strip() for line in body.splitlines() if line.strip()])
    return graphs if len(graphs) == rows else None


def _read_text(path: Path) -> str:
    """The file's text, gunzipped when it is gzip data (whatever its name), bounded by the memory available."""
    expected = f"CSV text or gzip-compressed CSV (an Aria MPS point cloud: {_ARIA_HEADER})"
    raw = read_input_bytes(path, expected=expected, error=PointCloudError, parse_bytes_per_byte=CSV_PARSE_BYTES_PER_BYTE)
    return decode_text(path, raw, expected, PointCloudError)


def _csv_columns(path: Path, body: str, header: list[str], names: list[str]) -> np.ndarray:
    """(N, len(names)) float64 of the named columns; data rows start at file line 2."""
    index = [header.index(name) for name in names]
    try:
        values = np.loadtxt(
            io.StringIO(body, newline=None), delimiter=",", usecols=index, dtype=np.float64, ndmin=2, comments=None
        )
    except ValueError as error:
        raise _first_bad_line(path, body, header, index, str(error)) from None
    if body.count(",") != len(values) * (len(header) - 1):  # a row with extra values
        raise _first_bad_line(path, body, header, index, "value count mismatch")
    return values


def _first_bad_line(path: Path, body: str, header: list[str], index: list[int], fallback: str) -> PointCloudError:
    """The error for the first data line with the wrong number of values or a non-number."""
    for number, line in enumerate(body.splitlines(), start=2):
        if not line:
            continue
        fields = line.split(",")
        if len(fields) != len(header):
            return PointCloudError(
                path, f"{len(fields)} comma-separated values; expected {len(header)} as in the header", f"line {number}"
            )
        for i in index:
            try:
                float(fields[i])
            except ValueError:
                return PointCloudError(path, f"{header[i]} is {fields[i][:40]!r}; expected a number", f"line {number}")
    return PointCloudError(path, f"unreadable rows ({fallback}); expected comma-separated numbers")


def _read_array(path: Path) -> np.ndarray:
    """(N, 3) float64 from a `.npy` array or the `points` array of a `.npz`."""
    if path.suffix.lower() == ".npz":
        try:
            arrays = load_npz(path, keys=("points",))
        except NpzError as error:
            raise PointCloudError(path, str(error)) from None
        if "points" not in arrays:
            found = ", ".join(npz_names(path)) or "none"
            raise PointCloudError(path, f"no 'points' array (found: {found}); expected points of shape (N, 3)")
        return _as_xyz(path, arrays["points"], "points")
    try:
        loaded = load_npy(path)
    except NpzError as error:
        raise PointCloudError(path, f"not a readable {path.suffix} file ({error})") from None
    return _as_xyz(path, loaded, "points")


def _as_xyz(path: Path, array: np.ndarray, what: str) -> np.ndarray:
    if array.ndim != 2 or array.shape[1] != 3 or array.dtype.kind not in "iuf":
        raise PointCloudError(path, f"{what} have shape {array.shape} ({array.dtype}); expected (N, 3) numbers")
    if len(array) == 0:
        raise PointCloudError(path, f"{what} are empty; expected (N, 3) with N >= 1")
    return array.astype(np.float64)


@dataclass(frozen=True)
class _PlyElement:
    name: str
    count: int
    properties: tuple[tuple[str, str | None], ...]  # (name, numpy type code); None for list properties


def _read_ply(path: Path) -> tuple[str, np.ndarray]:
    """The PLY format name and the vertex x, y, z (N, 3) float64."""
    raw = read_input_bytes(path, expected="a PLY point cloud", error=PointCloudError,
                           parse_bytes_per_byte=CSV_PARSE_BYTES_PER_BYTE)
    end = raw.find(b"end_header")
    if not raw.startswith((b"ply\n", b"ply\r\n")) or end < 0:
        raise PointCloudError(path, "not a PLY file; expected 'ply' on line 1 and a header ending in 'end_header'")
    newline = raw.find(b"\n", end)
    data = raw[newline + 1 :] if newline >= 0 else b""
    header_lines = raw[:end].decode("ascii", errors="replace").splitlines()
    fmt, elements = _ply_header(path, header_lines)
    names = [element.name for element in elements]
    if "vertex" not in names:
        raise PointCloudError(path, f"no 'vertex' element (found: {', '.join(names) or 'none'})")
    position = names.index("vertex")
    vertex = elements[position]
    properties = [name for name, _ in vertex.properties]
    missing = [axis for axis in "xyz" if axis not in properties]
    if missing:
        raise PointCloudError(
            path, f"vertex element lacks {', '.join(missing)} (has {', '.join(properties)}); expected x, y, z"
        )
    if any(kind is None for _, kind in vertex.properties):
        raise PointCloudError(path, "list properties in the vertex element are not supported; expected scalars")
    if vertex.count == 0:
        raise PointCloudError(path, "0 vertices; expected points")
    columns = [properties.index(axis) for axis in "xyz"]
    if fmt == "ascii":
        skip = sum(element.count for element in elements[:position])
        xyz = _ply_ascii(path, data, skip, len(header_lines) + 2 + skip, vertex, columns)
    else:
        xyz = _ply_binary(path, data, _PLY_FORMATS[fmt], elements[:position], vertex)
    return fmt, _as_xyz(path, xyz, "vertices")


def _ply_header(path: Path, lines: list[str]) -> tuple[str, list[_PlyElement]]:
    """The format and the elements declared in the header lines (before `end_header`)."""
    fmt, elements = None, []
    for number, line in enumerate(lines[1:], start=2):
        words = line.split()
        prop = _ply_property(words) if words[:1] == ["property"] and elements else None
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "format" and len(words) == 3 and words[1] in _PLY_FORMATS:
            fmt = words[1]
        elif words[0] == "element" and len(words) == 3 and words[2].isdigit():
            elements.append(_PlyElement(words[1], int(words[2]), ()))
        elif prop is not None and prop[0] not in [name for name, _ in elements[-1].properties]:
            last = elements[-1]
            elements[-1] = _PlyElement(last.name, last.count, (*last.properties, prop))
        else:
            raise PointCloudError(
                path,
                f"unexpected header line {line.strip()[:80]!r}; expected format ({', '.join(_PLY_FORMATS)}), "
                "element NAME COUNT, or property TYPE NAME / property list TYPE TYPE NAME with a new NAME",
                f"line {number}",
            )
    if fmt is None:
        raise PointCloudError(path, f"no format line in the header; expected one of {', '.join(_PLY_FORMATS)}")
    return fmt, elements


def _ply_property(words: list[str]) -> tuple[str, str | None] | None:
    """(name, numpy type) of a `property` header line (type None for a list property); None when malformed."""
    if len(words) == 3 and words[1] in _PLY_TYPES:
        return words[2], _PLY_TYPES[words[1]]
    if len(words) == 5 and words[1] == "list" and words[2] in _PLY_TYPES and words[3] in _PLY_TYPES:
        return words[4], None
    return None


def _ply_ascii(
    path: Path, data: bytes, skip: int, first_line: int, vertex: _PlyElement, columns: list[int]
) -> np.ndarray:
    """Vertex x, y, z (N, 3) from ASCII data: `skip` lines of earlier elements, then the vertex rows.

    `first_line`: the file line number of the first vertex row.
    """
    lines = data.decode("ascii", errors="replace").splitlines()[skip : skip + vertex.count]
    if len(lines) < vertex.count:
        raise PointCloudError(path, f"{len(lines)} vertex lines; expected {vertex.count} as in the header")
    width, rows = len(vertex.properties), []
    for number, line in enumerate(lines, start=first_line):
        words = line.split()
        if len(words) != width:
            raise PointCloudError(path, f"{len(words)} values; expected {width} vertex properties", f"line {number}")
        try:
            rows.append([float(words[i]) for i in columns])
        except ValueError:
            raise PointCloudError(
                path, f"x, y or z in {line.strip()[:80]!r} is not a number; expected numbers", f"line {number}"
            ) from None
    return np.array(rows)


def _ply_binary(path: Path, data: bytes, order: str, before: list[_PlyElement], vertex: _PlyElement) -> np.ndarray:
    """Vertex x, y, z (N, 3) from binary data after the scalar-only elements `before`."""
    offset = 0
    for element in before:
        if any(kind is None for _, kind in element.properties):
            raise PointCloudError(
                path, f"element {element.name!r} with list properties precedes 'vertex'; expected 'vertex' first"
            )
        offset += element.count * _ply_dtype(element, order).itemsize
    dtype = _ply_dtype(vertex, order)
    needed = offset + vertex.count * dtype.itemsize
    if len(data) < needed:
        raise PointCloudError(
            path, f"truncated: {len(data)} bytes of data; expected >= {needed} for {vertex.count} vertices"
        )
    rows = np.frombuffer(data, dtype=dtype, count=vertex.count, offset=offset)
    return np.stack([rows[axis].astype(np.float64) for axis in "xyz"], axis=1)


def _ply_dtype(element: _PlyElement, order: str) -> np.dtype:
    return np.dtype([(name, order + kind) for name, kind in element.properties])
