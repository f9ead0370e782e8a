"""The atomic writers: exclusive temporary files with random names, never following a planted symlink."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest

from egoallo.errors import UserError
from egoallo.files import replaced_atomically, write_bytes_atomic, write_files_atomic, write_npz


def test_a_symlink_at_the_old_temporary_name_is_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    out = tmp_path / "out"
    out.mkdir()
    for name in (".r.npz.tmp", ".r.npz.tmp.npz"):
        (out / name).symlink_to(victim)
    write_npz(out / "r.npz", {"a": np.arange(3)}, what="result")
    write_bytes_atomic(out / "r.bin", b"new")
    assert victim.read_text() == "keep me"
    assert np.load(out / "r.npz")["a"].tolist() == [0, 1, 2] and not (out / "r.npz").is_symlink()
    assert sorted(p.name for p in out.iterdir()) == [".r.npz.tmp", ".r.npz.tmp.npz", "r.bin", "r.npz"]


def test_the_output_gets_ordinary_permissions(tmp_path: Path) -> None:
    mask = os.umask(0o022)
    try:
        path = write_bytes_atomic(tmp_path / "a.bin", b"x")
    finally:
        os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o644


def test_concurrent_writers_of_one_output_do_not_collide(tmp_path: Path) -> None:
    """Each writer has its own temporary file: the output is one writer's whole content, nothing is left over."""
    path = tmp_path / "r.bin"
    payloads = [bytes([i]) * 2_000_000 for i in range(8)]
    errors: list[BaseException] = []

    def write(data: bytes) -> None:
        try:
            for _ in range(3):
                write_bytes_atomic(path, data)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=write, args=(p,)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert path.read_bytes() in payloads
    assert [p.name for p in tmp_path.iterdir()] == ["r.bin"]


def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), replaced_atomically(tmp_path / "r.bin") as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert not list(tmp_path.iterdir())


def test_a_long_output_name_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="File name too long"):
        write_bytes_atomic(tmp_path / ("a" * 300 + ".bin"), b"x")
    assert not list(tmp_path.iterdir())


def test_files_written_as_one_ignore_a_planted_staging_link(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (tmp_path / f".reports.{os.getpid()}.partial").symlink_to(victim)
    write_files_atomic(tmp_path / "reports", {"a.json": b"{}", "b.md": b"# b"})
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["a.json", "b.md"]
    assert not list(victim.iterdir())
