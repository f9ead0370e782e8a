"""Hostile inputs to every command: each exits 2 with one line naming the file or flag, writes nothing.

The files live in a folder with a non-ASCII name; each case writes into its own empty folder, which must
still be empty afterwards (no partial output, no temporary file left behind).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from egoallo.body import BodyModel
from egoallo.cli.main import main
from hostile_inputs import mps_text, small_result, tum_text, walk_poses, wrist_text


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    """The command line; `{d}` is the folder of hostile files, `{out}` the case's own empty folder."""
    needle: str
    """What the one-line message must name (the file or the flag)."""


def tum(lines: list[str]) -> str:
    return "\n".join(lines) + "\n"


def tum_rows() -> list[str]:
    return tum_text().splitlines()


def mps_rows() -> list[str]:
    return mps_text().splitlines()


def replaced(rows: list[str], index: int, field: int, value: str, sep: str) -> list[str]:
    """`rows` with field `field` of row `index` set to `value`."""
    rows = list(rows)
    fields = rows[index].split(sep)
    fields[field] = value
    rows[index] = sep.join(fields)
    return rows


def trajectory_files() -> dict[str, str | bytes]:
    """Hostile head trajectories (TUM text and Aria MPS CSV) by file name."""
    t, m = tum_rows(), mps_rows()
    quaternion_2 = t[5].split()[:4] + ["0.0", "0.0", "0.0", "2.0"]
    upside_down = [" ".join(r.split()[:4] + ["0.5", "-0.5", "0.5", "-0.5"]) for r in t]
    return {
        "ts_1e30.txt": tum(replaced(t, 20, 0, "1e30", " ")),
        "ts_1e999999999.txt": tum(replaced(t, 20, 0, "1e999999999", " ")),
        "ts_nan.txt": tum(replaced(t, 3, 0, "nan", " ")),
        "all_nan.txt": tum([" ".join([r.split()[0]] + ["nan"] * 7) for r in t]),
        "one_row.txt": tum(t[:1]),
        "binary.txt": bytes(range(256)) * 4,
        "empty.txt": "",
        "latin1.txt": "0.0 1 2 3 0 0 0 1 \xe9\n".encode("latin-1"),
        "seven_columns.txt": tum(t[:3] + [" ".join(t[3].split()[:7])] + t[4:]),
        "quaternion_norm_2.txt": tum(t[:5] + [" ".join(quaternion_2)] + t[6:]),
        "backwards.txt": tum(t[:10] + [t[5]] + t[11:]),
        "coordinate_1e300.txt": tum(replaced(t, 7, 1, "1e300", " ")),
        "no_time_unit.txt": tum([" ".join([f"{1e-4 * i:.4f}"] + r.split()[1:]) for i, r in enumerate(t)]),
        "comments_only.txt": "# timestamp tx ty tz qx qy qz qw\n# nothing else\n",
        "upside_down.txt": tum(upside_down),
        "header_only.csv": m[0] + "\n",
        "missing_column.csv": "\n".join(",".join(r.split(",")[:-1]) for r in m) + "\n",
        "text_in_number.csv": "\n".join(replaced(m, 4, 3, "abc", ",")) + "\n",
        "short_row.csv": "\n".join(m[:6] + [",".join(m[6].split(",")[:5])] + m[7:]) + "\n",
        "timestamp_us_beyond_int64.csv": "\n".join(replaced(m, 8, 1, "99999999999999999999", ",")) + "\n",
        "timestamp_ns_overflow.csv": "\n".join(replaced(m, 8, 1, "9300000000000000", ",")) + "\n",
        "gravity_zero.csv": "\n".join(r.replace(",0,0,-9.81", ",0,0,0") for r in m) + "\n",
    }


