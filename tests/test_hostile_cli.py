"""Hostile inputs to every command: each exits 2 with one line naming the file or flag, writes nothing.

The files live in a folder with a non-ASCII name; each case writes into its own empty folder, which must
still be empty afterwards (no partial output, no temporary file left behind).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import zipfile
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


def round_three_files(folder: Path, tiny: Path) -> None:
    """Round three (issue #28): repeated columns, partial flips, far floors, wrong kinds of file, headers
    claiming huge arrays, invalid checkpoint sizes, hand-edited results."""
    m = mps_rows()
    header = m[0].split(",")
    (folder / "repeated_column.csv").write_text(
        "\n".join([",".join([*header, "tz_world_device"])] + [r + ",25.0" for r in m[1:]]) + "\n")
    t, pose = walk_poses(300)  # 10 s, upside down from 4 s to 6 s
    pose[120:180, 3:] = [0.5, -0.5, 0.5, -0.5]
    (folder / "partly_upside_down.txt").write_text("".join(f"{a:.6f} " + " ".join(f"{v:.6f}" for v in r) + "\n"
                                                          for a, r in zip(t, pose)))
    pose[:, 2] = 1e5  # a head 100 km up
    pose[:, 3:] = [0.5, 0.5, 0.5, 0.5]
    (folder / "head_100km_up.txt").write_text("".join(f"{a:.6f} " + " ".join(f"{v:.6f}" for v in r) + "\n"
                                                      for a, r in zip(t, pose)))
    (folder / "utf16.csv").write_bytes(mps_text().encode("utf-16"))
    (folder / "a_directory.csv").mkdir()
    os.mkfifo(folder / "fifo.txt")
    (folder / "zero.txt").symlink_to("/dev/zero")
    rng = np.random.default_rng(0)
    table = np.c_[rng.uniform(-0.5, 0.5, (3000, 2)), rng.normal(1.0, 0.003, 3000)]  # 0.6 m under a 1.6 m head
    np.save(folder / "table_only.npy", np.r_[table, rng.uniform([-3, -3, 1.2], [3, 3, 2.5], (300, 3))])
    for name, shape in (("huge_header.npy", (10**11, 3)), ("huge_member.npz", (10**11, 4, 4))):
        buffer = io.BytesIO()
        np.lib.format.write_array_header_1_0(buffer, {"descr": "<f8", "fortran_order": False, "shape": shape})
        if name.endswith(".npy"):
            (folder / name).write_bytes(buffer.getvalue() + bytes(96))
        else:
            ns = np.arange(20) * 33_333_333
            with zipfile.ZipFile(folder / name, "w") as z:
                z.writestr("T_world_cpf.npy", buffer.getvalue() + bytes(96))
                with z.open("timestamps_ns.npy", "w") as member:
                    np.lib.format.write_array(member, ns)
    config = json.loads((tiny / "config.json").read_text())
    for field, value in (("num_heads", 0), ("num_heads", -4), ("d_latent", -128), ("encoder_layers", 10**9)):
        shutil.copytree(tiny, folder / f"config_{field}_{value}")
        changed = {**config, "config": {**config["config"], field: value}}
        (folder / f"config_{field}_{value}" / "config.json").write_text(json.dumps(changed))
    shutil.copytree(tiny, folder / "config_version_300_digits")
    (folder / "config_version_300_digits" / "config.json").write_text(json.dumps({**config, "version": int("9" * 300)}))
    edited_results(folder)


def edited_results(folder: Path) -> None:
    """Results a careless hand edited: each passes the shape checks but describes no body a run could give."""
    valid = folder / "valid_result.npz"
    with np.load(valid) as f:
        arrays = {k: f[k] for k in f.files}

    def save(name: str, **changes: np.ndarray) -> None:
        np.savez(folder / name, **{**arrays, **changes})

    names = arrays["joint_names"].copy()
    names[[1, 2]] = names[[2, 1]]
    save("joint_names_reordered.npz", joint_names=names)
    save("betas_1e6.npz", betas=np.full_like(arrays["betas"], 1e6))
    save("fps_1e-300.npz", fps=np.float64(1e-300))
    save("fps_disagrees.npz", fps=np.float64(60.0))
    root = arrays["T_world_root"].copy()
    root[..., :3, 3] += 1e9
    save("root_far_from_joints.npz", T_world_root=root)
    save("negative_stature.npz", stature_m=-arrays["stature_m"])
    save("contacts_1e30.npz", contacts=np.full_like(arrays["contacts"], 1e30))
    save("version_300_digits.npz", format_version=np.array("9" * 300))


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
ROUND_THREE_CASES = {
    "repeated column": Case(("infer", "{d}/repeated_column.csv", *INFER[1:]), "repeated column(s) tz_world_device"),
    "upside down 2 s of 10": Case(("infer", "{d}/partly_upside_down.txt", *INFER[1:]), "line 121 to line 180, 1.97 s"),
    "floor 100 km below the head": Case(("infer", "{d}/head_100km_up.txt", *INFER[1:], "--floor-z", "0"),
                                        "--floor-z 0 m is not a floor under this head"),
    "utf-16 csv": Case(("infer", "{d}/utf16.csv", *INFER[1:]), "UTF-16 text, which is not supported"),
    "directory as trajectory": Case(("infer", "{d}/a_directory.csv", *INFER[1:]), "a_directory.csv: is a directory"),
    "fifo as trajectory": Case(("infer", "{d}/fifo.txt", *INFER[1:]), "fifo.txt: is a named pipe (FIFO)"),
    "link to /dev/zero": Case(("infer", "{d}/zero.txt", *INFER[1:]),
                              "is a character device (through a link to /dev/zero)"),
    "fifo as points": Case((*WALK, "--points", "{d}/fifo.txt"), "fifo.txt: is a named pipe (FIFO)"),
    "fifo as result": Case(("export", "{d}/fifo.txt", "--to", "bvh", "--out", "{out}/m.bvh"), "is a named pipe"),
    "out name 300 bytes": Case(("infer", "{d}/walk.txt", "--out", "{out}/" + "r" * 296 + ".npz"),
                               "is 300 bytes long; expected at most 255"),
    "npy header claims 1e11 rows": Case((*WALK, "--points", "{d}/huge_header.npy"), "as its header says"),
    "npz member claims 1e11 poses": Case(("infer", "{d}/huge_member.npz", *INFER[1:]), "as its header says"),
    **{f"checkpoint {field} {value}": Case(("infer", "{d}/walk.txt", "--out", "{out}/r.npz", "--checkpoint",
                                            f"{{d}}/config_{field}_{value}"), f"{field}={value}")
       for field, value in (("num_heads", 0), ("num_heads", -4), ("d_latent", -128), ("encoder_layers", 10**9))},
    "checkpoint version of 300 digits": Case(("infer", "{d}/walk.txt", "--out", "{out}/r.npz", "--checkpoint",
                                              "{d}/config_version_300_digits"), "(300 characters)"),
    "result version of 300 digits": Case(("export", "{d}/version_300_digits.npz", "--to", "bvh", "--out", "{out}/m.bvh"),
                                         "expected the integer 1"),
    **{f"export {name}": Case(("export", f"{{d}}/{name}.npz", "--to", "glb", "--out", "{out}/m.glb"), needle)
       for name, needle in (("joint_names_reordered", "'joint_names' at (1,)"), ("betas_1e6", "'betas' at (0, 0)"),
                            ("fps_1e-300", "'fps' is 1e-300"), ("fps_disagrees", "but 'fps' is 60"),
                            ("root_far_from_joints", "from the root"), ("negative_stature", "'stature_m' at (0,)"),
                            ("contacts_1e30", "'contacts' at (0, 0, 0)"))},
    "render betas 1e6": Case(("render", "{d}/betas_1e6.npz", "--out", "{out}/r.png"), "'betas' at (0, 0)"),
    "view root far from joints": Case(("view", "{d}/root_far_from_joints.npz", "--port", "8093"), "from the root"),
}
CASES = {**TRAJECTORY_CASES, **NPZ_CASES, **FLAG_CASES, **EXPORT_CASES, **RENDER_CASES, **OTHER_CASES, **OUTPUT_CASES, **ROUND_THREE_CASES}
CATEGORIES = {"trajectory text": TRAJECTORY_CASES, "trajectory npz": NPZ_CASES, "infer flags and companions": FLAG_CASES,
              "export": EXPORT_CASES, "render": RENDER_CASES, "view, eval, train, data, hands": OTHER_CASES,
              "eval and train outputs": OUTPUT_CASES, "round three (#28)": ROUND_THREE_CASES}


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
    round_three_files(folder, tiny_checkpoint)
    return folder


def test_there_are_at_least_60_cases() -> None:
    assert len(CASES) >= 60 and sum(len(c) for c in CATEGORIES.values()) == len(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_input(name: str, hostile: Path, tiny_checkpoint: Path, tmp_path: Path, capsys) -> None:
    case = CASES[name]
    out = tmp_path / "out"
    out.mkdir()
    before = {p: p.lstat().st_mtime_ns for p in hostile.rglob("*")}
    args = [a.format(d=hostile, out=out, ckpt=tiny_checkpoint) for a in case.args]
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("egoallo: error: ") and case.needle in lines[0], err
    assert not list(out.rglob("*")), "partial output"
    assert {p: p.lstat().st_mtime_ns for p in hostile.rglob("*")} == before, "an input changed"


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

