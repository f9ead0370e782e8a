"""A local web viewer of a result on viser: bodies over time, head trajectory, floor, points, contacts.

A result with a consensus body (`egoallo.consensus`) shows it solid, its joints coloured by their spread
(`render.spread_colors`), and the samples as pale ghosts around it.

Everything is drawn in the result's own (input) world frame, with the up axis
given by `T_input_zup`. Mesh vertices are computed once for every frame; playing
a frame sends only new vertex positions.

    viewer = ResultViewer(SceneData.from_result(InferenceResult.load("result.npz")))
    print(viewer.url)
    viewer.play()  # blocks
"""

from __future__ import annotations

import dataclasses
import errno
import socket
import threading
import time
from pathlib import Path

import matplotlib
import numpy as np
import torch
import viser
from scipy.spatial.transform import Rotation

from ..body import BodyModel, skeleton
from ..errors import UserError
from ..inputs.trajectory import HeadTrajectory
from ..inputs.wrist_palm import read_wrist_palm, to_world_observations
from ..result import InferenceResult
from .render import DEFAULT_COLORS, spread_colors

FOOT_JOINTS = ("left_ankle", "right_ankle", "left_foot", "right_foot")
HANDS = ("left", "right")
_FREE_RGB = np.array([170.0, 170.0, 170.0])
_CONTACT_RGB = np.array([230.0, 50.0, 30.0])
_HEAD_PATH_RGB = (214, 39, 40)
_WRIST_RGB = (40, 160, 60)
_REFRESH_HZ = 30.0
_GHOST_RGB = (120, 120, 120)


@dataclasses.dataclass(frozen=True)
class SceneData:
    """A result prepared for drawing, in its own world frame: `S` samples, `T` frames."""

    vertices: np.ndarray
    """(S, T, V, 3) float32 body mesh vertices."""
    faces: np.ndarray
    """(F, 3) uint32"""
    feet: np.ndarray
    """(S, T, 4, 3) positions of `FOOT_JOINTS`."""
    foot_contacts: np.ndarray
    """(S, T, 4) predicted contact probability of `FOOT_JOINTS`."""
    T_world_cpf: np.ndarray
    """(T, 4, 4) the input head poses."""
    T_world_floor: np.ndarray
    """(4, 4) floor plane (its z along up), centred under the head path."""
    floor_size: float
    """Side of the floor square (metres)."""
    up: np.ndarray
    """(3,) gravity up."""
    fps: float
    points: np.ndarray | None = None
    """(N, 3) SLAM points, or None."""
    wrists: np.ndarray | None = None
    """(T, 2, 3) observed wrists (`HANDS`), NaN where untracked; or None."""
    origin: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(3))
    """(3,) float64: the point of the result's world drawn at the scene's origin (every position above is
    relative to it, so a UTM-scale world keeps millimetres in float32)."""
    consensus_vertices: np.ndarray | None = None
    """(T, V, 3) float32 the consensus body's mesh, or None (a result without one)."""
    consensus_joints: np.ndarray | None = None
    """(T, 52, 3) float32 the consensus body's joints."""
    joint_spread_m: np.ndarray | None = None
    """(T, 52) each consensus joint's spread."""

    @property
    def num_samples(self) -> int:
        return self.vertices.shape[0]

    @property
    def num_frames(self) -> int:
        return self.vertices.shape[1]

    @staticmethod
    def from_result(
        result: InferenceResult,
        body: BodyModel | None = None,
        *,
        points: np.ndarray | None = None,
        max_points: int = 200_000,
    ) -> SceneData:
        """Precompute everything the viewer draws.

        `body`: the model the result was made with (default: `$EGOALLO_SMPLH_MODEL` or the
        shipped one). `points (N, 3)` in the result's world; a random `max_points` are kept.
        Wrist observations are re-read when the result's metadata names their file.
        """
        body = body or BodyModel.load_from_env_or_default()
        origin = local_origin(result)
        result = moved_by(result, -origin)  # in float64, before anything is posed or cast
        T_world_floor, floor_size = floor_pose(result)
        feet = [skeleton.JOINT_INDEX[name] for name in FOOT_JOINTS]
        if points is not None and len(points) > max_points:
            points = points[np.random.default_rng(0).choice(len(points), max_points, replace=False)]
        consensus = {}
        if result.has_consensus:
            one = dataclasses.replace(result, T_world_root=result.T_world_root_consensus[None],
                                      local_rotations=result.local_rotations_consensus[None],
                                      betas=result.betas_consensus[None], joints_world=result.joints_world_consensus[None])
            consensus = dict(consensus_vertices=body_vertices(one, body)[0],
                             consensus_joints=result.joints_world_consensus.astype(np.float32),
                             joint_spread_m=result.joint_spread_m)
        return SceneData(
            vertices=body_vertices(result, body),
            faces=body.faces.numpy().astype(np.uint32),
            feet=result.joints_world[:, :, feet],
            foot_contacts=result.contacts[:, :, [j - 1 for j in feet]],
            T_world_cpf=result.T_world_cpf,
            T_world_floor=T_world_floor,
            floor_size=floor_size,
            up=result.T_input_zup[:3, 2],
            fps=result.fps,
            points=None if points is None else points - origin,
            wrists=wrist_observations(result),
            origin=origin,
            **consensus,
        )


