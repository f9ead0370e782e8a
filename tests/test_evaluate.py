"""`egoallo eval` end to end on a tiny real dataset, with a tiny random-weight checkpoint."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from egoallo.body import BodyModel
from egoallo.cli.main import main
from egoallo.data.dataset import MotionDataset
from egoallo.evaluation.baselines import rest_pose_predictor
from egoallo.evaluation.benchmark import METRICS, EvalConfig, WindowResult, evaluate, markdown_table, summarize
from egoallo.prior.checkpoint import save_project_checkpoint
from egoallo.prior.network import PRESETS, EgoDenoiser


def test_eval_writes_reports_for_model_and_baselines(tiny_dataset, tmp_path, capsys):
    torch.manual_seed(0)
    config = dataclasses.replace(PRESETS["default"], d_latent=32, d_feedforward=64, d_noise_emb=32, encoder_layers=1, decoder_layers=1)
    save_project_checkpoint(tmp_path / "ckpt", EgoDenoiser(config))
    split = "test" if len(MotionDataset(tiny_dataset, "test")) else "train"
    out = tmp_path / "report"
    args = ["eval", "--dataset", str(tiny_dataset), "--out", str(out), "--checkpoint", str(tmp_path / "ckpt"),
            "--windows", "32", "--steps", "2", "--max-windows", "2", "--baselines", "--split", split]
    assert main(args) == 0
    for name in ("egoallo", "rest_pose", "nearest_neighbour"):
        report = json.loads((out / f"{name}_w32.json").read_text())
        summary = report["summary"]["all"]
        assert summary["windows"] == 2 and summary["mpjpe"]["mean"] > 0
        assert 0.0 <= summary["foot_contact"]["mean"] <= 1.0
        assert (out / f"{name}_w32.md").read_text().startswith(f"| {name}_w32 |")
        assert report["summary"]["activity_mean"]["activities"] >= 1
    assert "rest_pose, 32-frame windows" in capsys.readouterr().out
    assert main(args) == 2  # the reports are never overwritten without --force
    assert "egoallo_w32.json exists; pass --force to overwrite it." in capsys.readouterr().err


def test_eval_skips_and_lists_bad_cases(tiny_dataset, tmp_path):
    from egoallo.body import BodyModel
    from egoallo.evaluation.benchmark import EvalConfig, evaluate, write_report

    split = "test" if len(MotionDataset(tiny_dataset, "test")) else "train"
    calls = []

    def flaky(trajectory, seed, window, floor_z):
        calls.append(seed)
        joints = window["joints_world"][None].astype(np.float64)
        if len(calls) == 2:
            joints = joints * np.nan  # a broken prediction is skipped, not averaged
        return joints, np.array([1.7])

    results, skipped = evaluate(tiny_dataset, flaky, BodyModel.load_default(), EvalConfig(window=32, max_windows=3), split=split)
    assert len(results) == 2 and results[0].metrics["mpjpe"] == 0.0 and len(results[0].per_joint_mm) == 22
    assert [c.reason for c in skipped if c.start is not None] == ["ValueError: prediction contains NaN or infinite values"]
    long_window = EvalConfig(window=100_000)
    results, skipped = evaluate(tiny_dataset, flaky, BodyModel.load_default(), long_window, split=split)
    assert results == [] and all("shorter than the 100000-frame window" in c.reason for c in skipped) and skipped
    with pytest.raises(ValueError, match="no window could be evaluated"):
        write_report(tmp_path, "x", results, {}, skipped)


def test_eval_source_filter_and_clear_errors(tiny_dataset, tmp_path, capsys):
    args = ["eval", "--dataset", str(tiny_dataset), "--out", str(tmp_path / "r"), "--windows", "32", "--split", "train"]
    assert main([*args, "--sources", "nosuchsource"]) == 2
    assert "has no clips from ['nosuchsource']" in capsys.readouterr().err
    assert main([*args, "--checkpoint", str(tmp_path / "missing")]) == 2
    assert "missing" in capsys.readouterr().err


def test_given_floor_modes():
    from egoallo.evaluation.benchmark import EvalConfig, given_floor

    assert given_floor(EvalConfig(floor="true"), 5, None) == 0.0
    points = [given_floor(EvalConfig(floor="points"), seed, None) for seed in range(400)]
    assert points[:3] == [given_floor(EvalConfig(floor="points"), seed, None) for seed in range(3)]  # seeded
    assert 0.017 < np.std(points) < 0.023 and abs(np.mean(points)) < 0.004
    assert given_floor(EvalConfig(floor="trajectory"), 5, -0.07) == -0.07


def test_eval_floor_from_the_trajectory_and_groups(tiny_dataset, tmp_path):
    body = BodyModel.load_default()
    seen = []

    def hang(trajectory, seed, window, floor_z):
        seen.append(floor_z)
        return rest_pose_predictor(body)(trajectory, seed, window, floor_z)

    config = EvalConfig(window=32, floor="trajectory")
    results, _ = evaluate(tiny_dataset, hang, body, config, split="test", progress=False)
    floors = {}
    for r, z in zip(results, seen):
        floors.setdefault(r.clip_id, set()).add(z)
    assert results and all(len(zs) == 1 for zs in floors.values())  # one estimate per clip (recording)
    assert all(abs(z) < 0.5 for z in seen)
    assert {r.group for r in results} <= {"held-out performers", "held-out styles"}
    assert all(r.metrics["floor_error_cm"] == pytest.approx(100 * abs(z)) for r, z in zip(results, seen))
    summary = summarize(results)
    assert set(summary) == {"activity_mean", "all", "groups", "group_activity_means", "sources", "activities"}
    assert all("/" in name for name in summary["activities"])


def _window(activity: str, mpjpe: float, group: str = "held-out performers") -> WindowResult:
    return WindowResult("cmu_daz/x", activity, 0, "cmu_daz", group, {m: mpjpe for m in METRICS}, [0.0] * 22)


def test_the_headline_is_the_mean_over_activities():
    # Three idle windows at 50 mm and one sitting window at 150 mm: the window mean (75) hides the sitting.
    results = [_window("idle", 50.0), _window("idle", 50.0), _window("idle", 50.0), _window("sit", 150.0),
               _window("walk", 80.0, "held-out styles"), _window("walk", 100.0, "held-out styles")]
    summary = summarize(results)
    assert summary["activity_mean"]["activities"] == 3 and summary["activity_mean"]["windows"] == 6
    assert summary["activity_mean"]["mpjpe"]["mean"] == pytest.approx((50.0 + 150.0 + 90.0) / 3)
    assert summary["all"]["mpjpe"]["mean"] == pytest.approx(480.0 / 6)
    performers = summary["group_activity_means"]["held-out performers"]
    assert performers["activities"] == 2 and performers["mpjpe"]["mean"] == pytest.approx(100.0)
    # Its standard error comes from the activities' own: sqrt(0 + 0 + 10²) / 3 (walk: 80, 100 -> ± 10).
    assert summary["activity_mean"]["mpjpe"]["stderr"] == pytest.approx(10.0 / 3)
    table = markdown_table(summary, "x").splitlines()
    assert table[2].startswith("| **mean over 3 activities** | 6 | 96.67") and table[3].startswith("| **all windows** | 6 | 80")


def test_baselines_without_a_train_split_are_one_line(shared_dir, tmp_path, capsys):
    from pathlib import Path

    from egoallo.data.dataset_build import build_dataset

    out = tmp_path / "test_only"
    build_dataset(out, model=BodyModel.load_default(), sources=("cmu",), limit_per_source=2, workers=0, progress=False,
                  shared_dir=Path(shared_dir), splits=("test",))
    args = ["eval", "--dataset", str(out / "dataset.h5"), "--out", str(tmp_path / "r"), "--windows", "32",
            "--max-windows", "1", "--baselines"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "the nearest-neighbour baseline needs train clips" in err and "Traceback" not in err
