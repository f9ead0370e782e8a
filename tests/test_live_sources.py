"""Live sources under hostile input: a followed file rewritten from its start, lines without an end, a huge
WebSocket message."""

from __future__ import annotations

import io
import queue
import socket
import threading
import time
from pathlib import Path

import pytest

from egoallo.cli.main import main
from egoallo.live import sources
from egoallo.result import InferenceResult

FAST = ["--window", "16", "--hop", "4", "--warmup", "8", "--threads", "1", "--steps", "2", "--warmup-steps", "2"]


def _tum_lines(seconds: float, start_s: float = 0.0, fps: float = 30.0) -> list[str]:
    return [f"{start_s + k / fps:.6f} {1.2 * k / fps:.6f} 0.0 1.6 0.5 0.5 0.5 0.5" for k in range(round(seconds * fps))]


def _drain(q: queue.Queue) -> list:
    items = []
    while not q.empty():
        items.append(q.get())
    return items


def _follow_while(path: Path, act) -> list:  # noqa: ANN001
    q: queue.Queue = queue.Queue()
    stop = threading.Event()
    thread = threading.Thread(target=sources.follow, args=(path, q, stop), daemon=True)
    thread.start()
    try:
        act()
        time.sleep(0.4)
    finally:
        stop.set()
        thread.join(timeout=5)
    return _drain(q)


@pytest.mark.parametrize("how", ["truncated and rewritten longer", "replaced by another file", "shrunk"])
def test_a_followed_file_rewritten_from_its_start_is_read_again(tmp_path: Path, how: str) -> None:
    path = tmp_path / "log.txt"
    first = _tum_lines(1.0, start_s=0.0)
    path.write_text("\n".join(first) + "\n")

    def rewrite() -> None:
        time.sleep(0.3)
        again = _tum_lines(2.0 if how != "shrunk" else 0.5, start_s=0.0)
        again[0] = again[0].replace("0.000000 0.000000", "0.000000 5.000000")  # other content at the start
        if how == "replaced by another file":
            other = tmp_path / "new.txt"
            other.write_text("\n".join(again) + "\n")
            other.replace(path)
        else:
            with path.open("r+") as f:
                f.truncate(0)
                f.write("\n".join(again) + "\n")

    items = _follow_while(path, rewrite)
    assert sources.REWRITTEN in items
    after = items[items.index(sources.REWRITTEN) + 1 :]
    assert after[0].where.endswith("line 1") and after[0].text.startswith("0.000000 5.000000")


def test_a_line_without_end_is_skipped_not_held(tmp_path: Path, caplog) -> None:
    path = tmp_path / "log.txt"
    path.write_text("")

    def write() -> None:
        with path.open("a") as f:
            f.write("0.0 1 2 3 0 0 0 1\n")
            f.flush()
            for _ in range(8):  # 8 MB of one line, written in pieces
                f.write("9" * (1 << 20))
                f.flush()
                time.sleep(0.05)
            f.write("\n1.0 1 2 3 0 0 0 1\n")

    items = _follow_while(path, write)
    assert [i.text for i in items] == ["0.0 1 2 3 0 0 0 1", "1.0 1 2 3 0 0 0 1"]
    assert [i.where.rsplit(" ", 1)[1] for i in items] == ["1", "3"]
    assert "line 2: longer than 65536 bytes; skipped" in caplog.text


def test_stdin_lines_are_bounded(caplog) -> None:
    stream = io.StringIO("a\n" + "x" * 300_000 + "\nb\n" + "y" * 70_000)
    assert list(sources.bounded_lines(stream, "stdin")) == ["a\n", "", "b\n", ""]
    assert "stdin line 2: longer than" in caplog.text and "stdin line 4" in caplog.text


def test_a_huge_websocket_message_closes_its_connection_in_one_line(tiny_checkpoint, tmp_path: Path, capsys) -> None:
    from websockets.sync.client import connect

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    lines = _tum_lines(1.0, start_s=100.0)

    def client() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with connect(f"ws://127.0.0.1:{port}", open_timeout=5, max_size=None) as ws:
                    ws.send("\n".join(lines))
                    try:
                        ws.send("9" * (100 << 20))  # 100 MB
                        ws.recv(timeout=10)
                    except Exception:  # noqa: BLE001 (the server closes the connection)
                        pass
                return
            except OSError:
                time.sleep(0.05)

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    out = tmp_path / "ws.npz"
    code = main(["live", "--ws-input", str(port), "--exit-after-silence", "1.5", "--silence", "1.0", "--out", str(out),
                 "--checkpoint", str(tiny_checkpoint), *FAST])
    thread.join(timeout=30)
    err = capsys.readouterr().err
    assert code == 0 and "Traceback" not in err
    assert f"a message over {sources.MAX_MESSAGE_BYTES} bytes; connection closed" in err
    assert len(InferenceResult.load(out).timestamps_ns) == 30


def test_a_rewritten_file_keeps_its_poses_in_a_new_segment(tiny_checkpoint, tmp_path: Path, capsys) -> None:
    """A logger truncates its file and writes from t = 0 again: the new poses follow the old ones, shifted."""
    path = tmp_path / "log.txt"
    path.write_text("\n".join(_tum_lines(1.0)) + "\n")

    def logger() -> None:
        time.sleep(3.0)
        with path.open("r+") as f:
            f.truncate(0)
            f.write("\n".join(line.replace(" 0.0 1.6", " 0.3 1.6") for line in _tum_lines(1.5)) + "\n")

    thread = threading.Thread(target=logger)
    thread.start()
    out = tmp_path / "r.npz"
    code = main(["live", "--follow", str(path), "--exit-after-silence", "5", "--silence", "1.0", "--out", str(out),
                 "--checkpoint", str(tiny_checkpoint), *FAST])
    thread.join()
    printed = capsys.readouterr()
    assert code == 0
    assert "was rewritten from its start" in printed.err and "shifted by" in printed.err
    assert "0 out of order" in printed.out
    result = InferenceResult.load(out)
    assert len(result.timestamps_ns) == 30 + 45 and len(result.metadata["segments"]) == 2
    assert result.metadata["input_rewrites"]["count"] == 1


def test_a_floor_far_under_the_live_head_is_said_once(tiny_checkpoint, tmp_path: Path, monkeypatch, capsys) -> None:
    """A stream cannot be refused once it runs: a --floor-z 1 km under the head is said in one warning."""
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(_tum_lines(1.0, start_s=100.0)) + "\n"))
    out = tmp_path / "r.npz"
    assert main(["live", "--stdin", "--floor-z", "-1000", "--out", str(out), "--checkpoint", str(tiny_checkpoint),
                 *FAST]) == 0
    err = capsys.readouterr().err
    assert err.count("--floor-z -1000 m is not a floor under this head") == 1