def local_origin(result: InferenceResult) -> np.ndarray:
    """(3,) the median root position of a result's first sample in its world, moved along up to the height of
    the world's origin (heights stay as they are): the scene's origin."""
    median = np.median(result.T_world_root[0, :, :3, 3].astype(np.float64), axis=0)
    up = result.T_input_zup[:3, 2].astype(np.float64)
    return median - (median @ up) * up


def moved_by(result: InferenceResult, offset: np.ndarray) -> InferenceResult:
    """`result` with every position, and the input frame, moved by `offset (3,)`, in float64."""
    T_input_zup = result.T_input_zup.astype(np.float64)
    T_input_zup[:3, 3] += offset
    return dataclasses.replace(result.moved(offset), T_input_zup=T_input_zup)


def body_vertices(result: InferenceResult, body: BodyModel, chunk: int = 64) -> np.ndarray:
    """(S, T, V, 3) float32 mesh vertices of every sample and frame, `chunk` frames at a time."""
    if result.betas.shape[-1] != body.num_betas:
        raise UserError(
            f"the result has {result.betas.shape[-1]} shape parameters, the body model {body.name} has "
            f"{body.num_betas}; pass the body model the result was made with "
            f"({result.metadata.get('body_model', 'unknown')}) with --body-model."
        )
    out = np.empty((result.num_samples, len(result.timestamps_ns), body.v_template.shape[0], 3), np.float32)
    with torch.no_grad():
        for s in range(result.num_samples):
            shaped = body.with_shape(torch.from_numpy(result.betas[s]).to(body.v_template.dtype))
            for t in range(0, out.shape[1], chunk):
                frames = slice(t, t + chunk)
                posed = shaped.with_pose(
                    torch.from_numpy(result.T_world_root[s, frames]).to(body.v_template.dtype),
                    torch.from_numpy(result.local_rotations[s, frames]).to(body.v_template.dtype),
                )
                out[s, frames] = posed.mesh().vertices.numpy()
    return out


def floor_pose(result: InferenceResult, margin_m: float = 2.0) -> tuple[np.ndarray, float]:
    """(4, 4) pose of the floor plane (z up, at `floor_z`) under the head path's centre, and its side."""
    T_zup_input = np.linalg.inv(result.T_input_zup)
    head = result.T_world_cpf[:, :3, 3] @ T_zup_input[:3, :3].T + T_zup_input[:3, 3]
    low, high = head[:, :2].min(axis=0), head[:, :2].max(axis=0)
    T_zup_floor = np.eye(4)
    T_zup_floor[:2, 3] = (low + high) / 2
    T_zup_floor[2, 3] = result.floor_z
    return result.T_input_zup @ T_zup_floor, float(np.ceil((high - low).max() + 2 * margin_m))


