"""A fitted structure, its read-out, and its description length.

Every search (one layer in closed form, two enumerated layers, the gated
relaxation) ends in a :class:`Candidate`: a sympy expression with float
constants plus the edges it came from. :func:`finalize` snaps the
constants (readout.snap), evaluates the result and prices it in bits, so
candidates from different searches compare on one scale:

    description length = n/2 * log2(MSE + floor) + structure bits
                         + 1/2 * log2(n) per free constant
                         + SNAPPED_BITS per snapped constant

The floor is the float64 round-off of the target, so every structure that
fits exactly after snapping ties on the data part and the cheapest wins.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import sympy as sp

from ..model.primitives import LOG_EPS, RECIPROCAL_EPS
from ..readout.snap import SnapResult, snap_constants, snap_number

log = logging.getLogger(__name__)

# Relative RMSE floor: 8 float64 epsilons of the target's RMS (as in
# readout.snap). Wrong structures fit noise-free data to about 1e-14, exact
# ones to about 1e-16, so a looser floor would let the wrong ones tie.
ROUNDOFF = 8.0 * np.finfo(np.float64).eps
# Snapping is tried during a search only on fits this close (relative RMSE),
# because only those can turn exact. The estimator snaps its final choice.
SNAP_GATE = 1e-8
# Code length of one snapped constant, a simple fraction or multiple of pi.
SNAPPED_BITS = 4.0


@dataclass(frozen=True)
class Edge:
    """One edge of the fitted network with its open terms, for plots and reports.

    Attributes:
        layer: 0 for input -> hidden (or output), 1 for hidden -> output.
        source, target: node labels, for example ``"x0"``, ``"h1"``, ``"y"``.
        terms: text of each open term on the edge.
        dense: True when a spline term is open on this edge.
    """

    layer: int
    source: str
    target: str
    terms: tuple[str, ...]
    dense: bool = False


@dataclass
class Candidate:
    """A structure found by a search, before or after :func:`finalize`.

    Attributes:
        expr: sympy expression in the input symbols; dense edges appear as
            symbols listed in ``dense`` until the read-out renames them.
        structure_bits: bits of the chosen primitives and products.
        edges: the network's open edges.
        search: ``"one-layer"``, ``"two-layer"`` or ``"relax"``.
        dense: dense symbol -> function of ``X`` of shape ``(n, d)`` giving
            that spline edge's values, and the sympy call that names it.
        n_dense_params: coefficients held by the open splines.
        predict_fn: when set, predictions come from it (a network whose
            dense edges have no closed form) and ``expr`` is only the read-out.
    """

    expr: sp.Expr
    structure_bits: float
    edges: list[Edge]
    search: str
    dense: dict[sp.Symbol, tuple[Callable[[np.ndarray], np.ndarray], sp.Expr]] = field(default_factory=dict)
    n_dense_params: int = 0
    predict_fn: Callable[[np.ndarray], np.ndarray] | None = None
    rmse: float = math.inf
    description_length: float = math.inf
    exact: bool = False
    n_free: int = 0
    n_snapped: int = 0


# Numpy twins of the primitives' guards (model.primitives), so that a formula
# predicts what its network does at a pole instead of inf or NaN.
def _clamped_reciprocal(x: np.ndarray) -> np.ndarray:
    small = np.abs(x) < RECIPROCAL_EPS
    return np.where(small, x / RECIPROCAL_EPS**2, 1.0 / np.where(small, 1.0, x))


CLAMPED_NUMPY = {
    "clamped_reciprocal": _clamped_reciprocal,
    "log": lambda x: np.log(np.maximum(np.abs(x), LOG_EPS)),
}
_RECIPROCAL = sp.Function("clamped_reciprocal")


def with_clamped_poles(expr: sp.Expr) -> sp.Expr:
    """Return ``expr`` with each negative power ``b**(-k)`` written ``clamped_reciprocal(b)**k``.

    Evaluated with :data:`CLAMPED_NUMPY`, the reciprocal is continued
    linearly for ``|b| < RECIPROCAL_EPS`` as the ``1/x`` primitive is, and
    ``log`` gets the guard of ``log|x|``.
    """
    return expr.replace(
        lambda e: e.is_Pow and e.exp.is_number and bool(e.exp < 0),
        lambda e: _RECIPROCAL(e.base) ** (-e.exp),
    )


def augmented_inputs(candidate: Candidate, X: np.ndarray) -> np.ndarray:
    """Return ``X`` with one extra column per dense symbol of ``candidate``."""
    extra = [fn(X) for fn, _ in candidate.dense.values()]
    return np.column_stack([X, *extra]) if extra else X


def evaluate(candidate: Candidate, symbols: Sequence[sp.Symbol], X: np.ndarray) -> np.ndarray:
    """Evaluate the candidate at ``X`` of shape ``(n, d)``; returns ``(n,)``."""
    if candidate.predict_fn is not None:
        return np.asarray(candidate.predict_fn(X), dtype=float)
    arguments = [*symbols, *candidate.dense]
    columns = augmented_inputs(candidate, X)
    plain = sp.lambdify(arguments, candidate.expr, modules="numpy")
    with np.errstate(all="ignore"):
        value = plain(*columns.T)
    value = np.broadcast_to(np.asarray(value, dtype=float), (X.shape[0],)).copy()
    # The formula as written wherever it is finite, so that predictions match the
    # printed formula. The primitives' guards apply only where it is not (a pole).
    undefined = ~np.isfinite(value)
    if undefined.any():
        guarded = sp.lambdify(arguments, with_clamped_poles(candidate.expr), modules=[CLAMPED_NUMPY, "numpy"])
        with np.errstate(all="ignore"):
            fallback = guarded(*columns[undefined].T)
        value[undefined] = np.broadcast_to(np.asarray(fallback, dtype=float), (int(undefined.sum()),))
    return value


def data_bits(mse: float, y: np.ndarray) -> float:
    """Gaussian code length of the residuals in bits, ``n/2 * log2(MSE + floor)``."""
    floor = (ROUNDOFF * float(np.sqrt(np.mean(y**2))) + 1e-300) ** 2
    return 0.5 * y.size * math.log2(mse + floor)


def finalize(
    candidate: Candidate,
    symbols: Sequence[sp.Symbol],
    X: np.ndarray,
    y: np.ndarray,
    tolerance: float,
    snap: bool | None = None,
    quick: bool = False,
) -> Candidate:
    """Snap the candidate's constants, measure its fit, and price it in bits (in place).

    ``snap=None`` snaps only when the fit is within ``SNAP_GATE`` of exact
    and most constants are nearly simple; ``False`` keeps the constants.
    ``quick`` tries fewer candidates per constant with shorter refits, for
    snapping as a test of structure inside a search. Returns the same
    candidate, with ``expr``, ``rmse``, ``description_length``, ``exact``,
    ``n_free`` and ``n_snapped`` set.
    """
    arguments = [*symbols, *candidate.dense]
    inputs = augmented_inputs(candidate, X)
    scale = float(np.sqrt(np.mean(y**2))) + 1e-300
    rmse = float(np.sqrt(np.mean((evaluate(candidate, symbols, X) - y) ** 2)))
    if snap is None:
        snap = rmse <= SNAP_GATE * scale and _mostly_simple(candidate.expr)
    if snap:
        budget = {"max_candidates": 3, "max_nfev": 40} if quick else {}
        result = snap_constants(candidate.expr, arguments, inputs, y, tolerance=tolerance, **budget)
    else:
        result = SnapResult(candidate.expr, rmse, rmse, 0, len(candidate.expr.atoms(sp.Float)))
    n = y.size
    candidate.expr = result.expr
    candidate.rmse = result.rmse_after
    candidate.n_free = result.n_free
    candidate.n_snapped = result.n_snapped
    parameter_bits = 0.5 * math.log2(n) * (result.n_free + candidate.n_dense_params) + SNAPPED_BITS * result.n_snapped
    candidate.description_length = data_bits(result.rmse_after**2, y) + candidate.structure_bits + parameter_bits
    candidate.exact = result.rmse_after <= ROUNDOFF * scale
    log.debug(
        "%s candidate %s: RMSE %.3g, %.1f bits%s",
        candidate.search, candidate.expr, candidate.rmse, candidate.description_length, " (exact)" if candidate.exact else "",
    )
    return candidate


def _mostly_simple(expr: sp.Expr) -> bool:
    """Check whether at least half of the inexact float constants are within 1e-8 of a simple value.

    An exact structure fitted to round-off has nearly simple constants. A
    wrong one that fits as closely has arbitrary ones, so snapping it would
    only spend time. Floats that already are simple (inner scales taken from
    the grid) are not counted.
    """
    near = total = 0
    for value in (float(c) for c in expr.atoms(sp.Float)):
        candidates = snap_number(value, window=1e-8)
        if any(float(c.value) == value for c in candidates):
            continue
        total += 1
        near += bool(candidates)
    return near >= 0.5 * total


def edges_from_expression(expr: sp.Expr, symbols: Sequence[sp.Symbol]) -> list[Edge]:
    """Rebuild two-layer edges from a read-out: each outermost function call is a hidden node.

    Layer 0 lists, per input, the terms of the call's argument that use that
    input; layer 1 names the function. Used after snapping, which may have
    closed layer-1 terms that were open in the fit.
    """
    edges: list[Edge] = []
    calls: list[sp.Expr] = []

    def collect(node: sp.Expr) -> None:
        if isinstance(node, sp.Function) and node.free_symbols & set(symbols):
            calls.append(node)
            return
        for arg in node.args:
            collect(arg)

    collect(expr)
    for j, call in enumerate(dict.fromkeys(calls)):
        argument = call.args[0]
        if isinstance(argument, sp.Abs):
            argument = argument.args[0]
        node = f"h{j + 1}"
        for symbol in symbols:
            terms = [str(t) for t in sp.Add.make_args(sp.expand(argument)) if t.has(symbol)]
            if terms:
                edges.append(Edge(0, str(symbol), node, tuple(terms)))
        edges.append(Edge(1, node, "y", (str(call.func),)))
    return edges


def readout(candidate: Candidate) -> sp.Expr:
    """Return the expression with each dense symbol replaced by its named function call."""
    return candidate.expr.xreplace({symbol: call for symbol, (_, call) in candidate.dense.items()})
