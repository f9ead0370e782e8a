"""A synthetic SMPL-H `model.npz` with the official keys and shapes (no licensed data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from egoallo.body import skeleton

NUM_VERTS = 6890


def make_synthetic_smplh(path: Path, *, seed: int = 0, posedirs_scale: float = 1e-3) -> Path:
    """Random but well-formed: vertices scattered around a plausible skeleton."""
    rng = np.random.default_rng(seed)
    # A crude T-pose skeleton: each joint a small step from its parent.
    joints = np.zeros((52, 3))
    for i in range(1, 52):
        joints[i] = joints[skeleton.PARENTS[i]] + rng.normal(0.0, 0.08, 3)
    owner = rng.integers(0, 52, NUM_VERTS)
    v_template = joints[owner] + rng.normal(0.0, 0.03, (NUM_VERTS, 3))
    # Each joint regresses from the vertices it owns (rows sum to 1).
    regressor = np.zeros((52, NUM_VERTS))
    regressor[owner, np.arange(NUM_VERTS)] = 1.0
    regressor /= regressor.sum(axis=1, keepdims=True)
    weights = rng.random((NUM_VERTS, 52)) ** 8
    weights[np.arange(NUM_VERTS), owner] += 1.0
    weights /= weights.sum(axis=1, keepdims=True)
    kintree = np.stack([np.array(skeleton.PARENTS, dtype=np.int64), np.arange(52)])
    kintree[0, 0] = 4294967295  # as in the official files
    np.savez(
        path,
        v_template=v_template,
        shapedirs=rng.normal(0.0, 0.01, (NUM_VERTS, 3, 16)),
        posedirs=rng.normal(0.0, posedirs_scale, (NUM_VERTS, 3, 459)),
        J_regressor=regressor,
        weights=weights,
        kintree_table=kintree,
        f=rng.integers(0, NUM_VERTS, (13776, 3)).astype(np.uint32),
    )
    return path
