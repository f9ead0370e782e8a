"""The denoiser and its checkpoints: exact agreement with the reference release, masks, errors."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from egoallo.errors import UserError
from egoallo.geometry import se3
from egoallo.prior.checkpoint import (
    CheckpointError,
    CheckpointSampling,
    load_project_checkpoint,
    load_denoiser,
    load_release,
    read_sampling,
    save_project_checkpoint,
)
from egoallo.prior.conditioning import compute_conditioning
from egoallo.prior.network import PRESETS, EgoDenoiser, EgoDenoiserConfig

TINY = EgoDenoiserConfig(
    d_latent=64, d_feedforward=128, d_noise_emb=32, num_heads=4, encoder_layers=2, decoder_layers=2
)


@pytest.fixture(scope="module")
def ref_dir(shared_dir: Path) -> Path:
    path = shared_dir / "fixtures" / "egoallo_ref_tiny"
    if not path.is_dir():
        pytest.skip(f"reference fixture not found: {path}")
    return path


@pytest.fixture(scope="module")
def ref_io(ref_dir: Path) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(v) for k, v in np.load(ref_dir / "io.npz").items()}


@pytest.fixture(scope="module")
def ref_model(ref_dir: Path) -> tuple[EgoDenoiserConfig, EgoDenoiser]:
    return load_release(ref_dir)


# --- The reference release --------------------------------------------------------


def test_loads_reference_config_and_weights(ref_dir: Path, ref_model) -> None:
    config, model = ref_model
    assert config == TINY
    assert config.d_cond == 154 and config.d_state == 496
    assert not model.training
    state = model.state_dict()
    assert set(state) == set(load_file(ref_dir / "checkpoint" / "model.safetensors"))
    assert len(state) == 114 and sum(t.numel() for t in state.values()) == 341_200


def test_matches_reference_prediction(ref_model, ref_io) -> None:
    _, model = ref_model
    with torch.no_grad():
        x0 = model(ref_io["x_t"], ref_io["t"], ref_io["cond_ours"])
    assert (x0 - ref_io["x0_pred"]).abs().max() < 1e-4
    # End to end, from the head trajectory.
    cond = compute_conditioning(se3.from_quat_xyz(ref_io["Ts_world_cpf_wxyz_xyz"])[None], model.config.conditioning)
    with torch.no_grad():
        x0 = model(ref_io["x_t"], ref_io["t"], cond)
    assert (x0 - ref_io["x0_pred"]).abs().max() < 1e-4


def test_release_layout_picks_latest_step(ref_dir: Path, tmp_path: Path) -> None:
    weights = load_file(ref_dir / "checkpoint" / "model.safetensors")
    shutil.copy(ref_dir / "model_config.yaml", tmp_path / "model_config.yaml")
    for step, scale in [(900, 0.0), (10000, 1.0), (2000, 0.0)]:
        (tmp_path / f"checkpoints_{step}").mkdir()
        save_file({k: v * scale for k, v in weights.items()}, tmp_path / f"checkpoints_{step}" / "model.safetensors")
    _, model = load_release(tmp_path)
    assert torch.equal(model.latent_from_cond.weight, weights["latent_from_cond.weight"])
    _, model = load_denoiser(tmp_path / "checkpoints_900")
    assert model.latent_from_cond.weight.abs().max() == 0


# --- Network ----------------------------------------------------------------------


def test_presets() -> None:
    with torch.device("meta"):
        sizes = {name: sum(p.numel() for p in EgoDenoiser(c).parameters()) for name, c in PRESETS.items()}
    assert sizes["paper"] == 50_446_320  # The paper's 50.4 M.
    assert sizes["default"] * 4 <= 25e6
    assert EgoDenoiserConfig() == PRESETS["default"]
    assert dataclasses.replace(PRESETS["default"], include_hands=False).d_state == 226


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="heads"):
        EgoDenoiserConfig(d_latent=66, num_heads=4)
    with pytest.raises(ValueError, match="not supported"):
        EgoDenoiserConfig(noise_conditioning="film")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Unknown conditioning"):
        EgoDenoiserConfig(cond_param="relative")  # type: ignore[arg-type]


@pytest.mark.parametrize("include_hands", [True, False])
def test_padding_mask(include_hands: bool) -> None:
    """Padded frames (filled with junk) do not change the output of valid frames."""
    torch.manual_seed(0)
    config = dataclasses.replace(TINY, include_hands=include_hands, cond_param="absolute")
    model = EgoDenoiser(config).eval()
    T, valid = 24, 17
    x_t, cond = torch.randn(2, T, config.d_state), torch.randn(2, T, config.d_cond)
    t = torch.tensor([3, 800])
    mask = torch.arange(T) < valid
    padded_x, padded_cond = x_t.clone(), cond.clone()
    padded_x[:, valid:] = 100.0 * torch.randn(2, T - valid, config.d_state)
    padded_cond[:, valid:] = 100.0 * torch.randn(2, T - valid, config.d_cond)
    with torch.no_grad():
        short = model(x_t[:, :valid], t, cond[:, :valid])
        masked = model(padded_x, t, padded_cond, mask.expand(2, T))
        unmasked = model(padded_x, t, padded_cond)
        all_valid = model(padded_x, t, padded_cond, torch.ones(2, T, dtype=torch.bool))
    assert masked.shape == (2, T, config.d_state)
    assert torch.allclose(masked[:, :valid], short, atol=1e-5)
    assert (unmasked[:, :valid] - short).abs().max() > 1e-3  # The mask matters.
    assert torch.equal(all_valid, unmasked)


def test_shape_errors() -> None:
    model = EgoDenoiser(TINY)
    with pytest.raises(ValueError, match="cond"):
        model(torch.zeros(1, 4, 496), torch.tensor([1]), torch.zeros(1, 4, 84))


# --- Checkpoints ------------------------------------------------------------------


def test_save_load_roundtrip(tmp_path: Path) -> None:
    config = dataclasses.replace(TINY, include_hands=False, cond_param="absrel", dropout_p=0.1)
    model = EgoDenoiser(config)
    save_project_checkpoint(tmp_path / "ckpt", model)
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["config.json", "model.safetensors"]
    loaded_config, loaded = load_denoiser(tmp_path / "ckpt")
    assert loaded_config == config and not loaded.training
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def _release_copy(ref_dir: Path, tmp_path: Path) -> Path:
    root = tmp_path / "release"
    shutil.copytree(ref_dir, root, ignore=shutil.ignore_patterns("*.npz", "*.md"))
    for path in root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return root


def _edit_weights(root: Path, edit) -> None:
    path = root / "checkpoint" / "model.safetensors"
    weights = load_file(path)
    edit(weights)
    save_file(weights, path)


def _expect_error(root: Path, *fragments: str) -> None:
    with pytest.raises(CheckpointError) as info:
        load_denoiser(root)
    for fragment in fragments:
        assert fragment in str(info.value)
    assert isinstance(info.value, ValueError) and isinstance(info.value, UserError)


def test_error_missing_directory_and_config(ref_dir: Path, tmp_path: Path) -> None:
    _expect_error(tmp_path / "nowhere", "nowhere", "not found")
    root = _release_copy(ref_dir, tmp_path)
    (root / "model_config.yaml").unlink()
    _expect_error(root, "model_config.yaml", "config file not found")


def test_error_config_contents(ref_dir: Path, tmp_path: Path) -> None:
    root = _release_copy(ref_dir, tmp_path)
    path = root / "model_config.yaml"
    text = path.read_text()
    path.write_text(text + "secret_sauce: 3\n")
    _expect_error(root, "model_config.yaml", "unknown config fields: secret_sauce")
    path.write_text(text.replace("d_cond: 154", "d_cond: 155"))
    _expect_error(root, "d_cond=155")
    path.write_text(text.replace("num_heads: 4", "num_heads: four"))
    _expect_error(root, "num_heads='four'")
    path.write_text(text.replace("include_hand_positions_cond: false\n", ""))
    with pytest.warns(UserWarning, match="using defaults: include_hand_positions_cond"):
        config, _ = load_denoiser(root)
    assert config == TINY
    path.write_text("!!python/object/apply:os.system ['echo unsafe']\n")
    _expect_error(root, "model_config.yaml", "not a readable denoiser config")


def test_error_tensors(ref_dir: Path, tmp_path: Path) -> None:
    root = _release_copy(ref_dir, tmp_path)
    _edit_weights(root, lambda w: w.pop("noise_emb.weight"))
    _expect_error(root, "model.safetensors", "missing tensors: noise_emb.weight")
    _edit_weights(root, lambda w: w.update({"noise_emb.weight": torch.zeros(1000, 32), "extra.bias": torch.zeros(3)}))
    _expect_error(root, "unexpected tensors: extra.bias")
    _edit_weights(root, lambda w: (w.pop("extra.bias"), w.update({"latent_from_cond.weight": torch.zeros(64, 84)})))
    _expect_error(root, "mis-shaped tensors: latent_from_cond.weight (64, 84) (expected (64, 154))")


def test_error_not_safetensors(ref_dir: Path, tmp_path: Path) -> None:
    root = _release_copy(ref_dir, tmp_path)
    weights_path = root / "checkpoint" / "model.safetensors"
    torch.save({"a": torch.zeros(2)}, weights_path)
    _expect_error(root, str(weights_path), "not a safetensors file")
    weights_path.rename(root / "checkpoint" / "pytorch_model.bin")
    _expect_error(root, "only safetensors weights are read", "checkpoint/pytorch_model.bin")


def test_error_own_config(tmp_path: Path) -> None:
    save_project_checkpoint(tmp_path, EgoDenoiser(TINY))
    content = json.loads((tmp_path / "config.json").read_text())
    del content["config"]["max_t"]
    (tmp_path / "config.json").write_text(json.dumps(content))
    with pytest.raises(CheckpointError, match="missing config fields: max_t"):
        load_project_checkpoint(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_project_checkpoint(tmp_path)


def test_distilled_checkpoint_sampling(tmp_path: Path) -> None:
    """A student's config.json records the steps it supports; other counts are a clear error; a prior
    trained on data (or a release) takes any count, 30 by default, with the stochastic DDIM eta."""
    save_project_checkpoint(tmp_path / "teacher", EgoDenoiser(TINY))
    assert read_sampling(tmp_path / "teacher") == CheckpointSampling(None, 0.8)
    assert read_sampling(tmp_path / "teacher").num_steps(None, tmp_path) == 30
    assert read_sampling(tmp_path / "teacher").num_steps(12, tmp_path) == 12
    student = tmp_path / "student"
    save_project_checkpoint(student, EgoDenoiser(TINY), sampling={"steps": [8, 4], "eta": 0.0})
    sampling = read_sampling(student)
    assert sampling == CheckpointSampling((8, 4), 0.0) and load_denoiser(student)[0] == TINY
    assert sampling.num_steps(None, student) == 8 and sampling.num_steps(4, student) == 4
    with pytest.raises(CheckpointError, match=r"student: a distilled checkpoint, sampled in 8, 4 steps only; got --steps 30"):
        sampling.num_steps(30, student)
    content = json.loads((student / "config.json").read_text())
    for bad in ({"steps": []}, {"steps": [0]}, {"steps": [8], "eta": 2}, {"steps": "8"}, [8]):
        (student / "config.json").write_text(json.dumps({**content, "sampling": bad}))
        with pytest.raises(CheckpointError, match=r"config.json: \"sampling\" must hold \"steps\""):
            read_sampling(student)
