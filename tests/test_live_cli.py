"""`egoallo live` end to end: replay, a followed file, UDP, stdin with stream faults, the WebSocket stream.

Structural checks only (frames, times, poses, counts): no wall-clock assertions, no checkpoint numbers.
"""

from __future__ import annotations

import io
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from egoallo.assets import EXAMPLE_TRAJECTORY, STUDENT_CHECKPOINT
from egoallo.cli.main import main
from egoallo.inputs.trajectory import read_trajectory
from egoallo.result import InferenceResult

SMALL = ["--window", "16", "--hop", "4", "--warmup", "8", "--threads", "1"]
FAST = [*SMALL, "--steps", "2", "--warmup-steps", "2"]


def _tum_lines(seconds: float, start_s: float = 100.0, fps: float = 30.0) -> list[str]:
    """A head walking along +x at 1.6 m in a z-up world, as TUM lines (the camera is the CPF: +z forward, +y up)."""
    lines = []
    for k in range(round(seconds * fps)):
        t = start_s + k / fps
        # CPF axes in the world: x_cpf = +y (left), y_cpf = +z (up), z_cpf = +x (forward): quaternion of that matrix.
        lines.append(f"{t:.6f} {1.2 * (t - start_s):.6f} 0.0 1.6 0.5 0.5 0.5 0.5")
    return lines


