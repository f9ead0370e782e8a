"""End to end: `egoallo infer` on real Aria files and the example, with a tiny random-weight checkpoint."""

import numpy as np
import torch

from egoallo.body import BodyModel
from egoallo.cli.main import main
from egoallo.geometry import se3
from egoallo.result import InferenceResult


def cpf_of_result(result: InferenceResult, body: BodyModel) -> np.ndarray:
    """World CPF poses `(S, T, 4, 4)` of the result's bodies, recomputed by forward kinematics."""
    shaped = body.with_shape(torch.from_numpy(result.betas)[:, None])
    posed = shaped.with_pose(torch.from_numpy(result.T_world_root), torch.from_numpy(result.local_rotations))
    return posed.T_world_cpf.double().numpy()


def test_infer_on_the_example(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "result.npz"
    assert main(["infer", "--example", "--out", str(out), "--checkpoint", str(tiny_checkpoint), "--samples", "2", "--steps", "3"]) == 0
    assert "x real time" in capsys.readouterr().out
    result = InferenceResult.load(out)
    assert result.joints_world.shape == (2, 330, 52, 3) and result.timestamps_ns.shape == (330,)
    assert np.isfinite(result.joints_world).all()
    # Eq. 5 puts every sampled body's CPF exactly on the input head pose.
    np.testing.assert_allclose(cpf_of_result(result, BodyModel.load_default()), np.broadcast_to(result.T_world_cpf, (2, 330, 4, 4)), atol=2e-4)
    assert 1.3 < result.stature_m.min() and result.stature_m.max() < 2.2
    assert result.metadata["floor"]["method"] in ("gait", "trajectory")  # walking: gait when the model ships
    # The same command again refuses to overwrite.
    assert main(["infer", "--example", "--out", str(out), "--checkpoint", str(tiny_checkpoint)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err


def test_infer_keeps_the_input_world_frame(tiny_checkpoint, shared_dir, tmp_path):
    """ADT's world has gravity along -y: outputs stay in that frame."""
    csv = shared_dir / "aria" / "adt_aria_trajectory_gravity_minus_y.csv"
    out = tmp_path / "adt.npz"
    assert main(["infer", str(csv), "--out", str(out), "--checkpoint", str(tiny_checkpoint), "--steps", "2"]) == 0
    result = InferenceResult.load(out)
    R_input_zup = result.T_input_zup[:3, :3]
    np.testing.assert_allclose(R_input_zup @ [0, 0, -1.0], [0, -1.0, 0], atol=1e-9)
    np.testing.assert_allclose(cpf_of_result(result, BodyModel.load_default())[0], result.T_world_cpf, atol=2e-4)
    # Joints are in the same (input) frame: the head joint sits a fixed eye offset from the CPF.
    shaped = BodyModel.load_default().with_shape(torch.from_numpy(result.betas[0]))
    offset = float(shaped.T_head_cpf[:3, 3].norm())
    distance = np.linalg.norm(result.joints_world[0, :, 15] - result.T_world_cpf[:, :3, 3], axis=-1)
    np.testing.assert_allclose(distance, offset, atol=1e-4)


def test_infer_on_real_mps_trajectory_with_calibration(tiny_checkpoint, shared_dir, tmp_path):
    aria = shared_dir / "aria"
    out = tmp_path / "mps.npz"
    args = ["infer", str(aria / "mps_closed_loop_trajectory_short.csv"), "--out", str(out),
            "--checkpoint", str(tiny_checkpoint), "--calibration", str(aria / "aea_recording_rgb8frames.vrs"), "--steps", "2"]
    assert main(args) == 0
    result = InferenceResult.load(out)
    assert result.joints_world.shape[1] == 6  # 0.196 s at 30 fps
    assert "aea_recording_rgb8frames.vrs" in str(result.metadata["trajectory"]["calibration"])


def test_bad_inputs_are_clear_errors(tiny_checkpoint, tmp_path, capsys):
    assert main(["infer", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "r.npz"), "--checkpoint", str(tiny_checkpoint)]) == 2
    assert "missing.csv" in capsys.readouterr().err
    one_row = tmp_path / "one.txt"
    one_row.write_text("0.0 0 0 1.6 0 0 0 1\n")
    assert main(["infer", str(one_row), "--out", str(tmp_path / "r.npz"), "--checkpoint", str(tiny_checkpoint)]) == 2
    err = capsys.readouterr().err
    assert "one.txt" in err and "Traceback" not in err
    assert main(["infer", "--example", "--out", str(tmp_path / "r.npz"), "--checkpoint", str(tmp_path)]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_place_in_world_inverts_the_head_chain():
    from egoallo.inference import place_in_world
    from egoallo.prior.state import MotionState

    body = BodyModel.load_default()
    g = torch.Generator().manual_seed(0)
    from egoallo.geometry import so3

    state = MotionState(
        betas=torch.randn(2, 1, 16, generator=g).expand(2, 5, 16),
        body_rotations=so3.exp(0.3 * torch.randn(2, 5, 21, 3, generator=g)),
        contacts=torch.zeros(2, 5, 21),
        hand_rotations=None,
    )
    T_world_cpf = se3.exp(torch.randn(5, 6, generator=g))
    betas, T_world_root, joints = place_in_world(body, state, T_world_cpf)
    posed = body.with_shape(betas[:, None]).with_pose(T_world_root, state.local_rotations)
    torch.testing.assert_close(posed.T_world_cpf, T_world_cpf.expand(2, 5, 4, 4), atol=1e-5, rtol=0)


def test_infer_runs_an_official_release_checkpoint(shared_dir, tmp_path, capsys):
    """The fixture is a random-weight checkpoint in the official EgoAllo release layout."""
    fixture = shared_dir / "fixtures" / "egoallo_ref_tiny"
    out = tmp_path / "official.npz"
    assert main(["infer", "--example", "--out", str(out), "--checkpoint", str(fixture), "--steps", "2"]) == 0
    assert "official EgoAllo checkpoints predict SMPL-H shapes" in capsys.readouterr().out
    result = InferenceResult.load(out)
    assert result.metadata["network"]["d_latent"] == 64 and result.local_rotations.shape[1:] == (330, 51, 3, 3)


def test_render_result_png_and_gif(tiny_checkpoint, tmp_path, capsys):
    result = tmp_path / "r.npz"
    assert main(["infer", "--example", "--out", str(result), "--checkpoint", str(tiny_checkpoint), "--steps", "1"]) == 0
    from PIL import Image

    assert main(["render", str(result), "--out", str(tmp_path / "r.png"), "--frames", "3"]) == 0
    image = np.asarray(Image.open(tmp_path / "r.png").convert("L"))
    assert (image < 250).mean() > 0.01
    assert main(["render", str(result), "--out", str(tmp_path / "r.gif"), "--stride", "110"]) == 0
    assert Image.open(tmp_path / "r.gif").n_frames == 3
    assert main(["render", str(result), "--out", str(tmp_path / "r.png")]) == 2  # exists
    assert main(["render", str(tmp_path / "none.npz"), "--out", str(tmp_path / "x.png")]) == 2
    assert "none.npz: file not found; expected a result.npz" in capsys.readouterr().err


def test_infer_with_foot_guidance(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "g.npz"
    args = ["infer", "--example", "--out", str(out), "--checkpoint", str(tiny_checkpoint), "--steps", "1", "--guidance", "feet"]
    assert main(args) == 0
    result = InferenceResult.load(out)
    assert result.metadata["guidance"]["post"]["calls"] == 1 and result.metadata["sampling"]["guidance"] == ["feet"]
    # Guidance keeps Eq. 5: the CPF stays on the input head pose.
    np.testing.assert_allclose(cpf_of_result(result, BodyModel.load_default())[0], result.T_world_cpf, atol=2e-4)
    assert main(["infer", "--example", "--out", str(tmp_path / "x.npz"), "--guidance", "wrist3d"]) == 2
    assert "--wrist-palm" in capsys.readouterr().err


def test_infer_with_real_wrist_and_palm_file(tiny_checkpoint, shared_dir, tmp_path, capsys):
    aria = shared_dir / "aria"
    out = tmp_path / "w.npz"
    args = ["infer", str(aria / "mps_closed_loop_trajectory_short.csv"), "--out", str(out), "--checkpoint", str(tiny_checkpoint),
            "--steps", "1", "--guidance", "feet", "wrist3d", "--wrist-palm", str(aria / "mps_wrist_and_palm_poses_v1.csv")]
    assert main(args) == 0
    assert "warning:" in capsys.readouterr().out  # the shared files' wrist samples lie outside this 0.2 s trajectory
    info = InferenceResult.load(out).metadata["wrist_palm"]
    assert info["layout"] == "v1" and info["samples"] == 122 and info["hands"]["left"]["untracked_samples"] == 122


def test_infer_floor_from_points_with_fallback(tiny_checkpoint, tmp_path, capsys):
    rng = np.random.default_rng(0)
    floor = np.c_[rng.uniform(-3, 3, (20000, 2)), rng.normal(0.0, 0.005, 20000)]
    table = np.c_[rng.uniform(0, 1, (30000, 2)), rng.normal(0.75, 0.005, 30000)]  # more points than the floor
    np.save(tmp_path / "room.npy", np.r_[floor, table])
    base = ["infer", "--example", "--checkpoint", str(tiny_checkpoint), "--steps", "1"]
    assert main([*base, "--points", str(tmp_path / "room.npy"), "--out", str(tmp_path / "a.npz")]) == 0
    result = InferenceResult.load(tmp_path / "a.npz")
    assert abs(result.floor_z) < 0.01 and result.metadata["floor"]["method"].startswith("points")
    walls = np.c_[rng.uniform(-3, 3, (5000, 1)), np.full((5000, 1), 3.0), rng.uniform(0, 2.5, (5000, 1))]
    np.save(tmp_path / "walls.npy", walls)
    assert main([*base, "--points", str(tmp_path / "walls.npy"), "--out", str(tmp_path / "b.npz")]) == 0
    assert "walls.npy" in capsys.readouterr().out
    assert InferenceResult.load(tmp_path / "b.npz").metadata["floor"]["method"] in ("gait", "trajectory")


def test_infer_with_a_known_floor(tiny_checkpoint, tmp_path, capsys):
    base = ["infer", "--example", "--checkpoint", str(tiny_checkpoint), "--steps", "1"]
    assert main([*base, "--floor-z", "0.0", "--out", str(tmp_path / "a.npz")]) == 0
    assert "no point cloud, --floor-z or --stature" not in capsys.readouterr().out
    result = InferenceResult.load(tmp_path / "a.npz")
    assert result.floor_z == 0.0 and result.metadata["floor"] == {"z": 0.0, "method": "given"}
    figures = result.metadata["plausibility"]
    assert set(figures) == {"penetration_share", "deepest_penetration_m", "skating_share", "pelvis_height_min_m",
                            "pelvis_height_max_m", "wrist_above_shoulder_share", "largest_jump_m"}
    assert all(len(v) == 1 for v in figures.values()) and figures["pelvis_height_min_m"][0] <= figures["pelvis_height_max_m"][0]  # random weights: any body
    assert main([*base, "--floor-z", "1.5", "--out", str(tmp_path / "b.npz")]) == 2  # the head is at about 1.5 m
    assert "is not a floor under this head" in capsys.readouterr().err and not (tmp_path / "b.npz").exists()
    np.save(tmp_path / "room.npy", np.zeros((10, 3)))
    assert main([*base, "--floor-z", "0", "--points", str(tmp_path / "room.npy"), "--out", str(tmp_path / "c.npz")]) == 2
    assert "give one of them" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "d.npz")]) == 0  # nothing gives the floor: the user is told
    assert "no point cloud, --floor-z or --stature" in capsys.readouterr().out


def test_the_default_is_the_distilled_student_and_other_step_counts_run_its_teacher(tiny_checkpoint, tmp_path, capsys):
    """Without --checkpoint: the shipped student in its own steps, deterministic; any other --steps: the shipped
    prior it was distilled from. A distilled --checkpoint refuses step counts it was not trained for."""
    from egoallo.assets import DEFAULT_CHECKPOINT, STUDENT_CHECKPOINT
    from egoallo.prior.checkpoint import checkpoint_and_sampling
    from egoallo.prior.checkpoint import load_denoiser, read_sampling, save_project_checkpoint

    student = read_sampling(STUDENT_CHECKPOINT)
    assert student.steps and student.eta == 0.0
    own = student.steps[0]
    assert checkpoint_and_sampling(None, None) == (STUDENT_CHECKPOINT, own, 0.0)
    assert checkpoint_and_sampling(None, own) == (STUDENT_CHECKPOINT, own, 0.0)
    assert checkpoint_and_sampling(None, 30) == (DEFAULT_CHECKPOINT, 30, 0.8)
    assert checkpoint_and_sampling(tiny_checkpoint, None) == (tiny_checkpoint, 30, 0.8)
    out = tmp_path / "result.npz"
    assert main(["infer", "--example", "--out", str(out), "--threads", "1"]) == 0
    sampling = InferenceResult.load(out).metadata["sampling"]
    assert (sampling["num_steps"], sampling["eta"]) == (own, 0.0)
    assert InferenceResult.load(out).metadata["checkpoint"] == str(STUDENT_CHECKPOINT)

    distilled = tmp_path / "distilled"
    save_project_checkpoint(distilled, load_denoiser(tiny_checkpoint)[1], sampling={"steps": [4], "eta": 0.0})
    capsys.readouterr()
    assert main(["infer", "--example", "--out", str(out), "--force", "--checkpoint", str(distilled), "--steps", "30"]) == 2
    err = capsys.readouterr().err
    assert "distilled: a distilled checkpoint, sampled in 4 steps only; got --steps 30" in err and "Traceback" not in err
    assert main(["infer", "--example", "--out", str(out), "--force", "--steps", "0"]) == 2
    assert "--steps 0: expected a number at least 1" in capsys.readouterr().err
