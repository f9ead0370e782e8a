"""Exports of a result: BVH and AMASS-style npz round trip through the project's own readers."""

import numpy as np
import pytest
import torch

from egoallo.body import BodyModel, skeleton
from egoallo.cli.main import main
from egoallo.data.amass import read_amass
from egoallo.data.bvh import read_bvh
from egoallo.export import result_motion
from egoallo.geometry import se3, so3
from egoallo.result import InferenceResult


@pytest.fixture(scope="module")
def result_path(tmp_path_factory):
    """A 2-sample, 20-frame result in a y-up input world (as from an ADT trajectory)."""
    g = torch.Generator().manual_seed(0)
    body = BodyModel.load_default()
    S, T = 2, 20
    betas = torch.randn(S, 16, generator=g)
    local = so3.exp(0.3 * torch.randn(S, T, 51, 3, generator=g))
    T_world_root = se3.exp(torch.cumsum(0.05 * torch.randn(S, T, 6, generator=g), dim=1))
    T_input_zup = np.eye(4)
    T_input_zup[:3, :3] = [[1, 0, 0], [0, 0, 1], [0, -1, 0]]  # z-up -> y-up
    posed = body.with_shape(betas[:, None]).with_pose(T_world_root, local)
    to_input = lambda T: (torch.from_numpy(T_input_zup).float() @ T).numpy()  # noqa: E731
    result = InferenceResult(
        timestamps_ns=np.arange(T) * 33_333_333,
        T_world_cpf=to_input(posed.T_world_cpf[0]).astype(np.float64),
        joints_world=posed.joints_world.numpy() @ T_input_zup[:3, :3].T.astype(np.float32),
        T_world_root=to_input(T_world_root),
        local_rotations=local.numpy(),
        betas=betas.numpy(),
        contacts=np.zeros((S, T, 21), np.float32),
        stature_m=body.with_shape(betas).stature.numpy(),
        floor_z=0.0,
        T_input_zup=T_input_zup,
        fps=30.0,
        metadata={},
    )
    return result.save(tmp_path_factory.mktemp("r") / "result.npz")


def test_bvh_round_trip_within_a_millimetre(result_path, tmp_path):
    out = tmp_path / "motion.bvh"
    assert main(["export", str(result_path), "--to", "bvh", "--out", str(out), "--sample", "1"]) == 0
    motion = result_motion(InferenceResult.load(result_path), 1)
    expected = motion.posed(BodyModel.load_default()).joints_world.double().numpy()
    bvh = read_bvh(out)
    assert bvh.num_frames == 20 and abs(bvh.fps - 30.0) < 1e-4
    positions = bvh.forward_kinematics().positions[:, [bvh.joint_names.index(n) for n in skeleton.JOINT_NAMES]]
    assert np.abs(positions - expected).max() < 1e-3


def test_amass_round_trip(result_path, tmp_path):
    out = tmp_path / "motion.npz"
    assert main(["export", str(result_path), "--to", "amass", "--out", str(out)]) == 0
    body = BodyModel.load_default()
    expected = result_motion(InferenceResult.load(result_path), 0).posed(body).joints_world.numpy()
    back = read_amass(out, body)
    assert back.fps == 30.0 and back.metadata["gender"] == "neutral"
    assert np.abs(back.posed(body).joints_world.numpy() - expected).max() < 1e-4


def test_export_refuses_to_overwrite_and_bad_samples(result_path, tmp_path, capsys):
    out = tmp_path / "x.bvh"
    out.write_text("keep me")
    assert main(["export", str(result_path), "--to", "bvh", "--out", str(out)]) == 2
    assert out.read_text() == "keep me"
    assert main(["export", str(result_path), "--to", "bvh", "--out", str(tmp_path / "y.bvh"), "--sample", "5"]) == 2
    assert "out of range" in capsys.readouterr().err
