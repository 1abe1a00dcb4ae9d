"""``s2kan-dyn discover``: find the equations of a system, forecast it, write a report and plots."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

from ..errors import DataError, OutputExistsError, S2KANDynError, UnknownNameError
from .options import (
    as_options, check_device, check_number, check_output_file, check_output_folder, parse_names, reject_unused,
    rename_arguments,
)
from .simulate_cmd import simulate_options

log = logging.getLogger(__name__)

DEFAULT_OUT_ROOT = "s2kan-dyn-out"
REPORT_NAME = "report.json"
MODEL_NAME = "model.s2kan"
# Extra test starts on the attractor of a chaotic catalog system.
CHAOTIC_TEST_STARTS = 10
DEFAULT_TEST_FRACTION = 0.25
PLOT_NAMES = {"forecast": "forecast.png", "phase": "phase_portrait.png", "terms": "open_terms.png"}


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "discover",
        help="find the governing equations of a system from time series",
        description="Fit an S2KAN vector field to trajectories of a catalog system (NAME), a shipped "
        "data set (lynx_hare) or your own file (--data), print the equations (beside the truth when "
        "known), forecast a held-out trajectory, and write report.json, PNG plots and the model into "
        f"the output folder (default {DEFAULT_OUT_ROOT}/NAME).",
    )
    parser.add_argument("name", nargs="?", metavar="NAME", help="catalog system or shipped data set, e.g. lorenz, lynx_hare")
    parser.add_argument("--data", metavar="FILE", help="trajectories in a .csv or .npz file, instead of NAME")
    parser.add_argument("--time-column", metavar="COLUMN", help="time column of --data (default t, time or the first column)")
    parser.add_argument("--states", metavar="A,B,...", help="state columns of --data, comma-separated (default all others)")
    parser.add_argument(
        "--test-fraction", type=float, metavar="F",
        help=f"data files and shipped series: fraction of the last trajectory's samples held out for the forecast "
        f"(default {DEFAULT_TEST_FRACTION})",
    )

    parser.add_argument("--noise", type=float, metavar="LEVEL",
                        help="catalog: Gaussian noise as a fraction of each state's standard deviation (default 0)")
    parser.add_argument("--t-end", type=float, metavar="T", help="catalog: duration in time units (default: the system's)")
    parser.add_argument("--dt", type=float, metavar="DT", help="catalog: sampling step in time units (default: the system's)")
    parser.add_argument("--n-trajectories", type=int, metavar="N",
                        help="catalog: training trajectories (default 1); the test trajectory starts from another state")
    parser.add_argument("--seed", type=int, default=0, help="seed of data, noise and fit (default 0)")

    parser.add_argument("--stages", default="derivative,trajectory", metavar="S1,S2",
                        help="training stages, comma-separated: derivative, trajectory (default both)")
    parser.add_argument("--time-budget", type=float, metavar="SECONDS", help="time limit of the trajectory stage (default none)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    parser.add_argument("--out", metavar="DIR", help=f"output folder (default {DEFAULT_OUT_ROOT}/NAME in the current folder)")
    parser.add_argument("--report", metavar="FILE", help="also write the report JSON to FILE")
    parser.add_argument("--force", action="store_true", help="write into a non-empty output folder and overwrite --report FILE")
    parser.add_argument("--resume", action="store_true",
                        help="finish a fit interrupted by Ctrl-C from the checkpoint in the output folder (same arguments)")
    parser.set_defaults(run=run)


def run(args) -> int:
    import numpy as np

    from .. import plots
    from ..determinism import pin_determinism
    from ..discovery import SymbolicODE
    from ..discovery.checkpoint import CHECKPOINT_NAME, CheckpointError, with_checkpoint
    from ..discovery.estimator import STAGES
    from ..metrics.equations import equation_metrics
    from ..metrics.forecast import forecast_metrics
    from ..report import build_report, equation_table, write_report

    started = time.perf_counter()
    stages = tuple(parse_names("--stages", args.stages, "stage", STAGES))
    check_number("--time-budget", args.time_budget, 0.0, inclusive=False, hint="seconds")
    check_number("--seed", args.seed, 0, kind="an integer")
    check_device(args.device)
    data = load_data(args)
    out = prepare_output(args, data["label"])

    pin_determinism()
    model = SymbolicODE(
        stages=stages, device=args.device, random_state=args.seed, progress=not args.quiet, time_budget=args.time_budget
    )
    model = with_checkpoint(model, out / CHECKPOINT_NAME, resume=args.resume)
    fit_start = time.perf_counter()
    try:
        model.fit(data["train"])
    except CheckpointError as exc:
        exc.args = (rename_arguments(str(exc), CHECKPOINT_OPTIONS),)
        raise
    except KeyboardInterrupt:
        log.error("interrupted; the completed stages are saved in %s. Run the same command with --resume to "
                  "continue from there.", out / CHECKPOINT_NAME)
        return 130
    fit_seconds = time.perf_counter() - fit_start
    equations = model.equations()
    print(equation_table(model.state_names_, equations, data["truth"]))

    test = data["test"]
    forecast_start = time.perf_counter()
    prediction, diverged_at = forecast(model, test.x[0], test.t)
    evaluated = slice(data["first_scored"], None)
    scale = np.std(np.concatenate([tr.x for tr in data["train"]]), axis=0)
    scale = np.where(scale > 0, scale, 1e-12)
    metrics = {
        "forecast": forecast_metrics(
            test.t[evaluated], finite_prefix(prediction[evaluated]), test.x[evaluated], scale,
            lyapunov_time=data["lyapunov_time"], diverged_at=diverged_at,
        )
    }
    if data.get("extra_tests"):
        metrics["forecast_starts"] = mean_forecast_metrics(model, data["extra_tests"], scale, data["lyapunov_time"])
    if data["truth"] is not None:
        metrics["equations"] = equation_metrics(equations, data["truth"], model.state_names_, x_test=test.x)
    forecast_seconds = time.perf_counter() - forecast_start

    notes = []
    files = []
    plot_start = time.perf_counter()
    title = data["label"]
    train_last = data["train"][-1]
    vpt = metrics["forecast"].get("vpt")
    valid_until = None if vpt is None else float(test.t[data["first_scored"]]) + vpt
    files.append(plots.plot_forecast(out / PLOT_NAMES["forecast"], test.t, test.x, prediction, model.state_names_,
                                     t_train=train_last.t if data["from_file"] else None,
                                     x_train=train_last.x if data["from_file"] else None, title=title,
                                     valid_until=valid_until).name)
    files.append(plots.plot_phase_portrait(out / PLOT_NAMES["phase"], test.x, prediction, model.state_names_, title=title).name)
    train_states = np.concatenate([tr.x for tr in data["train"]])
    files.append(plots.plot_open_terms(out / PLOT_NAMES["terms"], equations, model.state_names_, x=train_states,
                                       title=title).name)
    plot_seconds = time.perf_counter() - plot_start

    if hasattr(model, "save"):
        model.save(out / MODEL_NAME)
        files.append(MODEL_NAME)
    else:
        notes.append("model not saved: this estimator has no save()")

    fit_report = dict(model.report_)
    self_check = fit_report.get("self_check")
    if self_check and data["lyapunov_time"]:
        self_check = {**self_check, "agreement_lyapunov": self_check["agreement_time"] / data["lyapunov_time"]}
        fit_report["self_check"] = self_check
    settings = {key: value for key, value in vars(args).items() if key not in ("run",)}
    report = build_report(
        source=data["label"], states=model.state_names_, equations=equations, truth=data["truth"], metrics=metrics,
        fit_report=fit_report, settings=settings, seed=args.seed,
        timings={"fit": fit_seconds, "forecast": forecast_seconds, "plots": plot_seconds,
                 "run": time.perf_counter() - started},
        files=files, notes=notes,
    )
    write_report(out / REPORT_NAME, report)
    if args.report:
        write_report(args.report, report)
    # The summary is part of the result, so it goes to standard output, and -q keeps it.
    print(summary_line(metrics, data, fit_seconds, out))
    return 0


# SymbolicODE arguments set by options, named as options when a checkpoint's settings differ.
CHECKPOINT_OPTIONS = {"random_state": "--seed", "stages": "--stages", "time_budget": "--time-budget", "device": "--device"}
# Options that set how a catalog system is simulated.
CATALOG_OPTIONS = {"noise": "--noise", "t_end": "--t-end", "dt": "--dt", "n_trajectories": "--n-trajectories"}


def load_data(args) -> dict:
    """Return the training trajectories, the test trajectory and what is known about the system."""
    import systems

    from .. import datasets
    from ..io import load_trajectories

    if (args.name is None) == (args.data is None):
        raise S2KANDynError("give either NAME (a catalog system or data set) or --data FILE, not both and not neither.")
    if args.data is None:
        reject_unused(args, {"time_column": "--time-column", "states": "--states"}, "without --data FILE")
    if args.data is not None or args.name in datasets.names():
        reject_unused(args, CATALOG_OPTIONS, "to measured series (--data FILE or a shipped data set)")
        if args.test_fraction is None:
            args.test_fraction = DEFAULT_TEST_FRACTION
    if args.data is not None:
        states = None if args.states is None else parse_names("--states", args.states, "column")
        trajectories = load_trajectories(args.data, time_column=args.time_column, states=states)
        return split_series(trajectories, args.test_fraction, Path(args.data).stem)
    if args.name in datasets.names():
        return split_series([datasets.load(args.name)], args.test_fraction, args.name)
    if args.name not in systems.names():
        raise UnknownNameError("system or data set", args.name, systems.names() + datasets.names())

    reject_unused(args, {"test_fraction": "--test-fraction"},
                  "to a catalog system, whose forecast starts from a new state")
    args.noise = 0.0 if args.noise is None else args.noise
    args.n_trajectories = 1 if args.n_trajectories is None else args.n_trajectories
    system = systems.get(args.name)
    with as_options(simulate_options(args)):
        train = system.simulate(t_end=args.t_end, dt=args.dt, n_trajectories=args.n_trajectories, noise=args.noise,
                                seed=args.seed)
    # The test start is the next draw after the training starts, so it is never one of them.
    start = system.sample_initial_conditions(args.n_trajectories, seed=args.seed)[-1]
    [test] = system.simulate(t_end=args.t_end, dt=args.dt, x0=start, noise=0.0, seed=args.seed)
    extra_tests = []
    if system.lyapunov_time is not None:
        # One forecast of a chaotic system depends on luck with its start, so
        # the mean over more attractor starts is scored too. Their seed differs
        # from the training data's.
        starts = system.sample_initial_conditions(CHAOTIC_TEST_STARTS, seed=args.seed + 1)
        extra_tests = [system.simulate(t_end=args.t_end, dt=args.dt, x0=x0, noise=0.0)[0] for x0 in starts]
    return {
        "label": args.name, "train": train, "test": test, "first_scored": 0, "truth": system.equations(),
        "lyapunov_time": system.lyapunov_time, "from_file": False, "extra_tests": extra_tests,
    }


def split_series(trajectories, test_fraction: float, label: str) -> dict:
    """Hold out the last ``test_fraction`` of the last trajectory; the forecast starts at the last training sample."""
    from ..trajectory import MIN_SAMPLES

    check_number("--test-fraction", test_fraction, 0.0, inclusive=False, maximum=1.0, hint="e.g. 0.25")
    last = trajectories[-1]
    n_test = int(round(last.n_samples * test_fraction))
    # The test trajectory is the held-out samples plus the last training sample.
    if n_test + 1 < MIN_SAMPLES:
        smallest = math.ceil(100 * (MIN_SAMPLES - 1) / last.n_samples) / 100
        raise DataError(
            f"{last.source}: --test-fraction {test_fraction:g} holds out {n_test} of {last.n_samples} samples, "
            f"fewer than the {MIN_SAMPLES - 1} a forecast needs; give a --test-fraction of at least {smallest:g} "
            "or a longer series."
        )
    n_train = last.n_samples - n_test
    if n_train < MIN_SAMPLES:
        raise DataError(
            f"{last.source}: {last.n_samples} samples leave {n_train} for training after holding out {n_test}; "
            "give a longer series or a smaller --test-fraction."
        )
    train = list(trajectories[:-1]) + [last.slice(0, n_train)]
    return {
        "label": label, "train": train, "test": last.slice(n_train - 1, None), "first_scored": 1, "truth": None,
        "lyapunov_time": None, "from_file": True,
    }


def prepare_output(args, label: str) -> Path:
    """Create and return the output folder, rejecting a non-empty one without ``--force`` or ``--resume``.

    Every check runs before the folder is created, so a rejected run leaves
    nothing behind. Only the last level of ``--out`` is created, but the
    default folder is created with its parent.
    """
    from ..discovery.checkpoint import CHECKPOINT_NAME

    out = Path(args.out) if args.out else Path(DEFAULT_OUT_ROOT) / label
    if args.out:
        check_output_folder("--out", out)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"--out {out} is a file; give a folder.")
    checkpoint = out / CHECKPOINT_NAME
    if args.resume and not checkpoint.is_file():
        raise S2KANDynError(f"--resume: no checkpoint {checkpoint} to resume from; run the same command without --resume.")
    if out.is_dir() and any(out.iterdir()) and not (args.force or args.resume):
        if checkpoint.is_file():
            raise OutputExistsError(
                f"output folder {out} contains {CHECKPOINT_NAME} from an interrupted fit; pass --resume to continue "
                "that fit, --force to start again in this folder, or choose another --out."
            )
        raise OutputExistsError(f"output folder {out} is not empty; pass --force to write into it, or choose another --out.")
    if args.report:
        check_output_file("--report", args.report)
        if Path(args.report).exists() and not args.force:
            raise OutputExistsError(f"--report {args.report} exists; pass --force to overwrite it.")
    out.mkdir(parents=True, exist_ok=True)
    # An old report would look like the result of this run if this run failed.
    (out / REPORT_NAME).unlink(missing_ok=True)
    return out


def forecast(model, x0, t):
    """Roll out the equations (the network when they have dense terms); return states and divergence time."""
    from ..rollout import equations_to_numpy, rollout

    if model.dense_terms_:
        log.warning("the equations have dense terms %s; forecasting with the network", model.dense_terms_)
        from ..discovery.selfcheck import network_rollout

        return network_rollout(model.network_, x0, t)
    import numpy as np

    result = rollout(equations_to_numpy(model.equations(), model.state_names_), x0, t)
    prediction = np.full((t.shape[0], len(model.state_names_)), np.nan)
    prediction[: result.x.shape[0]] = result.x
    if not result.ok:
        log.warning("forecast stopped (%s) at t=%g: %s", result.status, result.stopped_at, result.message)
    return prediction, result.diverged_at


def finite_prefix(prediction):
    """Return the rows of ``prediction`` (n, d) before the first non-finite one."""
    import numpy as np

    finite = np.all(np.isfinite(prediction), axis=1)
    return prediction if finite.all() else prediction[: int(np.argmax(~finite))]


def mean_forecast_metrics(model, tests, scale, lyapunov_time) -> dict:
    """Forecast every test trajectory from its first state; return the mean figures and each VPT."""
    import numpy as np

    from ..metrics.forecast import forecast_metrics

    rows = []
    for test in tests:
        prediction, diverged_at = forecast(model, test.x[0], test.t)
        rows.append(forecast_metrics(test.t, finite_prefix(prediction), test.x, scale,
                                     lyapunov_time=lyapunov_time, diverged_at=diverged_at))
    summary = {"n_starts": len(rows), "vpt": [row["vpt"] for row in rows]}
    for key in ("vpt", "vpt_lyapunov", "rmse", "smape"):
        values = [row[key] for row in rows if row.get(key) is not None]
        summary[f"{key}_mean"] = float(np.mean(values)) if values else None
    return summary


def summary_line(metrics: dict, data: dict, fit_seconds: float, out: Path) -> str:
    """Return one line with the main figures and where the files are."""
    parts = [f"fit {fit_seconds:.1f} s"]
    if "equations" in metrics:
        eq = metrics["equations"]
        parts.append(f"structure {'exact' if eq['exact'] else 'not exact'} (F1 {eq['f1']:.2f})")
        parts.append(f"coefficient error {eq['coef_error']:.2g}")
    fc = metrics["forecast"]
    vpt = f"valid prediction time {fc['vpt']:.3g}"
    if fc.get("vpt_lyapunov") is not None:
        vpt += f" ({fc['vpt_lyapunov']:.2f} Lyapunov times)"
    parts.append(vpt)
    starts = metrics.get("forecast_starts")
    if starts and starts.get("vpt_lyapunov_mean") is not None:
        parts.append(f"mean over {starts['n_starts']} attractor starts {starts['vpt_lyapunov_mean']:.2f} Lyapunov times")
    return f"{data['label']}: {', '.join(parts)}; files in {out}"
