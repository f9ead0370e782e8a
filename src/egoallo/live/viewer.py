"""The live body in the browser: the viser viewer of `egoallo view`, fed frame by frame.

`LiveViewer.show(frame)` hands the newest body over and returns at once; the viewer's own
thread poses the mesh and sends it, always the newest frame (frames that arrive while one is
being sent are skipped, so a slow browser never holds the estimator back). Scene nodes:
`/body` (mesh) with `/body/feet/{joint}`, `/cpf`, `/trajectory` (the last `TRAIL_S` seconds of
the head), `/floor` (moved along under the head in whole metres). With "Follow" on (the
default), every browser's camera moves along with the head.
"""

from __future__ import annotations

import threading

import numpy as np
import torch
import viser

from ..body import BodyModel, skeleton
from ..errors import UserError
from ..viz.render import DEFAULT_COLORS
from ..viz.viewer import _HEAD_PATH_RGB, FOOT_JOINTS, _contact_rgb, _rgb, _wxyz, ensure_port_free
from .estimator import LiveFrame

TRAIL_S = 10.0
FLOOR_SIZE_M = 20.0
_FEET = [skeleton.JOINT_INDEX[name] for name in FOOT_JOINTS]


class LiveViewer:
    """A viser server showing the newest body; see the module docstring."""

    def __init__(self, body: BodyModel, *, fps: float, host: str = "127.0.0.1", port: int = 8080) -> None:
        ensure_port_free(host, port)
        self.server = viser.ViserServer(host=host, port=port, label="egoallo live", verbose=False)
        if port != 0 and self.server.get_port() != port:
            self.server.stop()
            raise UserError(f"port {port} on {host} is already in use; choose another with --port.")
        self.host, self.body, self.fps = host, body, fps
        self.nodes: dict[str, viser.SceneNodeHandle] = {}
        self.frames_shown = 0
        self._status = self.server.gui.add_markdown("Waiting for head poses...")
        self._follow = self.server.gui.add_checkbox("Follow", True)
        self._anchor: np.ndarray | None = None
        """(3,) the head position the cameras and the floor were last moved to."""
        self._trail: list[np.ndarray] = []
        self._newest: tuple | None = None
        """(frame, betas, floor_z, T_input_zup) to draw next."""
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._shaped = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host = "localhost" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.server.get_port()}"

    def show(self, frame: LiveFrame, betas: torch.Tensor, floor_z: float, T_input_zup: np.ndarray) -> None:
        """Draw `frame` (posed with `betas (16,)`) as soon as the viewer is free; never blocks."""
        self._newest = (frame, betas, floor_z, T_input_zup)
        self._wake.set()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5.0)
        self.server.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            if self._newest is not None and not self._stop.is_set():
                self._draw(*self._newest)

    def _draw(self, frame: LiveFrame, betas: torch.Tensor, floor_z: float, T_input_zup: np.ndarray) -> None:
        if self._shaped is None:
            self._shaped = self.body.with_shape(betas.to(self.body.v_template.dtype))
            self._add_scene(frame, floor_z, T_input_zup)
        dtype = self.body.v_template.dtype
        with torch.no_grad():
            posed = self._shaped.with_pose(torch.from_numpy(frame.T_world_root).to(dtype),
                                           torch.from_numpy(frame.local_rotations).to(dtype))
            vertices = posed.mesh().vertices.numpy().astype(np.float32)
        self._trail.append(frame.T_world_cpf[:3, 3].astype(np.float32))
        self._trail = self._trail[-int(TRAIL_S * self.fps) :]
        with self.server.atomic():
            self.nodes["/body"].vertices = vertices
            for k, name in enumerate(FOOT_JOINTS):
                foot = self.nodes[f"/body/feet/{name}"]
                foot.position = frame.joints_world[_FEET[k]]
                foot.color = _contact_rgb(float(frame.contacts[_FEET[k] - 1]))
            cpf = self.nodes["/cpf"]
            cpf.wxyz, cpf.position = _wxyz(frame.T_world_cpf[:3, :3]), frame.T_world_cpf[:3, 3]
            if len(self._trail) > 1 and self.frames_shown % 10 == 0:
                trail = np.stack(self._trail)
                self.nodes["/trajectory"] = self.server.scene.add_line_segments(
                    "/trajectory", np.stack([trail[:-1], trail[1:]], axis=1), _HEAD_PATH_RGB, thickness=0.01
                )
                self._move_along(frame.T_world_cpf[:3, 3])
        self.frames_shown += 1
        self._status.content = f"frame {frame.index} (segment {frame.segment}), t = {frame.timestamp_ns / 1e9:.2f} s"

    def _move_along(self, head: np.ndarray) -> None:
        """Shift the floor (in whole metres) and, with "Follow", every camera by the head's move along the floor."""
        if self._anchor is None:
            self._anchor = head
            return
        along = (head - self._anchor) - ((head - self._anchor) @ self.up) * self.up
        if np.linalg.norm(along) < 1.0:
            return
        shift = np.round(along)  # whole metres keep the grid's lines in place
        shift -= (shift @ self.up) * self.up
        self._anchor = self._anchor + shift
        floor = self.nodes["/floor"]
        floor.position = floor.position + shift
        if self._follow.value:
            for client in self.server.get_clients().values():
                client.camera.position = client.camera.position + shift
                client.camera.look_at = client.camera.look_at + shift

    def _add_scene(self, frame: LiveFrame, floor_z: float, T_input_zup: np.ndarray) -> None:
        """Floor under the first head pose, the body, its feet and the head frame."""
        api = self.server.scene
        self.up = T_input_zup[:3, 2]
        api.set_up_direction(self.up)
        head_zup = np.linalg.inv(T_input_zup) @ frame.T_world_cpf
        T_zup_floor = np.eye(4)
        T_zup_floor[:2, 3], T_zup_floor[2, 3] = head_zup[:2, 3], floor_z
        T_floor = T_input_zup @ T_zup_floor
        self.nodes["/floor"] = api.add_grid("/floor", FLOOR_SIZE_M, FLOOR_SIZE_M, wxyz=_wxyz(T_floor[:3, :3]),
                                            position=T_floor[:3, 3])
        faces = self.body.faces.numpy().astype(np.uint32)
        vertices = self._shaped.verts_zero.numpy().astype(np.float32)
        self.nodes["/body"] = api.add_mesh_simple("/body", vertices, faces, color=_rgb(DEFAULT_COLORS[0]))
        for name in FOOT_JOINTS:
            self.nodes[f"/body/feet/{name}"] = api.add_icosphere(f"/body/feet/{name}", radius=0.035, color=_contact_rgb(0.0))
        self.nodes["/cpf"] = api.add_frame("/cpf", axes_length=0.15, axes_radius=0.006)
        camera = self.server.initial_camera
        camera.look_at = frame.T_world_cpf[:3, 3] - 0.7 * self.up
        side = np.cross(self.up, frame.T_world_cpf[:3, 2])
        side = side / max(float(np.linalg.norm(side)), 1e-9)
        camera.position = camera.look_at + 3.5 * side + 1.2 * self.up
        camera.up = self.up
