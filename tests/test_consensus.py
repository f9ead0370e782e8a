"""The consensus of several samples and each joint's spread: the maths, result.npz, infer, export, eval."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from egoallo.body import BodyModel, skeleton
from egoallo.cli.main import main
from egoallo.consensus import (
    INTERVAL_FACTORS,
    SPREAD_SCALE,
    bones_state,
    interval_radius,
    joint_spread,
    mean_rotations,
    mean_state,
    medoid_index,
    raw_spread,
)
from egoallo.evaluation.benchmark import CONSENSUS_METRICS, METRICS, WindowResult, spearman, summarize
from egoallo.geometry import se3, so3
from egoallo.inference import place_in_world
from egoallo.prior.state import MotionState
from egoallo.result import InferenceResult


def _samples(S: int = 6, T: int = 5, spread: float = 0.4, seed: int = 0) -> MotionState:
    """`S` samples of `T` frames scattered around one pose by rotations of about `spread` rad."""
    g = torch.Generator().manual_seed(seed)
    centre = so3.exp(0.5 * torch.randn(1, T, 21, 3, generator=g, dtype=torch.float64))
    body = centre @ so3.exp(spread * torch.randn(S, T, 21, 3, generator=g, dtype=torch.float64))
    return MotionState(torch.randn(S, 1, 16, generator=g, dtype=torch.float64).expand(S, T, 16), body,
                       torch.rand(S, T, 21, generator=g, dtype=torch.float64), None)


def test_mean_rotations_stay_rotations_and_identical_samples_are_their_own_consensus():
    state = _samples()
    mean = mean_rotations(state.body_rotations)
    eye = torch.eye(3, dtype=torch.float64)
    assert torch.allclose(mean.mT @ mean, eye.expand_as(mean), atol=1e-9) and (torch.linalg.det(mean) > 0).all()
    same = MotionState(*(x[:1].expand(4, *x.shape[1:]) for x in (state.betas, state.body_rotations, state.contacts)), None)
    agreed = mean_state(same)
    assert torch.allclose(agreed.body_rotations[0], same.body_rotations[0], atol=1e-9)
    assert torch.allclose(agreed.betas[0], same.betas[0])
    joints = np.random.default_rng(0).normal(size=(1, 5, 52, 3)).repeat(3, axis=0)
    assert np.all(joint_spread(joints, joints[0]) == 0.0)


def test_the_mean_consensus_keeps_the_bones_a_joint_average_shortens():
    body = BodyModel.load_default().to(dtype=torch.float64)
    state = _samples(S=8, spread=0.8)
    T_world_cpf = se3.identity((5,), dtype=torch.float64)
    _, _, joints = place_in_world(body, state, T_world_cpf)
    _, _, agreed = place_in_world(body, mean_state(state), T_world_cpf)
    rest = body.with_shape(mean_state(state).betas[0, 0]).joints_zero
    parents = torch.tensor(skeleton.PARENTS[1:22])

    def bones(j: torch.Tensor) -> torch.Tensor:
        return torch.linalg.vector_norm(j[..., 1:22, :] - j[..., parents, :], dim=-1)

    rest_bones = bones(rest)
    assert torch.allclose(bones(agreed[0]), rest_bones.expand(5, -1), atol=1e-6)
    averaged = bones(joints.mean(dim=0))
    assert (averaged < rest_bones - 0.005).any()  # the plain average of joints shortens some bones by 5 mm or more


def test_the_bones_consensus_keeps_the_bones_and_lands_near_the_joint_average():
    body = BodyModel.load_default().to(dtype=torch.float64)
    state = _samples(S=8, spread=0.4)
    T_world_cpf = se3.identity((5,), dtype=torch.float64)
    _, T_world_root, joints = place_in_world(body, state, T_world_cpf)
    agreed = bones_state(state, T_world_root[..., :3, :3])
    _, T_agreed, at_bones = place_in_world(body, agreed, T_world_cpf)
    rest = body.with_shape(agreed.betas[0, 0]).joints_zero
    parents = torch.tensor(skeleton.PARENTS[1:22])
    length = lambda j: torch.linalg.vector_norm(j[..., 1:22, :] - j[..., parents, :], dim=-1)  # noqa: E731
    assert torch.allclose(length(at_bones[0]), length(rest).expand(5, -1), atol=1e-6)
    # Every body joint's world orientation is the samples' mean one (the head's, which they share, included).
    posed = lambda betas, T, local: body.with_shape(betas).with_pose(T, local).Ts_world_joint[..., :22, :3, :3]  # noqa: E731
    betas = state.betas.mean(dim=1)[:, None, :]
    samples_world = posed(betas, T_world_root, state.body_rotations)
    consensus_world = posed(agreed.betas.mean(dim=1)[:, None, :], T_agreed, agreed.body_rotations)[0]
    assert torch.allclose(consensus_world, mean_rotations(samples_world), atol=1e-6)
    # Identical samples are their own consensus.
    same = MotionState(*(x[:1].expand(4, *x.shape[1:]) for x in (state.betas, state.body_rotations, state.contacts)), None)
    agreed = bones_state(same, T_world_root[:1].expand(4, -1, -1, -1)[..., :3, :3])
    assert torch.allclose(agreed.body_rotations[0], same.body_rotations[0], atol=1e-9)


def test_medoid_and_spread():
    rng = np.random.default_rng(1)
    centre = rng.normal(size=(4, 52, 3))
    joints = np.stack([centre + d for d in (0.0, 0.1, -0.1, 0.3)])
    assert medoid_index(joints) == 0
    spread = raw_spread(joints, centre)
    expected = np.sqrt(3 * (0.01 + 0.01 + 0.09) / 3)  # three coordinates each off by d, S - 1 = 3
    np.testing.assert_allclose(spread, expected)
    np.testing.assert_allclose(joint_spread(joints, centre), (SPREAD_SCALE * expected).astype(np.float32), rtol=1e-6)
    assert interval_radius(np.array(2.0), 0.9) == pytest.approx(2.0 * INTERVAL_FACTORS[0.9])
    with pytest.raises(ValueError, match="level 0.8"):
        interval_radius(np.array(1.0), 0.8)
    with pytest.raises(ValueError):
        raw_spread(joints[:1], centre)


@pytest.fixture(scope="module")
def consensus_result(tiny_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("consensus") / "r.npz"
    assert main(["infer", "--example", "--out", str(out), "--checkpoint", str(tiny_checkpoint), "--samples", "3",
                 "--steps", "1"]) == 0
    return out


def test_infer_writes_the_consensus_and_the_spread(consensus_result):
    result = InferenceResult.load(consensus_result)
    T = len(result.timestamps_ns)
    assert result.joints_world_consensus.shape == (T, 52, 3) and result.joint_spread_m.shape == (T, 52)
    assert result.local_rotations_consensus.shape == (T, 51, 3, 3) and result.betas_consensus.shape == (16,)
    assert (result.joint_spread_m >= 0).all() and result.joint_spread_m[:, :22].mean() > 0
    assert result.metadata["consensus"]["kind"] == "bones" and result.metadata["consensus"]["guided"] == "consensus"
    assert result.metadata["guidance"]["consensus"]["calls"] == 1 and "post" not in result.metadata["guidance"]
    # The consensus is a posed body: its CPF sits on the head, as every sample's.
    body = BodyModel.load_default()
    posed = body.with_shape(torch.from_numpy(result.betas_consensus)).with_pose(
        torch.from_numpy(result.T_world_root_consensus), torch.from_numpy(result.local_rotations_consensus))
    np.testing.assert_allclose(posed.T_world_cpf.double().numpy(), result.T_world_cpf, atol=2e-4)
    np.testing.assert_allclose(posed.joints_world.numpy(), result.joints_world_consensus, atol=2e-4)


def _rewritten(path, tmp_path, **changes):
    data = dict(np.load(path))
    for key, value in changes.items():
        if value is None:
            del data[key]
        else:
            data[key] = value
    out = tmp_path / "edited.npz"
    np.savez(out, **data)
    return out


def test_bad_consensus_arrays_are_refused_on_load(consensus_result, tmp_path):
    good = np.load(consensus_result)
    spread, joints = good["joint_spread_m"], good["joints_world_consensus"]
    nan = joints.copy()
    nan[3, 4, 1] = np.nan
    rotations = good["local_rotations_consensus"].copy()
    rotations[2, 5] *= 2.0
    cases = {
        "'joint_spread_m' has shape": dict(joint_spread_m=spread[:, :22]),
        "'joints_world_consensus' at (3, 4, 1): nan": dict(joints_world_consensus=nan),
        "'joint_spread_m' at (0, 7) is -0.01; expected a spread of at least 0 m": dict(
            joint_spread_m=np.where(np.arange(52) == 7, -0.01, spread).astype(np.float32)),
        "but no 'joint_spread_m'": dict(joint_spread_m=None),
        "'local_rotations_consensus' at (2, 5) is not a rotation": dict(local_rotations_consensus=rotations),
    }
    for message, change in cases.items():
        with pytest.raises(Exception, match=message.replace("(", r"\(").replace(")", r"\)")) as error:
            InferenceResult.load(_rewritten(consensus_result, tmp_path, **change))
        assert "edited.npz" in str(error.value) and "\n" not in str(error.value)
    older = _rewritten(consensus_result, tmp_path, **{k: None for k in (
        "joints_world_consensus", "T_world_root_consensus", "local_rotations_consensus", "betas_consensus",
        "joint_spread_m")})
    assert not InferenceResult.load(older).has_consensus  # files written before consensuses still load


def test_export_and_render_use_the_consensus(consensus_result, tmp_path, capsys):
    out = tmp_path / "c.npz"
    assert main(["export", str(consensus_result), "--to", "amass", "--out", str(out)]) == 0
    assert "(consensus, 330 frames)" in capsys.readouterr().out
    exported = np.load(out)
    result = InferenceResult.load(consensus_result)
    np.testing.assert_allclose(exported["betas"], result.betas_consensus, atol=1e-6)
    np.testing.assert_allclose(exported["joint_spread_m"], result.joint_spread_m)
    assert main(["export", str(consensus_result), "--to", "amass", "--out", str(tmp_path / "s.npz"), "--sample", "1"]) == 0
    assert "joint_spread_m" not in np.load(tmp_path / "s.npz").files
    assert main(["export", str(consensus_result), "--to", "bvh", "--out", str(tmp_path / "c.bvh")]) == 0
    assert main(["render", str(consensus_result), "--out", str(tmp_path / "c.png"), "--frames", "2", "--ghosts"]) == 0
    assert main(["render", str(consensus_result), "--out", str(tmp_path / "s.png"), "--sample", "0", "--ghosts"]) == 2
    assert "--ghosts draws the samples behind their consensus" in capsys.readouterr().err


def test_samples_out_of_range_are_one_line(tmp_path, capsys):
    for value in ("0", "-2"):
        assert main(["infer", "--example", "--out", str(tmp_path / "x.npz"), "--samples", value]) == 2
        assert capsys.readouterr().err.strip().endswith("--samples must be at least 1.")
    assert main(["infer", "--example", "--out", str(tmp_path / "x.npz"), "--samples", "100000000"]) == 2
    err = capsys.readouterr().err.strip()
    assert "x 100000000 sample(s) need about" in err and "expected a run that fits: --samples" in err
    assert "\n" not in err and not (tmp_path / "x.npz").exists()
    assert main(["eval", "--dataset", str(tmp_path / "none.h5"), "--out", str(tmp_path / "r"), "--samples", "100000000"]) == 2
    assert "128 frames (0.1 min at 30 fps) x 100000000 sample(s) need about" in capsys.readouterr().err


def _window(activity: str, single: float, consensus: float, spread: list[float], error: list[float]) -> WindowResult:
    metrics = {m: single for m in METRICS} | {"mpjpe_single": single, "mpjpe_consensus": consensus}
    metrics |= {m: 0.9 for m in CONSENSUS_METRICS[2:]}
    return WindowResult("cmu/x", activity, 0, "cmu", "held-out performers", metrics, [0.0] * 22, error, spread)


def test_summary_of_a_consensus_run():
    rows = [_window("sit", 100.0, 90.0, [float(j) for j in range(22)], [float(2 * j) for j in range(22)]),
            _window("walk", 50.0, 48.0, [float(j) for j in range(22)], [float(44 - j) for j in range(22)])]
    summary = summarize(rows)
    assert summary["activity_mean"]["mpjpe_consensus"]["mean"] == pytest.approx(69.0)
    assert summary["spread"]["cells"] == 44 and summary["spread"]["stated_vs_observed"]["0.9"] == pytest.approx(0.9)
    assert spearman(np.arange(5.0), np.arange(5.0) ** 3) == pytest.approx(1.0)
    assert "mpjpe_consensus" not in summarize([dataclasses.replace(rows[0], metrics={m: 1.0 for m in METRICS},
                                                                   per_joint_consensus_mm=None,
                                                                   per_joint_spread_mm=None)])["all"]


def test_eval_with_samples_reports_the_consensus(tiny_dataset, tiny_checkpoint, tmp_path, capsys):
    from egoallo.data.dataset import MotionDataset

    split = "test" if len(MotionDataset(tiny_dataset, "test")) else "train"
    out = tmp_path / "report"
    assert main(["eval", "--dataset", str(tiny_dataset), "--out", str(out), "--checkpoint", str(tiny_checkpoint),
                 "--windows", "32", "--steps", "1", "--max-windows", "2", "--samples", "2", "--split", split]) == 0
    printed = capsys.readouterr().out
    line = json.loads(printed.strip().splitlines()[-1])
    assert line["mpjpe_consensus_activity_mean"]["mean"] > 0 and -1.0 <= line["spread_spearman"] <= 1.0
    assert set(line["spread_coverage"]) == {"0.5", "0.68", "0.9", "0.95"}
    assert "Spread: Spearman" in (out / "egoallo_w32.md").read_text()


def test_the_viewer_shows_the_consensus_and_its_spread(consensus_result):
    pytest.importorskip("viser")
    from egoallo.viz.viewer import ResultViewer, SceneData

    scene = SceneData.from_result(InferenceResult.load(consensus_result))
    assert scene.consensus_vertices.shape[0] == scene.num_frames and scene.joint_spread_m.shape == (scene.num_frames, 52)
    viewer = ResultViewer(scene, port=0)
    try:
        viewer.set_frame(7)
        np.testing.assert_allclose(viewer.nodes["/spread"].points, scene.consensus_joints[7, :22])
        np.testing.assert_allclose(viewer.nodes["/body/consensus"].vertices, scene.consensus_vertices[7])
        assert viewer.nodes["/spread"].colors.shape == (22, 3)
    finally:
        viewer.close()
