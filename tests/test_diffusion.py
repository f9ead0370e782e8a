import torch

from egoallo.geometry import so3
from egoallo.prior.diffusion import (
    CosineSchedule,
    blending_windows,
    ddim_sample,
    ddim_step,
    sampling_levels,
    window_starts,
    x0_of_step,
)
from egoallo.prior.state import MotionState, state_dim
from egoallo.prior.training import distillation_targets


def random_state(B, T, include_hands, seed=0):
    g = torch.Generator().manual_seed(seed)
    rot = lambda n: so3.exp(torch.randn(B, T, n, 3, generator=g))  # noqa: E731
    return MotionState(
        betas=torch.randn(B, 1, 16, generator=g).expand(B, T, 16),
        body_rotations=rot(21),
        contacts=torch.rand(B, T, 21, generator=g).round(),
        hand_rotations=rot(30) if include_hands else None,
    )


def test_state_pack_unpack_round_trip():
    for hands in (False, True):
        state = random_state(2, 5, hands)
        x = state.pack()
        assert x.shape == (2, 5, state_dim(hands))
        back = MotionState.unpack(x, hands)
        torch.testing.assert_close(back.body_rotations, state.body_rotations)
        torch.testing.assert_close(back.local_rotations.shape[-3], 51 if hands else 21)


def test_cosine_schedule():
    schedule = CosineSchedule()
    ab = schedule.alpha_bar()
    assert ab[0] == 1 and (ab[1:] < ab[:-1]).all() and ab[-1] < 1e-4
    w = schedule.loss_weight(torch.tensor([1, 500, 1000]))
    assert w[0] == 1.0 and w[2] == 0.01 and 0.01 <= w[1] <= 1.0


def test_sampling_levels_and_windows():
    levels = sampling_levels(30)
    assert levels[0] == 1000 and levels[-1] == 0 and all(a > b for a, b in zip(levels, levels[1:]))
    assert levels[-2] < 5 and len(levels) <= 31  # quadratic: dense near 0
    for length in (1, 50, 128, 129, 300, 1000):
        starts = window_starts(length, 128, 32)
        covered = torch.zeros(length, dtype=torch.bool)
        for s in starts:
            covered[s : s + 128] = True
        assert covered.all() and starts[-1] + min(128, length) == length
        frames, weights = blending_windows(length, 128, 32, "cpu")
        assert frames[:, 0].tolist() == starts and frames.shape == weights.shape
        total = torch.zeros(length).index_add_(0, frames.flatten(), weights.flatten())
        assert (total > 0.2).all()


def test_oracle_denoiser_returns_its_target_on_any_length():
    """With a denoiser that knows x0, DDIM lands exactly on it, across blended windows."""
    target = random_state(2, 300, include_hands=False).pack()
    calls = []

    def oracle(x_t, t, frames):
        calls.append(frames.shape[0])
        return target[:, frames]

    out = ddim_sample(oracle, tuple(target.shape), include_hands=False, num_steps=10, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, target, atol=1e-5, rtol=0)
    assert calls == [len(window_starts(300, 128, 32))] * 10  # all windows of a step in one call
    calls.clear()
    batched = ddim_sample(oracle, tuple(target.shape), include_hands=False, num_steps=2, batch_windows=2,
                          generator=torch.Generator().manual_seed(0))
    assert calls == [1] * 6 and batched.shape == target.shape  # 2 samples: one window per call


def test_sampler_is_deterministic_given_the_seed():
    def denoise(x_t, t, frames):
        return 0.5 * x_t

    a = ddim_sample(denoise, (1, 40, 226), include_hands=False, num_steps=5, generator=torch.Generator().manual_seed(3))
    b = ddim_sample(denoise, (1, 40, 226), include_hands=False, num_steps=5, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b)
    rotations = MotionState.unpack(a, False).body_rotations
    torch.testing.assert_close(rotations @ rotations.transpose(-1, -2), torch.eye(3).expand_as(rotations), atol=1e-5, rtol=0)


def test_x0_of_step_inverts_the_deterministic_ddim_step():
    ab = CosineSchedule().alpha_bar().float()
    g = torch.Generator().manual_seed(1)
    x_t, x0 = torch.randn(3, 7, 5, generator=g), torch.randn(3, 7, 5, generator=g)
    for level, next_level in ((1000, 766), (300, 120), (4, 0)):
        x_next = ddim_step(x_t, x0, ab[level], ab[next_level])
        torch.testing.assert_close(x0_of_step(x_t, x_next, ab[level], ab[next_level]), x0, atol=2e-4, rtol=0)


def test_distillation_targets_of_a_teacher_that_knows_x0_are_x0():
    """A teacher predicting the clean state at every level makes every student target that state,
    whatever the noise, the level, and however many teacher steps a student step spans."""
    target = random_state(4, 16, include_hands=False).pack()

    class Oracle(torch.nn.Module):
        config = type("Config", (), {"include_hands": False})()

        def forward(self, x_t, t, cond, mask):
            return target

    g = torch.Generator().manual_seed(0)
    for steps, substeps in ((8, 4), (4, 2), (2, 1)):
        x_t, t, got = distillation_targets(Oracle(), target, None, None, steps, substeps, CosineSchedule(), g)
        assert set(t.tolist()) <= set(sampling_levels(steps))
        assert x_t.shape == target.shape and not torch.allclose(x_t, target)
        torch.testing.assert_close(got, target, atol=2e-4, rtol=0)


def test_calls_run_at_once_give_the_same_sample():
    """`workers` calls of a step at once, each on one thread, without grad; the same x0 as one at a time."""
    weight = torch.nn.Parameter(torch.full((226,), 0.5))  # requires grad, as a network's weights do
    seen = []

    def denoise(x_t, t, frames):
        seen.append((torch.is_grad_enabled(), torch.get_num_threads()))
        return weight * x_t + 0.01 * frames[..., None].float()

    shape = (1, 300, 226)
    one = ddim_sample(denoise, shape, include_hands=False, num_steps=3, eta=0.8, batch_windows=1, workers=1,
                      generator=torch.Generator().manual_seed(3))
    seen.clear()
    two = ddim_sample(denoise, shape, include_hands=False, num_steps=3, eta=0.8, batch_windows=1, workers=2,
                      generator=torch.Generator().manual_seed(3))
    assert torch.equal(one, two) and not one.requires_grad
    assert len(seen) == 3 * len(window_starts(300, 128, 32)) and set(seen) == {(False, 1)}
