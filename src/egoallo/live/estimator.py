"""Online body estimation: head poses in one at a time, the body of each frame out at a fixed delay.

    estimator = LiveEstimator(denoiser, body, T_input_zup=np.eye(4))
    for timestamp_ns, T_world_cpf in poses:           # the input's world, any rate
        for frame in estimator.push(timestamp_ns, T_world_cpf):
            show(frame.joints_world)                  # (52, 3), the input's world
    remaining = estimator.finish()                    # the stream ended

Poses become frames at `fps` (`stream.FrameClock`). Every `hop` frames the prior is
sampled on a sliding window of the newest `window` frames: the frames already
emitted, and the body shape, are fixed in it (inpainting, `prior.diffusion.Known`),
so the new frames continue the old ones and the output never jumps back; only the
newest frames are sampled. Foot guidance then refines only the new frames, with the
`guidance_context` frames before them held fixed so feet keep standing across hops.
The newest `lookahead` frames are sampled but not emitted (they are sampled again,
with more of the future, at the next hop). A frame is emitted when the pose
`delay_frames` frames after it arrives: one body per frame, a constant delay.
Each segment (the stream breaks at gaps and SLAM resets) starts with `warmup`
frames sampled together, which also fix the body shape (and, unless given, the
floor) for the whole stream. Time and memory per frame are bounded: nothing grows
with the stream's length.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..body import BodyModel
from ..geometry import so3
from ..guidance import build_problem, levenberg_marquardt
from ..guidance.solver import Residual, ResidualFn
from ..inference import StatureScaling, guidance_dtype, place_in_world, standing_eye_height
from ..body.stature import stature_eye_height
from ..inputs.gait import floor_without_points
from ..inputs.points import floor_given
from ..inputs.stature import check_stature_against_floor, stature_floor
from ..inputs.trajectory import UPRIGHT_WARN
from ..prior.checkpoint import checkpoint_and_sampling, read_sampling
from ..prior.conditioning import compute_conditioning
from ..prior.diffusion import DEFAULT_ETA, DEFAULT_STEPS, Known, ddim_sample
from ..prior.network import EgoDenoiser
from ..prior.state import NUM_BETAS, MotionState
from .stream import Break, Frame, FrameClock, StreamLimits

log = logging.getLogger(__name__)

ORIGIN_STEP_M = 1.0
"""Each hop works in a frame re-centred on its newest head position, rounded to this (float32 precision)."""


@dataclasses.dataclass(frozen=True)
class LiveConfig:
    """Window and step settings (docs/live.md)."""

    window: int = 32
    """Frames the prior sees per hop: emitted ones (fixed) and new ones (sampled)."""
    hop: int = 4
    """New frames emitted per hop."""
    lookahead: int = 0
    """Newest frames sampled but emitted only at the next hop (more future context, more delay)."""
    warmup: int = 30
    """Frames of a segment sampled together before its first emission (the body shape comes from the first)."""
    num_steps: int = 4
    warmup_steps: int = DEFAULT_STEPS
    """Denoising steps of a segment's warm-up, as offline (once per segment: it sets the body shape)."""
    eta: float = DEFAULT_ETA
    warmup_eta: float = DEFAULT_ETA
    """DDIM stochasticity of the warm-up (0 for a distilled student)."""
    guidance: bool = True
    """Foot guidance on the new frames."""
    guidance_iterations: int = 1
    guidance_context: int = 2
    """Emitted frames before the new ones held fixed in the guidance problem (continuity of feet)."""
    seam: int = 8
    """Frames over which the new frames' rotations are eased onto the emitted ones (see `seam_corrected`)."""
    seed: int = 0
    limits: StreamLimits = dataclasses.field(default_factory=StreamLimits)

    def __post_init__(self) -> None:
        if min(self.hop, self.num_steps, self.warmup_steps) < 1 or min(self.lookahead, self.guidance_iterations) < 0:
            raise ValueError("hop, num_steps and warmup_steps must be >= 1; lookahead and guidance_iterations >= 0.")
        if not self.hop + self.lookahead < self.window:
            raise ValueError(f"hop + lookahead ({self.hop + self.lookahead}) must be below window ({self.window}).")
        if not self.hop + self.lookahead <= self.warmup <= self.window:
            raise ValueError(f"warmup ({self.warmup}) must lie between hop + lookahead and window ({self.window}).")

    @property
    def delay_frames(self) -> int:
        """Frames between a pose's frame and the emission of its body."""
        return self.hop - 1 + self.lookahead

    @property
    def fps(self) -> float:
        return self.limits.fps