def _free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_replay_end_to_end_on_a_real_case(tmp_path: Path, capsys):
    """The example (held-out walking): its first 2.5 s replayed as fast as possible with the shipped model (the
    distilled student, in its own steps, for the hops and the warm-up)."""
    csv = tmp_path / "trajectory.csv"
    csv.write_text("\n".join(EXAMPLE_TRAJECTORY.read_text().splitlines()[:76]) + "\n")  # header + 75 rows
    out = tmp_path / "live.npz"
    assert main(["live", "--replay", str(csv), "--device-is-cpf", "--speed", "0", "--out", str(out), *SMALL]) == 0
    printed = capsys.readouterr().out
    assert "75 frames in 1 segment(s) from 75 poses" in printed and f"wrote {out}" in printed
    result = InferenceResult.load(out)
    head = read_trajectory(csv, device_is_cpf=True)
    np.testing.assert_array_equal(result.timestamps_ns, head.timestamps_ns)
    np.testing.assert_allclose(result.T_world_cpf, head.T_input_world @ head.T_world_cpf, atol=1e-9)
    assert result.joints_world.shape == (1, 75, 52, 3) and result.metadata["live"]["delay_frames"] == 3
    assert result.metadata["segments"] == [{"first_frame": 0, "frames": 75, "start_s": 0.0}]
    assert result.metadata["checkpoint"] == result.metadata["warmup_checkpoint"] == str(STUDENT_CHECKPOINT)
    # The head joint sits at the CPF (Eq. 5) and the feet stand below it, along the world's z (gravity column).
    assert np.linalg.norm(result.joints_world[0, :, 15] - result.T_world_cpf[:, :3, 3], axis=-1).max() < 0.2
    assert (result.joints_world[0, :, 10, 2] < result.T_world_cpf[:, 2, 3] - 1.0).all()
    assert main(["export", str(out), "--to", "bvh", "--out", str(tmp_path / "live.bvh")]) == 0
    # Refuses to overwrite, before any work.
    assert main(["live", "--replay", str(csv), "--out", str(out)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err


def test_follow_a_file_another_thread_appends_to(tiny_checkpoint, tmp_path: Path, capsys):
    path = tmp_path / "growing.txt"
    path.write_text("")
    lines = _tum_lines(1.5)
    lines[10] = "not a pose"
    lines[20] = lines[19]  # a duplicate

    def writer():
        with path.open("a") as f:
            for k in range(0, len(lines), 5):  # bursts of 5 lines; the last line of a burst half written first
                chunk = "\n".join(lines[k : k + 5]) + "\n"
                f.write(chunk[:-10])
                f.flush()
                time.sleep(0.02)
                f.write(chunk[-10:])
                f.flush()
                time.sleep(0.05)

    thread = threading.Thread(target=writer)
    thread.start()
    out = tmp_path / "followed.npz"
    code = main(["live", "--follow", str(path), "--exit-after-silence", "1.5", "--silence", "1.0", "--out", str(out),
                 "--checkpoint", str(tiny_checkpoint), *FAST])
    thread.join()
    assert code == 0
    printed = capsys.readouterr()
    assert "1 duplicate" in printed.out and "1 malformed lines" in printed.out
    assert "line 11: skipped" in printed.err
    result = InferenceResult.load(out)
    assert len(result.timestamps_ns) == 45  # the frames of the missing poses are interpolated from their neighbours


def test_follow_an_mps_csv_being_written(tiny_checkpoint, tmp_path: Path):
    """An Aria MPS closed-loop CSV written row by row (header first): poses in its gravity-aligned world."""
    rows = EXAMPLE_TRAJECTORY.read_text().splitlines()[:61]  # header + 60 rows (2 s)
    path = tmp_path / "closed_loop_trajectory.csv"

    def writer():
        with path.open("w") as f:
            for k in range(0, len(rows), 6):
                f.write("\n".join(rows[k : k + 6]) + "\n")
                f.flush()
                time.sleep(0.03)

    thread = threading.Thread(target=writer)
    thread.start()
    out = tmp_path / "mps.npz"
    code = main(["live", "--follow", str(path), "--device-is-cpf", "--exit-after-silence", "1.5", "--silence", "1.0",
                 "--out", str(out), "--checkpoint", str(tiny_checkpoint), *FAST])
    thread.join()
    assert code == 0
    result = InferenceResult.load(out)
    head = read_trajectory(path, device_is_cpf=True)
    np.testing.assert_array_equal(result.timestamps_ns, head.timestamps_ns)
    np.testing.assert_allclose(result.T_world_cpf, head.T_input_world @ head.T_world_cpf, atol=1e-9)


def test_udp_datagrams_from_another_thread(tiny_checkpoint, tmp_path: Path, capsys):
    port = _free_port(socket.SOCK_DGRAM)
    lines = _tum_lines(1.0)

    def sender():
        while True:  # wait until the command listens: the port cannot be bound any more
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    break
            time.sleep(0.05)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for k in range(0, len(lines), 3):  # three lines per datagram
                sock.sendto("\n".join(lines[k : k + 3]).encode(), ("127.0.0.1", port))
                time.sleep(0.01)

    thread = threading.Thread(target=sender, daemon=True)
    thread.start()
    out = tmp_path / "udp.npz"
    assert main(["live", "--udp", str(port), "--exit-after-silence", "1.5", "--silence", "1.0", "--out", str(out),
                 "--checkpoint", str(tiny_checkpoint), *FAST]) == 0
    thread.join(timeout=10)
    result = InferenceResult.load(out)
    assert 0 < len(result.timestamps_ns) <= 30  # UDP may drop datagrams; what arrives is estimated
    assert np.isfinite(result.joints_world).all()


def test_websocket_input_from_another_thread(tiny_checkpoint, tmp_path: Path):
    from websockets.sync.client import connect

    port = _free_port()
    lines = _tum_lines(1.0)

    def client():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # until the command listens
            try:
                with connect(f"ws://127.0.0.1:{port}", open_timeout=5) as ws:
                    for k in range(0, len(lines), 10):  # ten lines per message
                        ws.send("\n".join(lines[k : k + 10]))
                return
            except OSError:
                time.sleep(0.05)

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    out = tmp_path / "ws.npz"
    assert main(["live", "--ws-input", str(port), "--exit-after-silence", "1.5", "--silence", "1.0", "--out", str(out),
                 "--checkpoint", str(tiny_checkpoint), *FAST]) == 0
    thread.join(timeout=10)
    assert len(InferenceResult.load(out).timestamps_ns) == 30


def test_stream_faults_on_stdin(tiny_checkpoint, tmp_path: Path, monkeypatch, capsys):
    lines = _tum_lines(4.0)
    faulty = lines[:20] + ["", "# a comment", "1 2 3", "x 0 0 0 0 0 0 1", "101 0 0 1.6 0 0 0 5", "nan 0 0 0 0 0 0 1"]
    faulty += [lines[19], lines[15]]  # duplicate, out of order
    faulty += lines[20:40:2]  # dropped poses: every other one
    faulty += lines[60:80]  # silent for 0.67 s: a gap
    for line in lines[80:110]:  # a SLAM reset: everything 4 m further
        t, x, *rest = line.split()
        faulty.append(" ".join([t, f"{float(x) + 4.0:.6f}", *rest]))
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(faulty) + "\n"))
    out = tmp_path / "faults.npz"
    assert main(["live", "--stdin", "--out", str(out), "--checkpoint", str(tiny_checkpoint), *FAST]) == 0
    captured = capsys.readouterr()
    assert "3 segment(s)" in captured.out
    assert "1 duplicate, 1 out of order, 1 gaps, 1 jumps, 4 malformed lines" in captured.out
    for message in ("stdin line 23: skipped: 3 values", "line 24: skipped: expected 8 numbers",
                    "line 25: skipped: quaternion norm 5", "line 26: skipped: timestamp nan", "jump of"):
        assert message in captured.err, message
    result = InferenceResult.load(out)
    assert [s["frames"] for s in result.metadata["segments"]] == [39, 20, 30]
    assert [g["reasons"][0].split(" of ")[0] for g in result.metadata["gaps"]] == ["gap", "jump"]
    assert np.all(np.diff(result.timestamps_ns) > 0)


