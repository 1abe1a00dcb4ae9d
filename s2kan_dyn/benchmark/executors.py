"""Run benchmark jobs in worker processes that can be stopped at a time limit.

A job is a plain dict (suite, system, noise, sampling, seed, method,
timeout and the suite paths); :func:`run_job` turns it into a results row
in the worker. Executors by name:

- ``local``: a pool of ``jobs`` worker processes started with ``spawn``.
  A worker past its job's time limit is stopped and replaced, and the job
  gets a ``"timed out"`` row. A worker that dies gets a ``"crashed"`` row.
  No worker outlives :meth:`LocalExecutor.run`, or the parent process if
  that is killed.
- ``ray``: the same jobs on Ray actors (:mod:`.ray_executor`), in a new
  local Ray instance or on an existing cluster, with the same time limit
  and rows. Ray is an optional extra, imported only when this executor is
  built.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
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
# Seconds a new worker may take to import its modules.
START_SECONDS = 300.0
# Seconds a worker has to exit after SIGTERM (or after its parent's death) before it is killed.
STOP_SECONDS = 5.0


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
    from tqdm import tqdm

    # tqdm's default lock includes a multiprocessing RLock, a named semaphore
    # that a spawned worker shares with no other process. If the worker is
    # killed, the resource tracker warns that the semaphore leaked.
    tqdm.set_lock(threading.RLock())
    from . import evaluate  # noqa: F401

    try:
        import pysindy  # noqa: F401
    except ImportError:
        pass


def _exit_on_sigterm(signum, frame) -> None:
    # SystemExit, unlike the default action of SIGTERM, runs finally clauses and
    # multiprocessing's exit finalizers, which unlink any named semaphore that a
    # library created in the worker. The resource tracker warns at the sweep's
    # end about each one left behind.
    raise SystemExit(128 + signum)


def _stop_when_parent_exits(parent) -> None:
    """Wait for the parent process to exit, then stop this worker: SIGTERM first, ``os._exit`` as a last resort."""
    parent.join()
    log.warning("benchmark worker %d: parent process %d has exited; stopping", os.getpid(), parent.pid)
    if hasattr(signal, "pthread_kill"):
        # To the main thread, so that a blocking call there is interrupted.
        signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)
    else:
        os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(STOP_SECONDS)
    os._exit(1)


def _worker_loop(conn, log_level: int) -> None:
    """Run the jobs received on ``conn`` and send back their rows, until ``None`` or the parent's exit.

    The worker ignores SIGINT, because Ctrl-C in a terminal reaches every
    process of the foreground group and the parent decides what to stop.
    SIGTERM ends the worker through :class:`SystemExit`. A daemon thread
    waits on multiprocessing's parent sentinel, so the worker also stops when
    the parent is killed without a chance to stop it (SIGKILL).
    """
    # NOTE: tested on Linux only. By CPython's spawn code, the parent sentinel
    # is a pipe end that the parent holds on Linux and macOS and a handle to the
    # parent process on Windows, so the watchdog should work on all three. A
    # worker stops only when its main thread next runs Python code, so a long C
    # call delays it. Windows has no SIGTERM: a parent ended from outside there
    # gets no chance to clean up, and its workers end through TerminateProcess,
    # without exit finalizers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_stop_when_parent_exits, args=(parent,), name="watch-parent", daemon=True).start()
    prepare_worker(log_level)
    try:
        conn.send("ready")
        while True:
            job = conn.recv()
            if job is None:
                return
            log.info("%s/%s noise=%g %s seed=%d %s: started in worker %d", job["suite"], job["system"],
                     job["noise"], job["sampling"], job["seed"], job["method"], os.getpid())
            conn.send(run_job(job))
    except (EOFError, BrokenPipeError):
        # The parent closed its end of the pipe: it is stopping or gone.
        return


@contextlib.contextmanager
def _sigint_ignored_by_children():
    """Ignore SIGINT in this process while a worker is started, so the worker inherits SIG_IGN from its start.

    A worker spends its first second or so importing modules before
    :func:`_worker_loop` ignores SIGINT itself, and a Ctrl-C in that time
    would print its KeyboardInterrupt traceback. Only on POSIX (the ignored
    disposition survives ``exec``) and in the main thread (where Python
    handles signals); elsewhere this does nothing.
    """
    # NOTE: a SIGINT that arrives while a worker starts (a few milliseconds
    # per worker) is lost for this process too; pressing Ctrl-C again stops it.
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGINT) if main_thread and os.name == "posix" else None
    if previous is None:
        yield
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@dataclass
class _Worker:
    process: multiprocessing.Process
    conn: object
    ready: bool = False
    job: dict | None = None
    started: float = 0.0
    stop_by: float | None = None  # time.monotonic() deadline to exit, once asked to stop


class LocalExecutor:
    """Run jobs on ``n_workers`` worker processes, each job limited to its ``timeout`` seconds.

    :meth:`run` stops every worker it started before it returns or raises,
    KeyboardInterrupt included: an idle worker is sent ``None``, a busy one
    SIGTERM, and any still alive :data:`STOP_SECONDS` later SIGKILL. A worker
    whose parent dies without stopping it (SIGKILL) stops by itself, see
    :func:`_worker_loop`.
    """

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
        with _sigint_ignored_by_children():
            process.start()
        child.close()
        return _Worker(process, parent)

    @staticmethod
    def _wait_ready(workers: list[_Worker]) -> None:
        """Wait until each new worker has imported its modules; raise if one is not ready in :data:`START_SECONDS`."""
        deadline = time.monotonic() + START_SECONDS
        for worker in workers:
            try:
                worker.ready = worker.conn.poll(max(0.0, deadline - time.monotonic())) and worker.conn.recv() == "ready"
            except (EOFError, OSError):
                worker.ready = False
            if worker.ready:
                continue
            worker.process.join(1.0)
            code = worker.process.exitcode
            reason = f"was not ready after {START_SECONDS:g} s" if code is None else f"exited with code {code}"
            raise S2KANDynError(f"a benchmark worker process {reason} while starting; see the messages above.")

    @staticmethod
    def _request_stop(worker: _Worker) -> None:
        """Ask ``worker`` to exit: with ``None`` when it is idle and ready, else with SIGTERM."""
        if worker.stop_by is not None:
            return
        worker.stop_by = time.monotonic() + STOP_SECONDS
        if worker.ready and worker.job is None:
            try:
                worker.conn.send(None)
                return
            except OSError:
                pass
        worker.process.terminate()

    @staticmethod
    def _finish_stop(worker: _Worker, block: bool) -> bool:
        """Release a worker asked to stop once it has exited; return whether it has.

        With ``block``, wait for the exit. A worker still alive at its
        ``stop_by`` time is killed (SIGKILL).
        """
        if worker.conn.closed:
            return True
        remaining = max(0.0, worker.stop_by - time.monotonic())
        worker.process.join(remaining if block else 0)
        if worker.process.is_alive():
            if time.monotonic() < worker.stop_by:
                return False
            log.warning("benchmark worker %d did not stop within %g s; killing it", worker.process.pid, STOP_SECONDS)
            worker.process.kill()
            worker.process.join()
        worker.conn.close()
        worker.process.close()
        return True

    def run(self, jobs: Iterable[dict], on_result: Callable[[dict], None]) -> None:
        """Run ``jobs`` and call ``on_result(row)`` in this process as each one finishes."""
        pending = deque(jobs)
        workers: list[_Worker] = []
        stopping: list[_Worker] = []  # timed out or crashed, not yet exited
        try:
            while pending or any(w.job is not None for w in workers):
                stopping = [w for w in stopping if not self._finish_stop(w, block=False)]
                idle = [w for w in workers if w.job is None]
                missing = min(len(pending) - len(idle), self.n_workers - len(workers))
                new = []
                for _ in range(missing):
                    # Appended at once, so that the finally clause stops a worker whose start is interrupted.
                    workers.append(self._start())
                    new.append(workers[-1])
                self._wait_ready(new)
                for worker in idle + new:
                    if not pending:
                        break
                    worker.job = pending.popleft()
                    worker.started = time.monotonic()
                    worker.conn.send(worker.job)

                busy = [w for w in workers if w.job is not None]
                wait([w.conn for w in busy], timeout=POLL_SECONDS)
                for worker in busy:
                    row = self._check(worker)
                    if row is None:
                        continue
                    if row["status"] in ("timed out", "crashed"):
                        workers.remove(worker)
                        self._request_stop(worker)
                        stopping.append(worker)
                    on_result(row)
                    worker.job = None
        finally:
            for worker in workers + stopping:
                self._request_stop(worker)
            for worker in workers + stopping:
                self._finish_stop(worker, block=True)

    def _check(self, worker: _Worker) -> dict | None:
        """Return the row of ``worker``'s job if it has finished, died or run out of time, else ``None``."""
        job = worker.job
        if worker.conn.poll():
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