def npz_trajectories(folder: Path) -> None:
    """Hostile .npz trajectories."""
    t, pose = walk_poses(20)
    T = np.tile(np.eye(4), (20, 1, 1))
    T[:, :3, 3] = pose[:, :3]
    T[:, :3, :3] = [[0, 0, 1], [1, 0, 0], [0, 1, 0]]
    ns = np.round(t * 1e9).astype(np.int64)
    (folder / "not_a_zip.npz").write_text("timestamps_ns,T_world_cpf\n")
    np.savez(folder / "wrong_shape.npz", timestamps_ns=ns, T_world_cpf=T[:, :3])
    np.savez(folder / "float_ns.npz", timestamps_ns=t * 1e9, T_world_cpf=T)
    np.savez(folder / "no_poses.npz", timestamps_ns=ns)
    np.savez(folder / "pickled.npz", timestamps_ns=ns, T_world_cpf=np.array([None] * 20, dtype=object))
    np.savez(folder / "complex.npz", timestamps_ns=ns, T_world_cpf=T.astype(np.complex64))
    np.savez(folder / "uint64_beyond_int64.npz", timestamps_ns=ns.astype(np.uint64) + np.uint64(2**63), T_world_cpf=T)


def result_files(folder: Path) -> None:
    """Hostile result.npz files, each one flaw away from a valid one."""
    valid = small_result(BodyModel.load_default()).save(folder / "valid_result.npz")
    with np.load(valid) as f:
        arrays = {k: f[k] for k in f.files}

    def save(name: str, **changes: np.ndarray) -> None:
        np.savez(folder / name, **{k: v for k, v in {**arrays, **changes}.items() if v is not None})

    joints = arrays["joints_world"].copy()
    joints[0, 2, 5] = np.nan
    save("nan_joints.npz", joints_world=joints)
    save("metadata_not_json.npz", metadata=np.array("{not json"))
    save("metadata_list.npz", metadata=np.array("[1, 2]"))
    save("missing_betas.npz", betas=None)
    save("not_rotations.npz", local_rotations=2.0 * arrays["local_rotations"])
    save("timestamps_backwards.npz", timestamps_ns=arrays["timestamps_ns"][::-1].copy())
    save("text_joints.npz", joints_world=arrays["joints_world"].astype(str))
    save("far_away.npz", joints_world=arrays["joints_world"] + 1e300)
    save("zero_fps.npz", fps=np.float64(0.0))
    save("metadata_nested_deeply.npz", metadata=np.array("[" * 100_000))
    (folder / "truncated_result.npz").write_bytes(valid.read_bytes()[:2000])


def checkpoints(folder: Path, tiny: Path) -> None:
    """Damaged copies of the tiny checkpoint."""
    weights = load_file(tiny / "model.safetensors")
    name = sorted(k for k in weights if weights[k].ndim == 2)[0]
    for kind, scale in (("nan_weights", float("nan")), ("huge_weights", 1e30)):  # 1e30: finite, overflows later
        shutil.copytree(tiny, folder / kind)
        save_file({**weights, name: weights[name] * scale}, folder / kind / "model.safetensors")
    shutil.copytree(tiny, folder / "config_not_json")
    (folder / "config_not_json" / "config.json").write_text("{format: egoallo")
    (folder / "empty_checkpoint").mkdir()


def other_files(folder: Path) -> None:
    """Hostile companions: point clouds, wrist CSVs, hands, calibrations, body models, datasets, BVH clips."""
    (folder / "points.ply").write_text("ply\nformat ascii 1.0\nelement vertex 5\nproperty float x\nend_header\n1\n")
    (folder / "wrist.csv").write_text("tracking_timestamp_us,left_tracking_confidence\n1,0.5\n")
    (folder / "wrist_time.csv").write_text("\n".join(replaced(wrist_text().splitlines(), 3, 0, "9223372036854775807", ",")))
    np.savez(folder / "hands.npz", timestamps_ns=np.arange(3), keypoints_2d=np.zeros((3, 2, 21, 2)),
             confidence=np.zeros((3, 2)), image_size=np.array([np.nan, 480.0]))
    (folder / "calibration.json").write_text('{"CameraCalibrations": 7}\n')
    (folder / "nested.json").write_text("[" * 100_000)
    np.savez(folder / "body_model.npz", v_template=np.zeros((10, 3)))
    (folder / "dataset.csv").write_text("clip,frames\na,1\n")
    (folder / "clip.bvh").write_text("HIERARCHY\nROOT Hips\n{\n  OFFSET 0 0\n")
    (folder / "empty.bvh").write_text("")
    (folder / "hamer.json").write_text('{"frames": [{"timestamp_ns": "soon"}]}')
    (folder / "hamer_time.json").write_text('{"frames": [{"timestamp_ns": 1000000000000000000000000000000, "hands": []}]}')
    (folder / "existing.txt").write_text("keep me")
    (folder / "existing.npz").write_text("keep me")
    with h5py.File(folder / "dataset.h5", "w"):
        pass
    (folder / "reports").mkdir()
    for name in ("egoallo_w32.json", "rest_pose_w128.md"):
        (folder / "reports" / name).write_text("a report to keep")
    t = np.arange(0, 24 * 3600, 0.4)  # 24 h at 2.5 Hz: 216,000 poses
    T = np.tile(np.eye(4), (len(t), 1, 1))
    T[:, :3, :3] = [[0, 0, 1], [1, 0, 0], [0, 1, 0]]
    T[:, 0, 3] = 0.5 * np.sin(t / 10.0)
    T[:, 2, 3] = 1.6
    np.savez(folder / "day_long.npz", timestamps_s=t, T_world_cpf=T)