def test_websocket_stream(tiny_checkpoint, tmp_path: Path, capsys):
    """The frame server sends a hello, then every frame as JSON; the command serves it while replaying."""
    from websockets.sync.client import connect

    from egoallo.body import BodyModel
    from egoallo.live import LiveConfig, LiveEstimator
    from egoallo.live.outputs import FrameServer, hello_message
    from egoallo.prior.checkpoint import load_denoiser

    _, denoiser = load_denoiser(tiny_checkpoint)
    config = LiveConfig(window=16, hop=4, warmup=8, num_steps=2, guidance_iterations=1)
    estimator = LiveEstimator(denoiser, BodyModel.load_default(), T_input_zup=np.eye(4), floor_z=0.0, config=config)
    frames = []
    for line in _tum_lines(0.5):
        t, x, y, z, *_ = map(float, line.split())
        T = np.eye(4)
        T[:3, :3] = [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
        T[:3, 3] = x, y, z
        frames += estimator.push(round(t * 1e9), T)
    server = FrameServer("127.0.0.1", 0, hello_message(30.0))
    try:
        with connect(f"ws://127.0.0.1:{server.port}", open_timeout=30) as ws:
            hello = json.loads(ws.recv(timeout=30))
            server.send(frames)
            received = [json.loads(ws.recv(timeout=30)) for _ in frames]
    finally:
        server.close()
    assert hello["type"] == "hello" and len(hello["joint_names"]) == 52 and hello["fps"] == 30.0
    assert [m["index"] for m in received] == [f.index for f in frames]
    first = received[0]
    assert np.array(first["joints_world"]).shape == (52, 3) and np.array(first["local_rotations"]).shape == (51, 3, 3)
    assert np.array(first["T_world_root"]).shape == (4, 4) and len(first["contacts"]) == 21
    np.testing.assert_allclose(first["joints_world"], frames[0].joints_world, atol=1e-4)

    csv = tmp_path / "trajectory.txt"
    csv.write_text("\n".join(_tum_lines(0.5)) + "\n")
    port = _free_port()
    assert main(["live", "--replay", str(csv), "--speed", "0", "--ws-port", str(port),
                 "--checkpoint", str(tiny_checkpoint), *FAST]) == 0
    assert f"bodies as JSON on ws://127.0.0.1:{port}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--stdin", "--udp", "5000"], "give exactly one input"),
        ([], "give exactly one input"),
        (["--stdin", "--hop", "48"], "live settings: hop + lookahead"),
        (["--stdin", "--speed", "-1"], "--speed -1.0: expected a number at least 0"),
        (["--replay", "missing.csv"], "missing.csv: file not found"),
        (["--stdin", "--up", "q"], "up='q'"),
        (["--follow", "."], ".: not a file; --follow expects"),
        (["--follow", "poses.npz"], "poses.npz: --follow reads text"),
        (["--stdin", "--ws-port", "0"], "--ws-port 0: expected a number from 1 to 65535"),
    ],
)
def test_clear_errors(args, message, tiny_checkpoint, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["live", *args, "--checkpoint", str(tiny_checkpoint)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_busy_udp_port_is_a_clear_error(tiny_checkpoint, capsys):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        assert main(["live", "--udp", str(port), "--checkpoint", str(tiny_checkpoint)]) == 2
    assert f"cannot listen on UDP 127.0.0.1:{port}" in capsys.readouterr().err


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_finishes_the_result_file(signum, tiny_checkpoint, tmp_path: Path):
    """SIGINT (Ctrl-C) or SIGTERM (a service stop) to a command reading a stdin that stays open: the bodies so
    far are written, exit code 0."""
    out = tmp_path / "interrupted.npz"
    command = [sys.executable, "-m", "egoallo.cli.main", "live", "--stdin", "--out", str(out),
               "--checkpoint", str(tiny_checkpoint), *FAST]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True)
    try:
        process.stdin.write("\n".join(_tum_lines(1.0)) + "\n")
        process.stdin.flush()
        for line in process.stderr:  # wait for the first body, however slow the machine
            if "first body" in line:
                break
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    said = "interrupted; finishing" if signum == signal.SIGINT else "terminated (SIGTERM); finishing"
    assert said in stderr and f"wrote {out}" in stdout
    result = InferenceResult.load(out)
    assert 8 <= len(result.timestamps_ns) <= 30
