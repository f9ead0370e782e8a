"""Dataset build: sources and splits, per-clip cache, failure log, resume, HDF5 packing, windows.

The synthetic SMPL-H model makes fit quality meaningless, so these tests check
structure, bookkeeping and determinism, not accuracy (retargeting runs few
iterations to keep them fast).
"""

from __future__ import annotations

import dataclasses
import io
import copy
import json
import tarfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from synthetic_smplh import make_synthetic_smplh

from egoallo.body import BodyModel
from egoallo.cli.data import build as cli_build
from egoallo.data import sources
from egoallo.data.dataset import MotionDataset
from egoallo.data.dataset_build import MARKER, BuildError, build_dataset
from egoallo.data.retarget import RetargetConfig
from egoallo.errors import UserError

FAST = RetargetConfig(iterations=10)
BUILT = {  # the first two clips of each archive, in archive order
    "bandai1/dataset-1_bye_feminine_001": "train",
    "bandai1/dataset-1_walk-left_tired_001": "test",
    "cmu/005_19": "test",
    "cmu/005_15": "test",
}


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    return make_synthetic_smplh(tmp_path_factory.mktemp("smplh") / "model.npz")


@pytest.fixture(scope="module")
def model(model_path) -> BodyModel:
    return BodyModel.load(model_path)


@pytest.fixture(scope="module")
def built(shared_dir, model, tmp_path_factory):
    out = tmp_path_factory.mktemp("build") / "ds"
    summary = build_dataset(
        out, model=model, sources=("bandai1", "cmu"), shared_dir=shared_dir,
        workers=2, limit_per_source=2, config=FAST, progress=False,
    )
    return out, summary


# --- Sources and splits -------------------------------------------------------------------------


def test_clip_info_from_member_names():
    info = sources.bandai_clip("Bandai-Namco-Research-Motiondataset-2/data/dataset-2_walk-turn-left_feminine_021.bvh")
    assert info == sources.ClipInfo(
        source="bandai2", clip_id="bandai2/dataset-2_walk-turn-left_feminine_021", activity="walk-turn-left",
        style="feminine", performer=None, description="walk-turn-left, feminine style", split="test",
    )
    assert sources.bandai_clip("Bandai-Namco-Research-Motiondataset-1/data/dataset-1_bow_not-confident_001.bvh").style == "not-confident"
    assert sources.bandai_clip("Bandai-Namco-Research-Motiondataset-1/data/dataset-1_bow_happy_001.json") is None
    cmu = sources.cmu_clip("cmu-dev/subjects/003/003_01.bvh", {(3, 1): "walk on uneven terrain"})
    assert (cmu.clip_id, cmu.performer, cmu.split, cmu.activity) == ("cmu/003_01", "003", "val", "walk")


@pytest.mark.parametrize(
    "source, style, split",
    [("bandai1", "happy", "val"), ("bandai1", "proud", "test"), ("bandai1", "tired", "test"), ("bandai1", "normal", "train"),
     ("bandai2", "youthful", "val"), ("bandai2", "feminine", "test"), ("bandai2", "active", "train")],
)
def test_bandai_style_splits(source, style, split):
    assert sources.bandai_split(source, style) == split


def test_cmu_and_amass_splits():
    assert [sources.cmu_split(s) for s in (1, 2, 3, 5, 86)] == ["train", "train", "val", "test", "train"]
    assert sources.amass_split("ACCAD") == "train" and sources.amass_split("BMLrub") == "train"
    assert sources.amass_split("HumanEva") == "val" and sources.amass_split("Transitions") == "test"
    assert sources.amass_split("GRAB") is None


@pytest.mark.parametrize(
    "description, activity",
    [("playground - forward jumps, turn around", "playground"), ("run/jog", "run"), ("jump, balance", "jump"),
     ("walk on uneven terrain", "walk"), ("dance - expressive arms, pirouette", "dance"), ("swordplay", "swordplay"),
     ("wash self", "wash"), ("juggle", "other")],
)
def test_cmu_activity(description, activity):
    assert sources.cmu_activity(description) == activity


