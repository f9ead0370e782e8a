"""The wearer's stature (`--stature`): the shape fit, the floor it implies, the checks, `infer`, `live` and `eval`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from egoallo.body import BodyModel
from egoallo.body.stature import betas_with_stature, fit_stature, stature_eye_height
from egoallo.cli.main import main
from egoallo.errors import UserError
from egoallo.inference import StatureScaling, standing_eye_height
from egoallo.inputs.stature import STANDING_HEIGHT_OVER_EYE, check_stature, check_stature_against_floor, stature_floor
from egoallo.prior.state import MotionState
from egoallo.result import InferenceResult


@pytest.fixture(scope="module")
def body() -> BodyModel:
    return BodyModel.load_default()


def test_fit_reaches_the_stature_with_the_least_change(body):
    start = torch.randn(3, 16, generator=torch.Generator().manual_seed(0))
    fitted = fit_stature(body, start, 1.83)
    np.testing.assert_allclose(body.with_shape(fitted).stature.numpy(), 1.83, atol=1e-4)
    # The least change: along the stature's gradient (the highest vertex minus the lowest, in β), nothing else.
    y = body.with_shape(fitted).verts_zero[..., 1]
    dy = body.shapedirs[:, 1, :]
    gradient = dy[y.argmax(dim=-1)] - dy[y.argmin(dim=-1)]
    change = fitted - start
    cosine = (change * gradient).sum(-1) / (change.norm(dim=-1) * gradient.norm(dim=-1))
    np.testing.assert_allclose(cosine.abs().numpy(), 1.0, atol=1e-3)
    # A body already that tall is left alone; the fit is deterministic and leaves its input unchanged.
    np.testing.assert_array_equal(fit_stature(body, fitted, 1.83), fitted)
    assert torch.equal(fit_stature(body, start, 1.83), fitted)


def test_the_extreme_statures_and_fewer_coefficients(body):
    for stature in (0.5, 2.5):
        assert float(body.with_shape(fit_stature(body, torch.zeros(16), stature)).stature) == pytest.approx(stature, abs=1e-4)
    few = fit_stature(body, torch.zeros(4), 1.60)  # only the first four move
    assert few.shape == (4,) and float(body.with_shape(few).stature) == pytest.approx(1.60, abs=1e-4)
    longer = betas_with_stature(body, np.r_[np.zeros(16), 7.0], 1.60)  # coefficients past the model's are kept
    assert longer.shape == (17,) and longer[16] == 7.0


def test_eye_height_grows_with_the_stature(body):
    short, tall = stature_eye_height(body, 1.50), stature_eye_height(body, 1.95)
    assert short == pytest.approx(1.397, abs=2e-3) and tall == pytest.approx(1.827, abs=2e-3)


def test_the_prior_samples_the_mean_body_which_the_wearers_body_performs(body):
    scaling = StatureScaling.of(body, 1.85)
    np.testing.assert_allclose(body.with_shape(scaling.betas).stature.numpy(), 1.85, atol=1e-4)
    assert scaling.scale == pytest.approx(standing_eye_height(body) / stature_eye_height(body, 1.85), rel=1e-6)
    assert scaling.scale < 1.0 < StatureScaling.of(body, 1.55).scale
    known = scaling.known(226)
    x0 = known.apply(torch.randn(2, 5, 226, generator=torch.Generator().manual_seed(1)))
    state = MotionState.unpack(x0, include_hands=False)
    assert (state.betas == 0).all() and not known.mask[..., 16:].any()
    performed = scaling.performed(state)
    assert (performed.betas == scaling.betas).all() and performed.betas.shape == state.betas.shape
    assert torch.equal(performed.body_rotations, state.body_rotations)
    heads = torch.eye(4, dtype=torch.float64).repeat(3, 1, 1)
    heads[:, :3, 3] = torch.tensor([[1.0, 2.0, 1.7], [1.1, 2.0, 1.6], [1.2, 2.1, 1.5]], dtype=torch.float64)
    scaled = scaling.scaled(heads)
    torch.testing.assert_close(scaled[:, :3, 3], scaling.scale * heads[:, :3, 3])
    assert torch.equal(scaled[:, :3, :3], heads[:, :3, :3]) and heads[0, 2, 3] == 1.7  # the input is kept


@pytest.mark.parametrize("value", ["3", "0.4", "-1.7", "nan", "inf", "abc", ""])
def test_bad_statures_are_one_line(value):
    with pytest.raises(UserError, match=r"expected the wearer's height in metres, from 0.5 to 2.5\.$") as error:
        check_stature(value)
    assert "\n" not in str(error.value) and str(error.value).startswith(f"--stature {value}:")
    assert check_stature("1.72") == 1.72


def test_the_floor_and_the_checks_against_a_scene_floor():
    head_z = np.r_[np.full(90, 1.20), np.full(10, 1.70)]  # sitting mostly; standing 10 % of the time
    eye = 1.60 / STANDING_HEIGHT_OVER_EYE  # a body whose head stands 1.60 m tall
    still = np.c_[np.zeros((100, 2)), head_z]
    assert stature_floor([still], 30.0, eye).z == pytest.approx(0.10) and stature_floor([still], 30.0, eye).method == "stature"
    agree = check_stature_against_floor([still], 30.0, 0.12, 1.72, eye)
    assert agree.standing_height_m == pytest.approx(1.58) and agree.warning("--floor-z") is None
    assert agree.note("--floor-z") is None  # 2 cm apart
    off = check_stature_against_floor([still], 30.0, 0.0, 1.72, eye)
    assert off.disagreement_m == pytest.approx(-0.10)
    assert "lies 10 cm below the floor --stature 1.72 m implies (z = 0.100 m" in off.note("room.ply")
    too_short = check_stature_against_floor([still], 30.0, 0.0, 1.60, 1.49).warning("--floor-z")
    assert "standing height above the floor from --floor-z is 1.70 m, above the top of a 1.60 m body" in too_short
    too_tall = check_stature_against_floor([still], 30.0, 0.0, 2.10, 1.97).warning("--floor-z")
    assert "is 1.70 m, 27 cm below the 1.97 m eye height of a 2.10 m body" in too_tall


def stepping(z: np.ndarray, fps: float = 30.0, speed: float = 0.8, step_hz: float = 1.8, bob: float = 0.02) -> np.ndarray:
    """Head positions `(T, 3)` of a walk along x whose mid-stance heights are `z (T,)`."""
    t = np.arange(z.shape[0]) / fps
    return np.c_[speed * t, np.zeros_like(t), z - bob + bob * np.cos(2 * np.pi * step_hz * t)]


def test_the_stature_floor_lies_under_the_lowest_level_walked_on():
    eye = 1.60 / STANDING_HEIGHT_OVER_EYE
    ground, top = np.full(180, 1.60), np.full(180, 2.30)
    climb = stepping(np.r_[ground, np.linspace(1.60, 2.30, 120), top])  # walk, up a flight of stairs, walk on
    assert stature_floor([climb], 30.0, eye).z == pytest.approx(0.0, abs=0.02)  # not 0.70, under the top
    assert stature_floor([climb[300:]], 30.0, eye).z == pytest.approx(0.70, abs=0.02)  # the top alone: its floor
    # Over a scene floor on the ground, the climb does not make the head taller than a 1.72 m wearer.
    assert check_stature_against_floor([climb], 30.0, 0.0, 1.72, eye).warning("--floor-z") is None
    # Seated for a while and moved about in one window: no walking level under the standing one.
    seated = np.r_[stepping(ground), np.c_[np.zeros((240, 2)), np.full(240, 1.10)], stepping(np.full(60, 1.10))]
    assert stature_floor([seated], 30.0, eye).z == pytest.approx(0.0, abs=0.02)
    # Segments of one recording: walked on in one, climbed in the other.
    assert stature_floor([climb[:180], climb[300:]], 30.0, eye).z == pytest.approx(0.0, abs=0.02)


def test_infer_with_the_stature(tiny_checkpoint, tmp_path, capsys):
    base = ["infer", "--example", "--checkpoint", str(tiny_checkpoint), "--steps", "1", "--samples", "2"]
    assert main([*base, "--stature", "1.85", "--guidance", "feet", "--out", str(tmp_path / "a.npz")]) == 0
    printed = capsys.readouterr().out
    assert "(stature); stature 1.85, 1.85 m" in printed and "note: no point cloud" not in printed
    result = InferenceResult.load(tmp_path / "a.npz")
    np.testing.assert_allclose(result.stature_m, 1.85, atol=2e-4)
    body = BodyModel.load_default()
    eye = stature_eye_height(body, 1.85)
    standing = np.percentile(result.T_world_cpf[:, 2, 3], 95)  # the example's world is z-up
    assert result.floor_z == pytest.approx(standing - STANDING_HEIGHT_OVER_EYE * eye, abs=1e-6)
    assert result.metadata["floor"]["method"] == "stature"
    assert result.metadata["stature"]["given_m"] == 1.85 and "betas" in result.metadata["stature"]["method"]
    # Eq. 5 still holds: the CPF of each refitted body is on the head.
    shaped = body.with_shape(torch.from_numpy(result.betas)[:, None])
    posed = shaped.with_pose(torch.from_numpy(result.T_world_root), torch.from_numpy(result.local_rotations))
    np.testing.assert_allclose(posed.T_world_cpf.double().numpy()[..., :3, 3], np.broadcast_to(result.T_world_cpf[:, :3, 3], (2, 330, 3)), atol=2e-4)
    # Without any floor source, the note names --stature as the third way.
    assert main([*base, "--out", str(tmp_path / "b.npz")]) == 0
    assert "--stature METRES (the wearer's height)" in capsys.readouterr().out
    assert InferenceResult.load(tmp_path / "b.npz").metadata["stature"] is None


def test_infer_with_the_stature_and_a_scene_floor(tiny_checkpoint, tmp_path, capsys):
    base = ["infer", "--example", "--checkpoint", str(tiny_checkpoint), "--steps", "1", "--floor-z", "0"]
    # The example's head stands about 1.52 m over z = 0: a 1.60 m wearer agrees; a 1.75 m one is 17 cm off.
    assert main([*base, "--stature", "1.60", "--out", str(tmp_path / "a.npz")]) == 0
    assert "note:" not in capsys.readouterr().out
    assert main([*base, "--stature", "1.75", "--out", str(tmp_path / "b.npz")]) == 0
    out = capsys.readouterr().out
    assert "note: the floor from --floor-z (z = 0.000 m) lies 17 cm above the floor --stature 1.75 m implies" in out
    result = InferenceResult.load(tmp_path / "b.npz")
    assert result.floor_z == 0.0 and result.metadata["floor"]["method"] == "given"
    assert result.metadata["stature"]["implied_floor_z"] == pytest.approx(-0.17, abs=0.01)
    # A head standing above the stature: a warning naming both numbers, and the estimate goes on.
    assert main([*base, "--stature", "1.40", "--out", str(tmp_path / "c.npz")]) == 0
    out = capsys.readouterr().out
    assert "warning:" in out and "is 1.52 m, above the top of a 1.40 m body; going on with --stature 1.40 m" in out
    result = InferenceResult.load(tmp_path / "c.npz")
    np.testing.assert_allclose(result.stature_m, 1.40, atol=2e-4)
    assert any("contradicts the head" in w for w in result.metadata["warnings"])


@pytest.mark.parametrize("value", ["3", "nan", "-1", "abc", "0.4"])
def test_infer_refuses_a_bad_stature(value, tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "r.npz"
    assert main(["infer", "--example", "--checkpoint", str(tiny_checkpoint), "--stature", value, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == f"egoallo: error: --stature {value}: expected the wearer's height in metres, from 0.5 to 2.5.\n"
    assert not out.exists()


def test_infer_options_check_the_stature():
    from egoallo.pipeline import InferOptions

    assert InferOptions(stature_m=1.7).stature_m == 1.7
    for bad in (float("nan"), -1.0, 2.6):
        with pytest.raises(UserError, match="--stature"):
            InferOptions(stature_m=bad)


def test_live_with_the_stature(tiny_checkpoint, tmp_path: Path, capsys):
    csv = tmp_path / "walk.txt"
    lines = [f"{100 + k / 30:.6f} {1.2 * k / 30:.6f} 0.0 1.6 0.5 0.5 0.5 0.5" for k in range(30)]
    csv.write_text("\n".join(lines) + "\n")
    out = tmp_path / "live.npz"
    args = ["live", "--replay", str(csv), "--speed", "0", "--checkpoint", str(tiny_checkpoint), "--window", "16",
            "--hop", "4", "--warmup", "8", "--steps", "2", "--warmup-steps", "2"]
    assert main([*args, "--stature", "1.72", "--out", str(out)]) == 0
    result = InferenceResult.load(out)
    np.testing.assert_allclose(result.stature_m, 1.72, atol=2e-4)
    assert result.metadata["floor"]["method"] == "stature" and result.metadata["stature"]["given_m"] == 1.72
    eye = stature_eye_height(BodyModel.load_default(), 1.72)
    assert result.floor_z == pytest.approx(1.6 - STANDING_HEIGHT_OVER_EYE * eye, abs=1e-6)
    capsys.readouterr()
    assert main([*args, "--stature", "nan", "--out", str(tmp_path / "bad.npz")]) == 2
    assert "--stature nan: expected the wearer's height in metres" in capsys.readouterr().err
    assert not (tmp_path / "bad.npz").exists()


def test_eval_with_the_true_stature_over_a_spread(tiny_dataset, tmp_path):
    from egoallo.evaluation.baselines import rest_pose_predictor
    from egoallo.evaluation.benchmark import EvalConfig, drawn_stature, evaluate, true_stature

    body = BodyModel.load_default()
    seen = []

    def predict(trajectory, seed, window, floor_z):
        seen.append((window["T_world_cpf"][:, 2, 3].copy(), true_stature(body, window), floor_z))
        return rest_pose_predictor(body)(trajectory, seed, window, floor_z)

    config = EvalConfig(window=32, floor="stature", stature_range=(1.50, 1.95))
    results, _ = evaluate(tiny_dataset, predict, body, config, split="test", progress=False)
    assert results
    for r, (_, stature, _) in zip(results, seen):
        assert stature == pytest.approx(drawn_stature(r.clip_id, (1.50, 1.95)), abs=1e-4)  # one draw per clip
        assert 1.50 <= stature <= 1.95
    assert drawn_stature("cmu/005_01", (1.50, 1.95)) == drawn_stature("cmu/005_01", (1.50, 1.95))


def test_eval_cli_takes_the_stature_floor(tiny_dataset, tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "report"
    args = ["eval", "--dataset", str(tiny_dataset), "--out", str(out), "--checkpoint", str(tiny_checkpoint),
            "--windows", "32", "--steps", "1", "--max-windows", "2", "--split", "test", "--floor", "stature"]
    assert main([*args, "--stature-range", "1.50", "1.95"]) == 0
    printed = capsys.readouterr().out.splitlines()[-1]
    figures = json.loads(printed)
    assert figures["method"] == "egoallo_floor-stature_statures-1.50-1.95" and figures["stature_error_cm_median"] < 0.05
    report = json.loads((out / "egoallo_floor-stature_statures-1.50-1.95_w32.json").read_text())
    assert report["meta"]["config"]["stature_range"] == [1.5, 1.95]
    base = [a for a in args if a not in ("--floor", "stature")]
    assert main([*base, "--floor", "true", "--with-stature"]) == 0  # the stature given with a known floor
    figures = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert figures["method"] == "egoallo_floor-true_with-stature" and figures["stature_error_cm_median"] < 0.05
    assert figures["floor_error_cm_median"] == 0.0
    assert main([*args, "--stature-range", "1.95", "1.50"]) == 2
    assert "low first" in capsys.readouterr().err
    assert main([*args, "--stature-range", "1.5", "3"]) == 2
    assert "--stature-range 3.0: expected the wearer's height" in capsys.readouterr().err
