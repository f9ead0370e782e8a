"""Binary glTF 2.0 (`.glb`) of one sample: the skinned body mesh and its animation.

Coordinate frame: glTF is Y-up, metres, right-handed, with models facing +Z.
A result lives in its input's own world frame; the export first maps it into
the gravity-aligned z-up frame (`T_input_zup`, floor moved to z = 0, as
`result_motion` does for BVH), then turns z-up into y-up with
(x, y, z) -> (x, z, -y), so the body stands upright on the y = 0 plane in glTF
viewers. The body model's rest frame is already glTF's (+y up, facing +z), so
the mesh and the bind pose are written as they are.

Layout: nodes 0..51 are the joints (node index = joint index, names from
`skeleton.JOINT_NAMES`) in the kinematic hierarchy, each at its rest offset
from its parent; node 52 holds the skinned mesh; node 53 ("origin") is the root
joint's parent, placed at the median horizontal root position in float64 JSON
numbers, so the float32 animation keys stay small at UTM scale. At rest every joint frame is
aligned with the model frame, so a joint's inverse bind matrix is a
translation by minus its rest position. The mesh is the template shaped by the
sample's betas; each vertex keeps its four largest skinning weights,
renormalised. One animation: a rotation channel per joint (xyzw quaternions)
and a translation channel for the root, LINEAR, keyed at the result's
timestamps in seconds from 0. Pose-corrective blend shapes (official SMPL-H)
are not exported: viewers skin the mesh with linear blend skinning only.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from ..body import BodyModel, skeleton
from ..data.motion import Motion
from ..errors import UserError
from ..files import write_bytes_atomic
from .motion_files import Z_UP_TO_Y_UP

_COMPONENT_TYPES = {
    np.dtype(np.float32): 5126,
    np.dtype(np.uint8): 5121,
    np.dtype(np.uint16): 5123,
    np.dtype(np.uint32): 5125,
}
_TYPES = {(): "SCALAR", (3,): "VEC3", (4,): "VEC4", (4, 4): "MAT4"}
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963
_JSON_CHUNK, _BIN_CHUNK = 0x4E4F534A, 0x004E4942
_MESH_NODE = skeleton.NUM_JOINTS
_ORIGIN_NODE = skeleton.NUM_JOINTS + 1


def frame_times(timestamps_ns: np.ndarray) -> np.ndarray:
    """(T,) seconds from the first frame; refuses timestamps that do not increase."""
    if np.any(np.diff(timestamps_ns) <= 0):
        raise UserError("the result's timestamps do not strictly increase; glTF animations need them to.")
    return (timestamps_ns - timestamps_ns[0]) * 1e-9


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) area-weighted unit normals of counter-clockwise faces; +y for vertices in no face."""
    v = vertices[faces]  # (F, 3, 3)
    face_normals = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    normals = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(normals, faces[:, k], face_normals)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return np.where(length > 0, normals / np.maximum(length, 1e-30), [0.0, 1.0, 0.0])


