"""PNG plots of a discovery run: forecast per state, phase portrait, open terms per edge.

Every function writes one file through ``s2kan_dyn.io.atomic_path`` with
matplotlib's non-interactive Agg backend, so it works without a display and
leaves no partial file behind.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

# At this resolution the Lorenz plots measured 36-160 kB per file.
DPI = 110


def _figure(n_rows: int = 1, n_cols: int = 1, size=(7.0, 4.0), **kwargs):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt, plt.subplots(n_rows, n_cols, figsize=size, squeeze=False, **kwargs)


def _save(plt, fig, path: str | os.PathLike) -> Path:
    from .io import atomic_path

    path = Path(path)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    plt.close(fig)
    return path


def plot_forecast(
    path: str | os.PathLike,
    t: np.ndarray,
    observed: np.ndarray,
    forecast: np.ndarray,
    state_names: Sequence[str],
    t_train: np.ndarray | None = None,
    x_train: np.ndarray | None = None,
    title: str = "",
) -> Path:
    """Plot the forecast against the observed test data, one panel per state.

    Args:
        t: test times, shape ``(n,)``; observed: shape ``(n, d)``;
        forecast: shape ``(m, d)`` with ``m <= n`` (a rollout that stopped early).
        t_train, x_train: optional training part drawn in grey before the test part.
    """
    return plot_forecasts(path, t, observed, {"forecast": forecast}, state_names, colors={"forecast": "tab:red"},
                          t_train=t_train, x_train=x_train, title=title)


def plot_forecasts(
    path: str | os.PathLike,
    t: np.ndarray,
    observed: np.ndarray,
    forecasts: Mapping[str, np.ndarray],
    state_names: Sequence[str],
    colors: Mapping[str, str] | None = None,
    t_train: np.ndarray | None = None,
    x_train: np.ndarray | None = None,
    title: str = "",
) -> Path:
    """Plot one or more labelled forecasts against the observed test data, one panel per state.

    Each forecast has shape ``(m, d)`` with ``m <= n`` and covers ``t[:m]``, so a
    rollout that stopped early is drawn up to its stop.
    """
    colors = colors or {}
    d = len(state_names)
    plt, (fig, axes) = _figure(d, 1, size=(7.0, 1.9 * d + 0.6), sharex=True)
    for j, name in enumerate(state_names):
        ax = axes[j, 0]
        if t_train is not None and x_train is not None:
            ax.plot(t_train, x_train[:, j], color="0.6", lw=1.0, label="training data")
        ax.plot(t, observed[:, j], "k.", ms=3 if len(t) < 200 else 1, label="test data")
        for label, states in forecasts.items():
            m = states.shape[0]
            ax.plot(t[:m], states[:, j], lw=1.3, color=colors.get(label), label=label)
        ax.set_ylabel(name)
    axes[0, 0].legend(loc="upper right", fontsize=8)
    axes[-1, 0].set_xlabel("t")
    if title:
        axes[0, 0].set_title(title)
    return _save(plt, fig, path)


def plot_phase_portrait(
    path: str | os.PathLike, observed: np.ndarray, forecast: np.ndarray, state_names: Sequence[str], title: str = ""
) -> Path:
    """Plot the test data and the forecast in state space (the first two or three states)."""
    d = observed.shape[1]
    finite = forecast[np.all(np.isfinite(forecast), axis=1)]
    if d >= 3:
        plt, (fig, axes) = _figure(size=(6.0, 5.0), subplot_kw={"projection": "3d"})
        ax = axes[0, 0]
        ax.plot(observed[:, 0], observed[:, 1], observed[:, 2], "k-", lw=0.6, label="test data")
        ax.plot(finite[:, 0], finite[:, 1], finite[:, 2], color="tab:red", lw=0.9, label="forecast")
        ax.set_zlabel(state_names[2])
    else:
        plt, (fig, axes) = _figure(size=(5.5, 5.0))
        ax = axes[0, 0]
        second = observed[:, 1] if d > 1 else np.gradient(observed[:, 0])
        ax.plot(observed[:, 0], second, "k-", lw=0.8, label="test data")
        if finite.size:
            second_f = finite[:, 1] if d > 1 else np.gradient(finite[:, 0])
            ax.plot(finite[:, 0], second_f, color="tab:red", lw=1.0, label="forecast")
    ax.set_xlabel(state_names[0])
    ax.set_ylabel(state_names[1] if d > 1 else f"change of {state_names[0]} per sample")
    ax.legend(loc="upper right", fontsize=8)
    if title:
        ax.set_title(title)
    return _save(plt, fig, path)


def plot_open_terms(path: str | os.PathLike, network, input_names: Sequence[str]) -> Path:
    """Plot which terms of each edge are open, one heat map per layer.

    Rows are edges ``(out <- in)``, columns the layer's primitives and, where
    the layer has one, the spline. A dark cell is an open term (eval-mode gate).
    """
    layers = list(network.layers)
    plt, (fig, axes) = _figure(1, len(layers), size=(3.2 * len(layers) + 1.0, 5.0))
    for index, layer in enumerate(layers):
        ax = axes[0, index]
        open_terms = layer.open_terms().detach().cpu().numpy().astype(float)
        n_out, n_in, n_columns = open_terms.shape
        labels = list(layer.primitive_names) + (["spline"] if layer.has_spline else [])
        grid = open_terms.reshape(n_out * n_in, n_columns)[:, : len(labels)]
        ax.imshow(grid, aspect="auto", cmap="Greys", vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=60, fontsize=7)
        inputs = list(input_names) if index == 0 else [f"h{i}" for i in range(n_in)]
        rows = [f"{o} <- {inputs[i]}" for o in range(n_out) for i in range(n_in)]
        step = max(1, len(rows) // 30)
        ax.set_yticks(range(0, len(rows), step))
        ax.set_yticklabels(rows[::step], fontsize=6)
        ax.set_title(f"layer {index}: {int(grid.sum())} open terms", fontsize=9)
    return _save(plt, fig, path)
