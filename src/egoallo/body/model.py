"""Body model with SMPL-H topology: shape, pose, joints, CPF and skinned mesh.

Used in immutable stages, any leading batch shape::

    model = BodyModel.load_default()
    shaped = model.with_shape(betas)                          # betas (..., B)
    posed = shaped.with_pose(T_world_root, local_rotations)   # (..., 4, 4), (..., 51, 3, 3)
    posed.joints_world, posed.T_world_cpf, posed.mesh().vertices

Rest-pose convention (as SMPL): metres, +y up, the body faces +z, +x is the
body's left, T-pose, every joint frame aligned with the model frame at rest.
`T_world_root` is the world pose of the pelvis joint. The CPF (central pupil
frame) sits midway between the eyes with the head joint's orientation, so at
rest it has +x left, +y up, +z forward.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import UserError
from ..files import NpzError, load_npz
from . import skeleton

DEFAULT_MODEL_PATH = Path(__file__).parent / "assets" / "anny_smplh.npz"
SMPLH_ENV_VAR = "EGOALLO_SMPLH_MODEL"

_HEAD = skeleton.JOINT_INDEX["head"]


@functools.lru_cache
def _level_plan(parents: tuple[int, ...]) -> tuple[Tensor, tuple[tuple[int, int, Tensor], ...], Tensor]:
    """The joints ordered by depth below the root, for `forward_kinematics`.

    Returns `order (N,)` (joints, level by level, the root first), per depth level
    `(start, end, parent_slots)` (its joints are `order[start:end]`, their parents at
    `parent_slots` of the order) and `inverse (N,)`, the permutation back to joint order.
    """
    depth = [0] * len(parents)
    for j in range(1, len(parents)):
        depth[j] = depth[parents[j]] + 1
    order = sorted(range(len(parents)), key=lambda j: (depth[j], j))
    slot = {j: i for i, j in enumerate(order)}
    levels = []
    for d in range(1, max(depth, default=0) + 1):
        start = next(i for i, j in enumerate(order) if depth[j] == d)
        end = start + depth.count(d)
        levels.append((start, end, torch.tensor([slot[parents[j]] for j in order[start:end]])))
    return torch.tensor(order), tuple(levels), torch.tensor([slot[j] for j in range(len(parents))])


def forward_kinematics(
    joints_zero: Tensor, parents: tuple[int, ...], R_world_root: Tensor, p_world_root: Tensor, rotations: Tensor
) -> tuple[Tensor, Tensor]:
    """World orientations `(..., N, 3, 3)` and positions `(..., N, 3)` of the joints of a kinematic tree.

    Args:
        joints_zero: (..., N, 3) rest positions (every joint frame aligned with the model frame at rest).
        parents: (N,) parent of each joint, -1 for the root (joint 0); a parent comes before its child.
        R_world_root, p_world_root: (..., 3, 3), (..., 3) the root's world pose.
        rotations: (..., N - 1, 3, 3) joints 1..N-1 relative to their parents.
    """
    order, levels, inverse = _level_plan(tuple(parents))
    batch = np.broadcast_shapes(  # not torch's: it imports symbolic-shape machinery on first use (0.5 s)
        R_world_root.shape[:-2], p_world_root.shape[:-1], rotations.shape[:-3], joints_zero.shape[:-2]
    )
    N = len(parents)
    device = joints_zero.device
    parent_of = torch.tensor([max(p, 0) for p in parents], device=device)
    # Offsets from each parent and local rotations, in level order (slot 0, the root, is unused).
    offsets = (joints_zero - joints_zero[..., parent_of, :])[..., order, :, None].expand(*batch, N, 3, 1)
    local = rotations[..., (order[1:] - 1), :, :].expand(*batch, N - 1, 3, 3)
    R = joints_zero.new_empty(*batch, N, 3, 3)
    p = joints_zero.new_empty(*batch, N, 3)
    R[..., 0, :, :] = R_world_root
    p[..., 0, :] = p_world_root
    for start, end, slots in levels:
        R_parent = R[..., slots, :, :]
        R[..., start:end, :, :] = R_parent @ local[..., start - 1 : end - 1, :, :]
        p[..., start:end, :] = p[..., slots, :] + (R_parent @ offsets[..., start:end, :, :])[..., 0]
    return R[..., inverse, :, :], p[..., inverse, :]


# Eye-corner vertices of the official SMPL-H topology (6890 vertices): the CPF
# is the midpoint of the two eye centres, each the mean of two vertices.
SMPLH_LEFT_EYE_VERTICES = (2800, 2802)
SMPLH_RIGHT_EYE_VERTICES = (6260, 6262)

_OURS_KEYS = {
    "v_template": ("V", 3),
    "shapedirs": ("V", 3, "B"),
    "j_template": (52, 3),
    "j_shapedirs": (52, 3, "B"),
    "cpf_template": (3,),
    "cpf_shapedirs": (3, "B"),
    "weights": ("V", 52),
    "faces": ("F", 3),
}
_SMPLH_KEYS = {
    "v_template": ("V", 3),
    "shapedirs": ("V", 3, "B"),
    "posedirs": ("V", 3, 459),
    "J_regressor": (52, "V"),
    "weights": ("V", 52),
    "kintree_table": (2, 52),
    "f": ("F", 3),
}


class BodyModelFileError(UserError, ValueError):
    """A body model file is missing, unreadable, or has wrong keys/shapes."""


def _check_shapes(path: Path, arrays: dict[str, np.ndarray], spec: dict[str, tuple]) -> None:
    dims: dict[str, int] = {}
    for key, expected in spec.items():
        if key not in arrays:
            raise BodyModelFileError(f"{path}: missing key '{key}' (expected shape {expected}).")
        shape = arrays[key].shape
        ok = len(shape) == len(expected)
        for got, want in zip(shape, expected):
            if isinstance(want, str):
                ok = ok and dims.setdefault(want, got) == got
            else:
                ok = ok and got == want
        if not ok:
            raise BodyModelFileError(f"{path}: key '{key}' has shape {shape}, expected {expected} (with {dims}).")
        if not np.issubdtype(arrays[key].dtype, np.number):
            raise BodyModelFileError(f"{path}: key '{key}' is not numeric (dtype {arrays[key].dtype}).")


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise BodyModelFileError(f"{path}: body model file not found.")
    try:
        return load_npz(path)
    except NpzError as e:
        raise BodyModelFileError(f"{path}: {e}; expected a body model .npz.") from None


@dataclasses.dataclass(frozen=True)
class BodyModel:
    """Linear shape space + linear blend skinning over the 52 SMPL-H joints."""

    v_template: Tensor
    """(V, 3) rest vertices at β = 0."""
    shapedirs: Tensor
    """(V, 3, B) vertex offsets per unit β."""
    j_template: Tensor
    """(52, 3) rest joint positions at β = 0."""
    j_shapedirs: Tensor
    """(52, 3, B) joint offsets per unit β."""
    cpf_template: Tensor
    """(3,) rest CPF position at β = 0."""
    cpf_shapedirs: Tensor
    """(3, B) CPF offsets per unit β."""
    weights: Tensor
    """(V, 52) skinning weights."""
    faces: Tensor
    """(F, 3) triangle vertex indices (int64)."""
    posedirs: Tensor | None
    """(V, 3, 459) pose-corrective offsets (official SMPL-H only), else None."""
    name: str

    parents: tuple[int, ...] = skeleton.PARENTS
    joint_names: tuple[str, ...] = skeleton.JOINT_NAMES

    @property
    def num_betas(self) -> int:
        return self.shapedirs.shape[-1]

    @staticmethod
    def load_default() -> BodyModel:
        """The shipped open model (built from Anny; see assets/PROVENANCE.md)."""
        return BodyModel.load(DEFAULT_MODEL_PATH)

    @staticmethod
    def load_from_env_or_default(path: str | os.PathLike | None = None) -> BodyModel:
        """`path` if given, else `$EGOALLO_SMPLH_MODEL` if set, else the shipped model."""
        if path is None:
            path = os.environ.get(SMPLH_ENV_VAR) or None
        return BodyModel.load(path) if path is not None else BodyModel.load_default()

    @staticmethod
    def load(path: str | os.PathLike) -> BodyModel:
        """Load the shipped format or an official SMPL-H `model.npz` (keys checked)."""
        path = Path(path)
        arrays = _load_npz(path)
        if "J_regressor" in arrays:
            return BodyModel._from_smplh(path, arrays)
        _check_shapes(path, arrays, _OURS_KEYS)
        f32 = lambda k: torch.from_numpy(np.asarray(arrays[k], dtype=np.float32))  # noqa: E731
        return BodyModel(
            v_template=f32("v_template"),
            shapedirs=f32("shapedirs"),
            j_template=f32("j_template"),
            j_shapedirs=f32("j_shapedirs"),
            cpf_template=f32("cpf_template"),
            cpf_shapedirs=f32("cpf_shapedirs"),
            weights=f32("weights"),
            faces=torch.from_numpy(arrays["faces"].astype(np.int64)),
            posedirs=None,
            name=path.name,
        )

    @staticmethod
    def _from_smplh(path: Path, arrays: dict[str, np.ndarray]) -> BodyModel:
        _check_shapes(path, arrays, _SMPLH_KEYS)
        parents = arrays["kintree_table"][0].astype(np.int64).copy()
        parents[0] = -1
        if tuple(parents.tolist()) != skeleton.PARENTS:
            raise BodyModelFileError(f"{path}: kintree_table does not have the SMPL-H 52-joint topology.")
        v_template = arrays["v_template"].astype(np.float64)
        if v_template.shape[0] <= max(SMPLH_LEFT_EYE_VERTICES + SMPLH_RIGHT_EYE_VERTICES):
            raise BodyModelFileError(f"{path}: {v_template.shape[0]} vertices; SMPL-H has 6890.")
        shapedirs = arrays["shapedirs"].astype(np.float64)
        regressor = arrays["J_regressor"].astype(np.float64)
        eyes = list(SMPLH_LEFT_EYE_VERTICES + SMPLH_RIGHT_EYE_VERTICES)
        f32 = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
        return BodyModel(
            v_template=f32(v_template),
            shapedirs=f32(shapedirs),
            j_template=f32(regressor @ v_template),
            j_shapedirs=f32(np.einsum("jv,vcb->jcb", regressor, shapedirs)),
            cpf_template=f32(v_template[eyes].mean(axis=0)),
            cpf_shapedirs=f32(shapedirs[eyes].mean(axis=0)),
            weights=f32(arrays["weights"]),
            faces=torch.from_numpy(arrays["f"].astype(np.int64)),
            posedirs=f32(arrays["posedirs"]),
            name=path.name,
        )

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> BodyModel:
        """A copy with floating-point tensors moved/cast."""
        changes = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, Tensor):
                cast = dtype if value.is_floating_point() else None
                changes[field.name] = value.to(device=device, dtype=cast)
        return dataclasses.replace(self, **changes)

    def with_shape(self, betas: Tensor) -> ShapedBody:
        """Apply shape coefficients `betas (..., B')`, B' <= B (missing ones are 0)."""
        b = betas.shape[-1]
        if b > self.num_betas:
            raise ValueError(f"got {b} shape coefficients; model '{self.name}' has {self.num_betas}.")
        betas = betas.to(self.v_template.dtype)
        verts = self.v_template + torch.einsum("vcb,...b->...vc", self.shapedirs[..., :b], betas)
        joints = self.j_template + torch.einsum("jcb,...b->...jc", self.j_shapedirs[..., :b], betas)
        cpf = self.cpf_template + torch.einsum("cb,...b->...c", self.cpf_shapedirs[..., :b], betas)
        return ShapedBody(model=self, betas=betas, verts_zero=verts, joints_zero=joints, cpf_zero=cpf)


