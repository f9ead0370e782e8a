import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation
from synthetic_smplh import make_synthetic_smplh

from egoallo.body import BodyModel, BodyModelFileError, skeleton


@pytest.fixture(scope="module")
def smplh_path(tmp_path_factory):
    return make_synthetic_smplh(tmp_path_factory.mktemp("smplh") / "model.npz")


@pytest.fixture(scope="module")
def smplh(smplh_path):
    return BodyModel.load(smplh_path).to(dtype=torch.float64)


def random_rotations(shape, seed, scale=1.0):
    rotvec = np.random.default_rng(seed).normal(0.0, scale, (*shape, 3))
    return torch.from_numpy(Rotation.from_rotvec(rotvec.reshape(-1, 3)).as_matrix().reshape(*shape, 3, 3))


def rigid(seed):
    T = torch.eye(4, dtype=torch.float64)
    T[:3, :3] = random_rotations((), seed)
    T[:3, 3] = torch.from_numpy(np.random.default_rng(seed).normal(0, 2, 3))
    return T


def naive_fk(joints_zero, T_world_root, local_rotations):
    """Reference forward kinematics with explicit 4x4 products, one joint at a time."""
    Ts = [T_world_root.numpy()]
    for i in range(1, 52):
        p = skeleton.PARENTS[i]
        local = np.eye(4)
        local[:3, :3] = local_rotations[i - 1].numpy()
        local[:3, 3] = (joints_zero[i] - joints_zero[p]).numpy()
        Ts.append(Ts[p] @ local)
    return np.stack(Ts)


