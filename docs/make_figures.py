"""Draw the figures of docs/concepts.md from the library itself.

Run from the repository root:

    python docs/make_figures.py            # writes docs/images/concepts_*.png
    python docs/make_figures.py --out DIR  # writes them into DIR instead

Each figure is computed with the real classes (hard-concrete gates, an
S2KAN fitted with ``fit_gated``, the rollout and the forecast metrics), so
a change in the library shows up in the figures when they are redrawn.
Every draw is seeded; the figures differ between runs only where torch or
BLAS round differently.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import matplotlib  # noqa: E402  (after OMP_NUM_THREADS so that BLAS sees it)

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import systems  # noqa: E402
from s2kan_dyn.metrics import normalised_error, valid_prediction_time  # noqa: E402
from s2kan_dyn.model import S2KAN, GateSchedule, HardConcreteGate, fit_gated  # noqa: E402
from s2kan_dyn.rollout import equations_to_numpy, rollout  # noqa: E402

log = logging.getLogger("make_figures")

DEFAULT_OUT = Path(__file__).resolve().parent / "images"
# 100 dpi at about 6 x 3.5 inches keeps each PNG well under 200 kB.
DPI = 100


def gate_figure(path: Path) -> None:
    """Histogram hard-concrete gate samples for three gate locations ``log_alpha``."""
    n_draws = 20_000
    generator = torch.Generator().manual_seed(0)
    fig, axes = plt.subplots(1, 3, figsize=(7.5, 2.8), sharey=True)
    for ax, log_alpha in zip(axes, (-2.0, 0.0, 3.0)):
        gate = HardConcreteGate((n_draws,), init_log_alpha=log_alpha)
        gate.train()
        with torch.no_grad():
            values = gate.sample(generator).numpy()
            p_open = float(gate.prob_open()[0])
            deterministic = float(gate.deterministic()[0])
        ax.hist(values, bins=50, range=(0, 1), color="0.35", weights=np.full(n_draws, 1 / n_draws))
        ax.set_title(
            f"log_alpha = {log_alpha:g}\nP(open) = {p_open:.2f}, eval value = {deterministic:.2f}", fontsize=8
        )
        ax.set_xlabel("gate value z", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("fraction of draws", fontsize=8)
    fig.suptitle("Hard-concrete gate samples: point masses at exactly 0 and 1", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def edge_figure(path: Path) -> None:
    """Fit one S2KAN edge to ``y = 1.5 sin(2x) + 0.5 x`` with two dictionaries; plot each open term."""
    x = torch.linspace(-3, 3, 400, dtype=torch.float64).unsqueeze(1)
    y = 1.5 * torch.sin(2 * x) + 0.5 * x
    dictionaries = (
        (("x", "x^2", "x^3", "sin"), False, "cheap dictionary (x, x^2, x^3, sin)"),
        (("x", "x^2", "x^3", "sin", "tanh", "exp"), True, "everything open at once (+ tanh, exp, spline)"),
    )
    fig, axes = plt.subplots(1, 2, figsize=(8.0, 3.4), sharey=True)
    for ax, (primitives, spline, label) in zip(axes, dictionaries):
        # One layer, so the single edge carries the whole dictionary.
        model = S2KAN([1, 1], output_primitives=primitives, output_spline=spline, seed=0)
        record = fit_gated(model, x, y, schedule=GateSchedule(), seed=0)
        data_bits = record.stages[-1].data_bits
        draw_edge_terms(ax, model, x, y)
        ax.set_title(f"{label}\ndata bits per sample after polish: {data_bits:.1f}", fontsize=8)
        ax.set_xlabel("x", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def draw_edge_terms(ax, model: S2KAN, x: torch.Tensor, y: torch.Tensor) -> None:
    """Plot the target, the edge and the contribution of each open term of a one-edge S2KAN."""
    layer = model.layers[0]
    names = list(layer.primitive_names) + ["spline"]
    is_open = layer.open_terms()[0, 0].tolist()
    n_columns = len(names)

    # The contribution of term k is the network with only that gate open,
    # less the network with every gate closed (the bias).
    def output_with(open_columns: list[int]) -> np.ndarray:
        mask = torch.zeros(1, 1, n_columns, dtype=torch.float64)
        mask[0, 0, open_columns] = 1.0
        layer.gates.fix(mask)
        with torch.no_grad():
            return model(x).numpy()[:, 0]

    all_open = [k for k, o in enumerate(is_open) if o]
    ax.plot(x[:, 0], y[:, 0], color="0.75", linewidth=5, label="target 1.5 sin(2x) + 0.5 x")
    ax.plot(x[:, 0], output_with(all_open), color="black", linewidth=1.2, label="edge: sum of open terms")
    bias = output_with([])
    for k in all_open:
        ax.plot(x[:, 0], output_with([k]) - bias, linestyle="--", linewidth=1, label=f"open: {names[k]}")
    closed = [n for n, o in zip(names, is_open) if not o]
    log.info("edge %s: open %s, closed %s", names, [names[k] for k in all_open], closed)


def shooting_figure(path: Path) -> None:
    """Draw multiple-shooting windows on noisy Lorenz data, each rolled out from its own start state."""
    lorenz = systems.get("lorenz")
    [noisy] = lorenz.simulate(t_end=1.5, dt=0.01, noise=0.05, seed=0)
    # Slightly wrong coefficients (rho 10 % low), so that the windows
    # visibly drift from the data and leave gaps at their joins.
    guess = systems.get("lorenz", rho=25.2)
    field = equations_to_numpy(guess.equations(), guess.state_names)

    window = 25  # samples per window, 0.25 time units
    fig, ax = plt.subplots(figsize=(6.5, 3.3))
    ax.plot(noisy.t, noisy.x[:, 0], ".", color="0.6", markersize=3, label="observed x (5 % noise)")
    for k, start in enumerate(range(0, noisy.n_samples - 1, window)):
        stop = min(start + window, noisy.n_samples - 1)
        t = noisy.t[start : stop + 1]
        run = rollout(field, noisy.x[start], t)
        ax.plot(run.t, run.x[:, 0], color="black", linewidth=1.2, label="window rollouts" if k == 0 else None)
        ax.plot(run.t[0], run.x[0, 0], "o", color="tab:red", markersize=4,
                label="start states (fitted parameters)" if k == 0 else None)
        ax.axvline(noisy.t[start], color="0.85", linewidth=0.8, zorder=0)
    finish(fig, ax, path, "t (time units)", "x", "Multiple shooting: loss on every sample of every window", "lower left")


def forecast_figure(path: Path) -> None:
    """Plot the normalised error of a Lorenz forecast and its valid prediction time."""
    lorenz = systems.get("lorenz")
    [truth] = lorenz.simulate(t_end=15, dt=0.01)
    # A forecast from equations with a 0.1 % error in one coefficient.
    found = systems.get("lorenz", rho=28.028)
    run = rollout(equations_to_numpy(found.equations(), found.state_names), truth.x[0], truth.t)
    scale = truth.x.std(axis=0)
    error = normalised_error(run.x, truth.x[: len(run.t)], scale)
    vpt = valid_prediction_time(run.t, run.x, truth.x[: len(run.t)], scale)
    lyapunov = lorenz.lyapunov_time

    fig, ax = plt.subplots(figsize=(6.0, 3.2))
    ax.semilogy(run.t / lyapunov, error, color="black", linewidth=1)
    ax.axhline(0.4, color="tab:red", linestyle="--", linewidth=1, label="threshold 0.4")
    ax.axvline(vpt / lyapunov, color="tab:blue", linewidth=1,
               label=f"VPT = {vpt:.2f} time units = {vpt / lyapunov:.1f} Lyapunov times")
    finish(fig, ax, path, f"t / Lyapunov time ({lyapunov:.2f} time units)", "normalised error e(t)",
           "Lorenz forecast with rho off by 0.1 %", "lower right")


def finish(fig, ax, path: Path, xlabel: str, ylabel: str, title: str, legend_location: str) -> None:
    """Label the axes of a one-panel figure, add its legend and write it to ``path``."""
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc=legend_location)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


FIGURES = {
    "concepts_gate.png": gate_figure,
    "concepts_edge.png": edge_figure,
    "concepts_shooting.png": shooting_figure,
    "concepts_forecast.png": forecast_figure,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Draw the figures of docs/concepts.md.")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, draw in FIGURES.items():
        path = args.out / name
        draw(path)
        log.info("wrote %s (%.0f kB)", path, path.stat().st_size / 1024)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
