"""Benchmark workers stop with their sweep: Ctrl-C, SIGTERM, SIGKILL of the parent, time limits."""

import csv
import multiprocessing
import os
import signal
import subprocess
import sys
import time

import pytest

from s2kan_dyn.benchmark.executors import LocalExecutor
from s2kan_dyn.benchmark.results import COLUMNS, STATUSES
from s2kan_dyn.benchmark.runner import build_jobs
from s2kan_dyn.benchmark.suites import SuiteOptions

pytestmark = pytest.mark.skipif(os.name != "posix", reason="sends POSIX signals to process groups")

# Four runs on two workers. Each SINDy run takes under a second, and the
# worker then takes the next s2kan fit. Each s2kan fit on this rational system
# stays in the derivative stage for minutes (docs/limits.md), so both workers
# are fitting when a test sends its signal, and no fit is mocked.
SWEEP = ["benchmark", "--suite", "core", "--systems", "rosenzweig_macarthur", "--methods", "s2kan,sindy",
         "--noise", "0", "--seeds", "2", "--jobs", "2", "--timeout", "600"]
STARTED = ": started in worker"
# Seconds to wait for the sweep to reach the state a test needs, on a loaded 2-core machine.
SETUP_SECONDS = 300
# Seconds the processes get to exit after a signal. The executor's own limit
# is 5 s; a full test run on a loaded 2-core machine once needed more than 15.
EXIT_SECONDS = 60


def _default_sigint():
    # A test run started as a background job (CI, nohup) hands its children an
    # ignored SIGINT, and Python then installs no KeyboardInterrupt handler, so
    # the Ctrl-C this test sends would be ignored. A terminal would not ignore it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _launch(tmp_path, args):
    """Start ``python -m s2kan_dyn ARGS`` in its own session; return the process and its stderr file."""
    log_path = tmp_path / "stderr.txt"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    with open(log_path, "w") as log_file:
        process = subprocess.Popen([sys.executable, "-m", "s2kan_dyn", *args], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=log_file, env=env, start_new_session=True,
                                   preexec_fn=_default_sigint)
    return process, log_path


def _wait_busy(process, log_path, out, started):
    """Wait until one run is saved and ``started`` runs have logged their start; return ``process``'s descendants."""
    psutil = pytest.importorskip("psutil")
    deadline = time.monotonic() + SETUP_SECONDS
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the sweep exited early:\n{log_path.read_text()}"
        if log_path.read_text().count(STARTED) >= started and (out / "results.csv").exists():
            return psutil.Process(process.pid).children(recursive=True)
        time.sleep(0.2)
    process.kill()
    pytest.fail(f"the sweep did not reach its third run within {SETUP_SECONDS} s:\n{log_path.read_text()}")


def _workers(processes, executor):
    """Return the benchmark workers among ``processes``: spawned processes, or Ray actors of the worker class."""
    psutil = pytest.importorskip("psutil")
    marker = "--multiprocessing-fork" if executor == "local" else "ray::_RayWorker"
    found = []
    for process in processes:
        try:
            if marker in " ".join(process.cmdline()):
                found.append(process)
        except psutil.NoSuchProcess:
            pass
    return found


def _survivors(processes):
    psutil = pytest.importorskip("psutil")
    _, alive = psutil.wait_procs(processes, timeout=EXIT_SECONDS)
    return alive


def _rows(out):
    with open(out / "results.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        return reader.fieldnames, list(reader)


def _interrupt(tmp_path, send, executor="local"):
    """Run SWEEP until its workers are busy and call ``send(pid)``; return the exit code, descendants and paths."""
    out = tmp_path / "bench"
    process, log_path = _launch(tmp_path, [*SWEEP, "--executor", executor, "--out", str(out)])
    try:
        # Ray actors' log lines do not reach the driver, so there the saved row is the only sign.
        descendants = _wait_busy(process, log_path, out, started=3 if executor == "local" else 0)
        assert len(_workers(descendants, executor)) == 2
        send(process.pid)
        code = process.wait(EXIT_SECONDS)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return code, descendants, out, log_path


def _check_stopped(descendants, out, log_path):
    """Assert that no worker is left, that results.csv is complete and that no semaphore leaked."""
    assert _survivors(descendants) == []
    fields, rows = _rows(out)
    assert fields == list(COLUMNS)
    assert len(rows) >= 1
    for row in rows:
        assert row["status"] in STATUSES
        assert row["finished_at"] != ""
    assert [p.name for p in out.iterdir() if p.name.endswith(".part")] == []
    stderr = log_path.read_text()
    assert "leaked semaphore" not in stderr
    assert "Traceback" not in stderr
    return rows, stderr


@pytest.mark.slow
def test_ctrl_c_stops_workers(tmp_path):
    # A terminal's Ctrl-C sends SIGINT to the whole foreground process group.
    code, descendants, out, log_path = _interrupt(tmp_path, lambda pid: os.killpg(pid, signal.SIGINT))
    rows, stderr = _check_stopped(descendants, out, log_path)
    assert code == 130
    last_line = stderr.strip().splitlines()[-1]
    assert f"interrupted with {len(rows)} of 4 runs" in last_line
    assert "rerun the same command to resume" in last_line


@pytest.mark.slow
def test_sigterm_stops_workers(tmp_path):
    code, descendants, out, log_path = _interrupt(tmp_path, lambda pid: os.kill(pid, signal.SIGTERM))
    rows, stderr = _check_stopped(descendants, out, log_path)
    assert code == 143
    assert f"interrupted with {len(rows)} of 4 runs" in stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_sigkill_workers_exit_alone(tmp_path):
    code, descendants, out, log_path = _interrupt(tmp_path, lambda pid: os.kill(pid, signal.SIGKILL))
    _, stderr = _check_stopped(descendants, out, log_path)
    assert code == -signal.SIGKILL
    assert stderr.count("parent process") == 2


@pytest.mark.slow
def test_ray_sigterm_stops_actors(tmp_path):
    pytest.importorskip("ray")
    send = lambda pid: os.kill(pid, signal.SIGTERM)  # noqa: E731
    code, descendants, out, log_path = _interrupt(tmp_path, send, executor="ray")
    rows, stderr = _check_stopped(descendants, out, log_path)
    assert code == 143
    assert f"interrupted with {len(rows)} of 4 runs" in stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_timeout_leaks_no_semaphore(tmp_path):
    # The s2kan fit does not finish in 3 s, so its worker is stopped at the time
    # limit. A semaphore it leaked would be reported when the sweep exits.
    out = tmp_path / "bench"
    args = ["benchmark", "--suite", "core", "--systems", "rosenzweig_macarthur", "--methods", "s2kan,sindy",
            "--noise", "0", "--jobs", "2", "--timeout", "3", "--out", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-m", "s2kan_dyn", *args], capture_output=True, text=True, env=env,
                          timeout=SETUP_SECONDS)
    _, rows = _rows(out)
    statuses = {row["method"]: row["status"] for row in rows}
    assert done.returncode == 0, done.stderr
    assert statuses["s2kan"] == "timed out"
    assert statuses["sindy"] == "ok"
    assert len(rows) == 2
    assert "leaked semaphore" not in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_executor_interrupt_stops_workers():
    jobs = build_jobs("core", ["hopf"], [0.0], ["default"], [0, 1], ["sindy"], 300.0, SuiteOptions())
    before = set(multiprocessing.active_children())
    rows = []

    def interrupt(row):
        rows.append(row)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        LocalExecutor(2).run(jobs, interrupt)
    assert len(rows) == 1
    assert set(multiprocessing.active_children()) - before == set()
