"""How many gates close without a description-length penalty (lambda = 0).

Fits the relaxed network of ``S2KANRegressor(search="relax")`` on the
Nguyen problems, with data as in ``benchmarks/nguyen.py``. The network is
``S2KAN([d, [3, 1], 1])`` with every primitive and the spline, fitted by
``model.train.fit_gated`` once with ``lam=0`` and once with ``lam=1``. The
script counts the gates that are closed once the gates are frozen. A gate
closes at lambda = 0 only because the hard-concrete relaxation lets it, so
the gap between the two columns is what the penalty itself does.

Usage:
    python benchmarks/gates_at_zero_lambda.py --seeds 0 --jobs 2
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

from common import run_parallel, write_table  # noqa: E402
from nguyen import PROBLEMS, make_data  # noqa: E402

LAMBDAS = (0.0, 1.0)


def run_one(name: str, seed: int, lam: float) -> dict:
    """Fit the relaxed network to one problem at one ``lam``; return the gate counts."""
    import torch

    from s2kan_dyn.model.network import S2KAN
    from s2kan_dyn.model.train import fit_gated

    torch.set_num_threads(1)
    X_train, y_train, _, _ = make_data(name, seed)
    model = S2KAN([X_train.shape[1], [3, 1], 1], spline=True, seed=seed)
    cpu = time.process_time()
    fit_gated(model, torch.as_tensor(X_train), torch.as_tensor(y_train[:, None]), lam=lam, seed=seed)
    total = sum(int(layer.allowed.sum()) for layer in model.layers)
    return {
        "problem": name,
        "seed": seed,
        "lam": lam,
        "gates": total,
        "closed": total - model.n_open_terms(),
        "cpu_s": time.process_time() - cpu,
    }


def _describe(row: dict) -> str:
    return (
        f"{row['problem']} seed {row['seed']} lambda {row['lam']:g}: {row['closed']} of {row['gates']} closed, "
        f"{row['cpu_s']:.1f} cpu s"
    )


def table(rows: list[dict]) -> str:
    """Format one row per problem and seed with the closed share at each lambda."""
    by_case: dict[tuple[str, int], dict[float, dict]] = {}
    for r in rows:
        by_case.setdefault((r["problem"], r["seed"]), {})[r["lam"]] = r
    lines = [
        "| problem | seed | gates | closed at lambda = 0 | closed at lambda = 1 |",
        "| --- | --- | --- | --- | --- |",
    ]
    shares = {lam: [] for lam in LAMBDAS}
    for (name, seed), runs in by_case.items():
        cells = []
        for lam in LAMBDAS:
            r = runs[lam]
            shares[lam].append(r["closed"] / r["gates"])
            cells.append(f"{r['closed']} ({100 * r['closed'] / r['gates']:.0f} %)")
        lines.append(f"| {name} | {seed} | {runs[LAMBDAS[0]]['gates']} | {cells[0]} | {cells[1]} |")
    lines.append("")
    for lam in LAMBDAS:
        values = shares[lam]
        lines.append(
            f"- lambda = {lam:g}: {100 * min(values):.0f} to {100 * max(values):.0f} % of the gates closed, "
            f"mean {100 * sum(values) / len(values):.0f} %"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS), help="problems to run (default: all)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="data seeds (default: 0)")
    parser.add_argument("--jobs", type=int, default=1, help="fits run in parallel processes (default 1)")
    parser.add_argument("--out", help="markdown file to write the table to (default: stdout only)")
    args = parser.parse_args(argv)

    tasks = [(name, seed, lam) for seed in args.seeds for name in args.problems for lam in LAMBDAS]
    rows = run_parallel(run_one, tasks, args.jobs, _describe)
    text = table(rows)
    print(text)
    if args.out:
        write_table(args.out, "gates_at_zero_lambda.py", argv, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
