"""`egoallo infer`: body motion from a head trajectory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import tyro

from ..assets import EXAMPLE_TRAJECTORY
from ..errors import UserError
from ..files import check_output, require_file
from .checks import check_range, check_seed, threads_and_models

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
    steps: int | None = None,
    seed: int = 0,
    device: Literal["cpu", "cuda"] = "cpu",
    threads: int | None = None,
    body_model: Path | None = None,
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
        samples: Number of motion samples.
        steps: Denoising steps; default: the checkpoint's own (the shipped distilled student's 4; 30 for a prior trained on data). Without --checkpoint, a count the student was not distilled for runs the shipped prior it was distilled from.
        seed: Random seed.
        device: Torch device for the network.
        threads: CPU threads; default: 1 for short inputs, else the cores this process may use (affinity, cgroup quota).
        body_model: Body model .npz (official SMPL-H model.npz or this project's); default: $EGOALLO_SMPLH_MODEL or the shipped open model.
    """
    if example == (trajectory is not None):
        raise UserError("give a trajectory file or --example (exactly one).")
    if example:
        trajectory, device_is_cpf = EXAMPLE_TRAJECTORY, True
        if out is None:
            out, force = EXAMPLE_OUT, True
    out = check_output(out or Path("result.npz"), (".npz",), force=force)
    if samples < 1:
        raise UserError("--samples must be at least 1.")
    if steps is not None:
        check_range("--steps", steps, 1)
    check_seed(seed)
    modes = frozenset(guidance) - {"off"}
    if "off" in guidance and modes:
        raise UserError(f"--guidance off cannot be combined with {sorted(modes)}.")
    if ("wrist3d" in modes) != (wrist_palm is not None):
        raise UserError("--guidance wrist3d and --wrist-palm FILE go together.")
    if floor_z is not None and points is not None:
        raise UserError("--floor-z gives the floor and --points estimates it; give one of them.")
    if vrs is not None and hands is not None:
        raise UserError("--vrs detects the hands itself; give --vrs or --hands, not both.")
    if vrs is not None and vrs.suffix.lower() != ".vrs":
        raise UserError(f"{vrs}: --vrs expects an Aria .vrs recording (for a video: egoallo hands detect, then --hands).")
    if ("hands" in modes) != (hands is not None) and vrs is None:
        raise UserError("--guidance hands and --hands FILE go together (or give --vrs RECORDING).")
    if vrs is not None:
        modes |= {"hands"}
    require_file(trajectory, "a head trajectory (Aria MPS .csv, TUM .txt or .npz)")
    for path, expected in ((points, "a point cloud"), (calibration, "an Aria .vrs or calibration .json/.jsonl"),
                           (wrist_palm, "an Aria wrist_and_palm_poses.csv"), (hands, "a hands .npz"),
                           (vrs, "an Aria .vrs recording"), (body_model, "a body model .npz")):
        if path is not None:
            require_file(path, expected)

    # Imported only now: a mistyped flag or file is reported without waiting for torch.
    import numpy as np
    import torch

    from ..assets import checkpoint_and_sampling
    from ..guidance import Observations
    from ..inference import SamplingConfig, standing_eye_height
    from ..inputs.head_checks import head_warnings
    from ..inputs.points import read_points
    from ..inputs.trajectory import read_trajectory_segments
    from ..recording import estimate_recording, main_frame, segment_floors
    from ..resources import MemoryNeed, available_memory, check_memory

    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for, but no CUDA device is available.")
    checkpoint, steps, eta = checkpoint_and_sampling(checkpoint, steps)
    read = read_trajectory_segments(trajectory, calibration=calibration, device_is_cpf=device_is_cpf, up=up)
    lengths = tuple(int(s.duration_s * 30.0) + 1 for s in read)
    need = MemoryNeed(lengths, samples, min(max(lengths), SamplingConfig.guidance_segment) if modes else 0)
    check_memory(need, str(trajectory), available_memory())
    segments = [segment.resample(30.0) for segment in read]  # refuses fewer than 2 frames
    head = max(segments, key=len)  # the thread count and the metadata come from the longest segment
    body, denoiser, checkpoint = threads_and_models(threads, len(head) * samples, body_model, checkpoint)
    if (checkpoint / "model_config.yaml").exists() or (checkpoint.parent / "model_config.yaml").exists():
        if body.posedirs is None:
            print("warning: official EgoAllo checkpoints predict SMPL-H shapes; pass the SMPL-H model with --body-model.")

    cloud = read_points(points) if points is not None else None
    eye_height = standing_eye_height(body)
    try:
        floors, notes = segment_floors(segments, fps=30.0, eye_height=eye_height, floor_z=floor_z,
                                       cloud=cloud)
    except ValueError as e:
        raise UserError(str(e)) from None
    for note in notes:
        print(f"warning: {note}")
    floor = next(f for f, s in zip(floors, segments) if s.world_frame == main_frame(segments))
    warnings = head.metadata["warnings"] + head_warnings(segments, [f.z for f in floors], 30.0)
    for warning in warnings:
        print(f"warning: {trajectory}: {warning}")
    track = None
    if wrist_palm is not None:
        from ..inputs.wrist_palm import read_wrist_palm, to_world_observations

        T_device_cpf = np.asarray(head.metadata["T_pose_cpf"], dtype=np.float64)
        track = read_wrist_palm(wrist_palm)
    camera = None
    if hands is not None:
        from ..inputs.cameras import load_aria_rgb_camera
        from ..inputs.hands import load_hand_observations

        camera = load_aria_rgb_camera(calibration) if calibration is not None else None

    def observe(segment):
        """The guidance observations of one (re-centred) segment, and what they were."""
        wrist3d, hand_observations, observed = None, None, {"wrist_palm": None, "hands": None}
        if track is not None:
            wrist3d, observed["wrist_palm"] = to_world_observations(track, segment, T_device_cpf)
            for warning in observed["wrist_palm"].get("warnings", []):
                print(f"warning: {wrist_palm}: {warning}")
        if hands is not None:
            hand_observations, observed["hands"] = load_hand_observations(hands, segment, camera)
            for warning in observed["hands"]["warnings"]:
                print(f"warning: {hands}: {warning}")
        if vrs is not None:
            from ..hands import summarize
            from ..hands.observations import detected_hand_observations

            hand_observations, observed["hands"], run = detected_hand_observations(vrs, segment)
            print(f"{vrs}: " + (f"reused cached detections {run.cache_file}" if run.cache_hit else summarize(run.detections)))
            for warning in observed["hands"]["warnings"]:
                print(f"warning: {vrs}: {warning}")
        return Observations(wrist3d=wrist3d, hands=hand_observations), observed

    config = SamplingConfig(
        num_samples=samples, num_steps=steps, eta=eta, seed=seed, device=device, guidance=modes, guidance_inner=guidance_inner
    )
    result = estimate_recording(
        segments,
        denoiser,
        body,
        floor_z=[f.z for f in floors],
        config=config,
        observe=observe,
        checkpoint=str(checkpoint),
        metadata={
            "trajectory": {"path": str(trajectory), **head.metadata},
            "checkpoint": str(checkpoint),
            "floor": {"z": floor.z, "method": floor.method},
            "warnings": warnings,
        },
        progress=True,
    )
    result.save(out, force=force)
    frames = len(result.timestamps_ns)
    seconds = frames / 30.0
    compute = result.metadata["timing_s"]["total"]
    covered = result.metadata["coverage"]
    pieces = "" if len(segments) == 1 else (
        f" in {len(segments)} segments ({covered['frames_estimated']} of the {covered['frames_tracked']} tracked "
        f"frames; gaps marked in the metadata)"
    )
    print(
        f"wrote {out}: {result.num_samples} sample(s) x {frames} frames ({seconds:.1f} s of motion){pieces} "
        f"in {compute:.1f} s ({seconds / compute:.1f}x real time); floor z = {floor.z:.3f} m ({floor.method}); "
        f"stature {', '.join(f'{s:.2f}' for s in result.stature_m)} m"
    )
    _print_summary(result, modes, floor.method, eye_height, points, out)
    if repairs := head.metadata.get("repairs"):
        print(f"note: input repairs: {repairs}")


def _print_summary(result, modes, floor_method, eye_height, points, out) -> None:  # noqa: ANN001
    """The lines after a run: guidance reach, implausible figures, the floor note, what to do next."""
    from ..run_summary import floor_note, guidance_reach, next_steps, plausibility_warning

    if line := guidance_reach(result.metadata, modes, result.contacts, len(result.timestamps_ns)):
        print(line)
    if line := plausibility_warning(result.metadata["plausibility"]):
        print(f"warning: {line}")
    if line := floor_note(floor_method, eye_height, points):
        print(f"note: {line}")
    print(next_steps(out))
