"""Run benchmark jobs on Ray actors, in a new local Ray instance or on an existing cluster.

The rows and time limits are those of the local process pool in
:mod:`.executors`. Ray is an optional extra, imported only when
:class:`RayExecutor` is built.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import threading
import time
from collections import deque
from typing import Callable, Iterable

from ..errors import S2KANDynError
from .executors import POLL_SECONDS, prepare_worker, run_job, stopped_row

log = logging.getLogger(__name__)

# Seconds to wait for a TCP connection to a --ray-address before calling it unreachable.
CONNECT_SECONDS = 10.0


class _RayWorker:
    """One benchmark worker as a Ray actor: a process that runs one job at a time."""

    def __init__(self, log_level: int):
        prepare_worker(log_level)

    def ready(self) -> str:
        return "ready"

    def run(self, job: dict) -> dict:
        return run_job(job)


def _check_reachable(address: str, timeout: float = CONNECT_SECONDS) -> None:
    """Raise :class:`S2KANDynError` when nothing accepts TCP connections at a ``host:port`` Ray address.

    ``ray.init`` retries an unreachable address for minutes (Ray 2.60), so a
    typo would otherwise look like a hang. Addresses without a port, such as
    ``"auto"``, are left to Ray.
    """
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise S2KANDynError(
            f"no Ray cluster found at --ray-address {address} ({exc}); start one there with "
            "'ray start --head', correct the address, or leave out --ray-address to start a local Ray instance."
        ) from None


@contextlib.contextmanager
def _caller_sigterm_kept():
    """Put back, after the block, a SIGTERM handler that the caller set in Python before ``ray.init`` replaced it.

    ``ray.init`` (Ray 2.60) sets its own SIGTERM handler in the driver, which
    calls ``sys.exit``, so a caller's handler (the benchmark command turns
    SIGTERM into KeyboardInterrupt to report its saved runs) would be lost.
    Ray's handler stays when the caller had none, or outside the main thread.
    """
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main_thread else None
    try:
        yield
    finally:
        if callable(previous):
            signal.signal(signal.SIGTERM, previous)


class RayExecutor:
    """Run jobs on ``n_workers`` Ray actors, each job limited to its ``timeout`` seconds.

    Without ``address``, :meth:`run` starts a new local Ray instance with
    ``n_workers`` CPUs and shuts it down at the end. With ``address``, it
    joins that cluster through ``ray.init(address=address)`` and leaves the
    cluster running. ``"auto"`` means the cluster named by ``RAY_ADDRESS`` or
    else the latest one that ``ray start`` began on this machine. A process
    that has already called ``ray.init`` keeps its connection, and
    ``address`` is then ignored. Ray writes its session files and logs to its
    temporary folder (``/tmp/ray`` unless ``RAY_TMPDIR`` is set), not to the
    working directory.

    As in :class:`LocalExecutor`, a job's time limit counts from when a ready
    worker gets it. A worker past the limit is killed (``ray.kill``) and
    replaced, and the job gets a ``"timed out"`` row. A worker that dies gets
    a ``"crashed"`` row.
    """

    # NOTE: a driver killed by SIGKILL is left to Ray's own cleanup. In one run on
    # Linux (Ray 2.60, local instance) its actors were gone within 30 s and its
    # agent processes within about 2 minutes.
    # NOTE: on a multi-node cluster every node needs s2kan-dyn installed and the
    # --odebench-path / --dysts-path files at the same paths; no runtime_env is sent.

    def __init__(self, n_workers: int = 1, address: str | None = None):
        if n_workers < 1:
            raise S2KANDynError(f"--jobs {n_workers} is invalid; give at least 1.")
        try:
            import ray
        except ImportError:
            raise S2KANDynError(
                "--executor ray needs Ray; install it with pip install 's2kan-dyn[ray]' or use --executor local."
            ) from None
        self.ray = ray
        self.n_workers = n_workers
        self.address = address
        if address:
            _check_reachable(address)

    def _connect(self) -> bool:
        """Join or start a Ray instance; return whether this call started the connection."""
        ray = self.ray
        if ray.is_initialized():
            log.info("using the Ray instance this process has already joined; --ray-address is ignored")
            return False
        options = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
        try:
            with _caller_sigterm_kept():
                if self.address:
                    ray.init(address=self.address, **options)
                else:
                    # "local" starts a new instance even when RAY_ADDRESS or a `ray start` cluster exists.
                    ray.init(address="local", num_cpus=self.n_workers, **options)
        except ConnectionError as exc:
            raise S2KANDynError(
                f"could not connect to the Ray cluster at --ray-address {self.address}: {str(exc).rstrip('.')}; "
                "check the address or leave out --ray-address to start a local Ray instance."
            ) from None
        log.info("joined the Ray cluster at %s", ray.get_runtime_context().gcs_address)
        return True

    def _start(self, count: int) -> list:
        """Start ``count`` worker actors and wait until each has imported the heavy modules."""
        ray = self.ray
        worker_class = ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)(_RayWorker)
        level = logging.getLogger("s2kan_dyn").getEffectiveLevel()
        actors = [worker_class.remote(level) for _ in range(count)]
        try:
            ray.get([actor.ready.remote() for actor in actors], timeout=300)
        except (ray.exceptions.RayError, TimeoutError) as exc:
            for actor in actors:
                ray.kill(actor)
            raise S2KANDynError(
                f"{count} benchmark worker(s) failed to start on Ray within 300 s ({type(exc).__name__}: {exc}); "
                "check that s2kan-dyn is installed on every node and that the cluster has --jobs free CPUs."
            ) from None
        return actors

    def run(self, jobs: Iterable[dict], on_result: Callable[[dict], None]) -> None:
        """Run ``jobs`` and call ``on_result(row)`` in this process as each one finishes."""
        ray = self.ray
        started_here = self._connect()
        pending = deque(jobs)
        idle: list = []
        running: dict = {}  # result ref -> (actor, job, start time)
        try:
            while pending or running:
                missing = min(len(pending), self.n_workers - len(running)) - len(idle)
                if missing > 0:
                    idle.extend(self._start(missing))
                while pending and idle:
                    actor = idle.pop()
                    job = pending.popleft()
                    running[actor.run.remote(job)] = (actor, job, time.monotonic())
                done, _ = ray.wait(list(running), num_returns=1, timeout=POLL_SECONDS)
                for ref in done:
                    actor, job, _ = running.pop(ref)
                    try:
                        row = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        log.warning("Ray worker for %s/%s %s died: %s", job["suite"], job["system"], job["method"], exc)
                        ray.kill(actor)
                        # Ray's message spans several lines (actor id, pid, reason); a row keeps it on one.
                        reason = " ".join(str(exc).split())
                        on_result(stopped_row(job, "crashed", f"Ray worker died: {reason}"[:500]))
                        continue
                    idle.append(actor)
                    on_result(row)
                for ref, (actor, job, started) in list(running.items()):
                    limit = job.get("timeout")
                    elapsed = time.monotonic() - started
                    if limit and elapsed > limit:
                        log.warning("%s/%s %s timed out after %.0f s", job["suite"], job["system"], job["method"],
                                    elapsed)
                        running.pop(ref)
                        ray.kill(actor)
                        on_result(stopped_row(job, "timed out", f"timed out after {limit:g} s"))
        finally:
            for actor in idle + [actor for actor, _, _ in running.values()]:
                ray.kill(actor)
            if started_here:
                ray.shutdown()
