"""Run benchmark jobs in worker processes that can be stopped at a time limit.

A job is a plain dict (suite, system, noise, sampling, seed, method,
timeout and the suite paths); :func:`run_job` turns it into a results row
in the worker. Executors by name:

- ``local``: a pool of ``jobs`` worker processes started with ``spawn``.
  A worker past its job's time limit is killed and replaced, and the job
  gets a ``"timed out"`` row. A worker that dies gets a ``"crashed"`` row.
- ``ray``: the same jobs on Ray actors, in a new local Ray instance or on
  an existing cluster, with the same time limit and rows. Ray is an
  optional extra, imported only when this executor is built.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Callable, Iterable

from ..errors import S2KANDynError, UnknownNameError
from .results import KEY, now

log = logging.getLogger(__name__)

EXECUTORS = ("local", "ray")
# Share of a run's time limit given to SymbolicODE's trajectory stage, so the
# fit can stop on its own and still be scored before the worker is killed.
TIME_BUDGET_SHARE = 0.7
# Seconds between checks of running jobs.
POLL_SECONDS = 0.2
# Seconds to wait for a TCP connection to a --ray-address before calling it unreachable.
CONNECT_SECONDS = 10.0


def pin_threads() -> None:
    """Use one thread for torch, OpenMP and BLAS in this process (small fits run faster so)."""
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = "1"
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1)
    except ImportError:
        log.debug("threadpoolctl not installed; BLAS threads follow OMP_NUM_THREADS only")


def base_row(job: dict) -> dict:
    """Return the identity columns of ``job``'s row plus its time limit."""
    row = {k: job[k] for k in KEY}
    row["timeout_s"] = job.get("timeout")
    row["threads"] = 1
    return row


def run_job(job: dict) -> dict:
    """Build the job's case, fit and score its method; return the results row."""
    from .evaluate import evaluate
    from .suites import SuiteOptions, build_case

    pin_threads()
    row = base_row(job)
    options = SuiteOptions(job.get("odebench_path"), job.get("dysts_path"))
    timeout = job.get("timeout")
    try:
        case = build_case(job["suite"], job["system"], job["noise"], job["sampling"], job["seed"], options)
        budget = TIME_BUDGET_SHARE * timeout if timeout else None
        result = evaluate(case, job["method"], time_budget=budget)
        row.update(result.metrics)
        row.update(status="ok", message="")
    except Exception as exc:  # noqa: BLE001  one run's failure, whatever it is, is recorded and the sweep goes on
        log.warning("%s/%s %s failed: %s: %s", job["suite"], job["system"], job["method"], type(exc).__name__, exc)
        row.update(status="failed", message=f"{type(exc).__name__}: {exc}"[:500])
    row["finished_at"] = now()
    return row


def stopped_row(job: dict, status: str, message: str) -> dict:
    """Return the row of a job that did not finish (timed out or crashed)."""
    row = base_row(job)
    row.update(status=status, message=message, finished_at=now())
    return row


# --- local process pool -----------------------------------------------------------


def _prepare_worker(log_level: int) -> None:
    """Set up logging and threads in a worker and import the heavy modules before its first job is timed."""
    logging.basicConfig(level=log_level, format="%(message)s")
    pin_threads()
    from . import evaluate  # noqa: F401

    try:
        import pysindy  # noqa: F401
    except ImportError:
        pass


def _worker_loop(conn, log_level: int) -> None:
    _prepare_worker(log_level)
    conn.send("ready")
    while True:
        job = conn.recv()
        if job is None:
            return
        conn.send(run_job(job))


@dataclass
class _Worker:
    process: multiprocessing.Process
    conn: object
    job: dict | None = None
    started: float = 0.0


class LocalExecutor:
    """Run jobs on ``n_workers`` worker processes, each job limited to its ``timeout`` seconds."""

    def __init__(self, n_workers: int = 1):
        if n_workers < 1:
            raise S2KANDynError(f"--jobs {n_workers} is invalid; give at least 1.")
        self.n_workers = n_workers
        self.context = multiprocessing.get_context("spawn")

    def _start(self) -> _Worker:
        parent, child = self.context.Pipe()
        process = self.context.Process(
            target=_worker_loop, args=(child, logging.getLogger("s2kan_dyn").getEffectiveLevel()), daemon=True
        )
        process.start()
        child.close()
        try:
            started = parent.poll(300) and parent.recv() == "ready"
        except (EOFError, OSError):
            started = False
        if not started:
            process.kill()
            raise S2KANDynError(
                f"a benchmark worker process failed to start (exit code {process.exitcode}); "
                "see the messages above."
            )
        return _Worker(process, parent)

    @staticmethod
    def _stop(worker: _Worker) -> None:
        worker.process.kill()
        worker.process.join(5)
        worker.conn.close()

    def run(self, jobs: Iterable[dict], on_result: Callable[[dict], None]) -> None:
        """Run ``jobs`` and call ``on_result(row)`` in this process as each one finishes."""
        pending = deque(jobs)
        workers: list[_Worker] = []
        try:
            while pending or any(w.job is not None for w in workers):
                while pending and (len(workers) < self.n_workers or any(w.job is None for w in workers)):
                    idle = next((w for w in workers if w.job is None), None)
                    if idle is None:
                        idle = self._start()
                        workers.append(idle)
                    idle.job = pending.popleft()
                    idle.started = time.monotonic()
                    idle.conn.send(idle.job)
                busy = [w for w in workers if w.job is not None]
                ready = wait([w.conn for w in busy], timeout=POLL_SECONDS)
                for worker in busy:
                    row = self._check(worker, worker.conn in ready)
                    if row is None:
                        continue
                    on_result(row)
                    if worker.job is not None and row["status"] in ("timed out", "crashed"):
                        workers.remove(worker)
                        self._stop(worker)
                    worker.job = None
        finally:
            for worker in workers:
                if worker.process.is_alive():
                    try:
                        worker.conn.send(None)
                    except (BrokenPipeError, OSError):
                        pass
                    worker.process.join(2)
                self._stop(worker)

    def _check(self, worker: _Worker, has_data: bool) -> dict | None:
        job = worker.job
        if has_data:
            try:
                return worker.conn.recv()
            except (EOFError, OSError):
                pass
        if not worker.process.is_alive():
            code = worker.process.exitcode
            log.warning("worker for %s/%s %s died with exit code %s", job["suite"], job["system"], job["method"], code)
            return stopped_row(job, "crashed", f"worker process died with exit code {code}")
        limit = job.get("timeout")
        elapsed = time.monotonic() - worker.started
        if limit and elapsed > limit:
            log.warning("%s/%s %s timed out after %.0f s", job["suite"], job["system"], job["method"], elapsed)
            return stopped_row(job, "timed out", f"timed out after {limit:g} s")
        return None


# --- ray ------------------------------------------------------------------------------


class _RayWorker:
    """One benchmark worker as a Ray actor: a process that runs one job at a time."""

    def __init__(self, log_level: int):
        _prepare_worker(log_level)

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


def make_executor(name: str, n_workers: int, ray_address: str | None = None):
    """Return the executor called ``name`` (one of :data:`EXECUTORS`); ``ray_address`` is for ``ray`` only."""
    if ray_address and name != "ray":
        raise S2KANDynError(f"--ray-address {ray_address} needs --executor ray; add it or leave out --ray-address.")
    if name == "local":
        return LocalExecutor(n_workers)
    if name == "ray":
        return RayExecutor(n_workers, ray_address)
    raise UnknownNameError("executor", name, list(EXECUTORS))
