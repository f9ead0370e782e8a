"""Live mode: inpainting hook, the frame clock, the online estimator (tiny random checkpoint: seconds)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from egoallo.body import BodyModel
from egoallo.geometry import so3
from egoallo.live import FrameClock, LiveConfig, LiveEstimator, StreamLimits
from egoallo.live.estimator import fixed_frames, seam_corrected
from egoallo.live.stream import Break, Frame
from egoallo.prior.checkpoint import load_denoiser
from egoallo.prior.diffusion import Known, ddim_sample
from egoallo.prior.state import MotionState


def _random_state(T: int, seed: int = 0) -> MotionState:
    g = torch.Generator().manual_seed(seed)
    return MotionState(
        betas=torch.randn(1, 1, 16, generator=g).expand(1, T, 16),
        body_rotations=so3.exp(0.3 * torch.randn(1, T, 21, 3, generator=g)),
        contacts=torch.rand(1, T, 21, generator=g),
        hand_rotations=None,
    )


def walk(seconds: float, fps: float = 30.0, speed: float = 1.2, start_s: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps (T,) and CPF poses (T, 4, 4) of a head walking along +x at 1.6 m, looking along +x (z-up world)."""
    t = np.arange(round(seconds * fps)) / fps + start_s
    T = np.tile(np.eye(4), (len(t), 1, 1))
    T[:, :3, :3] = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # CPF +z forward = x, +y up = z
    T[:, 0, 3] = speed * t
    T[:, 2, 3] = 1.6 + 0.02 * np.sin(2 * np.pi * 2 * t)
    return np.round(t * 1e9).astype(np.int64), T


def test_known_entries_are_returned_exactly_and_the_rest_sampled():
    target = _random_state(20).pack()
    known = Known(target, torch.arange(20)[None, :, None] < 12)

    def denoise(x_t, t, frames):
        return torch.zeros_like(x_t)  # predicts nothing useful: the free frames end near 0

    out = ddim_sample(denoise, (1, 20, 226), include_hands=False, num_steps=4, known=known,
                      generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out[:, :12], target[:, :12])
    assert not torch.allclose(out[:, 12:], target[:, 12:])