def live_sampling(checkpoint: Path | None = None, steps: int | None = None, warmup_steps: int | None = None
                  ) -> tuple[tuple[Path, int, float], tuple[Path, int, float]]:
    """(checkpoint, steps, eta) of the hops and of the warm-ups, as `egoallo live` chooses them.

    As `egoallo.prior.checkpoint.checkpoint_and_sampling`, except that a prior trained on data samples its
    hops in `LiveConfig.num_steps` unless `steps` is given: its offline count (30) would fall behind.
    """
    hop_checkpoint, hop_steps, eta = checkpoint_and_sampling(checkpoint, steps)
    if steps is None and read_sampling(hop_checkpoint).steps is None:
        hop_steps = LiveConfig.num_steps
    return (hop_checkpoint, hop_steps, eta), checkpoint_and_sampling(checkpoint, warmup_steps)


@dataclasses.dataclass(frozen=True)
class LiveFrame:
    """The body of one frame, in the input's world frame."""

    index: int
    """Frame number in the stream (every segment's frames, one after the other)."""
    segment: int
    timestamp_ns: int
    T_world_cpf: np.ndarray
    """(4, 4) float64 the head pose (resampled)."""
    joints_world: np.ndarray
    """(52, 3) float64"""
    T_world_root: np.ndarray
    """(4, 4) float64 pelvis pose."""
    local_rotations: np.ndarray
    """(51, 3, 3) float32 joints 1..51 relative to their parents."""
    contacts: np.ndarray
    """(21,) float32 contact probability of joints 1..21."""


@dataclasses.dataclass
class _Segment:
    """The recent past of the current segment (bounded by the window)."""

    index: int
    first_frame: int
    """Stream index of its frame 0."""
    timestamps: collections.deque = dataclasses.field(default_factory=collections.deque)
    poses: collections.deque = dataclasses.field(default_factory=collections.deque)
    """(4, 4) z-up head poses of its last `window + 1` frames."""
    states: collections.deque = dataclasses.field(default_factory=collections.deque)
    """(D,) packed x0 of its last emitted frames (at most `window`)."""
    frames: int = 0
    emitted: int = 0
    """Frames finalised (their body is fixed)."""


@dataclasses.dataclass
class LiveStats:
    """What the stream did so far."""

    hops: int = 0
    frames_emitted: int = 0
    segments: int = 0
    hop_seconds: collections.deque = dataclasses.field(default_factory=lambda: collections.deque(maxlen=1000))
    """Wall time of the most recent hops."""
    segment_log: collections.deque = dataclasses.field(default_factory=lambda: collections.deque(maxlen=10_000))
    """Per ended segment (the most recent 10,000): {"first_frame", "frames", "ended_by"}."""
    notes: int = 0


