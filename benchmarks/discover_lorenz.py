"""Time the Lorenz discovery and compare symbolic with network rollouts.

Fits ``SymbolicODE()`` with its defaults to the catalog's Lorenz trajectory
(dt = 0.01, t in [0, 20], no noise unless ``--noise``), reports the fit's
wall time per stage, the equation metrics against the truth, and the time of
rolling out the read-out equations (scipy DOP853, rtol 1e-10) against the
network (torchdiffeq rk4, 2 sub-steps per sample) over the same grid from
the same state, in the same process, with their ratio.

Run from the repository root::

    OMP_NUM_THREADS=1 python benchmarks/discover_lorenz.py [--noise 0.0] [--seed 0] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

import systems  # noqa: E402
from s2kan_dyn.discovery import SymbolicODE  # noqa: E402
from s2kan_dyn.discovery.selfcheck import network_rollout  # noqa: E402
from s2kan_dyn.metrics.equations import equation_metrics  # noqa: E402
from s2kan_dyn.rollout import equations_to_numpy, rollout  # noqa: E402


def best_time(function, repeats: int) -> float:
    """Return the shortest wall time of ``repeats`` calls of ``function``, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--noise", type=float, default=0.0, help="noise level (fraction of each state's std)")
    parser.add_argument("--seed", type=int, default=0, help="seed of noise and fit")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of each rollout timing (best is kept)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()
    torch.set_num_threads(1)

    lorenz = systems.get("lorenz")
    train = lorenz.simulate(noise=args.noise, seed=args.seed)
    start, cpu_start = time.perf_counter(), time.process_time()
    model = SymbolicODE(random_state=args.seed, progress=False).fit(train)
    fit_seconds = time.perf_counter() - start
    # CPU time of this process: on a shared machine it is closer than wall time
    # to what the fit costs on a quiet one.
    fit_cpu_seconds = time.process_time() - cpu_start
    scores = equation_metrics(model.equations(), lorenz.equations(), lorenz.state_names)

    [test] = lorenz.simulate(x0=lorenz.sample_initial_conditions(1, seed=args.seed + 1)[0])
    rhs = equations_to_numpy(model.equations(), lorenz.state_names)
    # Both rollouts are timed the same way, best of ``repeats``, so the ratio holds under load.
    symbolic = best_time(lambda: rollout(rhs, test.x[0], test.t), args.repeats)
    network = best_time(lambda: network_rollout(model.network_, test.x[0], test.t), args.repeats)

    figures = {
        "machine": f"{platform.machine()}, {os.cpu_count()} logical CPUs, {platform.platform()}",
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "noise": args.noise,
        "seed": args.seed,
        "fit_seconds": fit_seconds,
        "fit_cpu_seconds": fit_cpu_seconds,
        "stage_seconds": model.report_["timings"],
        "stages": {name: stage.get("reason") for name, stage in model.report_["stages"].items()},
        "exact": scores["exact"],
        "coef_error": scores["coef_error"],
        "self_check": model.report_["self_check"],
        "rollout_samples": int(test.t.size),
        "symbolic_rollout_seconds": symbolic,
        "network_rollout_seconds": network,
        "network_over_symbolic": network / symbolic,
    }
    print(f"machine: {figures['machine']}; torch {figures['torch']}, {figures['torch_threads']} thread(s)")
    print(f"Lorenz, noise {args.noise}, seed {args.seed}: fit {fit_seconds:.1f} s wall, {fit_cpu_seconds:.1f} s CPU, exact {scores['exact']}, "
          f"coefficient error {scores['coef_error']:.2e}")
    for line in (f"{k}: {v:.2f} s" for k, v in model.report_["timings"].items()):
        print("  " + line)
    model.print()
    print(f"rollout over {test.t.size} samples: equations {symbolic:.3f} s, network {network:.3f} s, "
          f"ratio network/equations {network / symbolic:.1f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(figures, handle, indent=2, default=float)


if __name__ == "__main__":
    main()
