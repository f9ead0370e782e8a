"""`egoallo infer`: body motion from a head trajectory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import tyro

from ..assets import EXAMPLE_TRAJECTORY
from ..errors import UserError
from ..files import check_output
from .checks import check_range, check_seed, guidance_modes

EXAMPLE_OUT = Path("example_result.npz")
"""What `--example` writes without `--out`, replacing what an earlier `--example` run wrote there."""


def infer(
    trajectory: Annotated[Path | None, tyro.conf.Positional] = None,
    out: Path | None = None,
    example: bool = False,
    checkpoint: Path | None = None,
    points: Path | None = None,
    floor_z: float | None = None,
    calibration: Path | None = None,
    device_is_cpf: bool = False,
    up: str | None = None,
    guidance: tuple[Literal["off", "feet", "wrist3d", "hands"], ...] = ("feet",),
    guidance_inner: bool = False,
    wrist_palm: Path | None = None,
    hands: Path | None = None,
    vrs: Path | None = None,
    samples: int = 1,
    consensus: Literal["mean", "bones", "medoid"] = "bones",
    guided: Literal["consensus", "samples", "both"] = "consensus",
    steps: int | None = None,
    seed: int = 0,
    device: Literal["cpu", "cuda"] = "cpu",
    threads: int | None = None,
    body_model: Path | None = None,
    stature: Annotated[str | None, tyro.conf.arg(metavar="METRES")] = None,
    force: bool = False,
) -> None:
    """Estimate body motion from a head trajectory (Aria MPS CSV, TUM text or .npz) and write result.npz.

    Args:
        trajectory: Head trajectory file (Aria closed/open-loop CSV, TUM .txt, or .npz of 4x4 poses).
        out: Output result file (.npz; default result.npz); refuses to overwrite without --force.
        example: Run on the shipped example trajectory (no data needed); writes example_result.npz unless --out is given.
        checkpoint: Model directory (this project's, or an official EgoAllo release); default: the shipped one.
        points: SLAM point cloud for the floor (Aria global_points.csv.gz, .ply, .npy/.npz).
        floor_z: The floor's height along the up axis in the trajectory's world frame, when known (e.g. 0 for VR headsets and SLAM systems that put the floor at z = 0); instead of --points.
        calibration: Aria VRS or calibration JSON giving the device-to-CPF transform (else the Aria default) and, for --guidance hands, the RGB camera (else the camera stored in the --hands file).
        device_is_cpf: The trajectory's poses are already CPF poses (identity calibration).
        up: Up axis of a TUM/npz world without gravity information (z, y, -y, ...).
        guidance: Levenberg-Marquardt guidance after sampling: feet (no skating on predicted contacts; feet in contact on the floor), wrist3d (Aria wrist and palm tracking, --wrist-palm), hands (hand keypoints seen by the RGB camera, --hands; camera from --calibration or the file), combinable; default: feet (--guidance off: none).
        guidance_inner: Also guide inside every denoising step (slower; the paper's strongest mode).
        wrist_palm: Aria MPS wrist_and_palm_poses.csv for --guidance wrist3d.
        hands: Hand keypoint detections (.npz: timestamps_ns, keypoints_2d, confidence[, keypoints_3d_camera]) for --guidance hands.
        vrs: Aria .vrs recording: detect the hands in its RGB stream (MediaPipe, cached in ~/.cache/egoallo) and guide with them, camera from its calibration (implies --guidance hands; instead of --hands).
        samples: Number of motion samples; with two or more, the result also holds their consensus body (what render, view and export show) and each joint's spread, joint_spread_m: the true joint lies within it 90 % of the time (calibrated on validation, docs/uncertainty.md).
        consensus: With two or more samples, the consensus body: bones (the default: each body joint's world orientation averaged over the samples and projected onto SO(3), so every bone points along the samples' mean direction and keeps its length; the shape averaged, the root placed from the head), mean (each local rotation averaged instead) or medoid (the sample nearest the others).
        guided: With two or more samples and guidance, which bodies are guided: the consensus only (fastest: the samples stay as sampled), every sample (the consensus then formed from them), or both.
        steps: Denoising steps; default: the checkpoint's own (the shipped distilled student's 4; 30 for a prior trained on data). Without --checkpoint, a count the student was not distilled for runs the shipped prior it was distilled from.
        seed: Random seed.
        device: Torch device for the network.
        threads: CPU threads; default: 1 for short inputs, else the cores this process may use (affinity, cgroup quota).
        body_model: Body model .npz (official SMPL-H model.npz or this project's); default: $EGOALLO_SMPLH_MODEL or the shipped open model.
        stature: The wearer's height in metres (0.5-2.5), when known: the body's shape is fitted to it and, without --points or --floor-z, the floor is placed that body's standing eye height under the head's standing height (with them, a floor more than 5 cm from the one the stature implies is reported).
    """
    if example == (trajectory is not None):
        raise UserError("give a trajectory file or --example (exactly one).")
    if example:
        trajectory, device_is_cpf = EXAMPLE_TRAJECTORY, True
        if out is None:
            out, force = EXAMPLE_OUT, True
    out = check_output(out or Path("result.npz"), (".npz",), force=force)
    if steps is not None:
        check_range("--steps", steps, 1)
    check_seed(seed)
    modes = guidance_modes(guidance)

    from ..inputs.stature import check_stature
    from ..pipeline import InferOptions, estimate_file, written_lines

    options = InferOptions(
        checkpoint=checkpoint, points=points, floor_z=floor_z, calibration=calibration, device_is_cpf=device_is_cpf,
        up=up, guidance=modes, guidance_inner=guidance_inner, wrist_palm=wrist_palm, hands=hands, vrs=vrs,
        samples=samples, consensus=consensus, guided=guided, steps=steps, seed=seed, device=device, threads=threads, body_model=body_model,
        stature_m=None if stature is None else check_stature(stature),
    )
    estimate = estimate_file(trajectory, options)
    estimate.result.save(out, force=force)
    for line in written_lines(estimate, out):
        print(line)
