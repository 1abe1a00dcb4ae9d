"""``s2kan-dyn compare``: fit S2KAN and SINDy on the same data and score both the same way."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from ..errors import OutputExistsError, S2KANDynError, UnknownNameError
from .options import as_options, check_number, check_output_file, check_output_folder, parse_names, reject_unused

log = logging.getLogger(__name__)

REPORT_NAME = "report.json"
TABLE_NAME = "table.md"
PLOT_NAME = "forecasts.png"
FORMAT = "s2kan-dyn-compare-report"
DEFAULT_TEST_FRACTION = 0.25


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="compare S2KAN with SINDy on one system or data file",
        description="Fit each method on the same training data, print one table (terms found, F1, "
        "coefficient error, derivative R^2, valid prediction time, fit time), and write table.md, "
        "forecasts.png (every method's forecast against the held-out data) and report.json into --out. "
        "Catalog and ODEBench systems are tested from a new initial state; for a data file or a "
        "shipped series the last part of the series is held out.",
    )
    parser.add_argument("name", nargs="?", metavar="NAME",
                        help="catalog system (lorenz, ...), ODEBench system (odebench_01, ...) or shipped data set (lynx_hare)")
    parser.add_argument("--data", metavar="FILE", help="trajectories in a .csv or .npz file, instead of NAME")
    parser.add_argument("--time-column", metavar="COLUMN", help="time column of --data (default t, time or the first column)")
    parser.add_argument("--states", metavar="A,B,...", help="state columns of --data, comma-separated (default all others)")
    parser.add_argument("--test-fraction", type=float, metavar="F",
                        help=f"data files and shipped series: fraction of the last trajectory held out "
                        f"(default {DEFAULT_TEST_FRACTION})")
    parser.add_argument("--noise", type=float, metavar="LEVEL",
                        help="simulated systems: noise as a fraction of each state's standard deviation (default 0)")
    parser.add_argument("--coarse", action="store_true", help="simulated systems: sample at 5x the default step")
    parser.add_argument("--seed", type=int, default=0, help="seed of initial states, noise and fits (default 0)")
    parser.add_argument("--methods", default="s2kan,sindy", metavar="M1,M2",
                        help="methods, comma-separated: s2kan, sindy (default both)")
    parser.add_argument("--time-budget", type=float, metavar="SECONDS",
                        help="time limit of SymbolicODE's trajectory stage (default none)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--report", metavar="FILE", help="also write the report JSON to FILE")
    parser.add_argument("--force", action="store_true", help="write into a non-empty --out and overwrite --report")
    parser.set_defaults(run=run)


def load_case(args):
    """Return the :class:`~s2kan_dyn.benchmark.Case` that the arguments name."""
    import systems

    from .. import datasets
    from ..benchmark import case_from_series, case_from_system, odebench
    from ..io import load_trajectories

    if (args.name is None) == (args.data is None):
        raise S2KANDynError("give either NAME (a system or data set) or --data FILE, not both and not neither.")
    if args.data is None:
        reject_unused(args, {"time_column": "--time-column", "states": "--states"}, "without --data FILE")
    if args.data is not None or args.name in datasets.names():
        reject_unused(args, {"noise": "--noise", "coarse": "--coarse"},
                      "to measured series (--data FILE or a shipped data set)")
        if args.test_fraction is None:
            args.test_fraction = DEFAULT_TEST_FRACTION
    else:
        reject_unused(args, {"test_fraction": "--test-fraction"}, "to a simulated system, whose test starts are new states")
        args.noise = 0.0 if args.noise is None else args.noise
    if args.data is not None:
        states = None if args.states is None else parse_names("--states", args.states, "column")
        trajectories = load_trajectories(args.data, time_column=args.time_column, states=states)
        return case_from_series("compare", Path(args.data).stem, trajectories, args.test_fraction, args.seed)
    if args.name in datasets.names():
        return case_from_series("compare", args.name, [datasets.load(args.name)], args.test_fraction, args.seed)

    sampling = "coarse" if args.coarse else "default"
    if args.name in odebench.names():
        system = odebench.get(args.name)
        test_x0 = [odebench.held_out_initial_condition(args.name)]
        with as_options({"noise": "--noise", "seed": "--seed"}):
            return case_from_system("compare", system, args.noise, sampling, args.seed, test_x0=test_x0)
    if args.name in systems.names():
        with as_options({"noise": "--noise", "seed": "--seed"}):
            return case_from_system("compare", systems.get(args.name), args.noise, sampling, args.seed)
    known = systems.names() + datasets.names() + odebench.names()
    raise UnknownNameError("system or data set", args.name, known)


def prepare_output(args) -> Path:
    """Create ``--out``; reject a non-empty folder or an existing ``--report`` without ``--force``.

    Only the last level of ``--out`` is created, and ``--report`` must name a
    file in an existing folder.
    """
    out = Path(args.out)
    check_output_folder("--out", out)
    if args.report:
        check_output_file("--report", args.report)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"--out {out} is a file; give a folder.")
    if not args.force:
        if out.is_dir() and any(out.iterdir()):
            raise OutputExistsError(f"output folder {out} is not empty; pass --force or choose another --out.")
        if args.report and Path(args.report).exists():
            raise OutputExistsError(f"--report {args.report} exists; pass --force to overwrite it.")
    out.mkdir(parents=True, exist_ok=True)
    # An old report would pass for this run's result if this run failed.
    (out / REPORT_NAME).unlink(missing_ok=True)
    return out


def comparison_table(results: dict, has_truth: bool) -> str:
    """Return the markdown table of the methods' figures."""
    header = ["method", "terms found", "F1", "coef. error", "derivative R^2", "VPT", "fit time (s)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method, m in results.items():
        if "error" in m:
            lines.append(f"| {method} | failed: {m['error']} |" + " |" * (len(header) - 2))
            continue
        vpt = _fmt(m.get("vpt"))
        if m.get("vpt_lyapunov") is not None:
            vpt += f" ({m['vpt_lyapunov']:.2f} Lyapunov times)"
        cells = [
            method,
            str(m.get("n_terms_found", "-")),
            _fmt(m.get("f1")) if has_truth else "-",
            _fmt(m.get("coef_error")) if has_truth else "-",
            _fmt(m.get("r2"), 6) if has_truth else "-",
            vpt,
            _fmt(m.get("fit_seconds")),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def equations_section(evaluations: dict, case) -> str:
    """Return each method's equations (and the truth when known) as markdown lines."""
    lines = ["Equations found:", ""]
    for method, evaluation in evaluations.items():
        for state, rhs in evaluation.metrics["equations"].items():
            lines.append(f"- {method}: `{state}' = {rhs}`")
    if case.truth is not None:
        for state, rhs in case.truth.items():
            lines.append(f"- truth: `{state}' = {rhs}`")
    return "\n".join(lines)


def _fmt(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def _valid_until(start: float, vpt: float | None) -> float | None:
    """Return the time at which a forecast scored from ``start`` stops being valid, or None."""
    return None if vpt is None else float(start) + vpt


def run(args) -> int:
    from ..benchmark import evaluate
    from ..benchmark.executors import pin_threads
    from ..benchmark.methods import METHODS
    from ..benchmark.plots import plot_forecasts
    from ..benchmark.results import versions
    from ..io import atomic_path
    from ..report import equation_strings, write_report

    started = time.perf_counter()
    methods = parse_names("--methods", args.methods, "method", list(METHODS))
    check_number("--time-budget", args.time_budget, 0.0, inclusive=False, hint="seconds")
    check_number("--seed", args.seed, 0, kind="an integer")
    case = load_case(args)
    out = prepare_output(args)
    pin_threads()

    evaluations, results = {}, {}
    for method in methods:
        log.info("fitting %s on %s", method, case.label)
        try:
            evaluations[method] = evaluate(case, method, time_budget=args.time_budget)
            results[method] = evaluations[method].metrics
        except S2KANDynError as exc:
            # One method's failure is part of the comparison, so the others are still reported.
            log.warning("%s failed on %s: %s", method, case.system, exc)
            results[method] = {"error": str(exc)}
    if not evaluations:
        raise S2KANDynError(f"every method failed on {case.system}: {results}")
    has_truth = case.truth is not None

    table = comparison_table(results, has_truth) + "\n\n" + equations_section(evaluations, case)
    print(table)
    with atomic_path(out / TABLE_NAME) as tmp:
        tmp.write_text(f"# {case.label}\n\n{table}\n", encoding="utf-8")

    test = case.tests[0]
    first = case.first_scored
    plot_forecasts(
        out / PLOT_NAME, test.t, test.x, {m: e.predictions[0] for m, e in evaluations.items()},
        case.state_names, title=f"{case.system}: forecasts from a held-out start",
        valid_until={m: _valid_until(test.t[first], e.metrics.get("vpt_first_start")) for m, e in evaluations.items()},
    )
    report = {
        "format": FORMAT,
        "source": case.system,
        "case": {"suite": case.suite, "noise": case.noise, "sampling": case.sampling, "seed": case.seed,
                 "first_scored_sample": first, "n_test_starts": len(case.tests)},
        "states": list(case.state_names),
        "truth": equation_strings(case.truth),
        "methods": {
            method: (
                {"equations": evaluations[method].metrics["equations"], "metrics": figures,
                 "fit": evaluations[method].fitted.details}
                if method in evaluations else {"error": figures["error"]}
            )
            for method, figures in results.items()
        },
        "settings": {k: v for k, v in vars(args).items() if k != "run"},
        "versions": versions(),
        "files": [TABLE_NAME, PLOT_NAME],
        "seconds": time.perf_counter() - started,
    }
    write_report(out / REPORT_NAME, report)
    if args.report:
        write_report(args.report, report)
    log.info("compare %s: files in %s", case.system, out)
    return 0