DAZ_MANIFEST = (
    "# Manifest\n\nclip\tframes\tseconds\tdescription(CMU index)\ttags\n"
    "13_01\t2314\t19.28\tsit on high stool, stand up\tsit/stand-up\n"
    "13_30\t2466\t20.55\tjumping jacks, side twists, squats, jog\tcrouch/squat,jump,exercise\n"
    "14_21\t1218\t10.15\tclimb 3 steps\tstairs\n"
    "  12_04\ttai chi\n"
)


def test_new_sources_clip_info_and_splits():
    manifest = sources.read_daz_manifest(DAZ_MANIFEST)
    assert set(manifest) == {"13_01", "13_30", "14_21"}
    sit = sources.daz_clip("cmu_daz_subjects10-14/13/13_01.bvh", manifest)
    assert (sit.clip_id, sit.performer, sit.activity, sit.split) == ("cmu_daz/13_01", "13", "sit", "test")
    assert sit.description == "sit on high stool, stand up"
    assert sources.daz_clip("cmu_daz_subjects10-14/13/13_30.bvh", manifest).activity == "exercise"
    assert sources.daz_clip("cmu_daz_subjects10-14/14/14_21.bvh", manifest).split == "train"
    assert [sources.daz_split(s) for s in (10, 11, 12, 13, 14)] == ["val", "train", "train", "test", "train"]
    # One clip per rare activity of the training subject validates; the held-out subject's stay in test.
    assert sources.daz_split(14, "14_28") == "val" and sources.daz_split(14, "14_27") == "train"
    assert sorted(sources.DAZ_VALIDATION_CLIPS.values()) == ["drink", "ladder", "laugh", "reach", "sit", "stairs"]
    assert sources.daz_split(13, "13_01") == "test"
    # A built clip is re-split by the current rules from what it stored.
    stored = {"source": "cmu_daz", "clip_id": "cmu_daz/14_28", "performer": "14", "style": "", "split": "train"}
    assert sources.clip_split(stored) == "val"
    assert sources.clip_split({**stored, "clip_id": "cmu_daz/14_27"}) == "train"
    assert sources.clip_split({"source": "bandai2", "clip_id": "bandai2/x", "style": "feminine", "performer": ""}) == "test"
    idle = sources.reactidle_clip("reactidle/genuine/012_genuine.bvh")
    assert (idle.clip_id, idle.performer, idle.style, idle.activity, idle.split) == (
        "reactidle/012_genuine", "012", "genuine", "idle", "test")
    assert sources.reactidle_clip("reactidle/acted/007_acted.bvh").split == "val"
    assert sources.reactidle_clip("reactidle/acted/001_acted.bvh").split == "train"
    assert sources.reactidle_clip("reactidle/README.md") is None


def test_train_subset_is_fixed_and_of_the_asked_size():
    from egoallo.data.dataset_build import in_train_subset

    ids = [f"bandai2/clip_{i}" for i in range(4000)]
    chosen = [i for i in ids if in_train_subset(i, 0.25)]
    assert 0.23 < len(chosen) / len(ids) < 0.27
    assert chosen == [i for i in ids if in_train_subset(i, 0.25)]
    assert set(chosen) <= {i for i in ids if in_train_subset(i, 0.5)}
    assert all(in_train_subset(i, 1.0) for i in ids)


@pytest.mark.parametrize("pair", ["bandai2", "bandai2:most", "bandai2:0", "bandai2:1.5", "nosuch:0.5"])
def test_train_fraction_refuses_bad_pairs(pair, model_path, tmp_path):
    with pytest.raises(UserError, match="SOURCE:FRACTION|train fractions"):
        cli_build(tmp_path / "out", sources=("bandai2",), train_fraction=(pair,), body_model=model_path)


def test_find_shared_dir(monkeypatch, tmp_path):
    monkeypatch.setenv(sources.SHARED_ENV_VAR, str(tmp_path))
    assert sources.find_shared_dir() == tmp_path
    monkeypatch.setenv(sources.SHARED_ENV_VAR, str(tmp_path / "missing"))
    with pytest.raises(sources.SharedDirError, match="missing"):
        sources.find_shared_dir()
    with pytest.raises(sources.SharedDirError, match="bandai1"):
        sources.archive_path("bandai1", tmp_path)


