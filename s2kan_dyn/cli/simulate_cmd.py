"""``s2kan-dyn simulate``: simulate a catalog system and write the trajectories to a file."""

from __future__ import annotations

import logging
import math
from pathlib import Path

from ..errors import OutputExistsError, S2KANDynError
from .options import as_options, check_output_file, check_x0_length, parse_x0

log = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="simulate a catalog system to a CSV or NPZ file",
        description="Integrate a catalog system with scipy solve_ivp and write the sampled "
        "trajectories to FILE (.csv or .npz, chosen by the suffix). Unset options take the "
        "system's defaults (see 's2kan-dyn systems').",
    )

    parser.add_argument("name", metavar="NAME", help="system name, e.g. lorenz")
    parser.add_argument("--out", required=True, metavar="FILE", help="output file, .csv or .npz")
    parser.add_argument("--t-end", type=float, metavar="T", help="duration in time units")
    parser.add_argument("--dt", type=float, metavar="DT", help="sampling step in time units")
    parser.add_argument(
        "--x0", metavar="A,B,...", help="initial state of trajectory 0, comma-separated, one per state"
    )

    parser.add_argument(
        "--noise", type=float, default=0.0, metavar="LEVEL",
        help="Gaussian noise, as a fraction of each state's standard deviation (default 0)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of initial states and noise (default 0)")
    parser.add_argument(
        "--n-trajectories", type=int, default=1, metavar="N",
        help="number of trajectories; those after the first start from drawn states (default 1)",
    )

    parser.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE",
        help="override a system parameter, e.g. --param rho=35 (repeatable)",
    )
    parser.add_argument(
        "--method", default="DOP853",
        help="scipy solve_ivp method: DOP853 (default), RK45, RK23, LSODA, Radau or BDF",
    )
    parser.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    parser.set_defaults(run=run)


def run(args) -> int:
    import systems
    from ..io import save_trajectories

    out = Path(args.out)
    if out.suffix.lower() not in (".csv", ".npz"):
        raise S2KANDynError(f"--out {out}: unsupported suffix {out.suffix or '(none)'!r}; use .csv or .npz.")
    if out.is_dir():
        raise S2KANDynError(f"--out {out} is a folder; give a file name ending in .csv or .npz.")
    if out.exists() and not args.force:
        raise OutputExistsError(f"--out {out} exists; pass --force to overwrite it.")
    check_output_file("--out", out)

    params = parse_params(args.param)
    check_param_names(args.name, params)
    with as_options({"parameter": "--param"}):
        system = systems.get(args.name, **params)
    x0 = None
    if args.x0 is not None:
        x0 = parse_x0(args.x0)
        check_x0_length(args.x0, x0, system.state_names, system.name)
    with as_options(simulate_options(args)):
        trajectories = system.simulate(
            t_end=args.t_end, dt=args.dt, x0=x0, n_trajectories=args.n_trajectories,
            noise=args.noise, seed=args.seed, method=args.method,
        )
    save_trajectories(out, trajectories)
    samples = sum(tr.n_samples for tr in trajectories)
    noun = "trajectory" if len(trajectories) == 1 else "trajectories"
    log.info(
        "%s: wrote %d %s, %d samples, states %s to %s",
        system.name, len(trajectories), noun, samples, ", ".join(system.state_names), out,
    )
    return 0


def simulate_options(args) -> dict[str, str]:
    """Return the options behind ``System.simulate``'s arguments, for :func:`as_options`.

    ``x0`` is mapped only when ``--x0`` was given, because otherwise the
    starts in a message were drawn, not typed.
    """
    options = {"t_end": "--t-end", "dt": "--dt", "noise": "--noise", "seed": "--seed",
               "n_trajectories": "--n-trajectories", "method": "--method"}
    if getattr(args, "x0", None) is not None:
        options["x0"] = "--x0"
    return {name: option for name, option in options.items() if hasattr(args, name)}


def parse_params(items: list[str]) -> dict[str, float | int]:
    """Parse ``KEY=VALUE`` strings into numbers; integral text becomes an ``int``."""
    params: dict[str, float | int] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key, text = key.strip(), text.strip()
        if not sep or not key or not text:
            raise S2KANDynError(f"--param {item!r} is invalid; write KEY=VALUE, e.g. --param rho=35.")
        if key in params:
            raise S2KANDynError(f"--param {key} is given twice; give each parameter once.")
        try:
            params[key] = int(text)
        except ValueError:
            try:
                params[key] = float(text)
            except ValueError:
                raise S2KANDynError(f"--param {key}={text!r} is not a number.") from None
        if not math.isfinite(params[key]):
            raise S2KANDynError(f"--param {key}={text} is invalid; give a finite number.")
    return params


def check_param_names(name: str, params: dict) -> None:
    """Raise unless every ``--param`` key is a parameter of the catalog system ``name``."""
    import systems

    if name not in systems.names():
        # systems.get raises the error that suggests the closest name.
        return
    defaults = systems.default_parameters(name)
    unknown = [key for key in params if key not in defaults]
    if unknown:
        known = ", ".join(f"{key}={value}" for key, value in defaults.items())
        raise S2KANDynError(
            f"--param {unknown[0]}={params[unknown[0]]}: {name} has no parameter {unknown[0]!r}; "
            f"give one of its parameters ({known})."
        )