@dataclasses.dataclass(frozen=True)
class ShapedBody:
    """A body model with shape applied, in the rest pose."""

    model: BodyModel
    betas: Tensor
    """(..., B')"""
    verts_zero: Tensor
    """(..., V, 3) rest-pose vertices."""
    joints_zero: Tensor
    """(..., 52, 3) rest-pose joint positions."""
    cpf_zero: Tensor
    """(..., 3) rest-pose CPF position."""

    @property
    def T_head_cpf(self) -> Tensor:
        """(..., 4, 4) CPF pose in the head joint's frame (rotation is identity)."""
        offset = self.cpf_zero - self.joints_zero[..., _HEAD, :]
        T = torch.eye(4, dtype=offset.dtype, device=offset.device).expand(*offset.shape[:-1], 4, 4).clone()
        T[..., :3, 3] = offset
        return T

    @property
    def stature(self) -> Tensor:
        """(...) standing height in metres: top of the head to the sole, at rest."""
        y = self.verts_zero[..., 1]
        return y.amax(dim=-1) - y.amin(dim=-1)

    @property
    def eye_height(self) -> Tensor:
        """(...) standing eye height in metres: the CPF above the soles, at rest."""
        return self.cpf_zero[..., 1] - self.verts_zero[..., 1].amin(dim=-1)

    @property
    def rest_joint_heights(self) -> Tensor:
        """(..., 52) height of each joint above the soles when standing at rest."""
        return self.joints_zero[..., 1] - self.verts_zero[..., 1].amin(dim=-1, keepdim=True)

    def with_pose(self, T_world_root: Tensor, local_rotations: Tensor) -> PosedBody:
        """Pose the body.

        Args:
            T_world_root: (..., 4, 4) world pose of the pelvis joint.
            local_rotations: (..., 21, 3, 3) body joints 1..21 (hands at rest) or
                (..., 51, 3, 3) joints 1..51, each relative to its parent.
        """
        n = local_rotations.shape[-3]
        if n not in (21, 51) or local_rotations.shape[-2:] != (3, 3):
            raise ValueError(f"local_rotations must be (..., 21|51, 3, 3), got {tuple(local_rotations.shape)}.")
        dtype = self.joints_zero.dtype
        T_world_root = T_world_root.to(dtype)
        local_rotations = local_rotations.to(dtype)
        if n == 21:
            eye = torch.eye(3, dtype=dtype, device=local_rotations.device)
            hands = eye.expand(*local_rotations.shape[:-3], 30, 3, 3)
            local_rotations = torch.cat([local_rotations, hands], dim=-3)

        R, p = forward_kinematics(
            self.joints_zero, self.model.parents, T_world_root[..., :3, :3], T_world_root[..., :3, 3], local_rotations
        )
        Ts = torch.cat([R, p[..., None]], dim=-1)
        bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=dtype, device=Ts.device).expand(*Ts.shape[:-2], 1, 4)
        Ts = torch.cat([Ts, bottom], dim=-2)
        rotations = local_rotations.expand(*Ts.shape[:-3], 51, 3, 3)
        return PosedBody(shaped=self, T_world_root=T_world_root, local_rotations=rotations, Ts_world_joint=Ts)