INFER = ("infer", "--out", "{out}/r.npz", "--checkpoint", "{ckpt}", "--steps", "1")
TRAJECTORY_CASES = {name: Case((INFER[0], f"{{d}}/{name}", *INFER[1:]), name) for name in trajectory_files()}
NPZ_CASES = {name: Case((INFER[0], f"{{d}}/{name}", *INFER[1:]), name) for name in (
    "not_a_zip.npz", "wrong_shape.npz", "float_ns.npz", "no_poses.npz", "pickled.npz", "complex.npz",
    "uint64_beyond_int64.npz")}
WALK = (INFER[0], "{d}/walk.txt", *INFER[1:])
FLAG_CASES = {
    "seed 2**70": Case((*WALK, "--seed", "1180591620717411303424"), "--seed"),
    "seed -1": Case((*WALK, "--seed", "-1"), "--seed"),
    "samples 0": Case((*WALK, "--samples", "0"), "--samples"),
    "steps 0": Case(("infer", "{d}/walk.txt", "--out", "{out}/r.npz", "--steps", "0"), "--steps"),
    "threads 0": Case((*WALK, "--threads", "0"), "--threads"),
    "floor nan": Case((*WALK, "--floor-z", "nan"), "--floor-z"),
    "floor 1e300": Case((*WALK, "--floor-z", "1e300"), "--floor-z"),
    "up q": Case((*WALK, "--up", "q"), "up='q'"),
    "out suffix": Case(("infer", "{d}/walk.txt", "--out", "{out}/r.txt"), "r.txt"),
    "out exists": Case(("infer", "{d}/walk.txt", "--out", "{d}/existing.npz"), "existing.npz"),
    "out folder missing": Case(("infer", "{d}/walk.txt", "--out", "{out}/missing/r.npz"), "missing"),
    "wrist3d without file": Case((*WALK, "--guidance", "wrist3d"), "--wrist-palm"),
    "points": Case((*WALK, "--points", "{d}/points.ply"), "points.ply"),
    "wrist file": Case((*WALK, "--guidance", "wrist3d", "--wrist-palm", "{d}/wrist.csv"), "wrist.csv"),
    "wrist time": Case((*WALK, "--guidance", "wrist3d", "--wrist-palm", "{d}/wrist_time.csv"), "wrist_time.csv: line 4"),
    "hands file": Case((*WALK, "--guidance", "hands", "--hands", "{d}/hands.npz"), "hands.npz"),
    "calibration": Case((*WALK, "--calibration", "{d}/calibration.json"), "calibration.json"),
    "calibration nested deeply": Case((*WALK, "--calibration", "{d}/nested.json"), "nested.json"),
    "body model": Case((*WALK, "--body-model", "{d}/body_model.npz"), "body_model.npz"),
    "checkpoint empty": Case(("infer", "{d}/walk.txt", "--out", "{out}/r.npz", "--checkpoint", "{d}/empty_checkpoint"),
                             "empty_checkpoint"),
    "checkpoint nan": Case(("infer", "{d}/walk.txt", "--out", "{out}/r.npz", "--checkpoint", "{d}/nan_weights"),
                           "nan_weights"),
    "checkpoint non-finite output": Case(("infer", "{d}/walk.txt", "--out", "{out}/r.npz", "--checkpoint",
                                          "{d}/huge_weights", "--steps", "2"), "huge_weights"),
    "checkpoint config": Case(("infer", "{d}/walk.txt", "--out", "{out}/r.npz", "--checkpoint",
                               "{d}/config_not_json"), "config.json"),
    "24 h x 16 samples": Case((INFER[0], "{d}/day_long.npz", *INFER[1:], "--samples", "16"), "GB of memory"),
}
RESULTS = ("nan_joints.npz", "metadata_not_json.npz", "metadata_list.npz", "metadata_nested_deeply.npz",
           "missing_betas.npz", "not_rotations.npz", "timestamps_backwards.npz", "text_joints.npz", "far_away.npz",
           "zero_fps.npz", "truncated_result.npz")
