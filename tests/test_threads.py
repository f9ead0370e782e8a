"""Thread count: affinity, cgroup quotas, work size, --threads."""

from __future__ import annotations

import time

import pytest

from egoallo.cli.main import main
from egoallo.errors import UserError
from egoallo.threads import (
    SMALL_WORK_FRAMES,
    available_cores,
    cgroup_cpu_limit,
    cgroup_v1_limit,
    cgroup_v2_limit,
    choose_threads,
    prefer_passive_waiting,
    thread_pool,
)


def test_cgroup_quotas_are_read_as_cores(tmp_path) -> None:
    assert cgroup_v2_limit("max 100000\n") is None
    assert cgroup_v2_limit("150000 100000\n") == 1.5
    assert cgroup_v1_limit("-1\n", "100000\n") is None
    assert cgroup_v1_limit("200000", "100000") == 2.0
    assert cgroup_cpu_limit(tmp_path) is None  # no cgroup files: no limit
    v1 = tmp_path / "v1" / "cpu,cpuacct"
    v1.mkdir(parents=True)
    (v1 / "cpu.cfs_quota_us").write_text("50000\n")
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpu_limit(tmp_path / "v1") == 0.5
    (tmp_path / "cpu.max").write_text("300000 100000\n")
    assert cgroup_cpu_limit(tmp_path) == 3.0
    (tmp_path / "cpu.max").write_text("garbage\n")
    assert cgroup_cpu_limit(tmp_path) is None


def test_available_cores_take_the_smaller_of_affinity_and_quota() -> None:
    assert available_cores(8, None) == 8
    assert available_cores(8, 2.5) == 2
    assert available_cores(2, 16.0) == 2
    assert available_cores(4, 0.5) == 1


def test_choose_threads_by_work_size_and_request() -> None:
    assert choose_threads(None, 4, SMALL_WORK_FRAMES - 1) == (1, None)
    assert choose_threads(None, 4, SMALL_WORK_FRAMES) == (4, None)
    assert choose_threads(2, 4, 10) == (2, None)
    threads, warning = choose_threads(6, 4, 10)
    assert threads == 4 and "only 4 core(s)" in warning
    for bad in (0, -3):
        with pytest.raises(UserError, match="--threads must be at least 1"):
            choose_threads(bad, 4, 10)


def test_passive_waiting_keeps_the_users_choice() -> None:
    environ = {"OMP_WAIT_POLICY": "ACTIVE"}
    prefer_passive_waiting(environ)
    assert environ == {"OMP_WAIT_POLICY": "ACTIVE", "OPENBLAS_NUM_THREADS": "1"}


@pytest.mark.parametrize("value", ["0", "-2"])
def test_bad_threads_flag_is_one_line(value, tmp_path, capsys) -> None:
    assert main(["infer", "--example", "--threads", value, "--out", str(tmp_path / "r.npz")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"egoallo: error: --threads must be at least 1, got {value}."


def test_thread_pool_cancels_queued_work_when_the_block_fails() -> None:
    ran = []

    def work(i: int) -> int:
        time.sleep(0.02)
        ran.append(i)
        if i == 0:
            raise RuntimeError("first call fails")
        return i

    with pytest.raises(RuntimeError, match="first call fails"):
        with thread_pool(2) as pool:
            list(pool.map(work, range(100)))
    assert len(ran) < 20  # the calls queued behind the failure were cancelled, not all run
    with thread_pool(1) as pool:
        assert pool is None
