"""Head trajectory -> body motion: conditioning, diffusion sampling, placement in the world.

    trajectory = read_trajectory("closed_loop_trajectory.csv").resample(30.0)
    result = estimate_body_motion(trajectory, denoiser, body_model, floor_z=...)
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from .body import BodyModel
from .body.plausibility import plausibility
from .body.stature import fit_stature
from .consensus import (
    SPREAD_SCALE, STATED_LEVEL, ConsensusKind, bones_state, joint_spread, mean_state, medoid_index, sample_state,
)
from .geometry import se3
from .guidance import GuidanceWeights
from .observations import Observations
from .guidance.segments import SEGMENT_FRAMES, guide_in_segments
from .inputs.trajectory import HeadTrajectory
from .prior.conditioning import compute_conditioning
from .prior.diffusion import DEFAULT_ETA, DEFAULT_STEPS, Known, ddim_sample
from .prior.network import EgoDenoiser
from .prior.state import NUM_BETAS, MotionState
from .progress import progress_bar
from .result import InferenceResult


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
    num_samples: int = 1
    num_steps: int = DEFAULT_STEPS
    eta: float = DEFAULT_ETA
    window: int = 128
    overlap: int = 32
    seed: int = 0
    device: str = "cpu"
    guidance: frozenset[str] = frozenset()
    """Guidance modes (subset of {"feet", "wrist3d", "hands"}); empty: none."""
    guidance_inner: bool = False
    """Also guide inside every denoising step (as well as after sampling)."""
    post_iterations: int = 10
    """Levenberg-Marquardt iterations after sampling (10 did as well as 20 on validation and test:
    docs/performance.md, "Guidance iterations")."""
    inner_iterations: int = 5
    guidance_segment: int = SEGMENT_FRAMES
    """Longer sequences are guided in overlapping segments of this many frames (bounded memory)."""
    guidance_weights: GuidanceWeights = dataclasses.field(default_factory=GuidanceWeights)
    stature_m: float | None = None
    """The wearer's stature, when given (`--stature`): every sample is the motion the prior gives the mean body,
    performed by the body of that stature (`StatureScaling`)."""
    consensus: ConsensusKind = "bones"
    """With two or more samples, the consensus body the result holds besides them (`egoallo.consensus`)."""
    guided: GuidedBodies = "consensus"
    """With two or more samples and guidance, which bodies are guided (see `GuidedBodies`)."""


GuidedBodies = Literal["consensus", "samples", "both"]
"""With two or more samples: guide the consensus only (the samples stay as sampled; one guidance solve),
every sample (the consensus is formed from the guided samples), or both (the samples, then their consensus)."""


@dataclasses.dataclass(frozen=True)
class StatureScaling:
    """How the prior samples a wearer of known stature (`--stature`): the motion of the mean body (β = 0, the
    centre of the shape augmentation's draws) for the head's trajectory scaled about the floor by `scale` (the
    mean body's standing eye height over the wearer's), then performed by the wearer's body `betas`, whose
    head lies on the real trajectory (Eq. 5). A wearer far taller or shorter than the bodies the prior was
    trained on (the built clips' 1.56-1.57 m, the shape augmentation's 1.55-1.76 m) so looks like them; on the
    stature spread this did better than sampling the wearer's own shape (docs/everyday.md, "The wearer's own
    height")."""

    betas: Tensor
    """(16,) the wearer's body: the mean body changed as little as possible to stand that tall (`fit_stature`)."""
    scale: float
    """Mean body's standing eye height / the wearer's."""

    @staticmethod
    def of(body: BodyModel, stature_m: float) -> StatureScaling:
        """The scaling for a wearer `stature_m` tall."""
        betas = fit_stature(body, torch.zeros(NUM_BETAS), stature_m)
        return StatureScaling(betas, standing_eye_height(body) / standing_eye_height(body, betas))

    def scaled(self, above_floor: Tensor) -> Tensor:
        """Head poses `(..., 4, 4)` in a world whose floor is z = 0, with their positions scaled about it."""
        out = above_floor.clone()
        out[..., :3, 3] *= self.scale
        return out

    sampled_betas = torch.zeros(NUM_BETAS)
    """(16,) the shape the prior samples: the mean body's."""

    def known(self, d_state: int) -> Known:
        """`sampled_betas` as an inpainting constraint on every sample and frame of a packed `(S, T, d_state)`
        state: every sample is the motion of the mean body."""
        values = torch.zeros(1, 1, d_state)
        values[..., :NUM_BETAS] = self.sampled_betas
        mask = torch.zeros(1, 1, d_state, dtype=torch.bool)
        mask[..., :NUM_BETAS] = True
        return Known(values, mask)

    def performed(self, state: MotionState) -> MotionState:
        """`state` with every sample's and frame's shape the wearer's."""
        return dataclasses.replace(state, betas=self.betas.to(state.betas).expand_as(state.betas).clone())


def standing_eye_height(body: BodyModel, betas: np.ndarray | Tensor | None = None) -> float:
    """Height of the CPF above the soles of the body `betas (B',)` (default: the mean body, β = 0) standing at rest."""
    betas = torch.zeros(body.num_betas) if betas is None else torch.as_tensor(betas)[: body.num_betas].float()
    return float(body.with_shape(betas).eye_height)


PLACEMENT_CHUNK = 8192
"""Frames posed at once by `place_in_world`, and moved to the input's world at once (bounds memory on long sequences)."""


def place_in_world(body: BodyModel, state: MotionState, T_world_cpf: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Eq. 5: `T_world_root = T_world_cpf · T_root_cpf(Θ, β)^-1` for every sample and frame.

    Args:
        state: sampled x0 with `(S, T, ...)` leading dims; β is averaged over time.
        T_world_cpf: (T, 4, 4)
    Returns:
        betas (S, B), T_world_root (S, T, 4, 4), the posed body's `joints_world (S, T, 52, 3)`.
    """
    betas = state.betas.mean(dim=1)
    shaped = body.with_shape(betas[:, None, :])
    roots, joints = [], []
    for start in range(0, T_world_cpf.shape[0], PLACEMENT_CHUNK):
        frames = slice(start, start + PLACEMENT_CHUNK)
        local = state.local_rotations[:, frames]
        at_root = shaped.with_pose(se3.identity((), dtype=local.dtype), local)
        T_world_root = T_world_cpf[None, frames].to(local.dtype) @ se3.inverse(at_root.T_world_cpf)
        roots.append(T_world_root)
        joints.append(shaped.with_pose(T_world_root, local).joints_world.clone())  # not a view of all 4×4 poses
    return betas, torch.cat(roots, dim=1), torch.cat(joints, dim=1)


def guidance_dtype(modes: frozenset[str]) -> torch.dtype:
    """float32 for foot guidance (same result within 0.02 mm as float64, docs/performance.md); else float64."""
    return torch.float32 if modes <= {"feet"} else torch.float64


@torch.no_grad()
def estimate_body_motion(
    trajectory: HeadTrajectory,
    denoiser: EgoDenoiser,
    body: BodyModel,
    *,
    floor_z: float,
    config: SamplingConfig = SamplingConfig(),
    observations: Observations | None = None,
    fps: float = 30.0,
    metadata: dict | None = None,
    progress: bool = False,
) -> InferenceResult:
    """Sample body motion for a (resampled, z-up) head trajectory, then guide it.

    The output has one frame per trajectory pose; the first frame's relative
    motion is extrapolated from the second's. `observations` feed the "wrist3d"
    (z-up world) and "hands" (RGB camera) guidance modes. `progress`: a bar over the
    denoising steps on stderr (when it is a terminal).
    """
    started = time.perf_counter()
    net = denoiser.config
    device = torch.device(config.device)
    denoiser = denoiser.to(device).eval()
    T_world_cpf = torch.tensor(trajectory.T_world_cpf, dtype=torch.float64)
    above_floor = T_world_cpf.clone()
    above_floor[:, 2, 3] -= floor_z
    scaling = None if config.stature_m is None else StatureScaling.of(body, config.stature_m)
    if scaling is not None:
        above_floor = scaling.scaled(above_floor)
    # The pose before the first frame, extrapolated at constant velocity, so frame 0 has a plausible relative motion.
    before = above_floor[0] @ se3.inverse(above_floor[1]) @ above_floor[0]
    with_previous = torch.cat([before[None], above_floor], dim=0)  # (T + 1, 4, 4)

    conditioning: dict[int, Tensor] = {}  # window start frame -> (W, d_cond)

    steps = progress_bar(total=config.num_steps, enabled=progress, desc="denoising", unit="step")
    step_level = None

    lock = threading.Lock()  # the sampler may call `denoise` from several threads at once

    def denoise(x_t: Tensor, t: Tensor, frames: Tensor) -> Tensor:
        nonlocal step_level
        starts = frames[:, 0].tolist()
        with lock:
            if int(t[0]) != step_level:  # the first call of a denoising step
                step_level = int(t[0])
                steps.update()
            missing = [s for s in starts if s not in conditioning]
            if missing:
                index = torch.tensor(missing)[:, None] + torch.arange(frames.shape[1] + 1)
                for start, cond in zip(missing, compute_conditioning(with_previous[index], net.conditioning).float()):
                    conditioning[start] = cond.to(device)
            cond = torch.stack([conditioning[s] for s in starts])
        B, K, W, D = x_t.shape
        cond = cond.expand(B, -1, -1, -1)
        return denoiser(x_t.flatten(0, 1), t.repeat_interleave(K), cond.flatten(0, 1)).unflatten(0, (B, K))

    guidance_log: dict = {}

    def guided(state: MotionState, iterations: int, phase: str) -> MotionState:
        refined, logs = guide_in_segments(
            body, state, T_world_cpf, mode=config.guidance, observations=observations, iterations=iterations,
            weights=config.guidance_weights, floor_z=floor_z, dtype=guidance_dtype(config.guidance),
            segment=config.guidance_segment,
        )
        entry = guidance_log.setdefault(phase, {"calls": 0, "time_s": 0.0, "iterations": 0, "fell_back": 0})
        entry["calls"] += 1
        entry["time_s"] += sum(log.time_s for log in logs)
        entry["iterations"] += max(log.solver.iterations for log in logs)
        entry["fell_back"] += sum(int(log.fell_back.sum()) for log in logs)
        entry["ignored_observations"] = sum(log.ignored_observations for log in logs)
        entry["counts"] = {k: sum(log.counts.get(k, 0) for log in logs) for k in logs[0].counts}
        return refined

    known = None if scaling is None else scaling.known(net.d_state)

    def inner(level: int, x0: Tensor) -> Tensor:
        state = MotionState.unpack(x0.cpu().double(), net.include_hands)
        if scaling is not None:  # guided as the wearer's body in the real world; the next step restores β = 0
            state = scaling.performed(state)
        refined = guided(state, config.inner_iterations, "inner")
        if not net.include_hands:  # "hands" guidance adds finger rotations the network does not denoise
            refined = dataclasses.replace(refined, hand_rotations=None)
        return refined.pack().to(x0)

    generator = torch.Generator(device=device).manual_seed(config.seed)
    T = T_world_cpf.shape[0]
    x0 = ddim_sample(
        denoise,
        (config.num_samples, T, net.d_state),
        include_hands=net.include_hands,
        num_steps=config.num_steps,
        eta=config.eta,
        window=config.window,
        overlap=config.overlap,
        generator=generator,
        device=device,
        on_step=inner if config.guidance and config.guidance_inner else None,
        known=known,
    ).cpu()
    steps.close()
    sampled_s = time.perf_counter() - started
    state = MotionState.unpack(x0, net.include_hands)  # the sampler's x0 is projected onto SO(3)
    if scaling is not None:
        state = scaling.performed(state)
    several = config.num_samples >= 2
    if config.guidance and (not several or config.guided != "consensus"):
        state = guided(state, config.post_iterations, "post")
    betas, T_world_root, joints = place_in_world(body, state, T_world_cpf.float())
    shaped = body.with_shape(betas)
    T_input_zup = trajectory.T_input_world
    consensus: dict[str, np.ndarray] = {}
    if several:
        if config.consensus == "mean":
            agreed = mean_state(state)
        elif config.consensus == "bones":
            agreed = bones_state(state, T_world_root[..., :3, :3].double())
        else:
            agreed = sample_state(state, medoid_index(joints))
        if config.guidance and config.guided != "samples":
            agreed = guided(agreed, config.post_iterations, "consensus")
        betas_c, T_world_root_c, joints_c = place_in_world(body, agreed, T_world_cpf.float())
        joints_c = in_input_frame(joints_c.numpy(), T_input_zup)[0]
        consensus = {
            "joints_world_consensus": joints_c,
            "T_world_root_consensus": (T_input_zup @ T_world_root_c[0].double().numpy()).astype(np.float32),
            "local_rotations_consensus": with_fingers(agreed.local_rotations.float().numpy())[0],
            "betas_consensus": betas_c[0].numpy().astype(np.float32),
        }
    joints_input = in_input_frame(joints.numpy(), T_input_zup)
    if several:
        consensus["joint_spread_m"] = joint_spread(joints_input, consensus["joints_world_consensus"].astype(np.float64))
    return InferenceResult(
        timestamps_ns=trajectory.timestamps_ns.astype(np.int64),
        T_world_cpf=T_input_zup @ trajectory.T_world_cpf,
        joints_world=joints_input,
        T_world_root=(T_input_zup @ T_world_root.double().numpy()).astype(np.float32),
        local_rotations=with_fingers(state.local_rotations.float().numpy()),
        betas=betas.numpy().astype(np.float32, copy=False),
        contacts=state.contacts.numpy().astype(np.float32, copy=False),
        stature_m=shaped.stature.numpy().astype(np.float32),
        floor_z=float(floor_z),
        T_input_zup=T_input_zup,
        fps=fps,
        **consensus,
        metadata={
            **(metadata or {}),
            "sampling": {**dataclasses.asdict(config), "guidance": sorted(config.guidance)},
            "guidance": guidance_log,
            "network": dataclasses.asdict(net),
            "body_model": body.name,
            "plausibility": plausibility(
                joints, float(floor_z), shaped.rest_joint_heights.double().numpy(), fps
            ).to_json(),
            "timing_s": {"sampling": sampled_s, "total": time.perf_counter() - started},
            **({"consensus": consensus_record(config)} if several else {}),
        },
    )


def consensus_record(config: SamplingConfig) -> dict:
    """`metadata["consensus"]`: which consensus, which bodies were guided, the spread's stated level and scale."""
    return {"kind": config.consensus, "guided": config.guided if config.guidance else "none",
            "stated_level": STATED_LEVEL, "spread_scale": SPREAD_SCALE}


def in_input_frame(joints: np.ndarray, T_input_zup: np.ndarray) -> np.ndarray:
    """`joints (S, T, J, 3)` of the z-up world moved to the input's world, as float32 computed in float64 a chunk of
    frames at a time."""
    R, p = T_input_zup[:3, :3], T_input_zup[:3, 3]
    out = np.empty(joints.shape, dtype=np.float32)
    for start in range(0, joints.shape[1], PLACEMENT_CHUNK):
        chunk = slice(start, start + PLACEMENT_CHUNK)
        out[:, chunk] = joints[:, chunk].astype(np.float64) @ R.T + p
    return out


def with_fingers(local: np.ndarray) -> np.ndarray:
    """Local rotations `(S, T, 21 | 51, 3, 3)` as float32 `(S, T, 51, 3, 3)`: fingers at rest when not modelled."""
    if local.shape[-3] == 21:
        fingers = np.broadcast_to(np.eye(3, dtype=np.float32), (*local.shape[:2], 30, 3, 3))
        local = np.concatenate([local, fingers], axis=-3)
    return local.astype(np.float32, copy=False)