def test_smplh_joints_come_from_regressor(smplh_path, smplh):
    with np.load(smplh_path) as f:
        expected = f["J_regressor"] @ f["v_template"]
        eyes = f["v_template"][[2800, 2802, 6260, 6262]].mean(axis=0)
    np.testing.assert_allclose(smplh.j_template.numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(smplh.cpf_template.numpy(), eyes, atol=1e-5)
    assert smplh.posedirs is not None and smplh.num_betas == 16


def test_rest_pose_reproduces_template(smplh):
    shaped = smplh.with_shape(torch.linspace(-1, 1, 16, dtype=torch.float64))
    T_root = torch.eye(4, dtype=torch.float64)
    T_root[:3, 3] = shaped.joints_zero[0]
    posed = shaped.with_pose(T_root, torch.eye(3, dtype=torch.float64).expand(51, 3, 3))
    torch.testing.assert_close(posed.joints_world, shaped.joints_zero)
    torch.testing.assert_close(posed.mesh().vertices, shaped.verts_zero)
    torch.testing.assert_close(posed.T_world_cpf[:3, 3], shaped.cpf_zero)
    torch.testing.assert_close(posed.T_world_cpf[:3, :3], torch.eye(3, dtype=torch.float64))


def test_rigid_root_moves_everything_rigidly(smplh):
    shaped = smplh.with_shape(torch.zeros(16, dtype=torch.float64))
    T = rigid(1)
    posed = shaped.with_pose(T, torch.eye(3, dtype=torch.float64).expand(21, 3, 3))
    R, p = T[:3, :3], T[:3, 3]
    expected = (shaped.verts_zero - shaped.joints_zero[0]) @ R.T + p
    torch.testing.assert_close(posed.mesh().vertices, expected)


def test_forward_kinematics_matches_naive_chain(smplh):
    shaped = smplh.with_shape(torch.ones(16, dtype=torch.float64) * 0.5)
    T = rigid(2)
    local = random_rotations((51,), seed=3)
    posed = shaped.with_pose(T, local)
    expected = naive_fk(shaped.joints_zero, T, local)
    np.testing.assert_allclose(posed.Ts_world_joint.numpy(), expected, atol=1e-10)
    # The CPF rides rigidly on the head joint.
    head = expected[skeleton.JOINT_INDEX["head"]]
    cpf = head[:3, :3] @ (shaped.cpf_zero - shaped.joints_zero[15]).numpy() + head[:3, 3]
    np.testing.assert_allclose(posed.T_world_cpf[:3, 3].numpy(), cpf, atol=1e-10)


def test_batched_shapes_broadcast_like_a_loop(smplh):
    betas = torch.from_numpy(np.random.default_rng(4).normal(size=(2, 1, 10)))
    T = torch.stack([torch.stack([rigid(10 * i + t) for t in range(3)]) for i in range(2)])
    local = random_rotations((2, 3, 21), seed=5)
    posed = smplh.with_shape(betas).with_pose(T, local)
    assert posed.joints_world.shape == (2, 3, 52, 3)
    assert posed.mesh().vertices.shape == (2, 3, 6890, 3)
    for i in range(2):
        for t in range(3):
            single = smplh.with_shape(betas[i, 0]).with_pose(T[i, t], local[i, t])
            torch.testing.assert_close(posed.joints_world[i, t], single.joints_world)
            torch.testing.assert_close(posed.T_world_cpf[i, t], single.T_world_cpf)


def test_pose_correctives_are_applied(smplh_path, tmp_path):
    """SMPL-H posedirs change vertices but never joints."""
    with_pd = BodyModel.load(smplh_path).to(dtype=torch.float64)
    without = BodyModel.load(make_synthetic_smplh(tmp_path / "m.npz", posedirs_scale=0.0)).to(dtype=torch.float64)
    local = random_rotations((51,), seed=6)
    T = rigid(7)
    a = with_pd.with_shape(torch.zeros(16)).with_pose(T, local)
    b = without.with_shape(torch.zeros(16)).with_pose(T, local)
    torch.testing.assert_close(a.joints_world, b.joints_world)
    assert (a.mesh().vertices - b.mesh().vertices).abs().max() > 1e-4


def test_smplh_and_shipped_format_give_identical_outputs(smplh_path, tmp_path):
    """One API, two sources: the same arrays stored in the project's format pose identically."""
    smplh = BodyModel.load(make_synthetic_smplh(tmp_path / "smplh.npz", posedirs_scale=0.0))
    ours_path = tmp_path / "ours.npz"
    np.savez(
        ours_path,
        **{k: getattr(smplh, k).numpy() for k in (
            "v_template", "shapedirs", "j_template", "j_shapedirs", "cpf_template", "cpf_shapedirs", "weights", "faces")},
    )
    ours = BodyModel.load(ours_path)
    betas = torch.randn(16, generator=torch.Generator().manual_seed(0))
    local = random_rotations((51,), seed=8).float()
    T = rigid(9).float()
    a = smplh.with_shape(betas).with_pose(T, local)
    b = ours.with_shape(betas).with_pose(T, local)
    torch.testing.assert_close(a.Ts_world_joint, b.Ts_world_joint)
    torch.testing.assert_close(a.mesh().vertices, b.mesh().vertices)
    torch.testing.assert_close(a.T_world_cpf, b.T_world_cpf)


def test_gradients_flow_to_rotations_and_betas(smplh):
    betas = torch.zeros(16, dtype=torch.float64, requires_grad=True)
    local = torch.eye(3, dtype=torch.float64).repeat(21, 1, 1).requires_grad_(True)
    posed = smplh.with_shape(betas).with_pose(torch.eye(4, dtype=torch.float64), local)
    posed.mesh().vertices.sum().backward()
    assert torch.isfinite(betas.grad).all() and betas.grad.abs().sum() > 0
    assert torch.isfinite(local.grad).all() and local.grad.abs().sum() > 0


def test_env_var_selects_the_model(smplh_path, monkeypatch):
    monkeypatch.setenv("EGOALLO_SMPLH_MODEL", str(smplh_path))
    assert BodyModel.load_from_env_or_default().name == "model.npz"


@pytest.mark.parametrize(
    "drop, change, message",
    [
        ("J_regressor", None, "missing key"),  # falls back to our format -> reports our first missing key
        ("weights", None, "missing key 'weights'"),
        (None, ("shapedirs", np.zeros((6890, 2))), "'shapedirs' has shape (6890, 2)"),
        (None, ("weights", np.zeros((6890, 50))), "'weights' has shape (6890, 50)"),
        (None, ("J_regressor", np.zeros((52, 100))), "'J_regressor' has shape (52, 100)"),
    ],
)
def test_bad_smplh_files_name_the_file_and_problem(smplh_path, tmp_path, drop, change, message):
    with np.load(smplh_path) as f:
        arrays = {k: f[k] for k in f.files}
    if drop:
        del arrays[drop]
    if change:
        arrays[change[0]] = change[1]
    bad = tmp_path / "bad_model.npz"
    np.savez(bad, **arrays)
    with pytest.raises(BodyModelFileError, match="bad_model.npz") as info:
        BodyModel.load(bad)
    assert message in str(info.value)


def test_unreadable_and_missing_files(tmp_path):
    with pytest.raises(BodyModelFileError, match="not found"):
        BodyModel.load(tmp_path / "nope.npz")
    junk = tmp_path / "junk.npz"
    junk.write_text("not a zip")
    with pytest.raises(BodyModelFileError, match="junk.npz: not a valid npz"):
        BodyModel.load(junk)


def test_standing_eye_height_follows_the_body_shape():
    from egoallo.body.stature import betas_with_stature
    from egoallo.inference import standing_eye_height

    body = BodyModel.load_default()
    mean = standing_eye_height(body)
    assert mean == standing_eye_height(body, np.zeros(body.num_betas))
    tall = standing_eye_height(body, betas_with_stature(body, np.zeros(body.num_betas), 1.95))
    short = standing_eye_height(body, betas_with_stature(body, np.zeros(body.num_betas), 1.50))
    assert short < mean < tall and 0.9 < (tall - short) / 0.45 < 1.0  # eye height is about 0.93 of stature