@dataclasses.dataclass(frozen=True)
class Mesh:
    vertices: Tensor
    """(..., V, 3) world positions."""
    faces: Tensor
    """(F, 3) vertex indices."""


@dataclasses.dataclass(frozen=True)
class PosedBody:
    """A shaped body in a pose: world transforms of all 52 joints."""

    shaped: ShapedBody
    T_world_root: Tensor
    """(..., 4, 4)"""
    local_rotations: Tensor
    """(..., 51, 3, 3) joints 1..51 relative to their parents."""
    Ts_world_joint: Tensor
    """(..., 52, 4, 4) world pose of every joint."""

    @property
    def joints_world(self) -> Tensor:
        """(..., 52, 3)"""
        return self.Ts_world_joint[..., :3, 3]

    @property
    def T_world_cpf(self) -> Tensor:
        """(..., 4, 4) world pose of the central pupil frame."""
        return self.Ts_world_joint[..., _HEAD, :, :] @ self.shaped.T_head_cpf

    def mesh(self) -> Mesh:
        """Linear blend skinning (with pose correctives when the model has them)."""
        model = self.shaped.model
        verts = self.shaped.verts_zero
        if model.posedirs is not None:
            eye = torch.eye(3, dtype=verts.dtype, device=verts.device)
            feature = (self.local_rotations - eye).flatten(-3)  # (..., 459)
            verts = verts + torch.einsum("vcp,...p->...vc", model.posedirs, feature)
        R = self.Ts_world_joint[..., :3, :3]
        # Per-joint skinning transform: world joint pose composed with the inverse rest pose.
        t = self.Ts_world_joint[..., :3, 3] - (R @ self.shaped.joints_zero[..., :, :, None])[..., 0]
        A = torch.cat([R, t[..., None]], dim=-1).flatten(-2)  # (..., 52, 12)
        blended = torch.einsum("vj,...jk->...vk", model.weights, A).unflatten(-1, (3, 4))
        vertices = (blended[..., :3] @ verts[..., None])[..., 0] + blended[..., 3]
        return Mesh(vertices=vertices, faces=model.faces)