class LiveEstimator:
    """Online estimation of one sample's body; see the module docstring."""

    def __init__(
        self,
        denoiser: EgoDenoiser,
        body: BodyModel,
        *,
        T_input_zup: np.ndarray,
        floor_z: float | None = None,
        config: LiveConfig = LiveConfig(),
        warmup_denoiser: EgoDenoiser | None = None,
        stature_m: float | None = None,
    ) -> None:
        """`T_input_zup (4, 4)`: from the z-up world of the poses to the input's; `floor_z`: in the z-up world
        (None: from the first segment's warm-up, as `egoallo infer` without points); `warmup_denoiser`: samples
        the warm-ups instead of `denoiser` (a few-step distilled student, `config.warmup_steps` its step count);
        `stature_m`: the wearer's height, when known (`egoallo infer --stature`): the body of that stature
        performs the motion the prior gives the mean body (`StatureScaling`) and, without `floor_z`, the floor
        lies that body's standing eye height under the warm-up's head."""
        self.denoiser = denoiser.eval()
        self.warmup_denoiser = (warmup_denoiser or denoiser).eval()
        hop_net, warmup_net = denoiser.config, self.warmup_denoiser.config
        if (warmup_net.conditioning, warmup_net.include_hands) != (hop_net.conditioning, hop_net.include_hands):
            raise ValueError("the warm-up denoiser's conditioning or state (hands) differ from the denoiser's.")
        self.body = body
        self._guidance_body = body.to(dtype=guidance_dtype(frozenset({"feet"})))
        self.config = config
        self.T_input_zup = np.asarray(T_input_zup, dtype=np.float64)
        self._T_zup_input = np.linalg.inv(self.T_input_zup)
        self.floor_z = floor_z
        self.floor_method = "given" if floor_z is not None else None
        self.stature_m = stature_m
        self.eye_height = standing_eye_height(body) if stature_m is None else stature_eye_height(body, stature_m)
        """(m) the standing eye height the floor is placed by: the mean body's, or the stature's."""
        self.scaling = None if stature_m is None else StatureScaling.of(body, stature_m)
        """With the stature: the prior samples the mean body for the head scaled to it (`StatureScaling`)."""
        self.betas: Tensor | None = None if self.scaling is None else self.scaling.betas
        """(16,) the body shape: the stature's, else fixed by the first warm-up."""
        self.clock = FrameClock(config.limits)
        self.stats = LiveStats()
        self._generator = torch.Generator().manual_seed(config.seed)
        self._segment: _Segment | None = None
        self._next_index = 0
        self._ready: collections.deque[LiveFrame] = collections.deque()
        self._newest = -1

    @property
    def newest_frame(self) -> int:
        """Stream index of the newest frame so far (-1 before the first)."""
        return self._newest

    # --- the stream -------------------------------------------------------------------------------

    def push(self, timestamp_ns: int, T_world_cpf: np.ndarray) -> list[LiveFrame]:
        """One head pose (4, 4) in the input's world; returns the bodies now due (usually one or none)."""
        T_zup = self._T_zup_input @ np.asarray(T_world_cpf, dtype=np.float64)
        events, note = self.clock.push(int(timestamp_ns), T_zup)
        if note:
            self.stats.notes += 1
            log.info(note)
        out: list[LiveFrame] = []
        for event in events:
            if isinstance(event, Break):
                log.warning("stream break before %.3f s: %s; a new segment starts", event.timestamp_ns / 1e9, event.reason)
                out += self._end_segment(event.reason)
            else:
                self._add_frame(event)
        return out + self._due()

    def silence(self, reason: str = "source silent") -> list[LiveFrame]:
        """The source went quiet: finish the current segment now (its held-back bodies); the next pose starts a new one."""
        self.clock.restart()
        return self._end_segment(reason)

    def finish(self) -> list[LiveFrame]:
        """The stream ended: every remaining body."""
        return self.silence("end of stream")

    # --- frames and hops ---------------------------------------------------------------------------

    def _add_frame(self, frame: Frame) -> None:
        segment = self._segment
        if segment is None:
            segment = self._segment = _Segment(self.stats.segments, self._next_index)
            self.stats.segments += 1
        window = self.config.window
        segment.timestamps.append(frame.timestamp_ns)
        segment.poses.append(frame.T_world_cpf)
        while len(segment.poses) > window + 1:
            segment.poses.popleft()
            segment.timestamps.popleft()
        segment.frames += 1
        self._newest = segment.first_frame + segment.frames - 1
        self._next_index = self._newest + 1
        pending = segment.frames - segment.emitted
        due = self.config.warmup if segment.emitted == 0 else self.config.hop + self.config.lookahead
        if pending >= due:
            self._hop(segment, segment.frames - self.config.lookahead)

    def _due(self) -> list[LiveFrame]:
        """Bodies whose frame lies `delay_frames` behind the newest frame."""
        out = []
        while self._ready and self._ready[0].index <= self._newest - self.config.delay_frames:
            out.append(self._ready.popleft())
        self.stats.frames_emitted += len(out)
        return out

    def _end_segment(self, reason: str) -> list[LiveFrame]:
        """Finalise and release every frame of the current segment."""
        segment, self._segment = self._segment, None
        if segment is not None and segment.frames > segment.emitted:
            if segment.frames >= 2 or segment.emitted > 0:
                self._hop(segment, segment.frames)
            else:
                log.warning("dropped a segment of 1 frame (too short to estimate)")
                self._next_index -= 1
                self._newest = self._next_index - 1
        if segment is not None and segment.emitted:
            self.stats.segment_log.append(
                {"first_frame": segment.first_frame, "frames": segment.emitted, "ended_by": reason}
            )
        out = list(self._ready)
        self._ready.clear()
        self.stats.frames_emitted += len(out)
        return out

    def _hop(self, segment: _Segment, until: int) -> None:
        """Sample the window ending at the segment's newest frame; finalise its frames up to `until` (exclusive)."""
        started = time.perf_counter()
        config, net = self.config, self.denoiser.config
        size = min(segment.frames, config.window)
        first = segment.frames - size  # segment frame of the window's first frame
        poses = np.stack(list(segment.poses)[-size - 1 :])
        if len(poses) == size:  # no pose before the window: extrapolate one at constant velocity
            poses = np.concatenate([_pose_before(poses)[None], poses])
        if self.stats.hops == 0 and poses[1:, 2, 1].mean() < UPRIGHT_WARN:
            log.warning("the CPF's up axis (+y) points %.0f deg from world up on average: check --up and the "
                        "calibration (OpenCV camera poses, y down, are not CPF poses)",
                        np.degrees(np.arccos(np.clip(poses[1:, 2, 1].mean(), -1.0, 1.0))))
        if self.floor_z is None:
            if self.stature_m is None:
                estimate = floor_without_points(poses[1:], config.fps, self.eye_height)
            else:
                estimate = stature_floor([poses[1:, :3, 3]], config.fps, self.eye_height)
            self.floor_z, self.floor_method = estimate.z, estimate.method
        elif self.stats.hops == 0:
            try:
                floor_given(self.floor_z, poses[1:, 2, 3])
            except ValueError as error:  # a stream cannot be refused after it started: said once, clearly
                log.warning("%s The bodies stand on it anyway; restart with the right --floor-z.", error)
            if self.stature_m is not None:
                check = check_stature_against_floor(
                    [poses[1:, :3, 3]], config.fps, self.floor_z, self.stature_m, self.eye_height
                )
                if message := check.warning("--floor-z") or check.note("--floor-z"):
                    log.warning("%s", message)
        origin = np.round(poses[-1, :3, 3] / ORIGIN_STEP_M) * ORIGIN_STEP_M
        local = poses.copy()
        local[:, :3, 3] -= origin
        floor_local = self.floor_z - float(origin[2])
        above_floor = local.copy()
        above_floor[:, 2, 3] -= floor_local
        above_floor = torch.from_numpy(above_floor)
        if self.scaling is not None:
            above_floor = self.scaling.scaled(above_floor)
        cond = compute_conditioning(above_floor, net.conditioning).float()  # (size, d)
        fixed = segment.emitted - first  # emitted frames in the window
        known = self._known(segment, size, fixed, net.d_state)
        warmup = segment.emitted == 0
        denoiser = self.warmup_denoiser if warmup else self.denoiser

        def denoise(x_t: Tensor, t: Tensor, frames: Tensor) -> Tensor:
            B, K, W, _ = x_t.shape
            window_cond = cond[frames].expand(B, -1, -1, -1).flatten(0, 1)
            return denoiser(x_t.flatten(0, 1), t.repeat_interleave(K), window_cond).unflatten(0, (B, K))

        predicted: list[Tensor] = []  # the last step's x0 before the known frames replace it

        def keep_prediction(level: int, x0: Tensor) -> Tensor:
            if level == 0:
                predicted.append(x0)
            return x0

        x0 = ddim_sample(
            denoise, (1, size, net.d_state), include_hands=net.include_hands,
            num_steps=config.warmup_steps if warmup else config.num_steps,
            eta=config.warmup_eta if warmup else config.eta, window=config.window, overlap=0, generator=self._generator,
            on_step=keep_prediction, known=known,
        )
        if self.betas is None:
            self.betas = x0[0, :, :NUM_BETAS].mean(dim=0)
            x0[..., :NUM_BETAS] = self.betas
        T_world_cpf = torch.from_numpy(local[1:])  # (size, 4, 4) re-centred
        state = MotionState.unpack(x0, net.include_hands)
        if self.scaling is not None:
            state = self.scaling.performed(state)
        if fixed > 0:
            state = seam_corrected(state, MotionState.unpack(predicted[-1], net.include_hands), fixed, config.seam)
        if config.guidance and config.guidance_iterations > 0:
            state = self._guided(state, T_world_cpf, max(fixed, 0), floor_local)
        new = slice(max(fixed, 0), until - first)
        self._emit(segment, state, T_world_cpf, origin, new)
        self.stats.hops += 1
        self.stats.hop_seconds.append(time.perf_counter() - started)

    def _known(self, segment: _Segment, size: int, fixed: int, dim: int) -> Known | None:
        """The emitted frames (the window's first `fixed`) and the body shape, as inpainting constraints."""
        if fixed <= 0 and self.betas is None:
            return None
        values = torch.zeros(1, size, dim)
        mask = torch.zeros(1, size, dim, dtype=torch.bool)
        if fixed > 0:
            values[0, :fixed] = torch.stack(list(segment.states)[-fixed:])
            mask[0, :fixed] = True
        if self.betas is not None:  # with the stature the prior samples the mean body
            values[0, :, :NUM_BETAS] = self.betas if self.scaling is None else self.scaling.sampled_betas
            mask[0, :, :NUM_BETAS] = True
        return Known(values, mask)

    def _guided(self, state: MotionState, T_world_cpf: Tensor, fixed: int, floor_z: float) -> MotionState:
        """Foot guidance of the window's frames after the first `fixed`, with `guidance_context` fixed ones before."""
        start = max(fixed - self.config.guidance_context, 0)
        part = MotionState(
            state.betas[:, start:], state.body_rotations[:, start:], state.contacts[:, start:],
            None if state.hand_rotations is None else state.hand_rotations[:, start:],
        )
        dtype = self._guidance_body.v_template.dtype
        problem = build_problem(self._guidance_body, part, T_world_cpf[start:].to(dtype), mode={"feet"},
                                dtype=dtype, floor_z=floor_z)
        rotations, _ = levenberg_marquardt(
            fixed_frames(problem.residuals, fixed - start), problem.prior, self.config.guidance_iterations
        )
        if not rotations.isfinite().all():
            log.warning("guidance gave non-finite rotations; keeping the sample unguided")
            return state
        body_rotations = state.body_rotations.clone()
        body_rotations[:, start:] = rotations.to(body_rotations.dtype)
        return dataclasses.replace(state, body_rotations=body_rotations)

    def _emit(self, segment: _Segment, state: MotionState, T_world_cpf: Tensor, origin: np.ndarray, new: slice) -> None:
        """Place the frames `new` of the window, keep their state for the next hops, queue their bodies."""
        if new.stop <= new.start:
            return
        part = MotionState(
            state.betas[:, new], state.body_rotations[:, new], state.contacts[:, new],
            None if state.hand_rotations is None else state.hand_rotations[:, new],
        )
        _, T_world_root, joints = place_in_world(self.body, part, T_world_cpf[new].float())
        packed = part.pack()[0]
        R, p = self.T_input_zup[:3, :3], self.T_input_zup[:3, 3]
        joints_input = (joints[0].double().numpy() + origin) @ R.T + p
        roots = T_world_root[0].double().numpy()
        roots[:, :3, 3] += origin
        roots = self.T_input_zup @ roots
        heads = T_world_cpf[new].numpy().copy()
        heads[:, :3, 3] += origin
        heads = self.T_input_zup @ heads
        local = part.local_rotations[0].float().numpy()
        if local.shape[0] == 21:
            local = np.concatenate([local, np.broadcast_to(np.eye(3, dtype=np.float32), (30, 3, 3))])
        contacts = part.contacts[0].clamp(0.0, 1.0).float().numpy()
        timestamps = list(segment.timestamps)
        first_kept = segment.frames - len(timestamps)  # segment frame of timestamps[0]
        for k in range(new.stop - new.start):
            frame = segment.emitted
            self._ready.append(LiveFrame(
                index=segment.first_frame + frame, segment=segment.index,
                timestamp_ns=int(timestamps[frame - first_kept]), T_world_cpf=heads[k], joints_world=joints_input[k],
                T_world_root=roots[k], local_rotations=local[k], contacts=contacts[k],
            ))
            segment.states.append(packed[k])
            segment.emitted += 1
        while len(segment.states) > self.config.window:
            segment.states.popleft()


