"""Exports of a result: BVH and AMASS-style npz round trip through the project's own readers; glTF through pygltflib."""

import dataclasses

import numpy as np
import pygltflib
import pytest
import torch
import trimesh
from scipy.spatial.transform import Rotation
from synthetic_smplh import make_synthetic_smplh

from egoallo.body import BodyModel, skeleton
from egoallo.cli.main import main
from egoallo.data.amass import read_amass
from egoallo.data.bvh import read_bvh
from egoallo.export import result_motion
from egoallo.geometry import se3, so3
from egoallo.result import InferenceResult

Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


@pytest.fixture(scope="module")
def result_path(tmp_path_factory):
    """A 2-sample, 20-frame result in a y-up input world (as from an ADT trajectory), floor 0.1 m up."""
    return _result(BodyModel.load_default()).save(tmp_path_factory.mktemp("r") / "result.npz")


def _result(body: BodyModel, offset: np.ndarray = np.zeros(3)) -> InferenceResult:
    """The result of `result_path` made with `body`, its input world moved by `offset` (3,)."""
    g = torch.Generator().manual_seed(0)
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
        floor_z=0.1,
        T_input_zup=T_input_zup,
        fps=30.0,
        metadata={"body_model": body.name},
    )
    return _moved(result, offset)


def _moved(result: InferenceResult, offset: np.ndarray) -> InferenceResult:
    """`result` with every position of its input world moved by `offset` (float64), as a run in a world whose
    origin lies that far away writes it: `T_input_zup` keeps no translation, the floor moves with its height."""
    def shift(T: np.ndarray) -> np.ndarray:
        T = T.astype(np.float64)
        T[..., :3, 3] += offset
        return T

    return dataclasses.replace(result, joints_world=result.joints_world.astype(np.float64) + offset,
                               T_world_root=shift(result.T_world_root), T_world_cpf=shift(result.T_world_cpf),
                               floor_z=result.floor_z + float(offset @ result.T_input_zup[:3, 2]))


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


def _accessor(gltf: pygltflib.GLTF2, index: int) -> np.ndarray:
    """An accessor's elements (N, ...) from the GLB's binary chunk; MAT4 read column-major."""
    accessor = gltf.accessors[index]
    view = gltf.bufferViews[accessor.bufferView]
    dtype = {5126: np.float32, 5121: np.uint8, 5123: np.uint16, 5125: np.uint32}[accessor.componentType]
    shape = {"SCALAR": (), "VEC3": (3,), "VEC4": (4,), "MAT4": (4, 4)}[accessor.type]
    offset = (view.byteOffset or 0) + (accessor.byteOffset or 0)
    data = np.frombuffer(gltf.binary_blob(), dtype, accessor.count * int(np.prod(shape)), offset)
    data = data.reshape(accessor.count, *shape)
    return np.swapaxes(data, -1, -2) if accessor.type == "MAT4" else data


def _joint_transforms(gltf: pygltflib.GLTF2, k: int) -> np.ndarray:
    """(J, 4, 4) world transforms of the skin's joints at keyframe k: node TRS, animated, through the hierarchy."""
    translation = {j: np.array(n.translation or [0.0, 0.0, 0.0]) for j, n in enumerate(gltf.nodes)}
    rotation = {j: np.array(n.rotation or [0.0, 0.0, 0.0, 1.0]) for j, n in enumerate(gltf.nodes)}
    animation = gltf.animations[0]
    for channel in animation.channels:
        value = _accessor(gltf, animation.samplers[channel.sampler].output)[k].astype(np.float64)
        (translation if channel.target.path == "translation" else rotation)[channel.target.node] = value
    parents = {c: p for p, node in enumerate(gltf.nodes) for c in node.children or []}
    world: dict[int, np.ndarray] = {}

    def transform(j: int) -> np.ndarray:
        if j not in world:
            local = np.eye(4)
            local[:3, :3] = Rotation.from_quat(rotation[j]).as_matrix()  # glTF xyzw = scipy's scalar-last
            local[:3, 3] = translation[j]
            world[j] = transform(parents[j]) @ local if j in parents else local
        return world[j]

    return np.stack([transform(j) for j in gltf.skins[0].joints])


def _skinned_vertices(gltf: pygltflib.GLTF2, k: int) -> np.ndarray:
    """(V, 3) the GLB's mesh skinned at keyframe k with its joints, weights and inverse bind matrices."""
    primitive = gltf.meshes[0].primitives[0]
    rest = _accessor(gltf, primitive.attributes.POSITION).astype(np.float64)
    joints = _accessor(gltf, primitive.attributes.JOINTS_0)
    weights = _accessor(gltf, primitive.attributes.WEIGHTS_0).astype(np.float64)
    skinning = _joint_transforms(gltf, k) @ _accessor(gltf, gltf.skins[0].inverseBindMatrices).astype(np.float64)
    homogeneous = np.concatenate([rest, np.ones((len(rest), 1))], axis=1)
    return np.einsum("vi,vixy,vy->vx", weights, skinning[joints], homogeneous)[:, :3]


