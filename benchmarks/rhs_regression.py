"""Static regression of ODEBench right-hand sides with ``S2KANRegressor``.

A check of the regressor's defaults on formulas that were not used to choose
them (Nguyen F1-F12 were). Every right-hand side ``f_k(x)`` of an ODEBench
system with at most ``--max-states`` states becomes one regression problem.
Its inputs are the states, drawn uniformly from the box that the system's two
ODEBench trajectories span. Each side of the box is widened by 5 % of its
width, or by 0.1 when a state stays constant. There are 256 training and
1,000 test points, without noise.

- **R^2 >= 0.9999**: test R^2 on the 1,000 points.
- **round-off fit**: the read-out matches the truth on the test points to a
  relative max error of 1e-8. ODEBench constants are decimals such as 0.79,
  which snapping need not turn into the printed value, so this counts a
  formula equal to the truth on the box, not a particular way of writing it.

Usage:
    python benchmarks/rhs_regression.py --jobs 2 --out rhs.md
    python benchmarks/rhs_regression.py --hidden-primitives x x^2 x^3 log --jobs 2

Each fit runs in its own process with one torch and one BLAS thread.
"""

from __future__ import annotations

import argparse
import math
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from common import run_parallel, write_table  # noqa: E402

N_TRAIN = 256
N_TEST = 1000
ROUND_OFF_RTOL = 1e-8
# Fraction of a state's range added on each side of the sampling box.
MARGIN = 0.05


def problems(path: str | None, max_states: int) -> list[tuple[str, int]]:
    """Return ``(system name, equation index)`` for every right-hand side of the chosen systems."""
    from s2kan_dyn.benchmark import odebench

    chosen = []
    for entry in odebench.load_entries(path):
        if len(entry["states"]) <= max_states:
            name = odebench.system_name(entry)
            chosen += [(name, k) for k in range(len(entry["states"]))]
    return chosen


def make_data(name: str, k: int, seed: int, path: str | None):
    """Return ``X_train, y_train, X_test, y_test`` and the true right-hand side for one problem."""
    from s2kan_dyn.benchmark import odebench

    system = odebench.get(name, path)
    starts = [system.x0, tuple(odebench.held_out_initial_condition(name, path))]
    states = np.concatenate([system.simulate(x0=x0)[0].x for x0 in starts])
    low, high = states.min(axis=0), states.max(axis=0)
    pad = np.where(high > low, MARGIN * (high - low), 0.1)
    # A state that stays positive keeps a positive box, where powers such as x**1.2 are real.
    low = np.where(low > 0, np.maximum(low - pad, low / 2), low - pad)
    high = high + pad
    rng = np.random.default_rng([seed, int(name.rsplit("_", 1)[1]), k])
    X_train = rng.uniform(low, high, (N_TRAIN, low.size))
    X_test = rng.uniform(low, high, (N_TEST, low.size))
    truth = list(system.equations().values())[k]
    return X_train, system.rhs_numpy(X_train)[:, k], X_test, system.rhs_numpy(X_test)[:, k], truth


def run_one(name: str, k: int, seed: int, path: str | None, hidden_primitives: tuple[str, ...] | None) -> dict:
    """Fit one right-hand side with the default regressor (or other layer-1 terms); return a row."""
    import torch

    from s2kan_dyn.errors import S2KANDynError
    from s2kan_dyn.regression import S2KANRegressor

    torch.set_num_threads(1)
    X_train, y_train, X_test, y_test, truth = make_data(name, k, seed, path)
    settings = {} if hidden_primitives is None else {"hidden_primitives": hidden_primitives}
    row = {"problem": f"{name}[{k}]", "truth": str(truth)}
    wall = time.monotonic()
    cpu = time.process_time()
    try:
        model = S2KANRegressor(random_state=seed, **settings).fit(X_train, y_train)
    except S2KANDynError as exc:
        # One failed problem is a row of the table, not the end of the run.
        return {**row, "r2": math.nan, "round_off": False, "cpu_s": time.process_time() - cpu,
                "wall_s": time.monotonic() - wall, "structure": "failed", "formula": str(exc)}
    cpu = time.process_time() - cpu
    wall = time.monotonic() - wall
    prediction = model.predict(X_test)
    scale = np.sqrt(np.mean(y_test**2)) or 1.0
    error = np.max(np.abs(prediction - y_test)) / scale
    return {
        **row,
        "r2": model.score(X_test, y_test),
        "round_off": bool(np.isfinite(error) and error <= ROUND_OFF_RTOL and not model.dense_edges_),
        "cpu_s": cpu,
        "wall_s": wall,
        "structure": model.structure_,
        "formula": str(model.sympy()),
    }


def _short(text: str, width: int = 70) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _describe(row: dict) -> str:
    return (
        f"{row['problem']}: R^2 {row['r2']:.6f}, round-off {row['round_off']}, {row['cpu_s']:.1f} cpu s: "
        f"{_short(row['formula'], 100)}"
    )


def table(rows: list[dict]) -> str:
    """Format the rows as a Markdown table followed by one summary line."""
    lines = [
        "| problem | truth | test R^2 | round-off fit | cpu s | structure | formula |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['problem']} | `{_short(r['truth'], 50)}` | {r['r2']:.6f} | {'yes' if r['round_off'] else 'no'} "
            f"| {r['cpu_s']:.1f} | {r['structure']} | `{_short(r['formula'])}` |"
        )
    n = len(rows)
    lines += [
        "",
        f"- R^2 >= 0.9999 on {sum(r['r2'] >= 0.9999 for r in rows)} of {n}, "
        f"round-off fit on {sum(r['round_off'] for r in rows)} of {n}, "
        f"median cpu {np.median([r['cpu_s'] for r in rows]):.1f} s, max cpu {max(r['cpu_s'] for r in rows):.1f} s",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--odebench", help="ODEBench JSON in the project's format (default: the copy in s2kan_dyn.datasets)")
    parser.add_argument("--max-states", type=int, default=2, help="largest number of states of a system to include (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="data seed and random_state (default 0)")
    parser.add_argument("--jobs", type=int, default=1, help="fits run in parallel processes (default 1)")
    parser.add_argument("--out", help="markdown file to write the table to (default: stdout only)")
    parser.add_argument("--hidden-primitives", nargs="+", help="layer-1 terms of the two-layer search (default: the regressor's)")
    args = parser.parse_args(argv)

    tasks = problems(args.odebench, args.max_states)
    hidden = tuple(args.hidden_primitives) if args.hidden_primitives else None
    rows = run_parallel(run_one, [(name, k, args.seed, args.odebench, hidden) for name, k in tasks], args.jobs, _describe)
    text = table(rows)
    print(text)
    if args.out:
        write_table(args.out, "rhs_regression.py", argv, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
