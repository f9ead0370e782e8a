"""`egoallo eval` end to end on a tiny real dataset, with a tiny random-weight checkpoint."""

import dataclasses
import json

import torch

from egoallo.cli.main import main
from egoallo.data.dataset import MotionDataset
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
    assert "rest_pose, 32-frame windows" in capsys.readouterr().out
