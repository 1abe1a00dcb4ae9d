"""Run benchmark jobs in worker processes that can be stopped at a time limit.

A job is a plain dict (suite, system, noise, sampling, seed, method,
timeout and the suite paths); :func:`run_job` turns it into a results row
in the worker. Executors by name:

- ``local``: a pool of ``jobs`` worker processes started with ``spawn``.
  A worker past its job's time limit is killed and replaced, and the job
  gets a ``"timed out"`` row. A worker that dies gets a ``"crashed"`` row.
- ``ray``: the same jobs on Ray actors (:mod:`.ray_executor`), in a new
  local Ray instance or on an existing cluster, with the same time limit
  and rows. Ray is an optional extra, imported only when this executor is
  built.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
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


def prepare_worker(log_level: int) -> None:
    """Set up logging and threads in a worker and import the heavy modules before its first job is timed."""
    logging.basicConfig(level=log_level, format="%(message)s")
    pin_threads()
    from . import evaluate  # noqa: F401

    try:
        import pysindy  # noqa: F401
    except ImportError:
        pass


def _worker_loop(conn, log_level: int) -> None:
    prepare_worker(log_level)
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


def make_executor(name: str, n_workers: int, ray_address: str | None = None):
    """Return the executor called ``name`` (one of :data:`EXECUTORS`); ``ray_address`` is for ``ray`` only."""
    if ray_address and name != "ray":
        raise S2KANDynError(f"--ray-address {ray_address} needs --executor ray; add it or leave out --ray-address.")
    if name == "local":
        return LocalExecutor(n_workers)
    if name == "ray":
        from .ray_executor import RayExecutor

        return RayExecutor(n_workers, ray_address)
    raise UnknownNameError("executor", name, list(EXECUTORS))
