"""``s2kan-dyn benchmark``: run or resume a sweep of a suite and summarise it."""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading

from ..errors import S2KANDynError
from .options import check_output_folder

log = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "benchmark",
        help="run a benchmark suite: systems x noise x sampling x seeds x methods",
        description="Fit every method on every case of a suite and write results.csv (one row per "
        "system, noise, sampling, seed and method, with every metric, the seed and the library "
        "versions), summary_SUITE.md and plots into --out. Rerunning with the same --out skips the "
        "rows already in results.csv. Each run is a worker process stopped at --timeout. Ctrl-C or SIGTERM "
        "stops the workers and keeps the rows finished so far.",
    )
    parser.add_argument("--suite", required=True, help="core (the catalog), odebench, dysts or real")
    parser.add_argument("--noise", default="0,0.05", metavar="L1,L2,...",
                        help="noise levels as fractions of each state's standard deviation (default 0,0.05)")
    parser.add_argument("--sampling", default="default", metavar="S1,S2",
                        help="sampling variants: default and/or coarse (5x the default step); default: default")
    parser.add_argument("--seeds", type=int, default=1, metavar="N", help="number of seeds, 0..N-1 (default 1)")
    parser.add_argument("--methods", default="s2kan,sindy", metavar="M1,M2",
                        help="methods, comma-separated: s2kan, sindy (default both)")
    parser.add_argument("--systems", metavar="A,B,...", help="only these systems of the suite (default all)")
    parser.add_argument("--jobs", type=int, default=1, metavar="N", help="runs at once (worker processes, default 1)")
    parser.add_argument("--executor", default="local", help="local (process pool, default) or ray")
    parser.add_argument("--ray-address", metavar="HOST:PORT",
                        help="Ray cluster to join with --executor ray ('auto': RAY_ADDRESS or the latest "
                        "'ray start' on this machine); default: start a local Ray instance with --jobs CPUs")
    parser.add_argument("--timeout", type=float, default=600.0, metavar="S",
                        help="seconds per run (simulation, fit and scoring) before it is stopped and recorded "
                        "as timed out (default 600)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder; an existing results.csv is resumed")
    parser.add_argument("--odebench-path", metavar="PATH",
                        help="ODEBench equations file (default: the copy shipped with s2kan-dyn)")
    parser.add_argument("--dysts-path", metavar="PATH",
                        help="JSON export of dysts' right-hand sides, needed by --suite dysts")
    parser.add_argument("--force", action="store_true",
                        help="write into a non-empty --out folder that has no results.csv")
    parser.set_defaults(run=run)


def _list(text: str | None) -> list[str]:
    return [] if text is None else [part.strip() for part in text.split(",") if part.strip()]


def _noise_levels(text: str) -> list[float]:
    levels = []
    for part in _list(text):
        try:
            level = float(part)
        except ValueError:
            raise S2KANDynError(f"--noise {text!r}: {part!r} is not a number; give levels such as 0,0.05.") from None
        if not level >= 0:
            raise S2KANDynError(f"--noise level {part} is invalid; levels are >= 0.")
        levels.append(level)
    if not levels:
        raise S2KANDynError("--noise is empty; give at least one level, e.g. 0.")
    return levels


@contextlib.contextmanager
def _sigterm_as_interrupt(received: list[int]):
    """Raise KeyboardInterrupt on SIGTERM inside the block, so the sweep stops its workers as on Ctrl-C.

    The signal's number is appended to ``received``. Signal handlers can be
    set only in the main thread, so elsewhere SIGTERM keeps its handler, as
    it does when that handler was not set from Python.
    """
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) is None:
        yield
        return

    def interrupt(signum, frame):
        received.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(args) -> int:
    from ..benchmark import SuiteOptions, run_benchmark
    from ..benchmark.runner import BenchmarkInterrupted

    if args.seeds < 1:
        raise S2KANDynError(f"--seeds {args.seeds} is invalid; give at least 1.")
    check_output_folder("--out", args.out)
    received = []
    try:
        with _sigterm_as_interrupt(received):
            result = run_benchmark(
                suite=args.suite,
                out=args.out,
                noises=_noise_levels(args.noise),
                samplings=_list(args.sampling),
                seeds=list(range(args.seeds)),
                methods=_list(args.methods),
                systems=_list(args.systems) or None,
                jobs=args.jobs,
                executor=args.executor,
                ray_address=args.ray_address,
                timeout=args.timeout,
                options=SuiteOptions(args.odebench_path, args.dysts_path),
                force=args.force,
                progress=not args.quiet,
            )
    except KeyboardInterrupt as exc:
        message = str(exc) if isinstance(exc, BenchmarkInterrupted) else "interrupted before any run started."
        print(f"s2kan-dyn benchmark: {message}", file=sys.stderr)
        # Exit codes as a shell reports a process killed by the signal: 130 for SIGINT, 143 for SIGTERM.
        return 128 + (received[0] if received else signal.SIGINT)
    print(result["files"]["summary"].read_text(encoding="utf-8"))
    return 0