# --- A small real build ---------------------------------------------------------------------------


def test_clip_npz_files(built):
    out, _ = built
    files = sorted(p.relative_to(out / "clips").with_suffix("").as_posix() for p in (out / "clips").rglob("*.npz"))
    assert files == sorted(BUILT)
    with np.load(out / "clips" / "cmu/005_15.npz") as npz:
        T = npz["T_world_root"].shape[0]
        expected = {
            "betas": (16,), "T_world_root": (T, 4, 4), "local_rotations": (T, 51, 3, 3), "contacts": (T, 52),
            "joints_world": (T, 52, 3), "T_world_cpf": (T, 4, 4), "metadata": (),
        }
        assert {k: npz[k].shape for k in npz.files} == expected
        assert npz["local_rotations"].dtype == np.float32 and npz["contacts"].dtype == np.uint8
        meta = json.loads(npz["metadata"].item())
    assert meta["info"]["clip_id"] == "cmu/005_15" and meta["info"]["performer"] == "005" and meta["fps"] == 30.0
    assert set(meta["fit"]) == {"mean_error_mm", "mean_marker_error_mm", "joint_errors_mm"} and "pelvis" in meta["fit"]["joint_errors_mm"]
    assert T == 135  # 270 frames at 60 fps -> 30 fps


def test_h5_layout(built):
    out, _ = built
    with h5py.File(out / "dataset.h5", "r") as h5:
        index = h5["index"][()]
        assert [r.decode() for r in index["clip_id"]] == sorted(BUILT)
        assert {r["clip_id"].decode(): r["split"].decode() for r in index} == BUILT
        for clip_id in BUILT:
            g = h5[f"clips/{clip_id}"]
            T = g["T_world_root"].shape[0]
            assert T == index["num_frames"][[r.decode() for r in index["clip_id"]].index(clip_id)]
            shapes = {k: (g[k].shape, g[k].dtype.str) for k in g}
            assert shapes == {
                "T_world_root": ((T, 4, 4), "<f4"), "body_rotations": ((T, 21, 3, 3), "<f4"),
                "hand_rotations": ((T, 30, 3, 3), "<f4"), "contacts": ((T, 52), "|u1"),
                "joints_world": ((T, 52, 3), "<f4"), "T_world_cpf": ((T, 4, 4), "<f4"), "betas": ((16,), "<f4"),
            }
            assert g["body_rotations"].chunks[0] == min(128, T)
            assert g.attrs["clip_id"] == clip_id and g.attrs["split"] == BUILT[clip_id] and g.attrs["fps"] == 30.0
            if not g.attrs["has_hands"]:
                np.testing.assert_array_equal(g["hand_rotations"][:2], np.broadcast_to(np.eye(3), (2, 30, 3, 3)))


def test_summary_and_splits(built):
    out, summary = built
    counts = {(r.source, r.split): r.clips for r in summary.rows}
    assert counts == {("bandai1", "train"): 1, ("bandai1", "test"): 1, ("cmu", "test"): 2}
    assert summary.failures == {} and summary.processed == 4
    assert set(summary.mean_error_mm) == {"bandai1", "cmu"}
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["rows"] == [dataclasses.asdict(r) for r in summary.rows]
    assert sum(r.frames for r in summary.rows) == sum(MotionDataset(out / "dataset.h5", s).lengths.sum() for s in sources.SPLITS)
    splits = json.loads((out / "splits.json").read_text())
    assert splits["observed"] == {"bandai1": {"test": ["tired"], "train": ["feminine"]}, "cmu": {"test": ["005"]}}
    assert "bandai1" in summary.table() and (out / MARKER).is_file()


