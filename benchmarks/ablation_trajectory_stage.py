"""Ablation of the trajectory stage: derivative matching with and without it.

Data: Lorenz from the catalog, ``simulate(t_end=20, dt=0.05, noise=0.05,
seed=s)`` for each seed: one trajectory of 401 samples with Gaussian noise
of 5% of each state's standard deviation. Methods, all on the same data:

- ``stlsq``: derivative matching alone. pysindy STLSQ on the degree-2
  polynomial library over pysindy's smoothed finite differences, its
  threshold chosen by the held-out validation rule of :class:`SINDyBaseline`
  (the same rule for every system).
- ``stlsq, project derivatives``: the same, over the derivatives that
  ``SymbolicODE`` and ``shooting`` start from
  (:func:`s2kan_dyn.discovery.derivatives.smoothed_derivative`, which sizes
  its Savitzky-Golay window from the estimated noise).
- ``least squares start``: least squares of all degree-2 monomials on the
  project's smoothed derivatives, no thresholding: where ``shooting`` starts.
- ``shooting``: the trajectory stage alone from the same smoothed data:
  every degree-2 monomial a candidate in every equation, started from least
  squares on the smoothed derivatives, then fitted and eliminated through
  the solver by :func:`fit_trajectory_stage` with its defaults.
- with ``--symbolic-ode``, also ``SymbolicODE(stages=("derivative",))``
  and the default ``SymbolicODE()`` (derivative stage, then trajectory stage).

Scores come from :func:`s2kan_dyn.metrics.equations.equation_metrics`:
exact structure (the 7 Lorenz terms, nothing else) and the relative
coefficient error over the union of terms. Seconds are the wall and CPU
time of each fit in this process, one torch and one BLAS thread. On a
machine shared with other jobs the wall time is inflated and the CPU time
is the better measure of cost.

Usage::

    python benchmarks/ablation_trajectory_stage.py --seeds 0 1 2 [--symbolic-ode] [--output table.md]
"""

from __future__ import annotations

import argparse
import os

# Pin threads before numpy and torch load their thread pools.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import datetime  # noqa: E402
import logging  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

import systems  # noqa: E402
from s2kan_dyn.baselines.sindy import SINDyBaseline  # noqa: E402
from s2kan_dyn.discovery.derivatives import smoothed_derivative  # noqa: E402
from s2kan_dyn.discovery.shooting import fit_trajectory_stage  # noqa: E402
from s2kan_dyn.io import atomic_path  # noqa: E402
from s2kan_dyn.metrics.equations import equation_metrics  # noqa: E402
from s2kan_dyn.readout.terms import TermLibrary, polynomial_terms  # noqa: E402
from s2kan_dyn.trajectory import Trajectory  # noqa: E402

SYSTEM = "lorenz"
SIMULATION = {"t_end": 20.0, "dt": 0.05, "noise": 0.05}


def fit_stlsq(data):
    model = SINDyBaseline(degree=2, smooth=True).fit(data)
    return model.equations(), {"threshold": model.threshold_}


class _ProjectDerivativeSINDy(SINDyBaseline):
    """SINDyBaseline on the project's smoothed derivatives instead of pysindy's."""

    def _differentiation(self, ps):
        def differentiate(x, t):
            return smoothed_derivative(Trajectory(t, x, [f"x{j}" for j in range(x.shape[1])])).dxdt

        return differentiate


def fit_stlsq_project_derivatives(data):
    model = _ProjectDerivativeSINDy(degree=2).fit(data)
    return model.equations(), {"threshold": model.threshold_}


def least_squares_start(data):
    """Return the degree-2 library, its least-squares coefficients on smoothed derivatives and the smoothed states."""
    names = data[0].state_names
    smoothed = [smoothed_derivative(tr) for tr in data]
    library = TermLibrary(polynomial_terms(names, 2), names)
    features = np.concatenate([library.evaluate(s.x) for s in smoothed])
    targets = np.concatenate([s.dxdt for s in smoothed])
    return library, np.linalg.lstsq(features, targets, rcond=None)[0], [s.x for s in smoothed]


def fit_least_squares(data):
    library, start, _ = least_squares_start(data)
    return library.to_equations(start), {}


def fit_shooting(data):
    library, start, smoothed = least_squares_start(data)
    result = fit_trajectory_stage(library, start, np.ones_like(start, dtype=bool), data, smoothed_states=smoothed)
    extra = {"rounds": len(result.rounds), "window": result.windows, "skipped": result.skipped_reason}
    return library.to_equations(result.coefficients, result.active), extra


def fit_symbolic_ode(stages):
    def fit(data):
        from s2kan_dyn.discovery import SymbolicODE

        model = SymbolicODE(stages=stages).fit(data)
        return model.equations(), {}

    return fit


def run(seeds, with_symbolic_ode):
    system = systems.get(SYSTEM)
    truth = system.equations()
    methods = {
        "stlsq": fit_stlsq,
        "stlsq, project derivatives": fit_stlsq_project_derivatives,
        "least squares start": fit_least_squares,
        "shooting": fit_shooting,
    }
    if with_symbolic_ode:
        methods["SymbolicODE derivative only"] = fit_symbolic_ode(("derivative",))
        methods["SymbolicODE default"] = fit_symbolic_ode(("derivative", "trajectory"))

    rows = []
    for seed in seeds:
        data = system.simulate(seed=seed, **SIMULATION)
        for method, fit in methods.items():
            started, cpu_started = time.perf_counter(), time.process_time()
            found, extra = fit(data)
            seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
            scores = equation_metrics(found, truth, system.state_names)
            rows.append({
                "method": method, "seed": seed, "exact": scores["exact"],
                "terms": scores["n_terms_found"], "coef_error": scores["coef_error"],
                "seconds": seconds, "cpu_seconds": cpu_seconds, "equations": {k: str(v) for k, v in found.items()}, **extra,
            })
            logging.info("%s seed %d: exact %s, %d terms, coefficient error %.3g, %.1f s",
                         method, seed, scores["exact"], scores["n_terms_found"], scores["coef_error"], seconds)
    return rows


def table(rows) -> str:
    lines = [
        "| method | seed | exact structure | terms (true 7) | relative coefficient error | wall s | CPU s |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['method']} | {row['seed']} | {'yes' if row['exact'] else 'no'} | {row['terms']} "
            f"| {row['coef_error']:.2e} | {row['seconds']:.1f} | {row['cpu_seconds']:.1f} |"
        )
    return "\n".join(lines)


def header(seeds) -> str:
    return (
        f"Lorenz, simulate(t_end=20, dt=0.05, noise=0.05, seed=s), seeds {list(seeds)}; "
        f"finished {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
        f"torch {torch.__version__}, {torch.get_num_threads()} torch thread, "
        f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="data seeds (default 0 1 2)")
    parser.add_argument("--symbolic-ode", action="store_true",
                        help="also run SymbolicODE with and without its trajectory stage (minutes per seed)")
    parser.add_argument("--output", help="also write the table to this markdown file")
    args = parser.parse_args()

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("s2kan_dyn.discovery.shooting", "s2kan_dyn.discovery", "s2kan_dyn.model"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    torch.set_num_threads(1)

    rows = run(args.seeds, args.symbolic_ode)
    text = header(args.seeds) + "\n\n" + table(rows) + "\n"
    for row in rows:
        text += f"\n- {row['method']}, seed {row['seed']}: " + "; ".join(
            f"d{name}/dt = {expr}" for name, expr in row["equations"].items()
        )
    print(text)
    if args.output:
        with atomic_path(args.output) as path:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text + "\n")


if __name__ == "__main__":
    main()
