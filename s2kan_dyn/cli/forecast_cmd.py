"""``s2kan-dyn forecast``: roll out a saved model from a given state and write the trajectory."""

from __future__ import annotations

import logging
import math
from pathlib import Path

from ..errors import FitError, OutputExistsError, S2KANDynError
from .options import check_number, check_output_file, check_x0_length, parse_x0

log = logging.getLogger(__name__)

# Samples written when --dt is not given.
DEFAULT_STEPS = 1000
# A larger grid is almost surely a typo in --dt, and would take minutes and
# gigabytes before failing.
MAX_SAMPLES = 10_000_000
# A written trajectory needs this many samples to load again (MIN_SAMPLES of
# s2kan_dyn.trajectory).
MIN_WRITTEN = 5


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "forecast",
        help="roll out a saved model (model.s2kan) from an initial state",
        description="Load a model written by 's2kan-dyn discover' or SymbolicODE.save(), integrate its "
        "equations (scipy DOP853; the network with torchdiffeq when the equations have dense terms or "
        "--use-network is given) from --x0 over [--t0, --t-end], and write the trajectory to FILE "
        "(.csv or .npz, chosen by the suffix). A rollout that diverges stops there; the samples before "
        "it are written and the time is logged.",
    )
    parser.add_argument("model", metavar="MODEL", help="saved model file, e.g. s2kan-dyn-out/lorenz/model.s2kan")
    parser.add_argument("--x0", required=True, metavar="A,B,...", help="initial state, comma-separated, one value per state")
    parser.add_argument("--t-end", type=float, required=True, metavar="T", help="end time, in the model's time units")
    parser.add_argument("--t0", type=float, default=0.0, metavar="T0", help="start time (default 0)")
    parser.add_argument(
        "--dt", type=float, metavar="DT",
        help=f"output sampling step in time units (default (T - T0) / {DEFAULT_STEPS})",
    )
    parser.add_argument("--use-network", action="store_true", help="roll out the fitted network instead of the equations")
    parser.add_argument("--out", required=True, metavar="FILE", help="output file, .csv or .npz")
    parser.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    parser.set_defaults(run=run)


def run(args) -> int:
    import numpy as np

    from ..discovery import SymbolicODE
    from ..io import save_trajectories
    from ..trajectory import Trajectory

    out = Path(args.out)
    check_output(out, args.force)
    t = time_grid(args.t0, args.t_end, args.dt)
    model = SymbolicODE.load(args.model)
    x0 = parse_x0(args.x0)
    names = model.state_names_
    check_x0_length(args.x0, x0, names, "the model")

    use_network = bool(args.use_network or model.dense_terms_)
    if use_network and model.network_ is None:
        raise FitError(f"{args.model} has no fitted network; drop --use-network to roll out the equations.")
    if model.dense_terms_ and not args.use_network:
        log.warning("the equations have dense terms %s; rolling out the network instead", model.dense_terms_)
    states = model.simulate(x0, t, use_network=use_network)

    finite = np.all(np.isfinite(states), axis=1)
    reached = int(np.argmin(finite)) if not finite.all() else t.size
    if reached < MIN_WRITTEN:
        raise FitError(
            f"the rollout stopped before t={t[reached]:g}, after {reached} samples, fewer than the {MIN_WRITTEN} "
            "a trajectory file needs; nothing was written. Try a smaller --dt or another --x0."
        )
    if reached < t.size:
        log.warning("rollout stopped before t=%g (reason above); writing the %d samples before it", t[reached], reached)
    trajectory = Trajectory(t[:reached], states[:reached], names, source=str(args.model))
    save_trajectories(out, [trajectory])
    log.info("forecast: wrote %d samples of %s from t=%g to %g to %s", reached, ", ".join(names), t[0], t[reached - 1], out)
    return 0


def check_output(out: Path, force: bool) -> None:
    """Raise unless ``out`` is a new (or, with ``force``, existing) .csv or .npz file."""
    if out.suffix.lower() not in (".csv", ".npz"):
        raise S2KANDynError(f"--out {out}: unsupported suffix {out.suffix or '(none)'!r}; use .csv or .npz.")
    if out.is_dir():
        raise S2KANDynError(f"--out {out} is a folder; give a file name ending in .csv or .npz.")
    if out.exists() and not force:
        raise OutputExistsError(f"--out {out} exists; pass --force to overwrite it.")
    check_output_file("--out", out)


def time_grid(t0: float, t_end: float, dt: float | None):
    """Return the output times from ``t0`` to ``t_end`` in steps of ``dt`` (the last step may be shorter)."""
    import numpy as np

    check_number("--t0", t0, -math.inf, hint="start time")
    if not math.isfinite(t_end) or t_end <= t0:
        raise S2KANDynError(f"--t-end {t_end:g} is invalid; give a finite end time after --t0 {t0:g}.")
    check_number("--dt", dt, 0.0, inclusive=False, hint="output step in time units")
    span = t_end - t0
    if dt is None:
        dt = span / DEFAULT_STEPS
    # The tolerance keeps a span that is a whole number of steps from gaining a sliver step by rounding.
    steps = math.ceil(span / dt - 1e-9)
    if steps + 1 > MAX_SAMPLES:
        raise S2KANDynError(
            f"--dt {dt:g} over {span:g} time units gives {steps + 1} samples, more than {MAX_SAMPLES}; give a larger --dt."
        )
    if steps + 1 < MIN_WRITTEN:
        raise S2KANDynError(
            f"--dt {dt:g} over {span:g} time units gives {steps + 1} samples; give a --dt of at most "
            f"{span / (MIN_WRITTEN - 1):g} for the {MIN_WRITTEN} samples a trajectory file needs."
        )
    t = t0 + dt * np.arange(steps + 1, dtype=float)
    t[-1] = t_end
    return t
