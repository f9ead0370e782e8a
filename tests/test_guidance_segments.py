"""Guidance of long sequences in overlapping segments."""

from __future__ import annotations

import math

import pytest
import torch

from egoallo.body import BodyModel
from egoallo.geometry import se3, so3
from egoallo.guidance import guide
from egoallo.guidance.segments import blend_rotations, guide_in_segments, segment_bounds
from egoallo.inference import place_in_world
from egoallo.prior.state import MotionState
from egoallo.threads import torch_threads

F64 = torch.float64


@pytest.fixture(scope="module")
def body() -> BodyModel:
    return BodyModel.load_default()


def _sliding_sample(body: BodyModel, T: int) -> tuple[MotionState, torch.Tensor]:
    """Standing upright with planted feet; the sample's hips and knees wobble, so the feet slide.

    Returns the sample (1, T, ...) and the standing body's head poses (T, 4, 4).
    """
    R_zup = so3.rot_x(torch.tensor(math.pi / 2, dtype=F64))
    T_world_root = se3.from_rotation_translation(R_zup, torch.tensor([0.0, 0.0, 0.95], dtype=F64)).expand(T, 4, 4)
    standing = torch.eye(3, dtype=F64).repeat(T, 21, 1, 1)
    head = body.to(dtype=F64).with_shape(torch.zeros(16, dtype=F64)).with_pose(T_world_root, standing).T_world_cpf
    t = torch.arange(T, dtype=F64)[:, None] / 30.0
    waves = torch.zeros(T, 21, 3, dtype=F64)
    waves[:, [0, 1, 3, 4], 0] = 0.15 * torch.sin(2 * math.pi * 0.5 * t + torch.arange(4))
    contacts = torch.zeros(1, T, 21, dtype=F64)
    contacts[..., [6, 7, 9, 10]] = 1.0
    return MotionState(torch.zeros(1, T, 16, dtype=F64), so3.exp(waves)[None], contacts, None), head


def test_blend_rotations_goes_from_one_to_the_other() -> None:
    a = so3.exp(torch.tensor([[[[0.0, 0.0, 0.0]]]], dtype=F64)).expand(1, 3, 1, 3, 3)
    b = so3.exp(torch.tensor([[[[0.0, 0.0, 0.6]]]], dtype=F64)).expand(1, 3, 1, 3, 3)
    mid = blend_rotations(a, b, torch.tensor([0.0, 0.5, 1.0], dtype=F64))
    torch.testing.assert_close(mid[0, 0], a[0, 0])
    torch.testing.assert_close(mid[0, 2], b[0, 2])
    torch.testing.assert_close(so3.log(mid[0, 1, 0]), torch.tensor([0.0, 0.0, 0.3], dtype=F64))


def test_segments_match_the_whole_solve(body: BodyModel) -> None:
    T = 72
    state, head = _sliding_sample(body, T)
    whole, _ = guide(body, state, head, mode={"feet"}, iterations=8)
    same, logs = guide_in_segments(body, state, head, mode={"feet"}, iterations=8, segment=T)
    assert len(logs) == 1 and torch.equal(same.body_rotations, whole.body_rotations)
    split, logs = guide_in_segments(body, state, head, mode={"feet"}, iterations=8, segment=32, overlap=8)
    assert len(logs) == 3 and split.body_rotations.shape == whole.body_rotations.shape
    joints = {name: place_in_world(body.to(dtype=F64), s, head)[2] for name, s in
              (("sample", state), ("whole", whole), ("split", split))}
    skate = {name: float(_skate(j)) for name, j in joints.items()}
    print(f"skate (m): {skate}")
    assert skate["whole"] < 0.5 * skate["sample"] and skate["split"] < 0.5 * skate["sample"]
    (_, first_end), (second_start, _) = segment_bounds(T, 32, 8)[:2]  # (0, 30), (21, 51)
    alone = guide(body, _first(state, first_end), head[:first_end], mode={"feet"}, iterations=8)[0]
    assert torch.equal(split.body_rotations[:, :second_start], alone.body_rotations[:, :second_start])


def _first(state: MotionState, frames: int) -> MotionState:
    return MotionState(state.betas[:, :frames], state.body_rotations[:, :frames], state.contacts[:, :frames], None)


def _skate(joints: torch.Tensor) -> torch.Tensor:
    """Summed horizontal displacement of the ankles and feet between frames, metres."""
    feet = joints[..., [7, 8, 10, 11], :2]
    return (feet[:, 1:] - feet[:, :-1]).norm(dim=-1).sum()


def test_segments_solved_at_once_match_one_at_a_time(body: BodyModel) -> None:
    state, head = _sliding_sample(body, 72)
    with torch_threads(1):
        one, _ = guide_in_segments(body, state, head, mode={"feet"}, iterations=4, segment=32, overlap=8, workers=1)
    torch.set_num_threads(2)
    try:
        two, logs = guide_in_segments(body, state, head, mode={"feet"}, iterations=4, segment=32, overlap=8, workers=2)
        assert torch.get_num_threads() == 2  # restored after the pool
    finally:
        torch.set_num_threads(1)
    assert len(logs) == 3 and torch.equal(one.body_rotations, two.body_rotations)


@pytest.mark.parametrize("length", [10, 1024, 1025, 1200, 2048, 3001, 108000])
def test_segments_cover_the_sequence_evenly(length: int) -> None:
    bounds = segment_bounds(length, 1024, 64)
    assert bounds[0][0] == 0 and bounds[-1][1] == length
    sizes = {end - start for start, end in bounds}
    assert len(sizes) == 1 and max(sizes) <= 1024
    overlaps = [a[1] - b[0] for a, b in zip(bounds, bounds[1:])]
    assert all(63 <= o <= 65 for o in overlaps)
    assert len(bounds) == 1 or (len(bounds) - 1) * (1024 - 64) + 64 < length  # no fewer would do
