"""Benchmark and comparison plots (PNG, matplotlib's Agg backend, written atomically)."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..plots import _figure, _save
from ..plots import plot_forecasts as forecast_panels
from .results import parse_float
from .summary import group_figures, group_rows

COLORS = {"s2kan": "tab:red", "sindy": "tab:blue"}


def plot_forecasts(
    path: str | os.PathLike,
    t: np.ndarray,
    observed: np.ndarray,
    forecasts: Mapping[str, np.ndarray],
    state_names: Sequence[str],
    title: str = "",
    valid_until: Mapping[str, float] | None = None,
) -> Path:
    """Plot each method's forecast against the held-out data, one panel per state.

    ``observed`` has shape ``(n, d)``; each forecast ``(m, d)`` with ``m <= n``
    covers ``t[:m]`` (a rollout that stopped early is drawn up to its stop).
    ``valid_until`` maps a method to the end of its valid prediction time.
    """
    return forecast_panels(path, t, observed, forecasts, state_names, colors=COLORS, title=title,
                           valid_until=valid_until)


def plot_success_vs_noise(path: str | os.PathLike, rows: Sequence[dict], title: str = "") -> Path:
    """Plot the exact-structure rate against the noise level, one line per method and sampling."""
    lines = defaultdict(list)
    for (method, noise, sampling), group in group_rows(rows).items():
        f = group_figures(group)
        lines[(method, sampling)].append((float(noise), f["exact"] / f["runs"] if f["runs"] else 0.0))
    plt, (fig, axes) = _figure(1, 1, size=(5.5, 3.8))
    ax = axes[0, 0]
    for (method, sampling), points in sorted(lines.items()):
        points.sort()
        style = "-o" if sampling == "default" else "--s"
        ax.plot([p[0] for p in points], [p[1] for p in points], style, color=COLORS.get(method),
                label=f"{method} ({sampling})")
    ax.set_xlabel("noise level (fraction of each state's std)")
    ax.set_ylabel("exact-structure rate")
    ax.set_ylim(-0.05, 1.05)
    ax.legend(fontsize=8)
    ax.set_title(title or "success rate against noise")
    return _save(plt, fig, path)


def plot_vpt_per_system(path: str | os.PathLike, rows: Sequence[dict], title: str = "") -> Path:
    """Plot the median valid prediction time per system and method, one panel per noise level."""
    noises = sorted({r["noise"] for r in rows}, key=float)
    systems = sorted({r["system"] for r in rows})
    methods = sorted({r["method"] for r in rows})
    height = 0.8 / max(1, len(methods))
    plt, (fig, axes) = _figure(1, len(noises), size=(3.6 * len(noises) + 1.5, 0.22 * len(systems) + 1.6),
                               sharey=True)
    for k, noise in enumerate(noises):
        ax = axes[0, k]
        for i, method in enumerate(methods):
            values = []
            for system in systems:
                vpts = [parse_float(r.get("vpt", "")) for r in rows
                        if r["system"] == system and r["method"] == method and r["noise"] == noise and r["status"] == "ok"]
                vpts = [v for v in vpts if v is not None]
                values.append(float(np.median(vpts)) if vpts else 0.0)
            ax.barh(np.arange(len(systems)) + i * height, values, height=height, color=COLORS.get(method), label=method)
        ax.set_title(f"noise {noise}", fontsize=9)
        ax.set_xlabel("valid prediction time")
    axes[0, 0].set_yticks(np.arange(len(systems)) + 0.4 - height / 2)
    axes[0, 0].set_yticklabels(systems, fontsize=7)
    axes[0, 0].invert_yaxis()
    axes[0, -1].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(plt, fig, path)