def test_second_run_resumes_without_work(built, model, shared_dir):
    out, _ = built
    before = {p: p.stat().st_mtime_ns for p in [*out.rglob("*.npz"), out / "dataset.h5", out / "build_log.jsonl"]}
    summary = build_dataset(
        out, model=model, sources=("bandai1", "cmu"), shared_dir=shared_dir,
        workers=2, limit_per_source=2, config=FAST, progress=False,
    )
    assert summary.processed == 0
    assert {p: p.stat().st_mtime_ns for p in before} == before


def test_motion_dataset_windows(built):
    out, _ = built
    ds = MotionDataset(out / "dataset.h5", "test")
    assert ds.clip_ids == ("bandai1/dataset-1_walk-left_tired_001", "cmu/005_15", "cmu/005_19")
    assert ds.info(1).performer == "005" and ds.info(0).performer is None and ds.info(0).style == "tired"
    w = ds.window(1, 10, 64)
    assert w["mask"].all() and w["body_rotations"].shape == (64, 21, 3, 3) and w["hand_rotations"].shape == (64, 30, 3, 3)
    assert w["joints_world"].shape == (64, 52, 3) and w["T_world_cpf"].shape == (64, 4, 4) and w["betas"].shape == (16,)
    with h5py.File(out / "dataset.h5", "r") as h5:
        np.testing.assert_array_equal(w["joints_world"], h5["clips/cmu/005_15/joints_world"][10:74])
    padded = ds.window(1, 100, 64)  # 135 frames: 35 real, 29 padded with the last frame
    assert padded["mask"].sum() == 35 and (padded["T_world_root"][35:] == padded["T_world_root"][34]).all()
    rng = np.random.default_rng(0)
    for _ in range(20):
        w = ds.random_window(rng, 128)
        assert w["T_world_root"].shape == (128, 4, 4) and w["contacts"].shape == (128, 52) and w["mask"][0]
    assert ds.groups == ("bandai1/walk-left", "cmu/dance", "cmu/dance")
    windows = np.maximum(ds.lengths - 32 + 1, 1)
    np.testing.assert_allclose(ds.clip_weights(32), windows / windows.sum())  # power 1: every window alike
    even = MotionDataset(out / "dataset.h5", "test", balance_power=0.0).clip_weights(32)
    assert even[0] == pytest.approx(0.5) and even[1:].sum() == pytest.approx(0.5)  # power 0: every group alike
    np.testing.assert_allclose(even[1:] / even[1:].sum(), windows[1:] / windows[1:].sum())  # uniform inside a group
    sqrt = MotionDataset(out / "dataset.h5", "test", balance_power=0.5).clip_weights(32)
    assert sqrt[0] / sqrt[1:].sum() == pytest.approx(np.sqrt(windows[0] / windows[1:].sum()))
    with pytest.raises(ValueError, match="balance_power"):
        MotionDataset(out / "dataset.h5", "test", balance_power=1.5)
    merged = MotionDataset(out / "dataset.h5", "test", balance_power=0.0, merge_groups=("bandai1/*,cmu/dance",))
    assert merged.sampling_groups == ("bandai1/*,cmu/dance",) * 3 and merged.groups == ds.groups
    np.testing.assert_allclose(merged.clip_weights(32), windows / windows.sum())  # one group: every window alike
    clone = copy.deepcopy(ds)  # the same __getstate__ path as pickling for worker processes
    assert clone._h5 is None and clone.window(0, 0, 8)["mask"].all()
    assert len(MotionDataset(out / "dataset.h5", "val")) == 0


# --- Failures, refusals, AMASS ----------------------------------------------------------------------


def _truncated(text: str, frames: int) -> str:
    head, body = text.split("Frame Time:", 1)
    head = head.rsplit("Frames:", 1)[0] + f"Frames: {frames}\n"
    lines = body.splitlines()
    return head + "Frame Time:" + "\n".join(lines[: frames + 1]) + "\n"


