"""One symbolic layer solved in closed form: ``y = c_0 + sum_t c_t * term_t(x)``.

With the inner scales of the affine primitives on a fixed grid, the model
is linear in its coefficients, so each term set is fitted by linear least
squares and term sets are compared by description length (candidate.py).

The search opens the cheapest dictionary first, which is MDL applied to
the search itself. For each level of primitive cost it fits all univariate
terms of that level. Backward elimination then drops one term at a time,
each time the one whose removal gives the shortest description. Then, in
the same cost order, it does the same over products of pairs. Where a
dictionary has more columns than half the samples, orthogonal matching
pursuit (Pati, Rezaiifar and Krishnaprasad 1993) chooses the starting set,
once from scratch and once from the terms the cheaper level kept. The
cheapest levels come first and the search stops at the first candidate
that fits to round-off after snapping. The spline of each input
is the last, most expensive entry, so it opens only when no primitive fits.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import scipy.linalg
import sympy as sp
import torch

from ..model.primitives import get_primitive
from ..model.spline import BSplineBasis
from ..readout.elimination import EXACT_TRIAL_TERMS, RANKED_TRIALS, removal_increases
from .candidate import Candidate, Edge, data_bits, finalize
from .features import SPLINE, Factor, Term, dense_function, product_terms, term_sympy, univariate_factors

log = logging.getLogger(__name__)


class Design:
    """Columns of a set of terms at fixed data; spline terms own a block of columns.

    Args:
        terms: the terms, in order.
        X: inputs, shape ``(n, d)``.
        spline: basis shared by all spline terms (one grid per input), or None.
    """

    def __init__(self, terms: Sequence[Term], X: np.ndarray, spline: BSplineBasis | None):
        self.terms = list(terms)
        Xt = torch.as_tensor(X, dtype=torch.float64)
        basis = spline(Xt).numpy() if spline is not None else None
        blocks = []
        self.groups: list[slice] = []
        start = 0
        for term in self.terms:
            if term.is_spline:
                block = basis[:, term.factors[0].input, :]
            else:
                column = torch.ones(Xt.shape[0], dtype=torch.float64)
                for f in term.factors:
                    column = column * f.evaluate(Xt[:, f.input])
                block = column.numpy()[:, None]
            blocks.append(block)
            self.groups.append(slice(start, start + block.shape[1]))
            start += block.shape[1]
        ones = np.ones((Xt.shape[0], 1))
        self.matrix = np.hstack([ones, *blocks]) if blocks else ones

    def columns(self, subset: Sequence[int]) -> np.ndarray:
        """Indices of the bias column and the columns of the terms in ``subset``."""
        index = [0]
        for t in subset:
            g = self.groups[t]
            index += list(range(g.start + 1, g.stop + 1))
        return np.asarray(index)

    def fit(self, subset: Sequence[int], y: np.ndarray) -> tuple[np.ndarray, float]:
        """Least squares on the bias plus ``subset``; return ``(coefficients, mse)``."""
        A = self.matrix[:, self.columns(subset)]
        # Unit-norm columns and a pivoted QR solver keep the small singular
        # directions that an exact structure needs on an ill-conditioned dictionary.
        norms = np.linalg.norm(A, axis=0)
        norms[norms == 0] = 1.0
        scaled, *_ = scipy.linalg.lstsq(A / norms, y, lapack_driver="gelsy", cond=1e-15)
        coef = scaled / norms
        resid = A @ coef - y
        return coef, float(np.mean(resid**2))


def _structure_bits(terms: Sequence[Term], n: int, n_columns: int) -> float:
    return sum(t.bits for t in terms) + 0.5 * math.log2(n) * n_columns


def _dl(design: Design, subset: Sequence[int], y: np.ndarray) -> float:
    _, mse = design.fit(subset, y)
    n_columns = len(design.columns(subset))
    return data_bits(mse, y) + _structure_bits([design.terms[t] for t in subset], y.size, n_columns)


def _removal_ranking(design: Design, subset: Sequence[int], y: np.ndarray) -> list[int]:
    """Order the positions of ``subset`` by the estimated description length without each term."""
    index = design.columns(subset)
    widths = [design.groups[t].stop - design.groups[t].start for t in subset]
    starts = np.cumsum([1, *widths[:-1]])
    blocks = [slice(int(start), int(start) + width) for start, width in zip(starts, widths)]
    rss, increases = removal_increases(design.matrix[:, index], y, blocks)
    terms = [design.terms[t] for t in subset]
    total_bits = _structure_bits(terms, y.size, len(index))
    estimates = [
        (data_bits((rss + increases[k]) / y.size, y) + total_bits - terms[k].bits - 0.5 * math.log2(y.size) * widths[k], k)
        for k in range(len(subset))
    ]
    return [k for _, k in sorted(estimates)]


def backward_eliminate(design: Design, subset: Sequence[int], y: np.ndarray, deadline: float = math.inf) -> list[int]:
    """Drop terms one at a time, each time the one whose removal gives the shortest description.

    Returns the subset with the shortest description along that path, or
    along the part of it walked by ``deadline`` (``time.process_time``).
    """
    current = list(subset)
    best, best_dl = list(current), _dl(design, current, y)
    while current and time.process_time() <= deadline:
        ranks = range(len(current))
        if len(current) > EXACT_TRIAL_TERMS:
            ranks = _removal_ranking(design, current, y)[:RANKED_TRIALS]
        trials = [(_dl(design, current[:k] + current[k + 1 :], y), k) for k in ranks]
        dl, k = min(trials)
        current = current[:k] + current[k + 1 :]
        if dl <= best_dl:
            best, best_dl = list(current), dl
    return best


def matching_pursuit(
    design: Design, y: np.ndarray, max_terms: int, start: Sequence[int] = (), deadline: float = math.inf
) -> list[int]:
    """Orthogonal matching pursuit over the terms; returns the shortest-description prefix.

    ``start`` are terms chosen before the first step, for example those a
    cheaper level kept. The pursuit adds up to ``max_terms`` more, and stops
    early once ``deadline`` (``time.process_time``) has passed.
    """
    norms = np.linalg.norm(design.matrix, axis=0)
    norms[norms == 0] = 1.0
    normalized = design.matrix / norms
    chosen: list[int] = list(start)
    best, best_dl = list(chosen), _dl(design, chosen, y)
    column_term = np.zeros(design.matrix.shape[1], dtype=int) - 1
    for t, g in enumerate(design.groups):
        column_term[g.start + 1 : g.stop + 1] = t
    for _ in range(max_terms):
        if time.process_time() > deadline:
            break
        coef, _ = design.fit(chosen, y)
        resid = y - design.matrix[:, design.columns(chosen)] @ coef
        score = np.abs(normalized.T @ resid)
        score[design.columns(chosen)] = -1.0
        score[0] = -1.0
        column = int(np.argmax(score))
        if score[column] <= 0:
            break
        chosen.append(int(column_term[column]))
        dl = _dl(design, chosen, y)
        if dl < best_dl:
            best, best_dl = list(chosen), dl
    return best


def to_candidate(design: Design, subset: Sequence[int], X: np.ndarray, y: np.ndarray, symbols: Sequence[sp.Symbol], spline: BSplineBasis | None) -> Candidate:
    """Build the sympy candidate (float constants) for ``subset`` of the design's terms."""
    coef, _ = design.fit(subset, y)
    expr = sp.Float(coef[0])
    dense: dict = {}
    edges: dict[int, list[str]] = {}
    dense_inputs: set[int] = set()
    terms = [design.terms[t] for t in subset]
    n_dense_params = 0
    position = 1
    for term in terms:
        width = design.groups[design.terms.index(term)].stop - design.groups[design.terms.index(term)].start
        block = coef[position : position + width]
        position += width
        if term.is_spline:
            i = term.factors[0].input
            symbol = sp.Symbol(f"_dense_{i}")
            dense[symbol] = (SplineColumn(spline, i, np.array(block, dtype=float)), dense_function(0, 0, i)(symbols[i]))
            expr = expr + sp.Float(1.0) * symbol
            n_dense_params += width
            dense_inputs.add(i)
        else:
            expr = expr + sp.Float(block[0]) * term_sympy(term, symbols)
        for f in term.factors:
            edges.setdefault(f.input, []).append(term.label())
    edge_list = [
        Edge(0, str(symbols[i]), "y", tuple(dict.fromkeys(labels)), dense=i in dense_inputs)
        for i, labels in sorted(edges.items())
    ]
    bits = sum(t.bits for t in terms)
    return Candidate(expr, bits, edge_list, "one-layer", dense=dense, n_dense_params=n_dense_params)


