"""Head-trajectory conditioning: the reference's numbers and the invariances of Table 1."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from egoallo.geometry import se3, so3
from egoallo.prior.conditioning import (
    COND_PARAMS,
    ConditioningConfig,
    compute_conditioning,
    conditioning_dim,
    fourier_encode,
    raw_conditioning,
)


@pytest.fixture(scope="module")
def ref_io(shared_dir: Path) -> dict[str, np.ndarray]:
    path = shared_dir / "fixtures" / "egoallo_ref_tiny" / "io.npz"
    if not path.is_file():
        pytest.skip(f"reference fixture not found: {path}")
    return dict(np.load(path))


def _trajectory(num_frames: int = 50, seed: int = 0) -> torch.Tensor:
    """A smooth, wandering head trajectory `(num_frames, 4, 4)` in float64, z up."""
    g = torch.Generator().manual_seed(seed)
    s = torch.linspace(0.0, 1.0, num_frames, dtype=torch.float64)[:, None]
    phases = torch.rand(6, generator=g, dtype=torch.float64) * 2 * math.pi
    omega = 0.4 * torch.sin(3.0 * s + phases[:3]) + torch.tensor([0.0, 0.0, 2.0], dtype=torch.float64) * s
    # CPF +z forward, +y up at rest: rotate CPF axes into the z-up world first.
    R_rest = so3.rot_x(torch.tensor(math.pi / 2, dtype=torch.float64))
    R = so3.exp(omega) @ R_rest
    p = torch.cat([torch.sin(2.0 * s + phases[3:4]), 2.0 * s, 1.6 + 0.05 * torch.sin(5.0 * s)], dim=-1)
    return se3.from_rotation_translation(R, p)


@pytest.mark.parametrize("kind", COND_PARAMS)
def test_matches_reference(ref_io: dict[str, np.ndarray], kind: str) -> None:
    T_world_cpf = se3.from_quat_xyz(torch.from_numpy(ref_io["Ts_world_cpf_wxyz_xyz"]))
    cond = compute_conditioning(T_world_cpf[None], ConditioningConfig(kind))
    expected = torch.from_numpy(ref_io[f"cond_{kind}"])
    assert cond.shape == expected.shape == (1, 40, conditioning_dim(kind))
    assert (cond - expected).abs().max() < 1e-4


def test_dims() -> None:
    assert [conditioning_dim(k) for k in COND_PARAMS] == [154, 84, 84, 168]
    assert conditioning_dim("ours", include_canonicalized_cpf_rotation=False) == 13 * 7
    assert conditioning_dim("absolute", fourier_freqs=0) == 12
    with pytest.raises(ValueError, match="Unknown conditioning"):
        conditioning_dim("relative")  # type: ignore[arg-type]


def test_fourier_order() -> None:
    x = torch.tensor([0.3, -1.2])
    out = fourier_encode(x, 2)
    expected = [0.3, -1.2]
    expected += [math.sin(0.3), math.sin(0.6), math.sin(-1.2), math.sin(-2.4)]
    expected += [math.cos(0.3), math.cos(0.6), math.cos(-1.2), math.cos(-2.4)]
    assert torch.allclose(out, torch.tensor(expected), atol=1e-6)


def test_ours_raw_layout() -> None:
    T = _trajectory()
    raw = raw_conditioning(T)
    assert raw.shape == (49, 22)
    assert torch.allclose(raw[:, 12], T[1:, 2, 3])
    # The yaw-free CPF rotation has its forward (+z) axis in the world xz plane, facing +x.
    R = raw[:, 13:].unflatten(-1, (3, 3))
    assert torch.allclose(R[:, 1, 2], torch.zeros(49, dtype=R.dtype), atol=1e-12)
    assert (R[:, 0, 2] > 0).all()


def _world_translated(T: torch.Tensor) -> torch.Tensor:
    return se3.from_rotation_translation(so3.identity(dtype=T.dtype), torch.tensor([3.0, -7.5, 0.0]).to(T)) @ T


def _world_rotated(T: torch.Tensor) -> torch.Tensor:
    R = so3.rot_z(torch.tensor(2.1, dtype=T.dtype))
    return se3.from_rotation_translation(R, torch.tensor([0.4, 1.0, 0.0]).to(T)) @ T


@pytest.mark.parametrize("transform", [_world_translated, _world_rotated])
@pytest.mark.parametrize("kind", ["ours", "canonicalized"])
def test_world_invariance(kind: str, transform) -> None:
    T = _trajectory()
    config = ConditioningConfig(kind)  # type: ignore[arg-type]
    assert torch.allclose(compute_conditioning(transform(T), config), compute_conditioning(T, config), atol=1e-9)


@pytest.mark.parametrize("transform", [_world_translated, _world_rotated])
@pytest.mark.parametrize("kind", ["absolute", "absrel"])
def test_world_dependence(kind: str, transform) -> None:
    T = _trajectory()
    config = ConditioningConfig(kind)  # type: ignore[arg-type]
    assert (compute_conditioning(transform(T), config) - compute_conditioning(T, config)).abs().max() > 0.1


@pytest.mark.parametrize(
    ("kind", "invariant"), [("ours", True), ("canonicalized", False), ("absolute", True), ("absrel", True)]
)
def test_window_start(kind: str, invariant: bool) -> None:
    """A sub-window's conditioning vs. the same frames' slice of the whole sequence's.

    Only sequence canonicalisation depends on where the window starts (it re-anchors
    on the window's first frame); per-frame absolute poses do not.
    """
    T = _trajectory()
    config = ConditioningConfig(kind)  # type: ignore[arg-type]
    window, sliced = compute_conditioning(T[10:31], config), compute_conditioning(T, config)[10:30]
    if invariant:
        assert torch.allclose(window, sliced, atol=1e-9)
    else:
        assert (window - sliced).abs().max() > 0.1


def test_batch_dims_and_validation() -> None:
    T = torch.stack([_trajectory(seed=0), _trajectory(seed=1)]).float()
    cond = compute_conditioning(T)
    assert cond.shape == (2, 49, 154) and cond.dtype == torch.float32
    assert torch.allclose(cond[1], compute_conditioning(T[1]))
    with pytest.raises(ValueError, match="T\\+1"):
        compute_conditioning(T[:, :1])