def test_frame_clock_resamples_and_breaks():
    clock = FrameClock(StreamLimits(fps=10.0))
    events = []
    for t_s, x in [(0.0, 0.0), (0.25, 0.25), (0.32, 0.32), (0.32, 0.32), (0.30, 0.3), (0.5, 0.5), (1.5, 1.5), (1.6, 9.0)]:
        T = np.eye(4)
        T[0, 3] = x
        out, note = clock.push(round(t_s * 1e9), T)
        events += out
    frames = [e for e in events if isinstance(e, Frame)]
    breaks = [e.reason for e in events if isinstance(e, Break)]
    assert [round(f.timestamp_ns / 1e8) for f in frames] == [0, 1, 2, 3, 4, 5, 15, 16]
    np.testing.assert_allclose([f.T_world_cpf[0, 3] for f in frames[:6]], [0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
    assert len(breaks) == 2 and breaks[0].startswith("gap of 1.000 s") and breaks[1].startswith("jump of 7.50 m")
    assert clock.counts.dropped_duplicates == 1 and clock.counts.dropped_out_of_order == 1


def test_fixed_frames_stay_put_in_levenberg_marquardt():
    from egoallo.guidance import build_problem, levenberg_marquardt

    body = BodyModel.load_default()
    state = _random_state(10)
    _, T = walk(10 / 30)
    problem = build_problem(body, state, torch.from_numpy(T).float(), mode={"feet"}, dtype=torch.float32, floor_z=0.0)
    rotations, log = levenberg_marquardt(fixed_frames(problem.residuals, 4), problem.prior, 5)
    assert log.costs[-1].item() < log.costs[0].item()
    torch.testing.assert_close(rotations[:, :4], problem.prior[:, :4])
    assert not torch.allclose(rotations[:, 4:], problem.prior[:, 4:])


def test_seam_correction_is_continuous_at_the_seam_and_fades():
    state, predicted = _random_state(12, seed=1), _random_state(12, seed=2)
    eased = seam_corrected(state, predicted, fixed=4, length=3)
    torch.testing.assert_close(eased.body_rotations[:, :4], state.body_rotations[:, :4])
    torch.testing.assert_close(eased.body_rotations[:, 8:], state.body_rotations[:, 8:])
    # Frame 4 moved by 3/4 of the seam's offset: its rotation relative to the prediction's is what it was, nearly.
    first_new = eased.body_rotations[:, 4] @ state.body_rotations[:, 4].mT
    offset = state.body_rotations[:, 3] @ predicted.body_rotations[:, 3].mT
    assert so3.log(first_new).norm(dim=-1).mean() > 0.3 * so3.log(offset).norm(dim=-1).mean()


@pytest.fixture(scope="module")
def tiny_estimator_parts(tiny_checkpoint):
    _, denoiser = load_denoiser(tiny_checkpoint)
    return denoiser, BodyModel.load_default()


def _run(estimator: LiveEstimator, timestamps: np.ndarray, poses: np.ndarray) -> list:
    out = []
    for t, T in zip(timestamps, poses):
        out += estimator.push(int(t), T)
    return out


def test_one_body_per_frame_at_a_fixed_delay(tiny_estimator_parts):
    denoiser, body = tiny_estimator_parts
    config = LiveConfig(window=16, hop=4, lookahead=1, warmup=8, num_steps=2, guidance_iterations=2)
    estimator = LiveEstimator(denoiser, body, T_input_zup=np.eye(4), floor_z=0.0, config=config)
    timestamps, poses = walk(2.0)
    emitted_after = {}
    for n, (t, T) in enumerate(zip(timestamps, poses)):
        for frame in estimator.push(int(t), T):
            emitted_after[frame.index] = n
    rest = estimator.finish()
    delays = [n - index for index, n in emitted_after.items() if index >= config.warmup]
    assert set(delays) == {config.delay_frames}
    frames = len(emitted_after) + len(rest)
    assert frames == len(timestamps) and estimator.stats.frames_emitted == frames
    assert sorted([*emitted_after, *(f.index for f in rest)]) == list(range(frames))


def test_emitted_bodies_follow_the_head_and_never_change(tiny_estimator_parts):
    denoiser, body = tiny_estimator_parts
    config = LiveConfig(window=16, hop=4, warmup=8, num_steps=2, guidance_iterations=2)
    timestamps, poses = walk(1.5)
    T_input_zup = np.array([[1.0, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]])  # a y-up input world
    poses_input = T_input_zup @ poses
    estimator = LiveEstimator(denoiser, body, T_input_zup=T_input_zup, floor_z=0.0, config=config)
    frames = _run(estimator, timestamps, poses_input) + estimator.finish()
    heads = np.stack([f.T_world_cpf for f in frames])
    np.testing.assert_allclose(heads, poses_input, atol=1e-9)
    joints = np.stack([f.joints_world for f in frames])
    assert np.isfinite(joints).all() and joints.shape == (len(timestamps), 52, 3)
    # Placed by Eq. 5 in the input's (y-up) world: the head joint sits at the CPF, whatever the pose.
    assert np.linalg.norm(joints[:, 15] - heads[:, :3, 3], axis=-1).max() < 0.25
    # The same stream again gives the same bodies (fixed seed); emitted frames are final.
    again = LiveEstimator(denoiser, body, T_input_zup=T_input_zup, floor_z=0.0, config=config)
    repeat = _run(again, timestamps, poses_input) + again.finish()
    np.testing.assert_allclose(np.stack([f.joints_world for f in repeat]), joints)


def test_stream_faults_are_logged_and_the_stream_continues(tiny_estimator_parts, caplog):
    denoiser, body = tiny_estimator_parts
    config = LiveConfig(window=16, hop=4, warmup=8, num_steps=2, guidance_iterations=1)
    estimator = LiveEstimator(denoiser, body, T_input_zup=np.eye(4), floor_z=0.0, config=config)
    timestamps, poses = walk(3.0)
    order = list(range(30))
    order += [29, 29, 25]  # duplicates and out of order
    order += list(range(30, 45, 3))  # dropped poses (every third kept)
    order += list(range(60, 75))  # silent for 0.5 s: a gap
    jumped = poses.copy()
    jumped[75:, 0, 3] += 5.0  # a SLAM reset: 5 m jump
    order += list(range(75, 90))
    with caplog.at_level("INFO", logger="egoallo.live"):
        frames = []
        for i in order:
            frames += estimator.push(int(timestamps[i]), jumped[i])
        frames += estimator.finish()
    counts = estimator.clock.counts
    assert counts.dropped_duplicates == 2 and counts.dropped_out_of_order == 1 and counts.jumps == 1
    assert estimator.stats.segments == 3
    stamps = [f.timestamp_ns for f in frames]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert [f.index for f in frames] == list(range(len(frames)))
    assert "jump of 5.04 m" in caplog.text and "gap of 0.600 s" in caplog.text and "duplicate timestamp" in caplog.text
    assert np.isfinite(np.stack([f.joints_world for f in frames])).all()


def test_config_is_checked():
    with pytest.raises(ValueError, match="hop \\+ lookahead"):
        LiveConfig(window=8, hop=6, lookahead=2)
    with pytest.raises(ValueError, match="warmup"):
        LiveConfig(window=16, warmup=20)


def test_memory_per_frame_is_bounded(tiny_estimator_parts):
    """Minutes of stream keep no more than a window of the past (the stats keep bounded histories)."""
    denoiser, body = tiny_estimator_parts
    config = LiveConfig(window=12, hop=4, warmup=8, num_steps=1, guidance=False)
    estimator = LiveEstimator(denoiser, body, T_input_zup=np.eye(4), floor_z=0.0, config=config)
    timestamps, poses = walk(12.0)
    for t, T in zip(timestamps, poses):
        estimator.push(int(t), T)
        segment = estimator._segment
        assert len(segment.poses) <= config.window + 1 and len(segment.states) <= config.window
        assert len(estimator._ready) <= config.delay_frames + config.hop
    assert estimator.stats.frames_emitted >= len(timestamps) - config.delay_frames - config.hop


def test_upside_down_head_poses_are_warned_about(tiny_estimator_parts, caplog):
    denoiser, body = tiny_estimator_parts
    config = LiveConfig(window=12, hop=4, warmup=8, num_steps=1, guidance=False)
    estimator = LiveEstimator(denoiser, body, T_input_zup=np.eye(4), floor_z=0.0, config=config)
    timestamps, poses = walk(0.5)
    flip = np.diag([1.0, -1.0, -1.0, 1.0])  # OpenCV-like: y down
    with caplog.at_level("WARNING", logger="egoallo.live"):
        _run(estimator, timestamps, poses @ flip)
    assert "points 180 deg from world up" in caplog.text


def test_websocket_messages_are_read_after_the_client_has_closed():
    """A client that sends and closes at once leaves no peer address; its queued lines still count."""
    import queue

    from egoallo.live.sources import read_websocket_lines

    class ClosedConnection:
        @property
        def remote_address(self):
            raise OSError(9, "Bad file descriptor")

        def __iter__(self):
            return iter(["1 0 0 0 0 0 0 1\n2 0 0 0 0 0 0 1", b"3 0 0 0 0 0 0 1"])

    out: queue.Queue = queue.Queue()
    read_websocket_lines(ClosedConnection(), out)
    lines = [out.get_nowait() for _ in range(out.qsize())]
    assert [line.text for line in lines] == ["1 0 0 0 0 0 0 1", "2 0 0 0 0 0 0 1", "3 0 0 0 0 0 0 1"]
    assert {line.where for line in lines} == {"websocket client"}
