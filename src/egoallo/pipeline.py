"""Files in, one result out: what `egoallo infer` runs on a recording, as a library call.

`InferOptions` holds everything `egoallo infer` takes besides the trajectory and the output path, and checks
the combinations a user can get wrong (one `UserError` line each). `estimate_file` reads the trajectory and
its companions (point cloud, calibration, wrist and palm tracking, hand detections or a `.vrs`), places the
floor, estimates every segment (`recording.estimate_recording`) and returns the result with the lines a user
should read; `written_lines` says what was written. A notebook, `egoallo infer` and a corpus run all call
these two, so the same flags give the same `result.npz`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from .errors import UserError
from .files import require_file

if TYPE_CHECKING:
    from .body import BodyModel
    from .prior.network import EgoDenoiser
    from .result import InferenceResult

GUIDANCE_MODES = ("feet", "wrist3d", "hands")
FPS = 30.0
"""The prior's frame rate: every trajectory is resampled to it."""


@dataclasses.dataclass(frozen=True)
class InferOptions:
    """The options of one estimate, as `egoallo infer` names them (see its `--help` for each)."""

    checkpoint: Path | None = None
    points: Path | None = None
    floor_z: float | None = None
    calibration: Path | None = None
    device_is_cpf: bool = False
    up: str | None = None
    guidance: frozenset[str] = frozenset()
    """Guidance terms after sampling: a subset of `GUIDANCE_MODES` (empty: none)."""
    guidance_inner: bool = False
    wrist_palm: Path | None = None
    hands: Path | None = None
    vrs: Path | None = None
    samples: int = 1
    consensus: Literal["mean", "bones", "medoid"] = "bones"
    """With two or more samples, their consensus body (`egoallo.consensus`)."""
    guided: Literal["consensus", "samples", "both"] = "consensus"
    """With two or more samples and guidance: which bodies are guided (`inference.GuidedBodies`)."""
    steps: int | None = None
    seed: int = 0
    device: Literal["cpu", "cuda"] = "cpu"
    threads: int | None = None
    body_model: Path | None = None
    stature_m: float | None = None
    """The wearer's height (`--stature`): the body's shape is fitted to it and, without `points` or `floor_z`,
    the floor is placed under the head by that body's standing eye height."""

    def __post_init__(self) -> None:
        if self.stature_m is not None:
            from .inputs.stature import check_stature

            object.__setattr__(self, "stature_m", check_stature(self.stature_m))  # a number, whatever was given
        unknown = set(self.guidance) - set(GUIDANCE_MODES)
        if unknown:
            raise UserError(f"unknown guidance {sorted(unknown)}; expected some of {list(GUIDANCE_MODES)}.")
        if self.samples < 1:
            raise UserError("--samples must be at least 1.")
        if ("wrist3d" in self.guidance) != (self.wrist_palm is not None):
            raise UserError("--guidance wrist3d and --wrist-palm FILE go together.")
        if self.floor_z is not None and self.points is not None:
            raise UserError("--floor-z gives the floor and --points estimates it; give one of them.")
        if self.vrs is not None and self.hands is not None:
            raise UserError("--vrs detects the hands itself; give --vrs or --hands, not both.")
        if self.vrs is not None and self.vrs.suffix.lower() != ".vrs":
            raise UserError(
                f"{self.vrs}: --vrs expects an Aria .vrs recording (for a video: egoallo hands detect, then --hands)."
            )
        if ("hands" in self.guidance) != (self.hands is not None) and self.vrs is None:
            raise UserError("--guidance hands and --hands FILE go together (or give --vrs RECORDING).")

    @property
    def modes(self) -> frozenset[str]:
        """The guidance terms that run: `guidance`, and the hands with `vrs`."""
        return frozenset(self.guidance) | ({"hands"} if self.vrs is not None else set())

    def require_files(self) -> None:
        """A `UserError` naming the first companion file that does not exist."""
        for path, expected in (
            (self.points, "a point cloud"),
            (self.calibration, "an Aria .vrs or calibration .json/.jsonl"),
            (self.wrist_palm, "an Aria wrist_and_palm_poses.csv"),
            (self.hands, "a hands .npz"),
            (self.vrs, "an Aria .vrs recording"),
            (self.body_model, "a body model .npz"),
        ):
            if path is not None:
                require_file(path, expected)