def seam_corrected(state: MotionState, predicted: MotionState, fixed: int, length: int) -> MotionState:
    """The frames after the first `fixed` of `state (1, T, ...)` eased onto the last fixed one.

    The sampler returns the fixed frames as given, but its own prediction there (`predicted`, the
    last step's x0 before replacement) can differ: the new frames continue the prediction, which
    would show as a jump at the seam. Each rotation of new frame `fixed - 1 + k` is turned by
    `exp(w_k·δ)`, `δ = log(R̂ᵀR)` the difference between the fixed and the predicted rotation at
    the seam and `w_k = max(0, 1 - k/(length + 1))`: continuous at the seam, unchanged further on.
    """
    k = torch.arange(1, state.betas.shape[1] - fixed + 1, dtype=state.betas.dtype)
    weight = (1 - k / (length + 1)).clamp(min=0.0)[:, None, None]

    def eased(rotations: Tensor | None, prediction: Tensor | None) -> Tensor | None:
        if rotations is None:
            return None
        delta = so3.log(prediction[:, fixed - 1].mT @ rotations[:, fixed - 1])  # (1, J, 3)
        out = rotations.clone()
        out[:, fixed:] = rotations[:, fixed:] @ so3.exp(weight * delta[:, None])
        return out

    return dataclasses.replace(
        state,
        body_rotations=eased(state.body_rotations, predicted.body_rotations),
        hand_rotations=eased(state.hand_rotations, predicted.hand_rotations),
    )