EXPORT_CASES = {f"export {r}": Case(("export", f"{{d}}/{r}", "--to", "bvh", "--out", "{out}/m.bvh"), r) for r in RESULTS}
EXPORT_CASES |= {
    "export glb as bvh": Case(("export", "{d}/valid_result.npz", "--to", "glb", "--out", "{out}/m.bvh"), "m.bvh"),
    "export sample 5": Case(("export", "{d}/valid_result.npz", "--to", "amass", "--out", "{out}/m.npz", "--sample", "5"),
                            "--sample 5"),
    "export nan glb": Case(("export", "{d}/nan_joints.npz", "--to", "glb", "--out", "{out}/m.glb"), "nan_joints.npz"),
}
RENDER = ("render", "{d}/valid_result.npz", "--out", "{out}/r.gif")
RENDER_CASES = {
    "render nan": Case(("render", "{d}/nan_joints.npz", "--out", "{out}/r.png"), "nan_joints.npz"),
    "render far": Case(("render", "{d}/far_away.npz", "--out", "{out}/r.png"), "far_away.npz"),
    "render stride 0": Case((*RENDER, "--stride", "0"), "--stride"),
    "render frames 0": Case((*RENDER, "--frames", "0"), "--frames"),
    "render fps 0": Case((*RENDER, "--fps", "0"), "--fps"),
    "render fps nan": Case((*RENDER, "--fps", "nan"), "--fps"),
    "render elevation 1e9": Case((*RENDER, "--elevation", "1e9"), "--elevation"),
}
OTHER_CASES = {
    "view port 99999": Case(("view", "{d}/valid_result.npz", "--port", "99999"), "--port"),
    "view port 0": Case(("view", "{d}/valid_result.npz", "--port", "0"), "--port"),
    "view nan": Case(("view", "{d}/nan_joints.npz", "--port", "8093"), "nan_joints.npz"),
    "eval not hdf5": Case(("eval", "--dataset", "{d}/dataset.csv", "--out", "{out}/reports"), "dataset.csv"),
    "eval samples 0": Case(("eval", "--dataset", "{d}/dataset.csv", "--out", "{out}/reports", "--samples", "0"),
                           "--samples"),
    "eval windows 0": Case(("eval", "--dataset", "{d}/dataset.csv", "--out", "{out}/reports", "--windows", "0"),
                           "--windows"),
    "eval seed 2**64": Case(("eval", "--dataset", "{d}/dataset.csv", "--out", "{out}/reports", "--seed",
                             "18446744073709551616"), "--seed"),
    "body render betas nan": Case(("body", "render", "--out", "{out}/b.png", "--betas", "nan"), "--betas"),
    "body render betas 1e308": Case(("body", "render", "--out", "{out}/b.png", "--betas", "1e308"), "--betas"),
    "train not hdf5": Case(("train", "--dataset", "{d}/dataset.csv", "--out", "{out}/run"), "dataset.csv"),
    "make-case out is a file": Case(("data", "make-case", "{d}/clip.bvh", "--out", "{d}/existing.txt"), "existing.txt"),
    "make-case bad clip": Case(("data", "make-case", "{d}/clip.bvh", "--out", "{out}/case"), "clip.bvh"),
    "make-case empty clip": Case(("data", "make-case", "{d}/empty.bvh", "--out", "{out}/case"), "empty.bvh"),
    "import-hamer bad json": Case(("hands", "import-hamer", "{d}/hamer.json", "--out", "{out}/h.npz"), "hamer.json"),
    "import-hamer nested deeply": Case(("hands", "import-hamer", "{d}/nested.json", "--out", "{out}/h.npz"),
                                       "nested.json"),
    "import-hamer time beyond int64": Case(("hands", "import-hamer", "{d}/hamer_time.json", "--out", "{out}/h.npz"),
                                          "hamer_time.json: frames[0]"),
    "import-hamer out exists": Case(("hands", "import-hamer", "{d}/hamer.json", "--out", "{d}/existing.npz"),
                                    "existing.npz"),
}
EVAL = ("eval", "--dataset", "{d}/dataset.h5", "--out")
TRAIN = ("train", "--dataset", "{d}/dataset.h5", "--out")
OUTPUT_CASES = {
    "eval out is a file": Case((*EVAL, "{d}/existing.txt"), "existing.txt: is a file"),
    "eval out under a file": Case((*EVAL, "{d}/existing.txt/reports"), "existing.txt: is a file"),
    "eval report exists": Case((*EVAL, "{d}/reports"), "egoallo_w32.json exists; pass --force"),
    "eval baseline report exists": Case((*EVAL, "{d}/reports", "--windows", "128", "--baselines"),
                                        "rest_pose_w128.md exists; pass --force"),
    "eval out unwritable": Case((*EVAL, "/sys/egoallo_reports"), "/sys: cannot write"),
    "train out is a file": Case((*TRAIN, "{d}/existing.txt"), "existing.txt: is a file"),
    "train out under a file": Case((*TRAIN, "{d}/existing.txt/run"), "existing.txt: is a file"),
    "train out not a run": Case((*TRAIN, "{d}/reports"), "holds no training run"),
    "train out unwritable": Case((*TRAIN, "/sys/egoallo_run"), "/sys: cannot write"),
}
CASES = {**TRAJECTORY_CASES, **NPZ_CASES, **FLAG_CASES, **EXPORT_CASES, **RENDER_CASES, **OTHER_CASES, **OUTPUT_CASES}
CATEGORIES = {"trajectory text": TRAJECTORY_CASES, "trajectory npz": NPZ_CASES, "infer flags and companions": FLAG_CASES,
              "export": EXPORT_CASES, "render": RENDER_CASES, "view, eval, train, data, hands": OTHER_CASES,
              "eval and train outputs": OUTPUT_CASES}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Path:
    """Every hostile file, in a folder whose name is not ASCII."""
    folder = tmp_path_factory.mktemp("hostile") / "données ü 漢字"
    folder.mkdir()
    for name, content in trajectory_files().items():
        (folder / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    (folder / "walk.txt").write_text(tum_text())
    npz_trajectories(folder)
    result_files(folder)
    checkpoints(folder, tiny_checkpoint)
    other_files(folder)
    return folder


def test_there_are_at_least_60_cases() -> None:
    assert len(CASES) >= 60 and sum(len(c) for c in CATEGORIES.values()) == len(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_input(name: str, hostile: Path, tiny_checkpoint: Path, tmp_path: Path, capsys) -> None:
    case = CASES[name]
    out = tmp_path / "out"
    out.mkdir()
    before = {p: p.stat().st_mtime_ns for p in hostile.rglob("*")}
    args = [a.format(d=hostile, out=out, ckpt=tiny_checkpoint) for a in case.args]
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("egoallo: error: ") and case.needle in lines[0], err
    assert not list(out.rglob("*")), "partial output"
    assert {p: p.stat().st_mtime_ns for p in hostile.rglob("*")} == before, "an input changed"


def test_an_internal_error_is_one_line_and_a_trace_file(monkeypatch, tmp_path, capsys) -> None:
    """A bug (here: the result reader failing unexpectedly) exits 1 with one line and the trace in a file."""
    from egoallo.result import InferenceResult

    def broken(path):  # noqa: ANN001, ANN202
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(InferenceResult, "load", staticmethod(broken))
    assert main(["export", __file__, "--to", "bvh", "--out", str(tmp_path / "never.bvh")]) == 1
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and line.startswith("egoallo: internal error: ZeroDivisionError: a bug (full trace in ")
    trace = Path(line.split("full trace in ")[1].split(";")[0])
    assert "ZeroDivisionError" in trace.read_text() and "egoallo export" in trace.read_text()
    trace.unlink()