def load_models(
    threads: int | None, work: int, body_model: Path | None, checkpoint: Path | None, say: Callable[[str], None] = print
) -> tuple[BodyModel, EgoDenoiser, Path]:
    """Set torch's thread count for `work` (frames × samples; see `egoallo.threads`), saying any warning, and
    load the body model and the denoiser. Returns `(body, denoiser, checkpoint directory)`."""
    import torch

    from .assets import DEFAULT_CHECKPOINT
    from .body import BodyModel
    from .prior.checkpoint import load_denoiser
    from .threads import choose_threads, cores_here

    count, warning = choose_threads(threads, cores_here(), work)
    if warning:
        say(f"warning: {warning}")
    torch.set_num_threads(count)
    checkpoint = checkpoint or DEFAULT_CHECKPOINT
    return BodyModel.load_from_env_or_default(body_model), load_denoiser(checkpoint)[1], checkpoint


@dataclasses.dataclass(frozen=True)
class FileEstimate:
    """An estimate of one trajectory file, and what a user should read after it is written."""

    result: InferenceResult
    segments: int
    """How many segments the trajectory was estimated in."""
    notes: tuple[str, ...]
    """Closing lines (`note: ...`): how the floor was placed, input repairs."""


def estimate_file(
    trajectory: Path, options: InferOptions, *, say: Callable[[str], None] = print, progress: bool = True
) -> FileEstimate:
    """Estimate the body motion of the head trajectory in `trajectory` (Aria MPS CSV, TUM text or `.npz`).

    Everything a user should know on the way (warnings about the input, the floor, hand detection) is passed
    to `say` as it happens, one line each. Bad input raises a `UserError` before the model runs.
    """
    require_file(trajectory, "a head trajectory (Aria MPS .csv, TUM .txt or .npz)")
    options.require_files()
    modes = options.modes

    # Imported only now: a mistyped flag or file is reported without waiting for torch.
    import torch

    from .body.stature import stature_eye_height
    from .inference import SamplingConfig, standing_eye_height
    from .inputs.head_checks import head_warnings
    from .inputs.points import read_points
    from .inputs.trajectory import read_trajectory_segments
    from .prior.checkpoint import checkpoint_and_sampling
    from .recording import estimate_recording, main_frame, segment_floors
    from .resources import MemoryNeed, available_memory, check_memory
    from .run_summary import floor_note

    if options.device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for, but no CUDA device is available.")
    checkpoint, steps, eta = checkpoint_and_sampling(options.checkpoint, options.steps)
    read = read_trajectory_segments(
        trajectory, calibration=options.calibration, device_is_cpf=options.device_is_cpf, up=options.up
    )
    lengths = tuple(int(s.duration_s * FPS) + 1 for s in read)
    need = MemoryNeed(lengths, options.samples, min(max(lengths), SamplingConfig.guidance_segment) if modes else 0)
    check_memory(need, str(trajectory), available_memory())
    segments = [segment.resample(FPS) for segment in read]  # refuses fewer than 2 frames
    head = max(segments, key=len)  # the thread count and the metadata come from the longest segment
    body, denoiser, checkpoint = load_models(
        options.threads, len(head) * options.samples, options.body_model, checkpoint, say
    )
    if (checkpoint / "model_config.yaml").exists() or (checkpoint.parent / "model_config.yaml").exists():
        if body.posedirs is None:
            say("warning: official EgoAllo checkpoints predict SMPL-H shapes; pass the SMPL-H model with --body-model.")

    cloud = read_points(options.points) if options.points is not None else None
    stature = options.stature_m
    eye_height = standing_eye_height(body) if stature is None else stature_eye_height(body, stature)
    try:
        floors, floor_notes = segment_floors(
            segments, fps=FPS, eye_height=eye_height, floor_z=options.floor_z, cloud=cloud,
            stature_known=stature is not None,
        )
    except ValueError as e:
        raise UserError(str(e)) from None
    for note in floor_notes:
        say(f"warning: {note}")
    floor = next(f for f, s in zip(floors, segments) if s.world_frame == main_frame(segments))
    stature_record, stature_warnings, notes = None, [], []
    if stature is not None:
        source = "--floor-z" if floor.method == "given" else str(options.points)
        main_heads = [s for s in segments if s.world_frame == main_frame(segments)]
        stature_record, stature_warnings, notes = _stature_against_floor(main_heads, floor, stature, eye_height, source)
    warnings = head.metadata["warnings"] + head_warnings(segments, [f.z for f in floors], FPS) + stature_warnings
    for warning in warnings:
        say(f"warning: {trajectory}: {warning}")
    observe = _observer(options, head, say)

    config = SamplingConfig(
        num_samples=options.samples,
        num_steps=steps,
        eta=eta,
        seed=options.seed,
        device=options.device,
        guidance=modes,
        guidance_inner=options.guidance_inner,
        stature_m=stature,
        consensus=options.consensus,
        guided=options.guided,
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
            "stature": stature_record,
            "warnings": warnings,
        },
        progress=progress,
    )
    if line := floor_note(floor.method, eye_height, options.points):
        notes.append(f"note: {line}")
    if repairs := head.metadata.get("repairs"):
        notes.append(f"note: input repairs: {repairs}")
    return FileEstimate(result=result, segments=len(segments), notes=tuple(notes))


