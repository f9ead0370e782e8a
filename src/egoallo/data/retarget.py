"""Retarget motion-capture skeletons onto the body model.

Per clip:

1. Source forward kinematics (z-up, metres) after the skeleton's lead-in
   frames; only the longest run of clean frames is kept (no non-finite
   values, no joint flips: a local rotation turning faster than
   `max_joint_speed_deg_s`); markerless sources are low-pass filtered
   (zero phase); resampled to the target rate.
2. Shape β from the source's bone lengths (least squares over mapped bones).
3. Initial rotations, top-down: a joint with two or more mapped descendants
   (pelvis, chest) takes the rotation that best aligns its rest bones with the
   source bones (Kabsch). Any other mapped joint carries over the source's
   world-frame rotation relative to its nearest mapped ancestor (so limbs, head
   and wrists get the source's twist), corrected by one constant per clip and
   then a minimal per-frame swing so its bone points exactly at the source's.
4. Joint refinement (Adam) of β, root, local rotations and a constant offset
   per mapped joint (the rigs define joints differently: e.g. the sources'
   root sits 2 cm above the hip joints, SMPL-H's pelvis 9 cm) on mapped-joint
   positions, the orientations of step 3 (weakly), and smoothness.
5. Floor at z = 0 (from the soles), contact labels.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from scipy.spatial.transform import Rotation, Slerp

from ..body import BodyModel, skeleton
from ..geometry import so3
from .bvh import Bvh
from .motion import Motion
from .skeletons import SourceSkeleton, identify_skeleton


@dataclasses.dataclass(frozen=True)
class RetargetConfig:
    fps: float = 30.0
    iterations: int = 80
    learning_rate: float = 0.05
    orientation_weight: float = 1e-3
    """Weight (m² per unit squared Frobenius distance) of the step-3 orientations."""
    smoothness_weight: float = 1e-2
    beta_prior_weight: float = 1e-5
    """Shape prior (per squared beta); a source skeleton may override it (`SourceSkeleton.beta_prior_weight`)."""
    marker_offset_weight: float = 0.1
    """Weight of the per-joint constant offsets that absorb differing joint definitions between rigs."""
    contact_height: float = 0.05
    """A joint is near the floor when less than this above its rest height over the sole (m)."""
    contact_speed: float = 0.2
    """... and nearly still when slower than this (m/s)."""
    max_joint_speed_deg_s: float = 3000.0
    """A source joint's local rotation turning faster than this is a flip, not motion (the fastest
    everyday joint motion, e.g. a wrist flick, stays under about 2,000 deg/s)."""


@dataclasses.dataclass(frozen=True)
class RetargetResult:
    motion: Motion
    mapped_joints: np.ndarray
    """(M,) body-model joint indices that have a source counterpart."""
    target_positions: np.ndarray
    """(T, M, 3) source joint positions in the output world frame (floor at z = 0)."""
    joint_errors_mm: np.ndarray
    """(M,) mean distance between each source joint and the fitted body's joint."""
    marker_errors_mm: np.ndarray
    """(M,) the same after each body joint is moved by its constant per-clip offset (in the
    joint's frame), which absorbs the rigs' differing joint definitions: the motion's fit residual."""
    joint_offsets_mm: np.ndarray
    """(M,) length of those offsets: how far the source rig's joint sits from the body model's."""

    @property
    def mean_error_mm(self) -> float:
        return float(self.joint_errors_mm.mean())


class RetargetError(ValueError):
    """A clip cannot be retargeted (too short, degenerate, non-finite)."""


@dataclasses.dataclass(frozen=True)
class CleanFrames:
    """The longest run of usable source frames, and what was repaired or dropped."""

    start: int
    stop: int
    """Frames `start:stop` (after the lead-in) are kept."""
    repaired_frames: tuple[int, ...]
    """Glitch frames (a joint flips away and back within `MAX_GLITCH_S`), replaced by interpolation."""
    flip_frames: int
    """Flips that did not come back as a glitch (a joint turning faster than the limit): the clip is cut at each."""
    non_finite_frames: int

    def to_json(self) -> dict:
        return dataclasses.asdict(self) | {"repaired_frames": len(self.repaired_frames)}


