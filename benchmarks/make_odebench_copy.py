"""Write the project's copy of the ODEBench equations, s2kan_dyn/datasets/odebench.json.

ODEBench is the set of 63 ODEs (most from Strogatz's textbook) of the
ODEFormer paper: d'Ascoli, Becker, Mathis, Schwaller, Kilbertus (2023),
"ODEFormer: symbolic regression of dynamical systems with transformers",
repository sdascoli/odeformer, MIT licence. The copy keeps, per system, its
equations with named constants, the constants' values, the two initial
conditions, the time span and sample count, and the class of the right-hand
side. It drops the reference trajectories because the benchmark recomputes them.

Run once from the repository root with the reformatted ODEBench JSON:

    python benchmarks/make_odebench_copy.py PATH/TO/odebench.json

The output is written in the project's own layout (states named x0, x1, ...,
``**`` for powers); every equation is parsed with sympy before writing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from s2kan_dyn.benchmark.odebench import convert_entry

OUT = Path(__file__).resolve().parents[1] / "s2kan_dyn" / "datasets" / "odebench.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="the reformatted ODEBench JSON file")
    parser.add_argument("--out", default=str(OUT), help=f"output file (default {OUT})")
    args = parser.parse_args()

    data = json.loads(Path(args.source).read_text(encoding="utf-8"))
    systems = [convert_entry(s) for s in data["systems"]]
    copy = {
        "benchmark": "ODEBench",
        "source": (
            "d'Ascoli, Becker, Mathis, Schwaller, Kilbertus (2023), ODEFormer: symbolic regression "
            "of dynamical systems with transformers; repository sdascoli/odeformer, file "
            "odeformer/odebench/strogatz_extended.json"
        ),
        "licence": "MIT",
        "conventions": (
            "states x0..x{dim-1}, constants c0.. with values in 'constants', '**' for powers; "
            "fit on initial_conditions[0], test on initial_conditions[1]; n_points samples "
            "evenly spaced over t_span"
        ),
        "systems": systems,
    }
    # One system per line keeps the file short and its diffs readable.
    header = {k: v for k, v in copy.items() if k != "systems"}
    lines = [json.dumps(header, indent=1)[:-2] + ',\n "systems": [']
    lines.append(",\n".join("  " + json.dumps(s) for s in systems))
    lines.append(" ]\n}\n")
    text = "\n".join(lines)
    json.loads(text)
    Path(args.out).write_text(text, encoding="utf-8")
    print(f"wrote {len(systems)} systems to {args.out}")


if __name__ == "__main__":
    main()
