"""PNG plots of a discovery run: forecast per state, phase portrait, terms of the found equations.

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


def _save(plt, fig, path: str | os.PathLike, metadata: Mapping[str, str] | None = None) -> Path:
    from .io import atomic_path

    path = Path(path)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, metadata=metadata)
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
    valid_until: float | None = None,
) -> Path:
    """Plot the forecast against the observed test data, one panel per state.

    Args:
        t: test times, shape ``(n,)``; observed: shape ``(n, d)``;
        forecast: shape ``(m, d)`` with ``m <= n`` (a rollout that stopped early).
        t_train, x_train: optional training part drawn in grey before the test part.
        valid_until: time at which the forecast stops being valid (the end of
            its valid prediction time), drawn as a dashed line.
    """
    return plot_forecasts(
        path, t, observed, {"forecast": forecast}, state_names, colors={"forecast": "tab:red"},
        t_train=t_train, x_train=x_train, title=title,
        valid_until=None if valid_until is None else {"forecast": valid_until},
    )


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
    valid_until: Mapping[str, float] | None = None,
) -> Path:
    """Plot one or more labelled forecasts against the observed test data, one panel per state.

    Each forecast has shape ``(m, d)`` with ``m <= n`` and covers ``t[:m]``, so a
    rollout that stopped early is drawn up to its stop. ``valid_until`` maps a
    forecast's label to the time at which it stops being valid, drawn as a
    dashed line in the forecast's colour.
    """
    colors = colors or {}
    valid_until = {label: time for label, time in (valid_until or {}).items() if time is not None}
    d = len(state_names)
    plt, (fig, axes) = _figure(d, 1, size=(7.0, 1.9 * d + 0.6), sharex=True)
    for j, name in enumerate(state_names):
        ax = axes[j, 0]
        if t_train is not None and x_train is not None:
            ax.plot(t_train, x_train[:, j], color="0.6", lw=1.0, label="training data")
        ax.plot(t, observed[:, j], "k.", ms=3 if len(t) < 200 else 1, label="test data")
        for label, states in forecasts.items():
            m = states.shape[0]
            (line,) = ax.plot(t[:m], states[:, j], lw=1.3, color=colors.get(label), label=label)
            # A forecast valid to the end of the test gets no line, which would sit on the border.
            if label in valid_until and _before_end(valid_until[label], t):
                ax.axvline(valid_until[label], color=line.get_color(), ls="--", lw=1.0,
                           label=f"{label} valid until t = {valid_until[label]:.3g}")
        ax.set_ylabel(name)
    axes[0, 0].legend(loc="upper right", fontsize=8)
    axes[-1, 0].set_xlabel("t")
    if title:
        axes[0, 0].set_title(title)
    # The PNG's Description names each marker, so a reader (or a test) need not read pixels.
    description = "\n".join(
        f"{label} valid until t = {time:.6g}" if _before_end(time, t) else f"{label} valid to the end of the test, t = {t[-1]:.6g}"
        for label, time in valid_until.items()
    )
    return _save(plt, fig, path, metadata={"Description": description} if description else None)


def _before_end(time: float, t: np.ndarray) -> bool:
    """Return whether ``time`` is before the last of ``t``, beyond round-off."""
    return time < t[-1] - 1e-9 * max(1.0, abs(float(t[-1])))


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


def plot_open_terms(
    path: str | os.PathLike,
    equations: Mapping[str, object],
    state_names: Sequence[str],
    x: np.ndarray | None = None,
    title: str = "",
) -> Path:
    """Draw which terms each found equation keeps: one row per state, one column per term.

    A filled cell is a term of that state's equation, labelled with its
    coefficient. With ``x`` (states, shape ``(n, d)``, e.g. the training
    data) a cell's shade is the term's size on the data: the RMS of
    coefficient times term, over the sum of those RMS values in its equation.
    Dense (spline) terms, undefined sympy functions that cannot be evaluated
    here, are hatched, labelled "dense" and left out of those sums. The equations' terms are also
    written into the PNG's ``Description`` text field, one state per line
    (``x': x, y``), in the drawn order.

    Args:
        equations: state name -> right-hand side (sympy expression or string).
        state_names: the ``d`` states, in row order.
        x: states to measure the terms' sizes on (default none: cells are not shaded).
        title: prefix of the figure title, e.g. the system's name.
    """
    from matplotlib.colors import ListedColormap, to_rgb

    rows = [_expanded_terms(equations[name]) for name in state_names]
    columns = sorted({term for row in rows for term in row}, key=_term_order)
    shares = [_term_shares(row, state_names, x) for row in rows]

    n_rows, n_columns = len(state_names), max(1, len(columns))
    width = min(16.0, max(5.5, 1.6 + 0.8 * n_columns))
    plt, (fig, axes) = _figure(size=(width, 1.9 + 0.5 * n_rows))
    ax = axes[0, 0]
    # The lightest quarter of "Blues" is left out, so that a small term still shows against the white background.
    cmap = ListedColormap(plt.get_cmap("Blues")(np.linspace(0.25, 1.0, 256)))
    annotate = n_columns <= 24
    for i, row in enumerate(rows):
        for j, term in enumerate(columns):
            if term not in row:
                continue
            if _is_dense(term):
                face, text, hatch, dark = "tab:orange", "dense", "//", False
            else:
                share = shares[i].get(term)
                face = "tab:blue" if share is None else cmap(share)
                text, hatch = f"{float(row[term]):.3g}", None
                red, green, blue = to_rgb(face)
                dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
            ax.add_patch(plt.Rectangle((j, i), 1, 1, facecolor=face, edgecolor="white", hatch=hatch, lw=1.5))
            if annotate:
                ax.text(j + 0.5, i + 0.5, text, ha="center", va="center", fontsize=8,
                        color="white" if dark else "black")

    ax.set_xlim(0, n_columns)
    ax.set_ylim(n_rows, 0)
    ax.set_xticks(np.arange(len(columns)) + 0.5)
    labels = [_term_label(term) for term in columns]
    # Roughly 9 characters of 9-point text fit under a cell 0.8 inch wide.
    tilted = n_columns > 8 or any(len(label) > 9 for label in labels)
    ax.set_xticklabels(labels, rotation=30 if tilted else 0, ha="right" if tilted else "center", fontsize=9)
    ax.set_yticks(np.arange(n_rows) + 0.5)
    ax.set_yticklabels([f"d{name}/dt" + ("" if rows[i] else " = 0") for i, name in enumerate(state_names)], fontsize=9)
    ax.set_xticks(np.arange(n_columns + 1), minor=True)
    ax.set_yticks(np.arange(n_rows + 1), minor=True)
    ax.grid(which="minor", color="0.85", lw=0.8)
    ax.tick_params(which="minor", length=0)
    has_dense = any(_is_dense(term) for term in columns)
    ax.set_xlabel("term (cell: its coefficient" + ("; hatched: dense spline term)" if has_dense else ")"))
    ax.set_title(f"{title}: terms of the found equations" if title else "Terms of the found equations", fontsize=10)

    if x is not None:
        scale = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, 1))
        bar = fig.colorbar(scale, ax=ax, fraction=0.04, pad=0.02)
        bar.set_ticks([0, 0.5, 1])
        bar.set_label("share of the equation\n(RMS on the data)", fontsize=8)

    description = "\n".join(
        f"{name}': " + ", ".join(_term_label(term) for term in columns if term in row)
        for name, row in zip(state_names, rows)
    )
    return _save(plt, fig, path, metadata={"Description": description, "Title": ax.get_title()})


def _expanded_terms(expression) -> dict:
    """Return ``{term: coefficient}`` of an expression expanded into a sum, without zero terms."""
    import sympy as sp

    terms = sp.expand(sp.sympify(expression)).as_coefficients_dict()
    return {term: coefficient for term, coefficient in terms.items() if coefficient != 0}


def _is_dense(term) -> bool:
    from sympy.core.function import AppliedUndef

    return bool(term.atoms(AppliedUndef))


def _term_order(term):
    """Sort key: constant first, then polynomial terms by total degree, then other functions, then dense terms."""
    import sympy as sp

    symbols = sorted(term.free_symbols, key=str)
    if _is_dense(term):
        return (3, 0, str(term))
    if term.is_polynomial(*symbols):
        degree = sp.Poly(term, *symbols).total_degree() if symbols else 0
        return (0 if degree == 0 else 1, degree, sp.default_sort_key(term))
    return (2, 0, str(term))


def _term_label(term) -> str:
    import sympy as sp

    return sp.sstr(term).replace("**", "^")


def _term_shares(row: dict, state_names: Sequence[str], x: np.ndarray | None) -> dict:
    """Return ``{term: RMS of coefficient * term over x, over the sum of these}``; empty without ``x``."""
    import sympy as sp

    if x is None or not row:
        return {}
    symbols = [sp.Symbol(name) for name in state_names]
    sizes = {}
    for term, coefficient in row.items():
        if _is_dense(term):
            continue
        plain = term.xreplace({s: sp.Symbol(s.name) for s in term.free_symbols})
        values = np.broadcast_to(sp.lambdify(symbols, plain, modules="numpy")(*x.T), x.shape[:1])
        with np.errstate(all="ignore"):
            sizes[term] = float(abs(coefficient)) * float(np.sqrt(np.mean(np.asarray(values, dtype=float) ** 2)))
    total = sum(size for size in sizes.values() if np.isfinite(size))
    return {term: (size / total if total > 0 and np.isfinite(size) else 0.0) for term, size in sizes.items()}