def wrist_observations(result: InferenceResult) -> np.ndarray | None:
    """(T, 2, 3) observed wrists in the result's world from the wrist-and-palm file its metadata names.

    None when the result was made without one or the file is gone.
    """
    source = (result.metadata.get("wrist_palm") or {}).get("source")
    if source is None or not Path(source).is_file():
        return None
    # The alignment only composes poses, so it works in the result's world as well as in the z-up one.
    head = HeadTrajectory(result.timestamps_ns, result.T_world_cpf, source="result")
    T_device_cpf = np.asarray(result.metadata["trajectory"]["T_pose_cpf"], dtype=np.float64)
    observations, _ = to_world_observations(read_wrist_palm(source), head, T_device_cpf)
    return observations.wrist_position.numpy()


def ensure_port_free(host: str, port: int) -> None:
    """Raise a `UserError` naming `port` when it cannot be listened on (in use, or a foreign address)."""
    try:
        family, kind, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as e:
        raise UserError(f"--host {host}: cannot resolve it ({e.strerror}).") from None
    with socket.socket(family, kind) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise UserError(f"port {port} on {host} is already in use; choose another with --port.") from None
            raise UserError(f"cannot listen on {host}:{port} ({e.strerror}); check --host and --port.") from None


def _wxyz(R: np.ndarray) -> np.ndarray:
    """(..., 4) quaternions (w, x, y, z) of rotation matrices (..., 3, 3)."""
    return np.roll(Rotation.from_matrix(R).as_quat(), 1, axis=-1)


def _rgb(hex_color: str) -> tuple[int, int, int]:
    return tuple(round(255 * c) for c in matplotlib.colors.to_rgb(hex_color))


def _contact_rgb(probability: float) -> tuple[int, int, int]:
    return tuple(int(c) for c in _FREE_RGB + probability * (_CONTACT_RGB - _FREE_RGB))


@dataclasses.dataclass(frozen=True)
class _Controls:
    playing: viser.GuiCheckboxHandle
    frame: viser.GuiSliderHandle
    speed: viser.GuiSliderHandle