def top_weights(weights: np.ndarray, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Each vertex's `k` largest skinning weights, renormalised.

    Returns joints (V, k) uint8 (0 where unused, as glTF asks) and weights (V, k) float32.
    """
    joints = np.argsort(-weights, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(weights, joints, axis=1)
    top = (top / top.sum(axis=1, keepdims=True)).astype(np.float32)
    return np.where(top > 0, joints, 0).astype(np.uint8), top


def continuous_quaternions(q: np.ndarray) -> np.ndarray:
    """(T, ..., 4) with signs flipped so consecutive frames are on the same hemisphere (shortest interpolation)."""
    dots = np.sum(q[1:] * q[:-1], axis=-1)
    signs = np.cumprod(np.where(dots < 0, -1.0, 1.0), axis=0)
    return np.concatenate([q[:1], q[1:] * signs[..., None]], axis=0)


def animation_tracks(motion: Motion) -> tuple[np.ndarray, np.ndarray]:
    """Joint rotations as xyzw quaternions (T, 52, 4) and root translations (T, 3), both y-up."""
    R_root = Z_UP_TO_Y_UP @ motion.T_world_root[:, :3, :3]
    rotations = np.concatenate([R_root[:, None], motion.local_rotations], axis=1)  # (T, 52, 3, 3)
    quats = Rotation.from_matrix(rotations.reshape(-1, 3, 3)).as_quat().reshape(motion.num_frames, skeleton.NUM_JOINTS, 4)
    return continuous_quaternions(quats), motion.T_world_root[:, :3, 3] @ Z_UP_TO_Y_UP.T


def local_origin(root_translation: np.ndarray) -> np.ndarray:
    """(3,) y-up: the median horizontal root position (on the floor, y = 0), the node the root is animated in.
    A result at UTM scale (x = 5,400 km) keeps its place in the file (the node's JSON numbers are float64)
    while its motion, keyed in float32 around that node, keeps millimetres."""
    x, _, z = np.median(root_translation, axis=0)
    return np.array([x, 0.0, z])


def inverse_bind_matrices(rest_joints: np.ndarray) -> np.ndarray:
    """(52, 4, 4) translations by minus each rest joint position."""
    ibm = np.tile(np.eye(4), (len(rest_joints), 1, 1))
    ibm[:, :3, 3] = -rest_joints
    return ibm


def joint_nodes(rest_joints: np.ndarray) -> list[dict]:
    """The 52 joint nodes: names, rest translations relative to the parent, children."""
    nodes = []
    for j, parent in enumerate(skeleton.PARENTS):
        offset = rest_joints[j] - rest_joints[parent] if parent >= 0 else rest_joints[j]
        node = {"name": skeleton.JOINT_NAMES[j], "translation": [float(x) for x in offset]}
        children = [c for c, p in enumerate(skeleton.PARENTS) if p == j]
        if children:
            node["children"] = children
        nodes.append(node)
    return nodes


def pack_accessors(arrays: list[tuple[np.ndarray, int | None, bool]]) -> tuple[bytes, list[dict], list[dict]]:
    """Binary buffer, buffer views and accessors for (array (N, ...), bufferView target, with min/max), in order.

    MAT4 elements (N, 4, 4) are written column-major, as glTF requires; every view starts on a 4-byte boundary.
    """
    blob, views, accessors = bytearray(), [], []
    for array, target, bounds in arrays:
        element = array.shape[1:]
        data = np.swapaxes(array, -1, -2) if element == (4, 4) else array
        raw = np.ascontiguousarray(data).tobytes()
        view = {"buffer": 0, "byteOffset": len(blob), "byteLength": len(raw)}
        if target is not None:
            view["target"] = target
        accessor = {
            "bufferView": len(views),
            "componentType": _COMPONENT_TYPES[array.dtype],
            "count": len(array),
            "type": _TYPES[element],
        }
        if bounds:
            flat = array.reshape(len(array), -1)
            accessor["min"] = [float(x) for x in flat.min(axis=0)]
            accessor["max"] = [float(x) for x in flat.max(axis=0)]
        blob += raw + b"\0" * (-len(raw) % 4)
        views.append(view)
        accessors.append(accessor)
    return bytes(blob), views, accessors


def glb_bytes(document: dict, binary: bytes) -> bytes:
    """A GLB container: 12-byte header, JSON chunk (space-padded), BIN chunk (zero-padded)."""
    text = json.dumps(document, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    binary += b"\0" * (-len(binary) % 4)
    total = 12 + 8 + len(text) + 8 + len(binary)
    return (
        struct.pack("<4sII", b"glTF", 2, total)
        + struct.pack("<II", len(text), _JSON_CHUNK)
        + text
        + struct.pack("<II", len(binary), _BIN_CHUNK)
        + binary
    )


def glb_document(motion: Motion, body: BodyModel, times: np.ndarray) -> tuple[dict, bytes]:
    """The glTF JSON and its binary buffer for `motion` skinned on `body` shaped by the motion's betas."""
    shaped = body.to(dtype=torch.float64).with_shape(torch.from_numpy(np.asarray(motion.betas, dtype=np.float64)))
    vertices = shaped.verts_zero.numpy()
    rest_joints = shaped.joints_zero.numpy()
    faces = body.faces.numpy()
    joints, weights = top_weights(body.weights.double().numpy())
    quats, root_translation = animation_tracks(motion)
    origin = local_origin(root_translation)
    root_translation = root_translation - origin  # float64 until here: float32 keeps millimetres near the origin
    index_type = np.uint16 if len(vertices) < 65535 else np.uint32  # 65535 is reserved (primitive restart)
    arrays = {
        "POSITION": (vertices.astype(np.float32), _ARRAY_BUFFER, True),
        "NORMAL": (vertex_normals(vertices, faces).astype(np.float32), _ARRAY_BUFFER, False),
        "JOINTS_0": (joints, _ARRAY_BUFFER, False),
        "WEIGHTS_0": (weights, _ARRAY_BUFFER, False),
        "indices": (faces.reshape(-1).astype(index_type), _ELEMENT_ARRAY_BUFFER, False),
        "inverseBindMatrices": (inverse_bind_matrices(rest_joints).astype(np.float32), None, False),
        "time": (times.astype(np.float32), None, True),
        "root_translation": (root_translation.astype(np.float32), None, False),
        **{f"rotation {j}": (quats[:, j].astype(np.float32), None, False) for j in range(skeleton.NUM_JOINTS)},
    }
    binary, views, accessors = pack_accessors(list(arrays.values()))
    index = {name: i for i, name in enumerate(arrays)}
    outputs = [(index[f"rotation {j}"], j, "rotation") for j in range(skeleton.NUM_JOINTS)]
    outputs.append((index["root_translation"], 0, "translation"))
    attributes = {name: index[name] for name in ("POSITION", "NORMAL", "JOINTS_0", "WEIGHTS_0")}
    animation = {
        "name": motion.name,
        "samplers": [{"input": index["time"], "output": out, "interpolation": "LINEAR"} for out, _, _ in outputs],
        "channels": [{"sampler": s, "target": {"node": n, "path": p}} for s, (_, n, p) in enumerate(outputs)],
    }
    document = {
        "asset": {"version": "2.0", "generator": "egoallo"},
        "scene": 0,
        "scenes": [{"nodes": [_ORIGIN_NODE, _MESH_NODE]}],
        "nodes": [*joint_nodes(rest_joints), {"name": "body", "mesh": 0, "skin": 0},
                  {"name": "origin", "translation": [float(x) for x in origin], "children": [0]}],
        "meshes": [{"name": body.name, "primitives": [{"attributes": attributes, "indices": index["indices"]}]}],
        "skins": [
            {"joints": list(range(skeleton.NUM_JOINTS)), "skeleton": 0, "inverseBindMatrices": index["inverseBindMatrices"]}
        ],
        "animations": [animation],
        "buffers": [{"byteLength": len(binary)}],
        "bufferViews": views,
        "accessors": accessors,
    }
    return document, binary


def write_glb(path: str | os.PathLike, motion: Motion, body: BodyModel, times: np.ndarray) -> Path:
    """`motion` as a skinned, animated body in a binary glTF file keyed at `times (T,)` seconds, atomically."""
    document, binary = glb_document(motion, body, times)
    return write_bytes_atomic(Path(path), glb_bytes(document, binary))
