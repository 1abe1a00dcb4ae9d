"""Run a benchmark sweep: jobs, resume, results file, summary and plots.

``run_benchmark`` builds one job per (system, noise, sampling, seed,
method) and skips the jobs whose rows are already in the output folder's
``results.csv``. It runs the rest on an executor and rewrites
``results.csv`` after each finished job. At the end it writes
``summary_<suite>.md`` and the plots ``success_vs_noise_<suite>.png`` and
``vpt_per_system_<suite>.png``. A KeyboardInterrupt during the sweep
stops the workers and is raised again as :class:`BenchmarkInterrupted`,
which gives the number of runs saved in ``results.csv``.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Sequence

from ..errors import DataError, OutputExistsError
from ..io import atomic_path, check_output_folder
from .cases import SAMPLINGS
from .executors import make_executor
from .methods import check_methods
from .results import RESULTS_NAME, make_key, read_results, row_key, versions, write_results
from .suites import SuiteOptions, check_suite, has_truth, system_names
from .summary import summary_markdown

log = logging.getLogger(__name__)


class BenchmarkInterrupted(KeyboardInterrupt):
    """A sweep stopped by KeyboardInterrupt after its workers were stopped.

    Attributes:
        done: runs of this sweep whose rows are in ``results_path``.
        total: runs in this sweep.
        results_path: the results file, complete up to ``done`` runs.
    """

    def __init__(self, done: int, total: int, results_path: Path):
        if done:
            message = (f"interrupted with {done} of {total} runs done and saved in {results_path}; "
                       "rerun the same command to resume.")
        else:
            message = f"interrupted before any of the {total} runs finished; nothing was written to {results_path}."
        super().__init__(message)
        self.done = done
        self.total = total
        self.results_path = results_path


def build_jobs(
    suite: str,
    systems: Sequence[str],
    noises: Sequence[float],
    samplings: Sequence[str],
    seeds: Sequence[int],
    methods: Sequence[str],
    timeout: float | None,
    options: SuiteOptions,
) -> list[dict]:
    """Return one job dict per (system, noise, sampling, seed, method).

    Measured series (suite ``real``) have their own noise and sampling, so
    only noise 0 at the default sampling is run for them.
    """
    if not has_truth(suite):
        noises, samplings = [0.0], ["default"]
    return [
        {
            "suite": suite, "system": system, "noise": float(noise), "sampling": sampling, "seed": int(seed),
            "method": method, "timeout": timeout, "odebench_path": options.odebench_path,
            "dysts_path": options.dysts_path,
        }
        for system in systems
        for noise in noises
        for sampling in samplings
        for seed in seeds
        for method in methods
    ]


def prepare_folder(out: Path, force: bool) -> None:
    """Create ``out`` inside an existing folder; reject a non-empty folder without results unless ``force``.

    Only the last level is created, so a typo in the parent path creates nothing.
    """
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"--out {out} is a file; give a folder.")
    check_output_folder("out", out)
    if out.is_dir() and any(out.iterdir()) and not (out / RESULTS_NAME).exists() and not force:
        raise OutputExistsError(
            f"output folder {out} is not empty and has no {RESULTS_NAME} to resume; "
            "choose another --out or pass --force to write into it."
        )
    out.mkdir(exist_ok=True)


def run_benchmark(
    suite: str,
    out: str | Path,
    noises: Sequence[float] = (0.0,),
    samplings: Sequence[str] = ("default",),
    seeds: Sequence[int] = (0,),
    methods: Sequence[str] = ("s2kan", "sindy"),
    systems: Sequence[str] | None = None,
    jobs: int = 1,
    executor: str = "local",
    timeout: float | None = None,
    options: SuiteOptions = SuiteOptions(),
    force: bool = False,
    progress: bool = True,
    ray_address: str | None = None,
) -> dict:
    """Run (or resume) a sweep of ``suite``; return the paths written and the run counts.

    Args:
        suite: one of ``core``, ``odebench``, ``dysts``, ``real``.
        out: output folder; its ``results.csv``, if any, is resumed.
        noises, samplings, seeds, methods: the grid.
        systems: a subset of the suite's systems (default all).
        jobs: worker processes; executor: ``local`` or ``ray``.
        timeout: seconds per run before it is stopped with a ``timed out`` row.
        options: paths of the ODEBench copy and the dysts export.
        force: write into a non-empty folder without ``results.csv``.
        progress: show a progress bar on a terminal.
        ray_address: Ray cluster to join (``ray`` only); default: start a local Ray instance with ``jobs`` CPUs.
    """
    check_suite(suite)
    methods = check_methods(methods)
    for sampling in samplings:
        if sampling not in SAMPLINGS:
            raise DataError(f"sampling {sampling!r} is invalid; use one of {list(SAMPLINGS)}.")
    if timeout is not None and not timeout > 0:
        raise DataError(f"--timeout {timeout} is invalid; give a positive number of seconds.")
    known = system_names(suite, options)
    if systems:
        unknown = [s for s in systems if s not in known]
        if unknown:
            raise DataError(f"system(s) {unknown} are not in suite {suite!r}; its systems are {known}.")
    chosen = list(systems) if systems else known
    # Built before any file is written, so an unknown or missing executor leaves no folder behind.
    runner = make_executor(executor, jobs, ray_address)

    out = Path(out)
    prepare_folder(out, force)
    results_path = out / RESULTS_NAME
    rows = read_results(results_path)
    done = {row_key(r) for r in rows}
    all_jobs = build_jobs(suite, chosen, noises, samplings, seeds, methods, timeout, options)
    todo = [j for j in all_jobs if make_key(j["suite"], j["system"], j["noise"], j["sampling"], j["seed"], j["method"]) not in done]
    skipped = len(all_jobs) - len(todo)
    if skipped:
        log.info("%d of %d runs already in %s; skipping them", skipped, len(all_jobs), results_path)
    log.info("running %d runs of suite %s on %d %s worker(s)", len(todo), suite, jobs, executor)

    stamp = versions()
    bar = _progress_bar(len(todo), progress)
    written = 0

    def on_result(row: dict) -> None:
        nonlocal written
        row.update(stamp)
        rows.append(row)
        write_results(results_path, rows)
        written += 1
        bar.update(1)

    try:
        if todo:
            runner.run(todo, on_result)
        suite_rows = [r for r in read_results(results_path) if r["suite"] == suite]
        files = {"results": results_path}
        files.update(write_outputs(out, suite, suite_rows))
    except KeyboardInterrupt:
        # The executor has stopped its workers, and results.csv is only ever
        # replaced whole, so it contains every row written so far.
        raise BenchmarkInterrupted(skipped + written, len(all_jobs), results_path) from None
    finally:
        bar.close()
    counts = {status: sum(r["status"] == status for r in suite_rows) for status in ("ok", "timed out", "failed", "crashed")}
    log.info("suite %s: %d rows (%s); files in %s", suite, len(suite_rows),
             ", ".join(f"{k} {v}" for k, v in counts.items() if v), out)
    return {"files": files, "ran": len(todo), "skipped": skipped, "counts": counts}


def write_outputs(out: Path, suite: str, rows: list[dict]) -> dict[str, Path]:
    """Write the suite's markdown summary and plots; return their paths by kind."""
    from .plots import plot_success_vs_noise, plot_vpt_per_system

    files = {}
    summary = out / f"summary_{suite}.md"
    with atomic_path(summary) as tmp:
        tmp.write_text(summary_markdown(suite, rows, has_truth(suite)), encoding="utf-8")
    files["summary"] = summary
    if not rows:
        return files
    if has_truth(suite):
        files["success_plot"] = plot_success_vs_noise(out / f"success_vs_noise_{suite}.png", rows, f"{suite}: exact structure")
    files["vpt_plot"] = plot_vpt_per_system(out / f"vpt_per_system_{suite}.png", rows, f"{suite}: valid prediction time")
    return files


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int, progress: bool):
    if not progress or not sys.stderr.isatty() or total == 0:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc="benchmark", unit="run")