@dataclass
class SplineColumn:
    """Values of one open spline edge: ``basis(X)[:, input, :] @ coef``.

    Plain data (a knot buffer and a coefficient vector), so that a fitted
    regressor with a dense edge can be saved and loaded without pickle.
    """

    spline: BSplineBasis
    input: int
    coef: np.ndarray

    def __call__(self, X: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            basis = self.spline(torch.as_tensor(X, dtype=torch.float64)).numpy()
        return basis[:, self.input, :] @ self.coef


def cost_levels(primitives: Sequence[str]) -> list[tuple[str, ...]]:
    """Cumulative primitive sets, one per distinct cost, cheapest first."""
    costs = sorted({get_primitive(p).bits for p in primitives})
    return [tuple(p for p in primitives if get_primitive(p).bits <= c) for c in costs]


def search_one_layer(
    X: np.ndarray,
    y: np.ndarray,
    symbols: Sequence[sp.Symbol],
    primitives: Sequence[str],
    spline_grid: int | None,
    tolerance: float,
    max_terms: int,
    deadline: float,
) -> list[Candidate]:
    """Run the cost-ordered one-layer search; return the finalized candidates, in search order.

    Stops after the first exact candidate or at ``deadline`` (``time.process_time``, CPU seconds of this process).
    """
    spline = None
    if spline_grid:
        spline = BSplineBasis(X.shape[1], grid_size=spline_grid)
        spline.update_grid(torch.as_tensor(X, dtype=torch.float64))
    levels = cost_levels(primitives)
    found: list[Candidate] = []
    seen: set = set()

    def consider(design: Design, subset: list[int]) -> bool:
        key = tuple(sorted(design.terms[t].key() for t in subset))
        if key in seen:
            return False
        seen.add(key)
        candidate = finalize(to_candidate(design, subset, X, y, symbols, spline), symbols, X, y, tolerance)
        found.append(candidate)
        return candidate.exact

    for products in (False, True):
        cheaper_keys: set = set()
        for level in levels:
            if time.process_time() > deadline:
                log.info("one-layer search stopped at its time limit")
                return found
            factors = univariate_factors(X, level)
            terms = product_terms(factors, symbols) if products else [Term((f,)) for f in factors]
            if spline is not None and level == levels[-1]:
                terms += [Term((Factor(SPLINE, i),)) for i in range(X.shape[1])]
            design = Design(terms, X, spline)
            if design.matrix.shape[1] <= max(2, y.size // 2):
                subsets = [backward_eliminate(design, list(range(len(terms))), y, deadline)]
            else:
                # The pursuit's first pick can be a costly look-alike of a
                # cheap term (x1 sin(x0/2) for x0 x1), so it also runs from
                # the terms the cheaper level kept.
                start = [t for t, term in enumerate(terms) if term.key() in cheaper_keys]
                pursuit = matching_pursuit(design, y, max_terms, deadline=deadline)
                subsets = [backward_eliminate(design, pursuit, y, deadline)]
                if start and time.process_time() <= deadline:
                    pursuit = matching_pursuit(design, y, max_terms, start, deadline)
                    subsets.append(backward_eliminate(design, pursuit, y, deadline))
            for subset in subsets:
                log.debug("one-layer level %s (products=%s): %d of %d terms", level[-1], products, len(subset), len(terms))
                if consider(design, subset):
                    return found
            shortest = min(subsets, key=lambda subset: _dl(design, subset, y))
            cheaper_keys = {terms[t].key() for t in shortest}
    return found
