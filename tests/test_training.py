"""Training on a tiny real dataset: one process, resume, and two gloo processes under torchrun."""

import csv
import json
import os
import subprocess
import sys

from egoallo.cli.main import main

TINY = ["--window", "16", "--batch-size", "2", "--val-every", "2", "--checkpoint-every", "2", "--warmup-steps", "1", "--threads", "1"]


def rows(run):
    with (run / "loss_log.csv").open() as f:
        return list(csv.DictReader(f))


def test_train_and_resume(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--dataset", str(tiny_dataset), "--out", str(run), "--steps", "3", *TINY]) == 0
    assert [r["step"] for r in rows(run)] == ["1", "2", "3"]
    assert (run / "latest" / "model.safetensors").is_file() and (run / "loss_curve.png").is_file()
    assert not list(run.glob("step_*"))
    assert main(["train", "--dataset", str(tiny_dataset), "--out", str(run), "--steps", "5", *TINY]) == 0
    assert [r["step"] for r in rows(run)] == ["1", "2", "3", "4", "5"]  # resumed, not restarted
    # A run killed after its last checkpoint (step 4) leaves a logged step 5; resuming drops it.
    (run / "latest" / "train_state.json").write_text('{"step": 4}')
    assert main(["train", "--dataset", str(tiny_dataset), "--out", str(run), "--steps", "6", *TINY]) == 0
    assert [r["step"] for r in rows(run)] == ["1", "2", "3", "4", "5", "6"]


def test_missing_dataset_is_a_clear_error(tmp_path, capsys):
    assert main(["train", "--dataset", str(tmp_path / "nope.h5"), "--out", str(tmp_path / "r")]) == 2
    assert "nope.h5: dataset file not found" in capsys.readouterr().err


def test_torchrun_two_gloo_processes(tiny_dataset, tmp_path):
    run = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29517",
        "-m", "egoallo.cli.main", "train", "--dataset", str(tiny_dataset), "--out", str(run), "--steps", "2", *TINY,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert [r["step"] for r in rows(run)] == ["1", "2"]  # rank 0 alone logs
    assert (run / "latest" / "model.safetensors").is_file()


def test_train_with_mirrored_and_reshaped_windows(tiny_dataset, tmp_path):
    run = tmp_path / "augmented"
    args = ["train", "--dataset", str(tiny_dataset), "--out", str(run), "--steps", "2", "--mirror-probability", "1",
            "--reshape-probability", "1", "--keep-every", "1", "--model", "medium", *TINY]
    assert main(args) == 0
    assert sorted(p.name for p in run.glob("step_*")) == ["step_000001", "step_000002"]
    assert json.loads((run / "step_000001" / "config.json").read_text())["config"]["d_latent"] == 192
    assert all(float(r["train_loss"]) > 0 for r in rows(run))
    assert '"reshape_probability": 1.0' in (run / "train_config.json").read_text()


def test_reshaped_bodies_take_the_statures_asked_for(tiny_dataset, tmp_path, capsys):
    import numpy as np
    import torch

    from egoallo.body import BodyModel
    from egoallo.data.dataset import MotionDataset
    from egoallo.prior.network import PRESETS
    from egoallo.prior.state import NUM_BETAS, MotionState
    from egoallo.prior.training import TrainConfig, make_batch

    body = BodyModel.load_default()
    config = TrainConfig(dataset=tiny_dataset, out=tmp_path, window=16, batch_size=3, reshape_probability=1.0,
                         reshape_statures=(1.9, 1.9), mirror_probability=0.0)
    x0, *_ = make_batch(MotionDataset(tiny_dataset, "train"), np.random.default_rng(0), config, PRESETS["default"], body)
    betas = MotionState.unpack(x0, PRESETS["default"].include_hands).betas[:, 0, :NUM_BETAS]
    statures = body.with_shape(betas).stature
    assert torch.allclose(statures, torch.full_like(statures, 1.9), atol=0.005)
    ask = ["train", "--dataset", str(tiny_dataset), "--out", str(tmp_path / "r"), "--steps", "1", *TINY]
    assert main([*ask, "--reshape-statures", "1.9", "1.5", "--reshape-probability", "0.5"]) == 2
    assert "--reshape-statures takes the shortest and the tallest stature, shortest first" in capsys.readouterr().err
    assert main([*ask, "--reshape-statures", "1.5", "3"]) == 2
    assert "--reshape-statures 3.0: expected the wearer's height in metres, from 0.5 to 2.5." in capsys.readouterr().err


def test_tilted_heads_enter_the_batches_and_bad_tilts_are_refused(tiny_dataset, tmp_path, capsys):
    import numpy as np
    import torch

    from egoallo.body import BodyModel
    from egoallo.data.dataset import MotionDataset
    from egoallo.prior.network import PRESETS
    from egoallo.prior.training import TrainConfig, make_batch

    body, data = BodyModel.load_default(), MotionDataset(tiny_dataset, "train")
    batches = []
    for probability in (0.0, 1.0):
        config = TrainConfig(dataset=tiny_dataset, out=tmp_path, window=16, batch_size=3, mirror_probability=0.0,
                             shorten_fraction=0.0, tilt_head_probability=probability, tilt_head_degrees=30.0)
        batches.append(make_batch(data, np.random.default_rng(0), config, PRESETS["default"], body))
    (x_kept, cond_kept, *_), (x_tilted, cond_tilted, *_) = batches
    assert not torch.equal(x_kept, x_tilted) and not torch.equal(cond_kept, cond_tilted)  # the head's rotation and pose
    ask = ["train", "--dataset", str(tiny_dataset), "--out", str(tmp_path / "r"), "--steps", "1", *TINY]
    for flags in (["--tilt-head-probability", "1.5"], ["--tilt-head-degrees", "0"], ["--tilt-head-degrees", "120"]):
        assert main([*ask, *flags]) == 2
        assert "--tilt-head-probability must be between 0 and 1 and --tilt-head-degrees above 0" in capsys.readouterr().err


def test_damaged_loss_log_of_a_resumed_run_is_a_clear_error(tiny_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--dataset", str(tiny_dataset), "--out", str(run), "--steps", "2", *TINY]) == 0
    log = run / "loss_log.csv"
    log.write_text(log.read_text() + "garbage,\x00\n")
    assert main(["train", "--dataset", str(tiny_dataset), "--out", str(run), "--steps", "3", *TINY]) == 2
    err = capsys.readouterr().err
    assert "loss_log.csv, line 4: expected a step number" in err and "Traceback" not in err


def test_distil_a_teacher_into_a_few_step_student(tiny_dataset, tmp_path, capsys):
    teacher = tmp_path / "teacher"
    assert main(["train", "--dataset", str(tiny_dataset), "--out", str(teacher), "--steps", "2", *TINY]) == 0
    student = tmp_path / "student"
    args = ["train", "--dataset", str(tiny_dataset), "--out", str(student), "--steps", "2", "--teacher",
            str(teacher / "latest"), "--student-steps", "4", "--teacher-substeps", "2", *TINY]
    assert main(args) == 0
    assert all(float(r["train_loss"]) > 0 for r in rows(student)) and rows(student)[-1]["val_loss"]
    config = json.loads((student / "latest" / "config.json").read_text())
    assert config["sampling"] == {"steps": [4], "eta": 0.0, "distilled_from": str(teacher / "latest"), "teacher_steps": 8}
    too_many = ["train", "--dataset", str(tiny_dataset), "--out", str(tmp_path / "s2"), "--teacher", str(student / "latest"),
                "--student-steps", "2", "--teacher-substeps", "4", *TINY]
    assert main(too_many) == 2
    assert "a distilled teacher, sampled in 4 steps only; --student-steps x --teacher-substeps must be one of them (got 8)" \
        in capsys.readouterr().err
    not_a_checkpoint = ["train", "--dataset", str(tiny_dataset), "--out", str(tmp_path / "other"), "--teacher",
                        str(tmp_path), *TINY]
    assert main(not_a_checkpoint) == 2
    assert "no model.safetensors there (--teacher takes a checkpoint directory)" in capsys.readouterr().err


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_mismatched_resume_teacher_and_validation_are_refused(tiny_dataset, tmp_path, capsys):
    from egoallo.data.dataset import MotionDataset

    run = tmp_path / "run"
    assert main(["train", "--dataset", str(tiny_dataset), "--out", str(run), "--steps", "2", *TINY]) == 0
    capsys.readouterr()
    recorded = json.loads((run / "latest" / "config.json").read_text())["trained_on"]["body_model"]
    assert recorded["name"] == "anny_smplh.npz" and len(recorded["joints_sha256"]) == 64
    # Resuming with another window or conditioning would mix two trainings in one run.
    other_window = [a if a != "16" else "24" for a in TINY]
    assert main(["train", "--dataset", str(tiny_dataset), "--out", str(run), "--steps", "3", *other_window]) == 2
    assert "this run was made with other data or another network (window 16 -> 24)" in _one_line(capsys)
    assert main(["train", "--dataset", str(tiny_dataset), "--out", str(run), "--steps", "3", "--cond-param", "absolute", *TINY]) == 2
    assert "cond_param 'ours' -> 'absolute'" in _one_line(capsys)
    # A teacher of another conditioning, or trained on another body model, cannot teach this student.
    student = ["train", "--dataset", str(tiny_dataset), "--steps", "1", "--teacher", str(run / "latest"),
               "--student-steps", "2", "--teacher-substeps", "1", *TINY]
    assert main([*student, "--out", str(tmp_path / "s1"), "--cond-param", "absolute"]) == 2
    assert "the teacher's network differs from the student's (cond_param 'ours' -> 'absolute')" in _one_line(capsys)
    config = json.loads((run / "latest" / "config.json").read_text())
    config["trained_on"]["body_model"] = {"name": "smplh_model.npz", "joints_sha256": "0" * 64}
    (run / "latest" / "config.json").write_text(json.dumps(config))
    assert main([*student, "--out", str(tmp_path / "s2")]) == 2
    assert "the teacher was trained on body model 'smplh_model.npz'" in _one_line(capsys)
    # A validation split without the activity groups asked for.
    held = sorted(set(MotionDataset(tiny_dataset, "val").groups))
    ask = ["train", "--dataset", str(tiny_dataset), "--out", str(tmp_path / "v"), "--steps", "1", *TINY]
    assert main([*ask, "--val-activities", "sit", "stairs"]) == 2
    assert f"the val split holds no sit, stairs clips (--val-activities); it holds {', '.join(held) or 'nothing'}" in _one_line(capsys)
    assert not (tmp_path / "v" / "latest").exists()
    # A merge pattern that matches no training group is a typo, not a no-op.
    assert main([*ask, "--merge-groups", "bandai1/*,nosuch/*"]) == 2
    assert "--merge-groups pattern 'nosuch/*' matches no activity group of the train split" in _one_line(capsys)
    assert not (tmp_path / "v" / "latest").exists()
