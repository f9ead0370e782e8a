"""Where a corpus run's recordings are estimated: a local process pool, or a Ray cluster (the `cluster` extra).

Both run `jobs.run_job` one recording per task with one torch thread per worker, and hand back its `Row`
(or a `WorkerLost` when the process running it died). Ray retries a task whose worker was lost
(`MAX_RETRIES`); its workers write the results themselves, so the output folder must be storage every
node sees at the same path.
"""

from __future__ import annotations

import dataclasses
import signal
import socket
from typing import Protocol

from ..errors import UserError, one_line
from ..threads import cores_here
from .jobs import Job, run_job
from .summary import Row

WAIT_S = 1.0
"""How long a wait blocks before the run looks at stop requests again."""
MAX_RETRIES = 3
"""Ray: times a task is run again after its worker process or node was lost."""
CONNECT_TIMEOUT_S = 5.0
LOCAL_START_TRIES = 3
"""Tries to start a local Ray cluster: Ray gives its node 30 s to start, which an overloaded machine can miss."""


@dataclasses.dataclass(frozen=True)
class WorkerLost:
    """The process running a recording died (killed, out of memory, a lost node)."""

    reason: str


class Backend(Protocol):
    slots: int
    """How many recordings run at once."""

    def submit(self, job: Job) -> object: ...

    def wait(self, handles: list[object]) -> list[tuple[object, Row | WorkerLost]]:
        """The handles that finished within `WAIT_S` (possibly none), each with its outcome."""
        ...

    def describe(self) -> str: ...

    def __enter__(self) -> Backend: ...

    def __exit__(self, *exc: object) -> None: ...


def _worker_started() -> None:
    """A pool worker leaves SIGINT to the run (which lets the running recordings finish), and imports the
    estimator's modules once, before its first recording (its time is then the recording's own)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import egoallo.recording  # noqa: F401


class LocalPool:
    """`workers` spawned processes on this machine (default: the cores this process may use)."""

    def __init__(self, workers: int | None = None) -> None:
        self.slots = workers or cores_here()
        self._pool = None
        self._owner: dict[object, object] = {}

    def _start(self):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        return ProcessPoolExecutor(self.slots, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_worker_started)

    def __enter__(self) -> LocalPool:
        self._pool = self._start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def describe(self) -> str:
        return f"{self.slots} local worker process(es)"

    def submit(self, job: Job) -> object:
        future = self._pool.submit(run_job, job)
        self._owner[future] = self._pool
        return future

    def wait(self, handles: list[object]) -> list[tuple[object, Row | WorkerLost]]:
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        done, _ = wait(handles, timeout=WAIT_S, return_when=FIRST_COMPLETED)
        outcomes = []
        for future in done:
            owner = self._owner.pop(future)
            try:
                outcomes.append((future, future.result()))
            except BrokenProcessPool:
                outcomes.append((future, WorkerLost("a worker process died: killed, or out of memory")))
                if owner is self._pool:  # the pool is broken: a new one for the recordings still to run
                    self._pool.shutdown(wait=False, cancel_futures=True)
                    self._pool = self._start()
        return outcomes


class RayCluster:
    """Tasks on a Ray cluster: a local one started for the run (`address` "local", `workers` CPUs; default the
    cores here), or the running cluster at `address` ("host:port", "ray://host:port" or "auto")."""

    def __init__(self, address: str, workers: int | None = None) -> None:
        self.address, self.workers, self.slots = address, workers, workers or 1
        self._ray = self._remote = None

    def __enter__(self) -> RayCluster:
        import logging

        from ..thirdparty import native_logs_hidden, require

        ray = self._ray = require("ray", "egoallo batch --ray")
        if self.address != "local":
            check_reachable(self.address)
        local = self.address == "local"
        # Ray starts its workers at niceness +15, below everything else on the machine: on a shared machine they
        # then wait behind any other work, where the local pool's run at the command's priority.
        start = {"num_cpus": self.workers or cores_here(), "include_dashboard": False,
                 "_system_config": {"worker_niceness": 0}} if local else {}
        for attempt in range(LOCAL_START_TRIES if local else 1):
            try:
                with native_logs_hidden():  # Ray's C++ client logs every failed try to stderr
                    ray.init(address=self.address, logging_level=logging.WARNING, log_to_driver=False, **start)
                break
            except Exception as e:  # Ray raises ConnectionError, RuntimeError, ValueError, Exception for a bad cluster
                ray.shutdown()
                if attempt + 1 == (LOCAL_START_TRIES if local else 1):
                    hint = "" if local else "; a cluster with token authentication needs RAY_AUTH_MODE=token and its token"
                    raise UserError(f"--ray {self.address}: cannot connect to a Ray cluster ({one_line(str(e), 200)}"
                                    f"{hint}).") from None
        self.slots = self.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._remote = ray.remote(num_cpus=1, max_retries=MAX_RETRIES)(run_job)
        return self

    def __exit__(self, *exc: object) -> None:
        self._ray.shutdown()

    def describe(self) -> str:
        where = "a local Ray cluster" if self.address == "local" else f"the Ray cluster at {self.address}"
        return f"{where} ({self.slots} at once)"

    def submit(self, job: Job) -> object:
        return self._remote.remote(job)

    def wait(self, handles: list[object]) -> list[tuple[object, Row | WorkerLost]]:
        ray = self._ray
        done, _ = ray.wait(handles, num_returns=1, timeout=WAIT_S)
        outcomes = []
        for ref in done:
            try:
                outcomes.append((ref, ray.get(ref)))
            except ray.exceptions.RayError as e:  # the worker or node was lost more than MAX_RETRIES times
                outcomes.append((ref, WorkerLost(one_line(f"{type(e).__name__}: {e}", 200))))
        return outcomes


def check_reachable(address: str) -> None:
    """A `UserError` unless something listens at a "host:port" or "ray://host:port" address ("auto" is left to Ray)."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--ray {address}: expected 'local' or a cluster address host:port (or ray://host:port, auto).")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as e:
        raise UserError(f"--ray {address}: cannot reach a Ray cluster there ({e.strerror or e}); "
                        "start one with `ray start --head` or check the address.") from None