def _fake_cmu_archive(shared: Path, good: str) -> None:
    members = {
        "cmu-dev/subjects/005/005_15.bvh": good,
        "cmu-dev/subjects/003/003_90.bvh": "HIERARCHY\nROOT Hips\n{\n  OFFSET 0 0\n",
        "cmu-dev/subjects/003/003_91.bvh": _truncated(good, 20),
        "cmu-dev/subjects/003/003_92.bvh": good.replace("CC_Base_", "Other_"),
        "cmu-dev/index.csv": '"Subject","Trial #","Motion Description"\n5,15,"dance - retire"\n3,91,"walk"\n',
    }
    (shared / "datasets").mkdir(parents=True)
    with tarfile.open(shared / "datasets" / "cmu-mocap-subset.tar.xz", "w:xz") as tar:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_failures_are_logged_and_do_not_stop_the_build(bvh_samples, model, tmp_path):
    _fake_cmu_archive(tmp_path / "shared", bvh_samples["005_15"].read_text())
    out = tmp_path / "out"
    kwargs = dict(model=model, sources=("cmu",), shared_dir=tmp_path / "shared", workers=0, config=FAST, progress=False)
    summary = build_dataset(out, **kwargs)
    log = [json.loads(line) for line in (out / "build_log.jsonl").read_text().splitlines()]
    assert [(e["clip_id"], e["kind"]) for e in log] == [
        ("cmu/003_90", "BvhError"), ("cmu/003_91", "too_short"), ("cmu/003_92", "UnknownSkeletonError"),
    ]
    assert all(e["message"] and e["source"] == "cmu" for e in log)
    assert summary.failures == {"cmu": {"BvhError": 1, "UnknownSkeletonError": 1, "too_short": 1}}
    assert [r.clips for r in summary.rows] == [1] and (out / "clips/cmu/005_15.npz").is_file()
    assert MotionDataset(out / "dataset.h5", "test").info(0).description == "dance - retire"
    with (out / "build_log.jsonl").open("a") as f:
        f.write('{"clip_id": "cmu/0')  # a line cut short by an interrupted run
    again = build_dataset(out, **kwargs)
    assert again.processed == 0 and again.failures == summary.failures
    assert (out / "build_log.jsonl").read_text().endswith('"cmu/0\n')


