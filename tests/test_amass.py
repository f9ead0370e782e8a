import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation
from synthetic_smplh import make_synthetic_smplh

from egoallo.body import BodyModel
from egoallo.data.amass import AmassFileError, read_amass


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return BodyModel.load(make_synthetic_smplh(tmp_path_factory.mktemp("smplh") / "model.npz"))


def write_amass(path, T=12, seed=0, **overrides):
    rng = np.random.default_rng(seed)
    arrays = dict(
        poses=rng.normal(0, 0.3, (T, 156)),
        trans=np.cumsum(rng.normal(0, 0.01, (T, 3)), axis=0),
        betas=rng.normal(0, 1, 16),
        gender=np.array("female"),
        mocap_framerate=np.array(120.0),
        dmpls=np.zeros((T, 8)),
    )
    arrays.update(overrides)
    np.savez(path, **arrays)
    return arrays


def test_reads_sequence_into_motion(model, tmp_path):
    arrays = write_amass(tmp_path / "seq_poses.npz")
    motion = read_amass(tmp_path / "seq_poses.npz", model)
    assert motion.num_frames == 12 and motion.fps == 120.0 and motion.has_hands
    assert motion.metadata["gender"] == "female"
    expected_local = Rotation.from_rotvec(arrays["poses"][:, 3:].reshape(-1, 3)).as_matrix().reshape(12, 51, 3, 3)
    np.testing.assert_allclose(motion.local_rotations, expected_local, atol=1e-10)
    # SMPL semantics: the pelvis sits at J_0(betas) + trans, rotated by the root rotation.
    J0 = model.with_shape(torch.from_numpy(arrays["betas"]).float()).joints_zero[0].numpy()
    np.testing.assert_allclose(motion.T_world_root[:, :3, 3], J0 + arrays["trans"], atol=1e-5)
    np.testing.assert_allclose(
        motion.T_world_root[:, :3, :3], Rotation.from_rotvec(arrays["poses"][:, :3]).as_matrix(), atol=1e-10
    )
    joints = motion.posed(model).joints_world
    assert joints.shape == (12, 52, 3) and torch.isfinite(joints).all()


def test_vertices_match_smpl_formula(model, tmp_path):
    """An independent SMPL evaluation: v = R_root (v_rest - J0) + J0 + trans when only the root rotates."""
    poses = np.zeros((2, 156))
    poses[:, :3] = [[0.0, 0.0, 0.5], [0.3, -0.2, 0.1]]
    arrays = write_amass(tmp_path / "a.npz", T=2, poses=poses, betas=np.zeros(16))
    motion = read_amass(tmp_path / "a.npz", model)
    verts = motion.posed(model).mesh().vertices.numpy()
    v_rest, J0 = model.v_template.numpy(), model.j_template[0].numpy()
    for t in range(2):
        R = Rotation.from_rotvec(poses[t, :3]).as_matrix()
        np.testing.assert_allclose(verts[t], (v_rest - J0) @ R.T + J0 + arrays["trans"][t], atol=1e-5)


def test_pickled_gender_is_not_unpickled(model, tmp_path):
    write_amass(tmp_path / "g.npz", gender=np.array([b"male"], dtype=object))
    motion = read_amass(tmp_path / "g.npz", model)
    assert motion.metadata["gender"].startswith("unknown")


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(poses=np.zeros((5, 72))), "expected (T, 156)"),
        (dict(trans=np.zeros((3, 3))), "'trans' has shape (3, 3), expected (12, 3)"),
        (dict(poses=np.full((12, 156), np.nan)), "non-finite value at index (0, 0)"),
        (dict(mocap_framerate=np.array(0.0)), "mocap_framerate is 0.0"),
        (dict(mocap_framerate=np.array(1e-320)), "expected 1 to 10000 frames per second"),
        (dict(poses=np.full((12, 156), "0.1")), "'poses' has dtype <U3, expected real numbers"),
        (dict(betas=np.zeros(16, complex)), "'betas' has dtype complex128, expected real numbers"),
        (dict(trans=np.full((12, 3), 1e308)), "'trans' holds 1e+308 at index (0, 0); expected finite values within"),
        (dict(poses=np.full((12, 156), 1e30)), "'poses' holds 1e+30 at index (0, 0)"),
    ],
)
def test_bad_files_are_reported(model, tmp_path, overrides, message):
    write_amass(tmp_path / "bad.npz", **overrides)
    with pytest.raises(AmassFileError, match="bad.npz") as info:
        read_amass(tmp_path / "bad.npz", model)
    assert message in str(info.value)


def test_missing_key(model, tmp_path):
    np.savez(tmp_path / "m.npz", poses=np.zeros((3, 156)))
    with pytest.raises(AmassFileError, match="missing key 'trans'"):
        read_amass(tmp_path / "m.npz", model)