def _stature_against_floor(
    segments: list, floor, stature_m: float, eye_height: float, source: str
) -> tuple[dict, list[str], list[str]]:
    """The result's `metadata["stature"]`, and the warnings and closing notes on how the head over a floor from the
    scene (`floor.method` not "stature"; `source` names it) agrees with a wearer `stature_m` tall (`segments`: the
    floor's world frame)."""
    from .inputs.stature import STATURE_METHOD, check_stature_against_floor

    record = {"given_m": stature_m, "eye_height_m": eye_height, "method": STATURE_METHOD}
    if floor.method == "stature":
        return record, [], []
    check = check_stature_against_floor([s.T_world_cpf[:, :3, 3] for s in segments], FPS, floor.z, stature_m, eye_height)
    record |= {"implied_floor_z": check.implied_floor_z, "head_standing_height_m": check.standing_height_m}
    if warning := check.warning(source):
        return record, [warning], []
    note = check.note(source)
    return record, [], [f"note: {note}"] if note else []


def _observer(options: InferOptions, head, say: Callable[[str], None]):
    """The `Observe` callback of `recording.estimate_recording` for `options`' wrist, palm and hand files."""
    import numpy as np

    from .observations import Observations

    track = camera = T_device_cpf = None
    if options.wrist_palm is not None:
        from .inputs.wrist_palm import read_wrist_palm

        T_device_cpf = np.asarray(head.metadata["T_pose_cpf"], dtype=np.float64)
        track = read_wrist_palm(options.wrist_palm)
    if options.hands is not None:
        from .inputs.calibration import load_rgb_camera

        camera = load_rgb_camera(options.calibration) if options.calibration is not None else None

    def observe(segment):
        """The guidance observations of one (re-centred) segment, and what they were."""
        wrist3d, hand_observations, observed = None, None, {"wrist_palm": None, "hands": None}
        if track is not None:
            from .inputs.wrist_palm import to_world_observations

            wrist3d, observed["wrist_palm"] = to_world_observations(track, segment, T_device_cpf)
            for warning in observed["wrist_palm"].get("warnings", []):
                say(f"warning: {options.wrist_palm}: {warning}")
        if options.hands is not None:
            from .inputs.hands import load_hand_observations

            hand_observations, observed["hands"] = load_hand_observations(options.hands, segment, camera)
            for warning in observed["hands"]["warnings"]:
                say(f"warning: {options.hands}: {warning}")
        if options.vrs is not None:
            from .hands import summarize
            from .hands.observations import detected_hand_observations

            hand_observations, observed["hands"], run = detected_hand_observations(options.vrs, segment)
            say(f"{options.vrs}: " + (f"reused cached detections {run.cache_file}" if run.cache_hit else summarize(run.detections)))
            for warning in observed["hands"]["warnings"]:
                say(f"warning: {options.vrs}: {warning}")
        return Observations(wrist3d=wrist3d, hands=hand_observations), observed

    return observe


def written_lines(estimate: FileEstimate, out: Path) -> list[str]:
    """What `egoallo infer` prints once `estimate.result` is written to `out`: what was written, on how many frames
    each guidance term acted, a warning when a plausibility figure is out of range, the notes, what to do next."""
    from .run_summary import guidance_reach, next_steps, plausibility_warning

    result = estimate.result
    frames = len(result.timestamps_ns)
    seconds = frames / FPS
    compute = result.metadata["timing_s"]["total"]
    covered = result.metadata["coverage"]
    floor = result.metadata["floor"]
    pieces = "" if estimate.segments == 1 else (
        f" in {estimate.segments} segments ({covered['frames_estimated']} of the {covered['frames_tracked']} tracked "
        f"frames; gaps marked in the metadata)"
    )
    wrote = (
        f"wrote {out}: {result.num_samples} sample(s) x {frames} frames ({seconds:.1f} s of motion){pieces} "
        f"in {compute:.1f} s ({seconds / compute:.1f}x real time); floor z = {floor['z']:.3f} m ({floor['method']}); "
        f"stature {', '.join(f'{s:.2f}' for s in result.stature_m)} m"
    )
    lines = [wrote]
    modes = result.metadata["sampling"]["guidance"]
    if reach := guidance_reach(result.metadata, modes, result.contacts, frames):
        lines.append(reach)
    if warning := plausibility_warning(result.metadata["plausibility"]):
        lines.append(f"warning: {warning}")
    return [*lines, *estimate.notes, next_steps(out)]