def test_refuses_foreign_or_mismatched_output_dirs(model, model_path, tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(BuildError, match="not an egoallo dataset build"):
        build_dataset(foreign, model=model, sources=(), force=True, progress=False)
    with pytest.raises(UserError, match="not an egoallo dataset build"):
        cli_build(foreign, sources=(), body_model=model_path)
    assert (foreign / "notes.txt").read_text() == "keep me"

    out = tmp_path / "out"
    build_dataset(out, model=model, sources=(), progress=False)
    with pytest.raises(BuildError, match="other settings"):
        build_dataset(out, model=model, sources=(), config=FAST, progress=False)
    summary = build_dataset(out, model=model, sources=(), config=FAST, force=True, progress=False)
    assert summary.rows == () and json.loads((out / MARKER).read_text())["retarget_config"]["iterations"] == 10


def _write_amass(path: Path, T: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, poses=rng.normal(0, 0.2, (T, 156)), trans=np.zeros((T, 3)), betas=rng.normal(0, 1, 16),
             gender=np.array("neutral"), mocap_framerate=np.array(120.0))


def test_amass_sequences(model, tmp_path):
    amass = tmp_path / "amass"
    _write_amass(amass / "ACCAD/s1/a_poses.npz", 150, 0)
    _write_amass(amass / "HumanEva/s1/b_poses.npz", 150, 1)
    _write_amass(amass / "GRAB/s1/c_poses.npz", 150, 2)
    np.savez(amass / "ACCAD/s1/shape.npz", betas=np.zeros(16))
    out = tmp_path / "out"
    summary = build_dataset(out, model=model, sources=(), amass_dir=amass, workers=0, progress=False)
    assert {(r.split, r.clips) for r in summary.rows} == {("train", 1), ("val", 1)}
    assert summary.failures == {"amass": {"excluded": 1}} and summary.mean_error_mm == {"amass": None}
    w = MotionDataset(out / "dataset.h5", "train").window(0, 0, 16)
    assert w["has_hands"] and w["hand_rotations"].shape == (16, 30, 3, 3)
    with h5py.File(out / "dataset.h5", "r") as h5:
        assert h5["clips/amass/ACCAD/s1/a_poses/T_world_root"].shape == (38, 4, 4)  # 1.25 s at 30 fps

    not_smplh = dataclasses.replace(model, posedirs=None)
    with pytest.raises(BuildError, match="SMPL-H"):
        build_dataset(tmp_path / "other", model=not_smplh, sources=(), amass_dir=amass, progress=False)


def test_mirrored_window_is_a_valid_motion_of_the_same_body(tiny_dataset):
    import torch

    from egoallo.body import BodyModel
    from egoallo.data.dataset import MotionDataset, mirror_window

    dataset = MotionDataset(tiny_dataset, "train")
    window = dataset.window(0, 3, 12)
    mirrored = mirror_window(window)
    local = torch.from_numpy(np.concatenate([mirrored["body_rotations"], mirrored["hand_rotations"]], axis=1)).double()
    posed = BodyModel.load_default().with_shape(torch.from_numpy(mirrored["betas"][:16]).double()).with_pose(
        torch.from_numpy(mirrored["T_world_root"]).double(), local)
    # Forward kinematics of the mirrored rotations lands on the mirrored joints and head pose.
    assert np.abs(posed.joints_world.numpy() - mirrored["joints_world"]).max() < 1e-4
    assert np.abs(posed.T_world_cpf.numpy() - mirrored["T_world_cpf"]).max() < 1e-4
    assert np.allclose(mirrored["joints_world"][:, 1, 0], -window["joints_world"][:, 2, 0])  # left hip <- right hip, x flipped
    assert np.allclose(np.linalg.det(mirrored["T_world_root"][:, :3, :3]), 1.0, atol=1e-5)
    twice = mirror_window(mirrored)
    for key in ("T_world_root", "body_rotations", "hand_rotations", "joints_world", "contacts", "T_world_cpf"):
        assert np.array_equal(twice[key], window[key]), key


def test_retimed_window_plays_the_same_motion_at_another_speed(tiny_dataset):
    from egoallo.body import BodyModel
    from egoallo.data.dataset import MotionDataset, retime_source_length, retime_window

    body = BodyModel.load_default()
    dataset = MotionDataset(tiny_dataset, "train")
    source = dataset.window(0, 2, 40)
    keys = ("T_world_root", "body_rotations", "hand_rotations", "joints_world", "T_world_cpf")
    same = retime_window(source, 1.0, 12, body)
    for key in keys:  # speed 1: the source's first frames (joints and head poses re-derived by FK)
        assert np.abs(same[key] - source[key][:12]).max() < 1e-4, key
    double = retime_window(source, 2.0, 12, body)
    for key in keys:  # speed 2: every other source frame
        assert np.abs(double[key] - source[key][:24:2]).max() < 1e-4, key
    assert np.array_equal(double["contacts"], source["contacts"][:24:2])
    half = retime_window(source, 0.5, 12, body)
    # Speed 0.5: odd frames lie halfway between two source frames, joints close to their midpoint.
    midpoint = 0.5 * (source["joints_world"][:5] + source["joints_world"][1:6])
    assert np.abs(half["joints_world"][1:11:2] - midpoint).max() < 0.01
    assert np.abs(half["joints_world"][0:12:2] - source["joints_world"][:6]).max() < 1e-4
    assert half["body_rotations"].shape == (12, 21, 3, 3) and half["mask"].all()
    assert retime_source_length(2.0, 12) == 24
    with pytest.raises(ValueError, match="needs 35 source frames, got 12"):
        retime_window(dataset.window(0, 2, 12), 3.0, 12, body)


def test_dataset_source_filter(tiny_dataset):
    from egoallo.data.dataset import MotionDataset

    everything = MotionDataset(tiny_dataset, "train")
    sources = {everything.index_row(i)["source"] for i in range(len(everything))}
    for source in sources:
        subset = MotionDataset(tiny_dataset, "train", (source,))
        assert 0 < len(subset) < len(everything) or len(sources) == 1
        assert {subset.index_row(i)["source"] for i in range(len(subset))} == {source}


def test_reshaped_window_keeps_the_motion_and_moves_the_head(tiny_dataset):
    import torch

    from egoallo.body import BodyModel
    from egoallo.data.dataset import MotionDataset, reshape_window

    body = BodyModel.load_default()
    window = MotionDataset(tiny_dataset, "train").window(0, 0, 10)
    same = reshape_window(window, body, window["betas"])
    assert np.abs(same["joints_world"] - window["joints_world"]).max() < 1e-4  # FK of the data reproduces it
    assert np.abs(same["T_world_cpf"] - window["T_world_cpf"]).max() < 1e-4
    tall = reshape_window(window, body, window["betas"] + 2.0 * np.eye(len(window["betas"]))[0] * np.sign(window["betas"][0] or 1))
    stature = lambda w: float(body.with_shape(torch.from_numpy(w["betas"][:16]).float()).stature)  # noqa: E731
    ratio = stature(tall) / stature(window)
    assert ratio != pytest.approx(1.0, abs=0.01)
    # Head height follows the body's size; rotations, contacts and the root's orientation are untouched.
    head = lambda w: w["T_world_cpf"][:, 2, 3].mean()  # noqa: E731
    assert head(tall) / head(window) == pytest.approx(ratio, rel=0.03)
    for key in ("body_rotations", "hand_rotations", "contacts"):
        assert np.array_equal(tall[key], window[key])
    assert np.array_equal(tall["T_world_root"][:, :3, :3], window["T_world_root"][:, :3, :3])


def test_tilted_head_pitches_the_head_and_keeps_the_body(tiny_dataset):
    from egoallo.body import BodyModel
    from egoallo.body.skeleton import JOINT_INDEX
    from egoallo.data.dataset import MotionDataset, tilt_head_window

    body = BodyModel.load_default()
    window = MotionDataset(tiny_dataset, "train").window(0, 0, 10)
    same = tilt_head_window(window, 0.0, body)
    assert np.abs(same["T_world_cpf"] - window["T_world_cpf"]).max() < 1e-4
    pitch = lambda w: np.degrees(np.arcsin(w["T_world_cpf"][:, 2, 2]))  # noqa: E731  (the CPF's forward axis, z up)
    down = tilt_head_window(window, np.radians(20.0), body)
    np.testing.assert_allclose(pitch(down) - pitch(window), -20.0, atol=0.5)  # chin down: looking 20 degrees lower
    np.testing.assert_allclose(pitch(tilt_head_window(window, np.radians(-20.0), body)) - pitch(window), 20.0, atol=0.5)
    # Everything below the head stays; the head's own rotation is the only local change.
    assert np.array_equal(down["joints_world"], same["joints_world"])  # the head turns about its own joint
    changed = np.flatnonzero(np.abs(down["body_rotations"] - window["body_rotations"]).reshape(10, 21, 9).max(axis=(0, 2)))
    assert changed.tolist() == [JOINT_INDEX["head"] - 1]
    for key in ("hand_rotations", "contacts", "T_world_root", "betas"):
        assert np.array_equal(down[key], window[key])
    assert 0.01 < np.linalg.norm(down["T_world_cpf"][:, :3, 3] - window["T_world_cpf"][:, :3, 3], axis=1).mean() < 0.06


def test_split_by_split_builds_add_up(shared_dir, model, tmp_path):
    """A run restricted to some splits builds only those; a later run adds the rest and repacks."""
    out = tmp_path / "ds"
    kwargs = dict(model=model, sources=("cmu",), shared_dir=shared_dir, workers=0, config=FAST, progress=False)
    first = build_dataset(out, splits=("train",), limit_per_source=1, **kwargs)
    assert [(r.split, r.clips) for r in first.rows] == [("train", 1)]
    second = build_dataset(out, limit_per_source=2, **kwargs)  # the archive starts with subject 5: test
    assert [(r.split, r.clips) for r in second.rows] == [("train", 1), ("test", 2)]
    with pytest.raises(BuildError, match="unknown split"):
        build_dataset(out, splits=("dev",), **kwargs)