class ResultViewer:
    """A viser server drawing a `SceneData`, one frame at a time; `play()` animates it.

    Scene nodes (`nodes`, by name): `/body/sample_{s}` (mesh) with its foot-contact spheres
    `/body/sample_{s}/feet/{joint}`, `/trajectory`, `/cpf`, `/floor`; `/points` and
    `/wrists/{left,right}` when the scene has them; `/body/consensus` (mesh) and `/spread` (its 22 body
    joints coloured by spread) when it has a consensus, the samples then pale ghosts.
    """

    def __init__(self, scene: SceneData, *, host: str = "127.0.0.1", port: int = 8080, title: str = "egoallo") -> None:
        ensure_port_free(host, port)
        self.scene = scene
        self.server = viser.ViserServer(host=host, port=port, label=title, verbose=False)
        if port != 0 and self.server.get_port() != port:  # taken between the check and the start
            self.server.stop()
            raise UserError(f"port {port} on {host} is already in use; choose another with --port.")
        self.host = host
        self.nodes: dict[str, viser.SceneNodeHandle] = {}
        self.frame = 0
        self._lock = threading.Lock()
        self.server.scene.set_up_direction(scene.up)
        self._add_static()
        self._add_bodies()
        self._controls = self._add_gui()
        self._place_camera()
        self.set_frame(0)

    @property
    def url(self) -> str:
        host = "localhost" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.server.get_port()}"

    @property
    def playing(self) -> bool:
        """The "Playing" checkbox: whether `play()` advances frames."""
        return self._controls.playing.value

    @playing.setter
    def playing(self, value: bool) -> None:
        self._controls.playing.value = value

    def _add(self, handle: viser.SceneNodeHandle) -> None:
        self.nodes[handle.name] = handle

    def _add_static(self) -> None:
        scene, api = self.scene, self.server.scene
        T_floor = scene.T_world_floor
        size = scene.floor_size
        self._add(api.add_grid("/floor", size, size, wxyz=_wxyz(T_floor[:3, :3]), position=T_floor[:3, 3]))
        head = scene.T_world_cpf[:, :3, 3].astype(np.float32)
        segments = np.stack([head[:-1], head[1:]], axis=1)  # (T - 1, 2, 3)
        self._add(api.add_line_segments("/trajectory", segments, _HEAD_PATH_RGB, thickness=0.01))
        self._add(api.add_frame("/cpf", axes_length=0.15, axes_radius=0.006))
        if scene.points is not None:
            points = scene.points.astype(np.float32)
            self._add(
                api.add_point_cloud("/points", points, self._point_colors(), point_size=0.01, precision="float32")
            )
        if scene.wrists is not None:
            self._add(api.add_frame("/wrists", show_axes=False))
            for hand in HANDS:
                self._add(api.add_icosphere(f"/wrists/{hand}", radius=0.03, color=_WRIST_RGB))

    def _point_colors(self) -> np.ndarray:
        """(N, 3) uint8 colours of the points by height above the floor."""
        height = (self.scene.points - self.scene.T_world_floor[:3, 3]) @ self.scene.up
        low, high = np.percentile(height, [2, 98])
        shade = np.clip((height - low) / max(high - low, 1e-6), 0.0, 1.0)
        return (255 * matplotlib.colormaps["viridis"](shade)[:, :3]).astype(np.uint8)

    def _add_bodies(self) -> None:
        api, scene = self.server.scene, self.scene
        ghosts = scene.consensus_vertices is not None
        for s in range(scene.num_samples):
            color = _GHOST_RGB if ghosts else _rgb(DEFAULT_COLORS[s % len(DEFAULT_COLORS)])
            self._add(api.add_mesh_simple(f"/body/sample_{s}", scene.vertices[s, 0], scene.faces, color=color,
                                          opacity=0.3 if ghosts else None))
            for name in FOOT_JOINTS:
                self._add(api.add_icosphere(f"/body/sample_{s}/feet/{name}", radius=0.035, color=_contact_rgb(0.0)))
        if ghosts:
            self._add(api.add_mesh_simple("/body/consensus", scene.consensus_vertices[0], scene.faces,
                                          color=_rgb(DEFAULT_COLORS[0])))
            self._add(api.add_point_cloud("/spread", scene.consensus_joints[0, :22], self._spread_rgb(0),
                                          point_size=0.06, point_shape="circle", precision="float32"))

    def _spread_rgb(self, t: int) -> np.ndarray:
        """(22, 3) uint8 colours of the consensus's body joints at frame `t` by their spread."""
        return (255 * spread_colors(self.scene.joint_spread_m[t, :22])).astype(np.uint8)

    def _add_gui(self) -> _Controls:
        gui, scene = self.server.gui, self.scene
        gui.add_markdown(
            f"{scene.num_samples} sample(s), {scene.num_frames} frames ({scene.num_frames / scene.fps:.1f} s). "
            "Feet turn red on predicted contact."
            + (" The solid body is the samples' consensus, its joints coloured by their spread (plasma: dark "
               "certain, bright unsure); the samples are the pale ghosts." if scene.consensus_vertices is not None else "")
        )
        with gui.add_folder("Playback"):
            controls = _Controls(
                playing=gui.add_checkbox("Playing", True),
                frame=gui.add_slider("Frame", 0, scene.num_frames - 1, 1, 0),
                speed=gui.add_slider("Speed", 0.1, 4.0, 0.1, 1.0),
            )
        controls.frame.on_update(lambda _: self.set_frame(controls.frame.value))
        with gui.add_folder("Samples"):
            for s in range(scene.num_samples):
                checkbox = gui.add_checkbox(f"Sample {s}", True)
                checkbox.on_update(lambda event, s=s: self.show_sample(s, event.target.value))
        with gui.add_folder("Layers"):
            for name in ("/body/consensus", "/spread", "/trajectory", "/cpf", "/floor", "/points", "/wrists"):
                if name in self.nodes:
                    checkbox = gui.add_checkbox(name.split("/")[-1].capitalize(), True)
                    checkbox.on_update(
                        lambda event, name=name: setattr(self.nodes[name], "visible", event.target.value)
                    )
        return controls

    def _place_camera(self) -> None:
        """Look at the middle of the walk, from the side of its main direction."""
        head = self.scene.T_world_cpf[:, :3, 3]
        up = self.scene.up
        centre = (head.min(axis=0) + head.max(axis=0)) / 2 - 0.7 * up
        flat = (head - head.mean(axis=0)) - np.outer((head - head.mean(axis=0)) @ up, up)
        direction = np.linalg.svd(flat, full_matrices=False)[2][0] if len(head) > 1 else np.eye(3)[0]
        side = np.cross(up, direction)
        side = side / max(np.linalg.norm(side), 1e-9)
        distance = max(3.0, 0.7 * float(np.ptp(flat @ direction)))
        camera = self.server.initial_camera
        camera.look_at = centre
        camera.position = centre + distance * side + 0.35 * distance * up
        camera.up = up

    def set_frame(self, t: int) -> None:
        """Show frame `t` of every visible sample, the head pose and the wrists."""
        scene = self.scene
        with self._lock, self.server.atomic():
            self.frame = int(t)
            for s in range(scene.num_samples):
                if self.nodes[f"/body/sample_{s}"].visible:
                    self._update_sample(s)
            if scene.consensus_vertices is not None:
                self.nodes["/body/consensus"].vertices = scene.consensus_vertices[self.frame]
                self.nodes["/spread"].points = scene.consensus_joints[self.frame, :22]
                self.nodes["/spread"].colors = self._spread_rgb(self.frame)
            cpf = self.nodes["/cpf"]
            cpf.wxyz, cpf.position = _wxyz(scene.T_world_cpf[self.frame, :3, :3]), scene.T_world_cpf[self.frame, :3, 3]
            if scene.wrists is not None:
                for h, hand in enumerate(HANDS):
                    wrist, node = scene.wrists[self.frame, h], self.nodes[f"/wrists/{hand}"]
                    node.visible = bool(np.isfinite(wrist).all())
                    if node.visible:
                        node.position = wrist

    def go_to(self, t: int) -> None:
        """Move the "Frame" slider to frame `t`, which shows it (`set_frame`)."""
        self._controls.frame.value = int(t)

    def _update_sample(self, s: int) -> None:
        t = self.frame
        self.nodes[f"/body/sample_{s}"].vertices = self.scene.vertices[s, t]
        for k, name in enumerate(FOOT_JOINTS):
            foot = self.nodes[f"/body/sample_{s}/feet/{name}"]
            foot.position = self.scene.feet[s, t, k]
            foot.color = _contact_rgb(float(self.scene.foot_contacts[s, t, k]))

    def show_sample(self, s: int, visible: bool) -> None:
        """Show or hide sample `s` (brought to the current frame when shown)."""
        with self._lock:
            self.nodes[f"/body/sample_{s}"].visible = visible
            if visible:
                self._update_sample(s)

    def play(self, stop: threading.Event | None = None) -> None:
        """Advance frames in real time (times "Speed") while "Playing" is on; blocks until `stop` is set."""
        stop = stop or threading.Event()
        position, last = float(self.frame), time.perf_counter()
        while not stop.wait(1.0 / _REFRESH_HZ):
            now = time.perf_counter()
            if int(position) != self.frame:  # scrubbed with the slider
                position = float(self.frame)
            if self.playing:
                position = (
                    position + (now - last) * self.scene.fps * self._controls.speed.value
                ) % self.scene.num_frames
                self._controls.frame.value = int(position)  # calls set_frame
            last = now

    def close(self) -> None:
        self.server.stop()
