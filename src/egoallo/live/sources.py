"""Where live poses come from, and how a line of text becomes one.

Messages are lines of text (docs/live.md):

- TUM: `timestamp tx ty tz qx qy qz qw` (seconds; camera-to-world, the camera taken as the CPF
  unless a calibration says otherwise), `#` starts a comment;
- Aria MPS closed/open-loop CSV: a header line first (`tracking_timestamp_us,...`), then rows.

A source is a thread that puts `Line`s on a queue and `END` when it ends: a file being
appended to (`follow`), standard input (`read_stream`), a UDP port (`listen_udp`, one or more
lines per datagram), a WebSocket port (`WebSocketInput`, one or more lines per message) or a
recording replayed at its own pace (`replay`). A line that cannot be
read is a `LineError`: the caller logs it and goes on.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TextIO

import numpy as np
import torch

from ..geometry import so3
from ..inputs.trajectory import MAX_COORDINATE_M, MAX_TIMESTAMP_NS, QUAT_MAX_NORM_ERROR

log = logging.getLogger(__name__)

END = None
"""Put on the queue when a source has nothing more."""
POLL_S = 0.05
"""How often a followed file or a quiet UDP socket is looked at again."""
MAX_LINE_BYTES = 65536
"""A longer line (a pose line is under 300 bytes) is skipped, never held whole."""
MAX_MESSAGE_BYTES = 1 << 20
"""A longer WebSocket message closes its connection (code 1009) before it is received whole."""
REWRITTEN = "rewritten"
"""Put on the queue when a followed file was truncated and written again from its start (log rotation)."""


@dataclasses.dataclass(frozen=True)
class Line:
    text: str
    where: str
    """"FILE line N", "stdin line N", "udp HOST:PORT"."""
    arrived_s: float = dataclasses.field(default_factory=time.perf_counter)


@dataclasses.dataclass(frozen=True)
class Pose:
    timestamp_ns: int
    T_input_pose: np.ndarray
    """(4, 4) the file's pose (camera or device) in the input's world."""
    gravity: np.ndarray | None = None
    """(3,) the MPS row's gravity in the input's world, when it has one."""
    graph: str | None = None
    """The MPS row's `graph_uid` / `session_uid`."""


class LineError(ValueError):
    """A line that is not a pose."""


@dataclasses.dataclass
class PoseParser:
    """Lines -> poses; TUM unless an MPS CSV header line came first."""

    columns: dict[str, int] | None = None
    """MPS CSV column indices, once a header was read."""
    prefix: str = ""
    """"world" (closed loop) or "odometry" (open loop)."""

    def parse(self, text: str) -> Pose | None:
        """The pose of one line; None for a header, comment or blank line. Raises `LineError`."""
        stripped = text.strip()
        if not stripped or stripped.startswith("#"):
            return None
        if "tracking_timestamp_us" in stripped:
            self._read_header(stripped)
            return None
        return self._csv_row(stripped) if self.columns is not None else _tum_row(stripped)

    def _read_header(self, header: str) -> None:
        names = [name.strip() for name in header.split(",")]
        prefix = "world" if "tx_world_device" in names else "odometry" if "tx_odometry_device" in names else None
        needed = ["tracking_timestamp_us"] + [f"{a}_{prefix}_device" for a in ("tx", "ty", "tz", "qx", "qy", "qz", "qw")]
        if prefix is None or any(name not in names for name in needed):
            raise LineError(f"an MPS header needs tracking_timestamp_us and tx/ty/tz/qx/qy/qz/qw_world_device "
                            f"(or _odometry_device); got {header[:120]!r}")
        self.columns, self.prefix = {name: i for i, name in enumerate(names)}, prefix

    def _csv_row(self, row: str) -> Pose:
        values = row.split(",")
        if len(values) != len(self.columns):
            raise LineError(f"{len(values)} comma-separated values; expected {len(self.columns)} as in the header")
        get = {name: values[i].strip() for name, i in self.columns.items()}
        try:
            micros = int(get["tracking_timestamp_us"])
            pose = [float(get[f"{a}_{self.prefix}_device"]) for a in ("tx", "ty", "tz", "qx", "qy", "qz", "qw")]
            gravity_names = [f"gravity_{a}_{self.prefix}" for a in "xyz"]
            gravity = np.array([float(get[n]) for n in gravity_names]) if all(n in get for n in gravity_names) else None
        except ValueError:
            raise LineError("expected numbers in the timestamp, pose and gravity columns") from None
        graph = get.get("graph_uid", get.get("session_uid"))
        if gravity is not None and not (np.isfinite(gravity).all() and np.linalg.norm(gravity) > 1e-6):
            gravity = None
        return Pose(_checked_time(micros * 1000), _pose(pose), gravity, graph)