def fixed_frames(residual_fn: ResidualFn, count: int) -> ResidualFn:
    """`residual_fn` whose Jacobians ignore the first `count` frames: Levenberg–Marquardt leaves them as they are.

    Their residuals still count, so the free frames are solved against them (continuity).
    """
    if count <= 0:
        return residual_fn

    def wrapped(rotations: Tensor, with_jacobians: bool) -> list[Residual]:
        return [_without_frames(r, count) for r in residual_fn(rotations, with_jacobians)]

    return wrapped


def _without_frames(residual: Residual, count: int) -> Residual:
    """`residual` with zero Jacobian blocks for frames before `count` (window w, offset k is frame w + k)."""
    if residual.jacobians is None:
        return residual
    jacobians = []
    for k, J in enumerate(residual.jacobians):
        J = J.clone()
        J[:, : max(count - k, 0)] = 0.0
        jacobians.append(J)
    return dataclasses.replace(residual, jacobians=tuple(jacobians))


def _pose_before(poses: np.ndarray) -> np.ndarray:
    """(4, 4) the pose one frame before `poses (T, 4, 4)`, at constant velocity (the first one when T = 1)."""
    if len(poses) < 2:
        return poses[0]
    return poses[0] @ np.linalg.inv(poses[1]) @ poses[0]
