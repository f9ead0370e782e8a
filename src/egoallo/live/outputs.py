"""Where live bodies go: a result.npz at the end (`Recorder`), JSON messages on a local WebSocket (`FrameServer`).

WebSocket messages (text, one JSON object each; docs/live.md): on connecting, `{"type": "hello",
"fps", "joint_names"}`; then per frame `{"type": "frame", "index", "segment", "timestamp_ns",
"T_world_cpf", "T_world_root" (4x4 row-major nested lists), "joints_world" (52x3, metres),
"local_rotations" (51x3x3), "contacts" (21)}`, all in the input's world frame.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from typing import Any

import numpy as np

from ..body import BodyModel, skeleton
from ..body.plausibility import plausibility
from ..inputs.stature import STATURE_METHOD
from ..result import InferenceResult
from .estimator import LiveEstimator, LiveFrame


def frame_message(frame: LiveFrame) -> str:
    """The JSON text of one frame (millimetre and 1e-5 rounding keep it near 5 kB)."""
    return json.dumps({
        "type": "frame",
        "index": frame.index,
        "segment": frame.segment,
        "timestamp_ns": frame.timestamp_ns,
        "T_world_cpf": np.round(frame.T_world_cpf, 6).tolist(),
        "T_world_root": np.round(frame.T_world_root, 6).tolist(),
        "joints_world": np.round(frame.joints_world, 4).tolist(),
        "local_rotations": np.round(frame.local_rotations.astype(np.float64), 5).tolist(),
        "contacts": np.round(frame.contacts.astype(np.float64), 3).tolist(),
    }, separators=(",", ":"))


def hello_message(fps: float) -> str:
    return json.dumps({"type": "hello", "fps": fps, "joint_names": list(skeleton.JOINT_NAMES)})


@dataclasses.dataclass
class Recorder:
    """Every emitted frame, kept for the result file (about 3.4 kB per frame: 370 MB per hour at 30 fps)."""

    frames: list[LiveFrame] = dataclasses.field(default_factory=list)

    def add(self, frames: list[LiveFrame]) -> None:
        self.frames.extend(frames)

    def result(self, estimator: LiveEstimator, body: BodyModel, metadata: dict[str, Any]) -> InferenceResult | None:
        """The frames as an `egoallo infer` result (one sample), or None before the first body."""
        if not self.frames or estimator.betas is None:
            return None
        frames = self.frames
        betas = estimator.betas.float()[None]  # (1, 16)
        shaped = body.with_shape(betas)
        joints = np.stack([f.joints_world for f in frames])[None]
        R_input_zup = estimator.T_input_zup[:3, :3]
        figures = plausibility(joints @ R_input_zup, estimator.floor_z, shaped.rest_joint_heights.double().numpy(),
                               estimator.config.fps)
        return InferenceResult(
            timestamps_ns=np.array([f.timestamp_ns for f in frames], dtype=np.int64),
            T_world_cpf=np.stack([f.T_world_cpf for f in frames]),
            joints_world=joints,
            T_world_root=np.stack([f.T_world_root for f in frames])[None],
            local_rotations=np.stack([f.local_rotations for f in frames])[None],
            betas=betas.numpy(),
            contacts=np.stack([f.contacts for f in frames])[None],
            stature_m=shaped.stature.numpy().astype(np.float32),
            floor_z=float(estimator.floor_z),
            T_input_zup=estimator.T_input_zup,
            fps=estimator.config.fps,
            metadata={
                **metadata,
                "live": {**dataclasses.asdict(estimator.config), "delay_frames": estimator.config.delay_frames},
                "floor": {"z": estimator.floor_z, "method": estimator.floor_method},
                "stature": None if estimator.stature_m is None else {
                    "given_m": estimator.stature_m, "eye_height_m": estimator.eye_height, "method": STATURE_METHOD},
                "stream": {**dataclasses.asdict(estimator.clock.counts), "hops": estimator.stats.hops},
                "plausibility": figures.to_json(),
                **segments_and_gaps(frames, list(estimator.stats.segment_log)),
            },
        )


def segments_and_gaps(frames: list[LiveFrame], segment_log: list[dict]) -> dict[str, list]:
    """`metadata["segments"]` and `["gaps"]` as `egoallo infer` writes them, from the frames' segment numbers."""
    ids = np.array([f.segment for f in frames])
    starts = [0, *(np.flatnonzero(np.diff(ids)) + 1).tolist()]
    ends = [*starts[1:], len(frames)]
    t0 = frames[0].timestamp_ns
    reasons = {entry["first_frame"]: entry["ended_by"] for entry in segment_log}
    segments = [
        {"first_frame": a, "frames": b - a, "start_s": (frames[a].timestamp_ns - t0) / 1e9} for a, b in zip(starts, ends)
    ]
    gaps = [
        {"after_frame": b - 1, "seconds": (frames[b].timestamp_ns - frames[b - 1].timestamp_ns) / 1e9,
         "reasons": [reasons.get(frames[a].index, "unknown")]}
        for a, b in zip(starts[:-1], ends[:-1])
    ]
    return {"segments": segments, "gaps": gaps}


class FrameServer:
    """A local WebSocket server (its own thread and event loop) that sends every frame to every client."""

    def __init__(self, host: str, port: int, hello: str) -> None:
        from websockets.asyncio.server import serve

        self._hello = hello
        self._clients: set = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stopped: asyncio.Future | None = None
        self._error: BaseException | None = None

        async def handler(connection) -> None:
            self._clients.add(connection)
            try:
                await connection.send(self._hello)
                await connection.wait_closed()
            finally:
                self._clients.discard(connection)

        async def main() -> None:
            self._stopped = self._loop.create_future()
            try:
                async with serve(handler, host, port) as server:
                    self.port = server.sockets[0].getsockname()[1]
                    self._ready.set()
                    await self._stopped
            except OSError as error:
                self._error = error
                self._ready.set()

        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(main(),), daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def send(self, frames: list[LiveFrame]) -> None:
        """Queue `frames` for every connected client (never blocks; a slow client's messages queue up on its own)."""
        if frames and self._clients:
            from websockets.asyncio.server import broadcast

            messages = [frame_message(f) for f in frames]
            self._loop.call_soon_threadsafe(lambda: [broadcast(set(self._clients), m) for m in messages])

    def close(self) -> None:
        if self._stopped is not None:
            self._loop.call_soon_threadsafe(lambda: self._stopped.done() or self._stopped.set_result(None))
        self._thread.join(timeout=5.0)
