"""Drawing of a fitted regressor's network: nodes in columns, edges labelled with their terms."""

from __future__ import annotations

import os
from typing import Sequence

from .candidate import Edge


def _columns(edges: Sequence[Edge]) -> list[list[str]]:
    """Node labels per column: inputs, hidden nodes (if any), output."""
    sources0 = sorted({e.source for e in edges if e.layer == 0}, key=str)
    hidden = sorted({e.target for e in edges if e.layer == 0 and e.target not in ("y", "y*")} | {e.source for e in edges if e.layer == 1}, key=str)
    outputs = sorted({e.target for e in edges if e.target.startswith("y")})
    return [sources0, hidden, outputs] if hidden else [sources0, outputs]


def plot_edges(edges: Sequence[Edge], title: str = "", path: str | os.PathLike | None = None):
    """Draw ``edges`` and return the matplotlib figure; write it to ``path`` if given.

    Edges with an open spline are drawn dashed in red and labelled dense.
    """
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from ..io import atomic_path

    columns = _columns(edges)
    position = {}
    for c, nodes in enumerate(columns):
        for r, node in enumerate(nodes):
            position[node] = (float(c), (r + 0.5) / max(len(nodes), 1))
    figure, axes = plt.subplots(figsize=(3.0 + 2.5 * len(columns), 1.5 + 0.8 * max(len(n) for n in columns)))
    for edge in edges:
        if edge.source not in position or edge.target not in position:
            continue
        (x0, y0), (x1, y1) = position[edge.source], position[edge.target]
        style = {"color": "tab:red", "linestyle": "--"} if edge.dense else {"color": "tab:blue"}
        axes.plot([x0, x1], [y0, y1], linewidth=1.2, **style)
        # Labels sit 40% along each edge, so that crossing edges do not share a spot.
        axes.annotate("\n".join(edge.terms), (x0 + 0.4 * (x1 - x0), y0 + 0.4 * (y1 - y0)), fontsize=7, ha="center", va="center",
                      bbox={"boxstyle": "round", "fc": "white", "ec": style["color"], "alpha": 0.9})
    for node, (x, y) in position.items():
        axes.scatter([x], [y], s=300, color="white", edgecolors="black", zorder=3)
        axes.annotate(node, (x, y), ha="center", va="center", fontsize=9, zorder=4)
    axes.set_axis_off()
    axes.set_xlim(-0.3, len(columns) - 0.7)
    axes.set_ylim(0.0, 1.0)
    if title:
        axes.set_title(title if len(title) <= 90 else title[:87] + "...", fontsize=9)
    figure.tight_layout()
    if path is not None:
        suffix = os.path.splitext(os.fspath(path))[1]
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format=suffix.lstrip(".") or "png", dpi=120)
    return figure