def _input_to_gltf(result: InferenceResult, points: np.ndarray) -> np.ndarray:
    """(..., 3) input-world points in glTF's frame: gravity-aligned z-up, floor at 0, then y-up."""
    R, t = result.T_input_zup[:3, :3], result.T_input_zup[:3, 3]
    zup = (points - t) @ R
    zup[..., 2] -= result.floor_z
    return zup @ Z_UP_TO_Y_UP.T


@pytest.fixture(scope="module")
def glb_path(result_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("glb") / "motion.glb"
    assert main(["export", str(result_path), "--to", "glb", "--out", str(out), "--sample", "1"]) == 0
    return out


def test_glb_structure(glb_path):
    gltf = pygltflib.GLTF2().load(str(glb_path))
    skin, animation = gltf.skins[0], gltf.animations[0]
    assert [gltf.nodes[j].name for j in skin.joints] == list(skeleton.JOINT_NAMES)
    assert len(gltf.nodes) == 54 and gltf.nodes[52].skin == 0  # 52 joints, the mesh node, the origin node
    assert gltf.nodes[53].name == "origin" and gltf.nodes[53].children == [0]
    assert {gltf.nodes[skin.skeleton].name} == {"pelvis"} and len(_accessor(gltf, skin.inverseBindMatrices)) == 52
    times = _accessor(gltf, animation.samplers[0].input)
    assert len(times) == 20 and times[0] == 0.0 and np.allclose(np.diff(times), 1 / 30, atol=1e-6)
    paths = sorted((c.target.node, c.target.path) for c in animation.channels)
    assert paths == sorted([(j, "rotation") for j in range(52)] + [(0, "translation")])
    assert {s.interpolation for s in animation.samplers} == {"LINEAR"}
    position = gltf.accessors[gltf.meshes[0].primitives[0].attributes.POSITION]
    values = _accessor(gltf, gltf.meshes[0].primitives[0].attributes.POSITION)
    assert position.min == values.min(axis=0).tolist() and position.max == values.max(axis=0).tolist()
    weights = _accessor(gltf, gltf.meshes[0].primitives[0].attributes.WEIGHTS_0)
    joints = _accessor(gltf, gltf.meshes[0].primitives[0].attributes.JOINTS_0)
    assert np.allclose(weights.sum(axis=1), 1.0, atol=1e-6) and np.all(joints[weights == 0] == 0)
    assert glb_path.stat().st_size % 4 == 0 and glb_path.read_bytes()[:4] == b"glTF"
    scene = trimesh.load(glb_path)
    assert sum(len(g.vertices) for g in scene.geometry.values()) == len(values)


@pytest.mark.parametrize("k", [0, 7, 19])
def test_glb_joints_match_result_within_a_millimetre(result_path, glb_path, k):
    gltf = pygltflib.GLTF2().load(str(glb_path))
    result = InferenceResult.load(result_path)
    expected = _input_to_gltf(result, result.joints_world[1, k].astype(np.float64))
    assert np.abs(_joint_transforms(gltf, k)[:, :3, 3] - expected).max() < 1e-3


def test_glb_skinning_matches_body_mesh(result_path, glb_path):
    """Only the top-4 skinning weights are kept (the shipped model has up to 6): a few mm off its full LBS."""
    gltf = pygltflib.GLTF2().load(str(glb_path))
    result = InferenceResult.load(result_path)
    body = BodyModel.load_default()
    assert body.posedirs is None  # no pose correctives: the model's mesh is plain LBS, like a viewer's
    k = 11
    expected = result_motion(result, 1).posed(body).mesh().vertices[k].double().numpy() @ Z_UP_TO_Y_UP.T
    assert np.linalg.norm(_skinned_vertices(gltf, k) - expected, axis=1).max() < 5e-3


def test_glb_of_smplh_drops_pose_correctives(tmp_path):
    """SMPL-H's pose-corrective blend shapes have no glTF skinning equivalent: the file is LBS with 4 weights."""
    model_path = make_synthetic_smplh(tmp_path / "smplh.npz")
    body = BodyModel.load(model_path)
    result_path = _result(body).save(tmp_path / "smplh_result.npz")
    out = tmp_path / "smplh.glb"
    assert main(["export", str(result_path), "--to", "glb", "--out", str(out), "--body-model", str(model_path)]) == 0
    weights = body.weights.double().numpy()
    top = np.argsort(-weights, axis=1)[:, :4]
    kept = np.zeros_like(weights)
    np.put_along_axis(kept, top, np.take_along_axis(weights, top, axis=1), axis=1)
    lbs = dataclasses.replace(body, posedirs=None, weights=torch.from_numpy(kept / kept.sum(axis=1, keepdims=True)).float())
    k = 5
    expected = result_motion(InferenceResult.load(result_path), 0).posed(lbs).mesh().vertices[k].double().numpy()
    skinned = _skinned_vertices(pygltflib.GLTF2().load(str(out)), k)
    assert np.abs(skinned - expected @ Z_UP_TO_Y_UP.T).max() < 1e-4


def test_glb_refuses_to_overwrite_and_bad_samples(result_path, tmp_path, capsys):
    out = tmp_path / "x.glb"
    out.write_bytes(b"keep me")
    assert main(["export", str(result_path), "--to", "glb", "--out", str(out)]) == 2
    assert out.read_bytes() == b"keep me" and "--force" in capsys.readouterr().err
    assert main(["export", str(result_path), "--to", "glb", "--out", str(out), "--force"]) == 0
    assert out.read_bytes()[:4] == b"glTF" and sorted(p.name for p in tmp_path.iterdir()) == ["x.glb"]
    assert main(["export", str(result_path), "--to", "glb", "--out", str(tmp_path / "y.glb"), "--sample", "2"]) == 2
    assert "out of range" in capsys.readouterr().err and not (tmp_path / "y.glb").exists()


@pytest.mark.parametrize(("kind", "suffix"), [("bvh", "bvh"), ("amass", "npz"), ("glb", "glb")])
def test_unwritable_output_is_a_clear_error(result_path, tmp_path, capsys, monkeypatch, kind, suffix):
    """The rename into place fails (another file system, a full disk): one line, and no temporary file left."""
    import errno
    import os

    from egoallo import files

    def failing(source, target):  # noqa: ANN001, ANN202
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

    blocked = tmp_path / "blocked"
    blocked.mkdir()
    monkeypatch.setattr(files.os, "replace", failing)
    assert main(["export", str(result_path), "--to", kind, "--out", str(blocked / f"out.{suffix}")]) == 2
    assert "cannot write the file (Invalid cross-device link)" in capsys.readouterr().err
    assert not list(blocked.iterdir())


@pytest.mark.parametrize(("kind", "name", "message"), [
    ("bvh", "out.npz", "out.npz: the output must end in .bvh"),
    ("amass", "out.amass", "out.amass: the output must end in .npz"),
    ("glb", "missing/out.glb", "missing: output directory does not exist"),
])
def test_output_path_is_checked_before_reading_the_result(tmp_path, capsys, kind, name, message):
    # The result is not a valid npz: the output path is refused first, before any work.
    (tmp_path / "in.npz").write_bytes(b"not read")
    assert main(["export", str(tmp_path / "in.npz"), "--to", kind, "--out", str(tmp_path / name)]) == 2
    assert message in capsys.readouterr().err


def test_export_with_another_body_model_is_refused(result_path, tmp_path, capsys):
    """The result's betas mean another shape in another model: refused, naming both."""
    model_path = make_synthetic_smplh(tmp_path / "smplh.npz")
    for to, suffix in (("glb", ".glb"), ("bvh", ".bvh")):
        out = tmp_path / f"m{suffix}"
        assert main(["export", str(result_path), "--to", to, "--out", str(out), "--body-model", str(model_path)]) == 2
        err = capsys.readouterr().err
        assert "made with anny_smplh.npz; body model smplh.npz gives its shapes statures" in err and not out.exists()


def test_glb_at_utm_scale_keeps_millimetres(tmp_path):
    """A result 5,400 km from its origin: the GLB's animation is keyed around a float64 origin node, so its
    joints match the near-origin result's, moved, within a millimetre (float32 steps there are 0.5 m)."""
    offset = np.array([5.4e6, 1.2e3, -3.1e6])  # y-up input world: y is up
    near, far = _result(BodyModel.load_default()), _result(BodyModel.load_default(), offset)
    paths = [r.save(tmp_path / f"{name}.npz") for r, name in ((near, "near"), (far, "far"))]
    for path in paths:
        assert main(["export", str(path), "--to", "glb", "--out", str(path.with_suffix(".glb"))]) == 0
    shift_gltf = _input_to_gltf(far, offset) - _input_to_gltf(near, np.zeros(3))
    assert np.abs(shift_gltf).max() > 5e6  # the GLB stands the far body 5,400 km away
    for k in (0, 9, 19):
        joints = [_joint_transforms(pygltflib.GLTF2().load(str(p.with_suffix(".glb"))), k)[:, :3, 3] for p in paths]
        assert np.abs(joints[1] - shift_gltf - joints[0]).max() < 1e-3