def _tum_row(row: str) -> Pose:
    tokens = row.split("#", 1)[0].split()
    if len(tokens) != 8:
        raise LineError(f"{len(tokens)} values; expected 8: 'timestamp tx ty tz qx qy qz qw' (TUM, seconds)")
    try:
        seconds = Decimal(tokens[0])
        values = [float(token) for token in tokens[1:]]
        nanoseconds = int(seconds.scaleb(9)) if seconds.is_finite() and abs(seconds) < 1e10 else None
    except (InvalidOperation, ValueError, ArithmeticError):
        raise LineError("expected 8 numbers: 'timestamp tx ty tz qx qy qz qw'") from None
    if nanoseconds is None:
        raise LineError(f"timestamp {tokens[0]}; expected seconds within 292 years of 0")
    return Pose(_checked_time(nanoseconds), _pose(values))


def _checked_time(nanoseconds: int) -> int:
    if abs(nanoseconds) > MAX_TIMESTAMP_NS:
        raise LineError("timestamp out of range; expected a time within 292 years of 0")
    return nanoseconds


def _pose(values: list[float]) -> np.ndarray:
    """(4, 4) from `tx ty tz qx qy qz qw`; a `LineError` unless finite, within range and a unit quaternion."""
    array = np.array(values, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        norm = float(np.linalg.norm(array[3:]))
    if not np.isfinite(array).all() or not np.isfinite(norm):
        raise LineError("NaN or infinite values; expected finite numbers")
    if np.abs(array[:3]).max() > MAX_COORDINATE_M:
        raise LineError(f"position {array[:3].tolist()}; expected coordinates within {MAX_COORDINATE_M:g} m")
    if abs(norm - 1.0) > QUAT_MAX_NORM_ERROR:
        raise LineError(f"quaternion norm {norm:.4g}; expected a unit quaternion (qx qy qz qw)")
    T = np.eye(4)
    T[:3, :3] = so3.from_quat_xyzw(torch.tensor(array[3:] / norm, dtype=torch.float64)).numpy()
    T[:3, 3] = array[:3]
    return T


# --- sources -------------------------------------------------------------------------------------------


def _put_lines(out: queue.Queue, lines: Iterable[str], where: str, stop: threading.Event) -> None:
    for n, text in enumerate(lines, start=1):
        if stop.is_set():
            return
        out.put(Line(text, f"{where} line {n}"))


def read_stream(stream: TextIO, name: str, out: queue.Queue, stop: threading.Event) -> None:
    """Every line of `stream` (standard input), then `END`; a line over `MAX_LINE_BYTES` is skipped unread."""
    _put_lines(out, bounded_lines(stream, name), name, stop)
    out.put(END)


def bounded_lines(stream: TextIO, name: str) -> Iterable[str]:
    """The lines of `stream`, each read at most `MAX_LINE_BYTES` at a time: a longer one is skipped to its
    end (logged) and yields an empty line, so line numbers stay true."""
    n = 0
    while line := stream.readline(MAX_LINE_BYTES):
        n += 1
        if len(line) == MAX_LINE_BYTES and not line.endswith("\n"):
            while (rest := stream.readline(MAX_LINE_BYTES)) and not rest.endswith("\n"):
                pass
            log.warning("%s line %d: longer than %d characters; skipped (a pose line is under 300)", name, n, MAX_LINE_BYTES)
            line = ""
        yield line


def follow(path: Path, out: queue.Queue, stop: threading.Event, *, from_start: bool = True) -> None:
    """Lines of a file as another program appends them (`tail -f`), until `stop`.

    A file that was rewritten (it shrank, another file took its name, or its first bytes changed: a logger
    truncating it and writing from t = 0) is read again from its start, after `REWRITTEN` on the queue.
    A line over `MAX_LINE_BYTES` is skipped as it arrives, never held whole.
    """
    if not path.exists():
        log.info("waiting for %s to appear", path)
    while not path.exists() and not stop.wait(POLL_S):
        pass
    number, partial, skipping, position = 0, b"", False, 0 if from_start else path.stat().st_size
    identity, head = None, b""
    while not stop.is_set():
        try:
            status = os.stat(path)
        except FileNotFoundError:
            stop.wait(POLL_S)
            continue
        if identity is not None and position and _rewritten(path, status, identity, head, position):
            log.warning("%s was rewritten from its start (truncated or replaced, as log rotation does): "
                        "reading it again from line 1", path)
            out.put(REWRITTEN)
            number, partial, skipping, position, head = 0, b"", False, 0, b""
        identity = (status.st_dev, status.st_ino)
        if status.st_size == position:
            stop.wait(POLL_S)
            continue
        with open(path, "rb") as f:
            f.seek(position)
            chunk = f.read(min(status.st_size - position, 1 << 24))
            if len(head) < 4096:
                f.seek(0)
                head = f.read(min(4096, position + len(chunk)))
        position += len(chunk)
        *lines, rest = (partial + chunk).split(b"\n")
        for text in lines:
            number += 1
            if skipping or len(text) > MAX_LINE_BYTES:
                log.warning("%s line %d: longer than %d bytes; skipped (a pose line is under 300)", path, number,
                            MAX_LINE_BYTES)
                skipping = False
                continue
            out.put(Line(text.decode("utf-8", errors="replace"), f"{path} line {number}"))
        skipping = skipping or len(rest) > MAX_LINE_BYTES
        partial = b"" if skipping else rest  # the last line may still be being written


def _rewritten(path: Path, status: os.stat_result, identity: tuple[int, int], head: bytes, position: int) -> bool:
    """Whether the followed file was rewritten since it was read up to `position` (`head`: its first bytes)."""
    if status.st_size < position or (status.st_dev, status.st_ino) != identity:
        return True
    try:
        with open(path, "rb") as f:
            return f.read(len(head)) != head
    except OSError:
        return False


def listen_udp(sock: socket.socket, out: queue.Queue, stop: threading.Event) -> None:
    """Each datagram on the bound `sock` as lines (one pose per line), until `stop`."""
    sock.settimeout(POLL_S * 4)
    while not stop.is_set():
        try:
            data, sender = sock.recvfrom(65536)
        except TimeoutError:
            continue
        except OSError:
            return
        where = f"udp from {sender[0]}:{sender[1]}"
        for text in data.decode("utf-8", errors="replace").splitlines():
            out.put(Line(text, where))


def bind_udp(host: str, port: int) -> socket.socket:
    """A UDP socket bound to `host:port`; `OSError` when it cannot be."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0][0]
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def replay(path: Path, speed: float, out: queue.Queue, stop: threading.Event) -> None:
    """The lines of a recording, each when its timestamp falls due at `speed` times real time (0: at once),
    then `END`."""
    parser = PoseParser()
    started, first_ns = time.perf_counter(), None
    for n, text in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        if stop.is_set():
            return
        try:
            pose = parser.parse(text)
        except LineError:
            pose = None
        if pose is not None and speed > 0:
            first_ns = pose.timestamp_ns if first_ns is None else first_ns
            due = started + (pose.timestamp_ns - first_ns) / 1e9 / speed
            if stop.wait(max(0.0, due - time.perf_counter())):
                return
        out.put(Line(text, f"{path} line {n}"))
    out.put(END)


def read_websocket_lines(connection, out: queue.Queue) -> None:
    """Put the lines of every message of one WebSocket connection on `out`."""
    try:
        where = "websocket from {}:{}".format(*connection.remote_address[:2])
    except OSError:  # the client has already closed; the messages it sent are still queued
        where = "websocket client"
    from websockets.exceptions import ConnectionClosed

    try:
        for message in connection:
            text = message if isinstance(message, str) else message.decode("utf-8", errors="replace")
            for line in text.splitlines():
                out.put(Line(line, where))
    except ConnectionClosed as closed:
        too_big = closed.rcvd is None and closed.sent is not None and closed.sent.code == 1009
        log.warning("%s: %s", where, f"a message over {MAX_MESSAGE_BYTES} bytes; connection closed" if too_big
                    else f"connection lost ({closed})")


class WebSocketInput:
    """A local WebSocket server (its own thread): the lines of every message a client sends are poses."""

    def __init__(self, host: str, port: int, out: queue.Queue) -> None:
        """Raises `OSError` when `host:port` cannot be listened on."""
        from websockets.sync.server import serve

        self._server = serve(lambda connection: read_websocket_lines(connection, out), host, port,
                             max_size=MAX_MESSAGE_BYTES)
        self.port = self._server.socket.getsockname()[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5.0)