MAX_GLITCH_S = 0.1
"""Longest flip-and-back that is repaired by interpolation rather than cut out."""


def _rotation_angle_deg(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Angles between rotations `(..., 3, 3)`, degrees (`so3.geodesic_angle` on numpy arrays)."""
    return np.degrees(so3.geodesic_angle(torch.from_numpy(A), torch.from_numpy(B)).numpy())


def clean_frames(positions: np.ndarray, local_rotations: np.ndarray, fps: float, max_speed_deg_s: float) -> CleanFrames:
    """Find joint glitches and flips and the longest run of clean frames.

    A frame pair is bad when a joint's local rotation turns faster than
    `max_speed_deg_s` between them. Bad pairs at most `MAX_GLITCH_S` apart form
    one event; an event whose frames before and after agree (within the speed
    limit over its duration) is a glitch, its inner frames to be interpolated;
    any other event cuts the clip. Non-finite frames cut it too.

    Args:
        positions: (F, K, 3) source points.
        local_rotations: (F, J, 3, 3) source joints' rotations relative to their parents.
    """
    finite = np.isfinite(positions).all(axis=(1, 2)) & np.isfinite(local_rotations).all(axis=(1, 2, 3))
    F = len(finite)
    R = np.where(finite[:, None, None, None], local_rotations, np.eye(3))
    speed = _rotation_angle_deg(R[1:], R[:-1]).max(axis=1) * fps if F > 1 else np.zeros(0)
    bad = np.flatnonzero(speed > max_speed_deg_s)
    gap = max(1, int(round(MAX_GLITCH_S * fps)))
    events: list[tuple[int, int]] = []
    for pair in bad.tolist():
        if events and pair - events[-1][1] <= gap:
            events[-1] = (events[-1][0], pair)
        else:
            events.append((pair, pair))
    cut = ~finite[1:] | ~finite[:-1] if F > 1 else np.zeros(0, dtype=bool)
    repaired: list[int] = []
    flips = 0
    for first, last in events:
        inner = range(first + 1, last + 1)  # frames between the event's first and last bad pair
        duration = (last + 1 - first) / fps
        agree = _rotation_angle_deg(R[last + 1], R[first]).max() <= max_speed_deg_s * duration
        if 0 < len(inner) and last + 1 - first <= gap and agree and finite[first] and finite[last + 1]:
            repaired.extend(inner)
        else:
            cut[first : last + 1] = True
            flips += 1
    best = (0, 0)
    run_start = None
    for f in range(F):
        if finite[f] and run_start is None:
            run_start = f
        if run_start is not None and (f == F - 1 or cut[f]):
            if f + 1 - run_start > best[1] - best[0]:
                best = (run_start, f + 1)
            run_start = None
    kept = tuple(f - best[0] for f in repaired if best[0] <= f < best[1])
    return CleanFrames(best[0], best[1], kept, flips, int((~finite).sum()))


def repair_glitches(positions: np.ndarray, rotations: np.ndarray, frames: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Replace `frames` of `(F, K, 3)` positions and `(F, K, 3, 3)` rotations by interpolating their clean neighbours."""
    if not frames:
        return positions, rotations
    good = np.setdiff1d(np.arange(positions.shape[0]), frames)
    times = good.astype(np.float64)
    pos, rot = resample(times, positions[good], rotations[good], np.asarray(frames, dtype=np.float64))
    positions, rotations = positions.copy(), rotations.copy()
    positions[list(frames)], rotations[list(frames)] = pos, rot
    return positions, rotations


def lowpass(signal: np.ndarray, fps: float, cutoff_hz: float) -> np.ndarray:
    """Zero-phase 2nd-order Butterworth low-pass along axis 0 (unchanged when too short to filter)."""
    from scipy.signal import butter, filtfilt

    if cutoff_hz >= fps / 2 or signal.shape[0] <= 9:
        return signal
    b, a = butter(2, cutoff_hz / (fps / 2))
    return filtfilt(b, a, signal, axis=0)


def _owner_joints(bvh: Bvh, names: list[str]) -> list[int]:
    """The joints that carry the named points (an end site's joint is its parent)."""
    index = {n: i for i, n in enumerate(bvh.point_names)}
    J = len(bvh.joint_names)
    return sorted({index[n] if index[n] < J else int(bvh.end_sites.parents[index[n] - J]) for n in names})


def resample(times: np.ndarray, positions: np.ndarray, rotations: np.ndarray, new_times: np.ndarray):
    """Linear interpolation of `(F, M, 3)` positions and slerp of `(F, M, 3, 3)` rotations."""
    flat = positions.reshape(len(times), -1)
    pos = np.stack([np.interp(new_times, times, column) for column in flat.T], -1).reshape(len(new_times), *positions.shape[1:])
    rot = np.stack([Slerp(times, Rotation.from_matrix(rotations[:, m]))(new_times).as_matrix() for m in range(positions.shape[1])], 1)
    return pos, rot


def _mapped_descendants(mapped: set[int]) -> dict[int, list[int]]:
    """For each joint, the first mapped joint down each branch of the tree."""
    children: dict[int, list[int]] = {i: [] for i in range(skeleton.NUM_JOINTS)}
    for i, p in enumerate(skeleton.PARENTS):
        if p >= 0:
            children[p].append(i)

    def first_mapped(j: int) -> list[int]:
        return [j] if j in mapped else [d for c in children[j] for d in first_mapped(c)]

    return {j: [d for c in children[j] for d in first_mapped(c)] for j in range(skeleton.NUM_JOINTS)}


def _kabsch(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rotations `(T, 3, 3)` minimising sum_i |R a_i - b_i|² for `a (K, 3)`, `b (T, K, 3)`."""
    H = np.einsum("ki,tkj->tij", a, b)
    U, _, Vt = np.linalg.svd(H)
    d = np.sign(np.linalg.det(np.einsum("tji,tkj->tik", Vt, U)))
    D = np.zeros_like(H)
    D[:, 0, 0] = D[:, 1, 1] = 1.0
    D[:, 2, 2] = d
    return np.einsum("tji,tjk,tlk->til", Vt, D, U)


def _fit_betas(model: BodyModel, pairs: list[tuple[int, int]], lengths: np.ndarray, prior: float) -> torch.Tensor:
    betas = torch.zeros(model.num_betas, dtype=torch.float64, requires_grad=True)
    J0 = model.j_template.double()
    Jd = model.j_shapedirs.double()
    child = torch.tensor([c for c, _ in pairs])
    parent = torch.tensor([p for _, p in pairs])
    target = torch.from_numpy(lengths)
    optimizer = torch.optim.LBFGS([betas], max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        joints = J0 + torch.einsum("jcb,b->jc", Jd, betas)
        length = (joints[child] - joints[parent]).norm(dim=-1)
        loss = ((length - target) ** 2).sum() + prior * (betas**2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return betas.detach()


def retarget(
    bvh: Bvh,
    model: BodyModel,
    source: SourceSkeleton | None = None,
    config: RetargetConfig = RetargetConfig(),
) -> RetargetResult:
    """Fit `model` to a BVH clip of a known skeleton; returns the motion at `config.fps`."""
    source = source or identify_skeleton(bvh)
    if source.beta_prior_weight is not None:
        config = dataclasses.replace(config, beta_prior_weight=source.beta_prior_weight)
    with np.errstate(invalid="ignore"):
        pose = bvh.forward_kinematics(unit_scale=source.unit_scale)
    start = source.lead_in_frames
    mapped = sorted(skeleton.JOINT_INDEX[j] for j in source.joint_map)
    positions, rotations = pose.points(bvh, [source.joint_map[skeleton.JOINT_NAMES[j]] for j in mapped])
    positions, rotations = positions[start:], rotations[start:]
    if positions.shape[0] < 2:
        raise RetargetError(
            f"{bvh.source}: {positions.shape[0]} motion frame(s) after the {start} lead-in frame(s) "
            f"(calibration pose) of a {source.name} file; need at least 2."
        )
    owners = _owner_joints(bvh, [source.joint_map[skeleton.JOINT_NAMES[j]] for j in mapped])
    R = pose.rotations[start:]
    parents = np.maximum(bvh.parents[owners], 0)
    local_source = np.einsum("fjba,fjbc->fjac", R[:, parents], R[:, owners])
    clean = clean_frames(positions, local_source, bvh.fps, config.max_joint_speed_deg_s)
    if clean.stop - clean.start < 2:
        raise RetargetError(
            f"{bvh.source}: no run of 2 or more clean frames ({clean.non_finite_frames} non-finite, "
            f"{clean.flip_frames} joint flip(s) faster than {config.max_joint_speed_deg_s:g} deg/s)."
        )
    positions, rotations = positions[clean.start : clean.stop], rotations[clean.start : clean.stop]
    positions, rotations = repair_glitches(positions, rotations, clean.repaired_frames)
    jitter_removed_mm = 0.0
    if source.lowpass_hz is not None:
        filtered = lowpass(positions, bvh.fps, source.lowpass_hz)
        jitter_removed_mm = float(np.sqrt(((filtered - positions) ** 2).sum(-1).mean()) * 1000.0)
        positions = filtered
        rotations = so3.project(torch.from_numpy(np.ascontiguousarray(lowpass(rotations, bvh.fps, source.lowpass_hz)))).numpy()

    times = np.arange(positions.shape[0]) / bvh.fps
    new_times = np.arange(0.0, times[-1] + 1e-9, 1.0 / config.fps)
    if len(new_times) < 2:
        raise RetargetError(f"{bvh.source}: {times[-1]:.3f} s of motion; too short to resample.")
    if abs(bvh.fps - config.fps) > 1e-6:
        positions, rotations = resample(times, positions, rotations, new_times)
    T, M = positions.shape[:2]
    slot = {j: m for m, j in enumerate(mapped)}

    # 2. Shape from bone lengths.
    descendants = _mapped_descendants(set(mapped))
    pairs = [(d, j) for j in mapped for d in descendants[j]]
    lengths = np.array([np.median(np.linalg.norm(positions[:, slot[c]] - positions[:, slot[p]], axis=-1)) for c, p in pairs])
    if np.any(lengths < 1e-3):
        raise RetargetError(f"{bvh.source}: degenerate skeleton (a mapped bone has zero length).")
    betas = _fit_betas(model, pairs, lengths, config.beta_prior_weight)
    joints_rest = model.with_shape(betas.float()).joints_zero.double().numpy()

    # 3. Initial world rotations, top-down.
    R_world = np.zeros((T, skeleton.NUM_JOINTS, 3, 3))
    anchor: dict[int, int] = {}  # nearest mapped ancestor (or itself) of every joint
    for j in range(skeleton.NUM_JOINTS):
        parent = skeleton.PARENTS[j]
        if parent >= 0:
            anchor[j] = j if j in slot else anchor[parent]
        else:
            anchor[j] = j
        targets = descendants[j] if j in slot else []
        if len(targets) >= 2 or parent < 0:
            a = np.stack([joints_rest[d] - joints_rest[j] for d in targets])
            b = np.stack([positions[:, slot[d]] - positions[:, slot[j]] for d in targets], axis=1)
            R_world[:, j] = _kabsch(a, b)
            continue
        if j not in slot or anchor[parent] not in slot:
            R_world[:, j] = R_world[:, parent]
            continue
        # Carry the source's world-frame rotation relative to the mapped ancestor over.
        q, q_anchor = rotations[:, slot[j]], rotations[:, slot[anchor[parent]]]
        candidate = q @ q_anchor.transpose(0, 2, 1) @ R_world[:, anchor[parent]]
        if targets:
            a = joints_rest[targets[0]] - joints_rest[j]
            b = positions[:, slot[targets[0]]] - positions[:, slot[j]]
            in_candidate = np.einsum("tji,tj->ti", candidate, b)
            constant = _swing(a[None], in_candidate.mean(axis=0, keepdims=True))[0]
            candidate = candidate @ constant
            candidate = _swing(np.einsum("tij,j->ti", candidate, a), b) @ candidate
        R_world[:, j] = candidate

    local = np.einsum("tjik,tjkl->tjil", R_world[:, list(skeleton.PARENTS[1:])].transpose(0, 1, 3, 2), R_world[:, 1:])
    root_position = positions[:, slot[0]] if 0 in slot else positions.mean(axis=1)
    orientation_targets = {j: R_world[:, j] for j in mapped}

    # 4. Refinement.
    has_hands = any(skeleton.JOINT_NAMES[j].endswith("index1") for j in mapped)
    if not has_hands:
        local[:, skeleton.NUM_BODY_JOINTS - 1 :] = np.eye(3)
    result = _refine(
        model, betas, R_world[:, 0], root_position, local, positions, mapped, orientation_targets, config, has_hands
    )
    betas, T_world_root, local, marker_offsets = result

    # 5. Floor and contacts.
    shaped = model.with_shape(torch.from_numpy(betas).float())
    rest_height = shaped.rest_joint_heights.double().numpy()
    posed = shaped.with_pose(torch.from_numpy(T_world_root).float(), torch.from_numpy(local).float())
    joints = posed.joints_world.double().numpy()
    feet = [skeleton.JOINT_INDEX[n] for n in ("left_ankle", "right_ankle", "left_foot", "right_foot")]
    sole = (joints[:, feet, 2] - rest_height[feet]).min(axis=1)  # (T,) lowest sole estimate per frame
    floor = float(np.percentile(sole, 5))
    T_world_root[:, 2, 3] -= floor
    joints[..., 2] -= floor
    target = positions.copy()
    target[..., 2] -= floor
    contacts = contact_labels(joints, rest_height, config.fps, config.contact_height, config.contact_speed)

    R_mapped = posed.Ts_world_joint[:, mapped, :3, :3].double().numpy()
    markers = joints[:, mapped] + np.einsum("tmij,mj->tmi", R_mapped, marker_offsets)
    marker_errors = np.linalg.norm(markers - target, axis=-1).mean(axis=0) * 1000.0
    errors = np.linalg.norm(joints[:, mapped] - target, axis=-1).mean(axis=0) * 1000.0
    motion = Motion(
        name=bvh.source,
        fps=config.fps,
        betas=betas.astype(np.float32),
        T_world_root=T_world_root,
        local_rotations=local,
        has_hands=has_hands,
        contacts=contacts,
        metadata={
            "source_skeleton": source.name,
            "source_fps": bvh.fps,
            "floor_shift_m": floor,
            "lead_in_frames": start,
            "clean_frames": clean.to_json(),
            "frames_dropped": bvh.num_frames - start - (clean.stop - clean.start),
            "lowpass_hz": source.lowpass_hz,
            "jitter_removed_rms_mm": jitter_removed_mm,
        },
    )
    return RetargetResult(
        motion=motion,
        mapped_joints=np.array(mapped),
        target_positions=target,
        joint_errors_mm=errors,
        marker_errors_mm=marker_errors,
        joint_offsets_mm=np.linalg.norm(marker_offsets, axis=-1) * 1000.0,
    )


def _swing(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Minimal rotations `(T, 3, 3)` taking directions `a (T, 3)` onto `b (T, 3)`."""
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    v = np.cross(a, b)
    c = np.einsum("ti,ti->t", a, b)
    K = np.zeros((len(v), 3, 3))
    K[:, 0, 1], K[:, 0, 2], K[:, 1, 2] = -v[:, 2], v[:, 1], -v[:, 0]
    K = K - K.transpose(0, 2, 1)
    # Rodrigues with (1 - c) / |v|^2 = 1 / (1 + c); opposite directions are clamped.
    return np.eye(3) + K + K @ K / np.maximum(1.0 + c, 1e-6)[:, None, None]


def _refine(model, betas, R_root, root_position, local, positions, mapped, orientation_targets, config, has_hands):
    """Adam on β, root, local rotations (hands only when the source has fingers) and joint offsets."""
    dtype = torch.float32
    betas = betas.to(dtype).clone().requires_grad_(True)
    R_root0 = torch.from_numpy(R_root).to(dtype)
    num_free = 51 if has_hands else skeleton.NUM_BODY_JOINTS - 1
    local0 = torch.from_numpy(local[:, :num_free]).to(dtype)
    T = local0.shape[0]
    delta_root = torch.zeros(T, 3, dtype=dtype, requires_grad=True)
    delta_local = torch.zeros(T, num_free, 3, dtype=dtype, requires_grad=True)
    translation = torch.from_numpy(root_position).to(dtype).clone().requires_grad_(True)
    marker_offsets = torch.zeros(len(mapped), 3, dtype=dtype, requires_grad=True)
    target = torch.from_numpy(positions).to(dtype)
    mapped_t = torch.tensor(mapped)
    ori_idx = torch.tensor(sorted(orientation_targets))
    ori_target = torch.from_numpy(np.stack([orientation_targets[j] for j in sorted(orientation_targets)], axis=1)).to(dtype)
    optimizer = torch.optim.Adam([betas, delta_root, delta_local, translation, marker_offsets], lr=config.learning_rate)

    def evaluate():
        R0 = R_root0 @ so3.exp(delta_root)
        L = local0 @ so3.exp(delta_local)
        T_root = torch.zeros(T, 4, 4, dtype=dtype)
        T_root[:, :3, :3] = R0
        T_root[:, :3, 3] = translation
        T_root[:, 3, 3] = 1.0
        posed = model.with_shape(betas).with_pose(T_root, L)
        return T_root, L, posed

    for _ in range(config.iterations):
        optimizer.zero_grad()
        T_root, L, posed = evaluate()
        T_mapped = posed.Ts_world_joint[:, mapped_t]
        markers = T_mapped[..., :3, 3] + (T_mapped[..., :3, :3] @ marker_offsets[:, :, None])[..., 0]
        loss = ((markers - target) ** 2).sum(-1).mean()
        loss = loss + config.marker_offset_weight * (marker_offsets**2).sum(-1).mean()
        R_w = posed.Ts_world_joint[:, ori_idx, :3, :3]
        loss = loss + config.orientation_weight * ((R_w - ori_target) ** 2).sum((-1, -2)).mean()
        if T > 2:
            accel = posed.joints_world[2:] - 2 * posed.joints_world[1:-1] + posed.joints_world[:-2]
            loss = loss + config.smoothness_weight * (accel**2).sum(-1).mean()
        loss = loss + config.beta_prior_weight * (betas**2).sum()
        loss.backward()
        optimizer.step()

    with torch.no_grad():
        T_root, L, _ = evaluate()
    local = local.copy()
    local[:, :num_free] = so3.project(L.double()).numpy()
    return (
        betas.detach().numpy().astype(np.float64),
        T_root.double().numpy(),
        local,
        marker_offsets.detach().double().numpy(),
    )


def contact_labels(
    joints: np.ndarray, rest_height: np.ndarray, fps: float, height: float, speed: float
) -> np.ndarray:
    """`(T, 52)` in {0, 1}: joint within `height` of its rest clearance over the floor and slower than `speed`.

    Args:
        joints: (T, 52, 3) world positions, floor at z = 0.
        rest_height: (52,) each joint's height over the sole in the rest pose
            (how high it sits when the body stands on it).
    """
    near = joints[..., 2] < np.minimum(rest_height, 0.1)[None] + height
    velocity = np.gradient(joints, axis=0) * fps if joints.shape[0] > 1 else np.zeros_like(joints)
    still = np.linalg.norm(velocity, axis=-1) < speed
    return (near & still).astype(np.uint8)
