"""Read-out of a fitted vector field as equations: expand, merge, prune, refit, snap.

The S2KAN's gates sparsify edges, not the terms of the expanded equations, so
term-level sparsity comes from here:

1. expand each output expression into terms (``split_terms``);
2. refit the numbers inside function arguments (``sin(a*x + b)``) jointly
   with the linear coefficients by variable projection (Golub and Pereyra
   1973). The network's optimiser can stop at a nearby local minimum where
   other terms make up for a wrong frequency, and a direct least-squares fit
   of the few inner numbers escapes it (pendulum: ``sin(1.09*theta)`` plus a
   linear term became ``sin(theta)``);
3. snap the numbers inside function arguments (``sin(1.0000002*x)``) to simple
   values so that duplicate terms merge, keeping a snap only when the refitted
   derivative residual does not grow;
4. repeat "drop every term whose RMS contribution is under ``tolerance`` times
   the RMS of that state's derivative, refit the rest by least squares" until
   the term set stops changing (one pass leaves spurious terms on noisy data),
   then eliminate terms backwards while that shortens the description
   (Gaussian code length of the residuals plus bits per term);
5. snap the coefficients to simple values when the fit does not get worse
   (``s2kan_dyn.readout.snap``).

Terms that contain a dense (spline) edge are undefined sympy functions and
cannot be evaluated without the network, so they are kept out of the least
squares and listed in :attr:`Readout.dense_terms`, never dropped silently.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import scipy.optimize
import sympy as sp
from sympy.core.function import AppliedUndef

from ..readout.elimination import EXACT_TRIAL_TERMS, RANKED_TRIALS, removal_increases
from ..readout.snap import snap_constants, snap_number
from ..readout.terms import TermLibrary, split_terms, state_symbols

log = logging.getLogger(__name__)

# Functions whose numeric arguments are snapped so duplicate terms merge.
_ARGUMENT_FUNCTIONS = (sp.sin, sp.cos, sp.exp, sp.tanh)
# Relative half-width of the window in which an argument's number may snap,
# and the relative growth of the derivative RMSE that a snap may cause
# (plus round-off). Snaps are checked by refitting, so the window can be wide.
ARGUMENT_WINDOW = 0.05
SNAP_TOLERANCE = 1e-3
# Variable projection over more argument numbers than this is skipped: its
# finite-difference Jacobian costs one evaluation of every term per number.
MAX_ARGUMENT_NUMBERS = 16
# An equation with more numbers than this is not snapped: each snap refits
# them all, so the cost grows with their cube, and so long an equation is an
# approximation, not a law with simple constants.
MAX_SNAP_NUMBERS = 32
MAX_PRUNE_ROUNDS = 50


@dataclass
class Readout:
    """Equations read out of a vector field.

    Attributes:
        library: the candidate terms, a :class:`TermLibrary` of ``T`` terms.
        coefficients: least-squares coefficients, shape ``(T, d)``.
        active: which terms survived pruning, shape ``(T, d)`` bool.
        equations: ``{state name: sympy expression}`` after snapping, dense terms included.
        dense_terms: terms that contain a dense (spline) edge, as strings.
        rounds: figures per pruning round (``n_terms``, ``rmse`` per state).
    """

    library: TermLibrary
    coefficients: np.ndarray
    active: np.ndarray
    equations: dict[str, sp.Expr]
    dense_terms: list[str] = field(default_factory=list)
    rounds: list[dict] = field(default_factory=list)


def plain_symbols(expr: sp.Expr) -> sp.Expr:
    """Replace every symbol of ``expr`` by a plain ``Symbol`` of the same name (no assumptions).

    The term library works with real symbols; the catalog's truth and users'
    ``sympy.Symbol("x")`` have none, and sympy only equates symbols whose
    assumptions agree.
    """
    expr = sp.sympify(expr)
    return expr.xreplace({s: sp.Symbol(s.name) for s in expr.free_symbols})


def has_dense(expr: sp.Expr) -> bool:
    """Return whether ``expr`` contains a dense (spline) edge, an undefined sympy function."""
    return bool(sp.sympify(expr).atoms(AppliedUndef))


def expression_library(
    expressions: Sequence[sp.Expr], state_names: Sequence[str]
) -> tuple[TermLibrary, np.ndarray, dict[str, list[tuple[sp.Expr, float]]]]:
    """Split expressions (one per state) into a term library and its coefficients.

    Returns the library of evaluable terms, its coefficients ``(T, d)``, and the
    dense terms per state as ``(term, coefficient)`` pairs.
    """
    by_name = {s.name: s for s in state_symbols(state_names)}
    equations: dict[str, sp.Expr] = {}
    dense: dict[str, list[tuple[sp.Expr, float]]] = {}
    for name, expr in zip(state_names, expressions):
        expr = sp.sympify(expr)
        expr = expr.subs({s: by_name[s.name] for s in expr.free_symbols if s.name in by_name})
        terms = split_terms(expr)
        dense[name] = [(term, coef) for term, coef in terms.items() if has_dense(term)]
        equations[name] = sp.Add(*(coef * term for term, coef in terms.items() if not has_dense(term)))
    library, coefficients = TermLibrary.from_equations(equations, state_names)
    return library, coefficients, dense


def least_squares(library: TermLibrary, X: np.ndarray, dX: np.ndarray, active: np.ndarray) -> np.ndarray:
    """Fit the active terms of each state to ``dX`` by least squares.

    Args:
        library: ``T`` terms.
        X: states, shape ``(n, d)``.
        dX: derivatives, shape ``(n, d)``.
        active: shape ``(T, d)`` bool.

    Returns:
        Coefficients, shape ``(T, d)``, zero where inactive. Columns are scaled to
        unit RMS before the solve, for conditioning.
    """
    theta = library.evaluate(X)
    return _least_squares_columns(theta, dX, active)


def _least_squares_columns(theta: np.ndarray, dX: np.ndarray, active: np.ndarray) -> np.ndarray:
    coefficients = np.zeros(active.shape)
    norms = np.sqrt(np.mean(theta**2, axis=0))
    norms = np.where(norms > 0, norms, 1.0)
    for j in range(dX.shape[1]):
        cols = np.flatnonzero(active[:, j])
        if cols.size == 0:
            continue
        solution, *_ = np.linalg.lstsq(theta[:, cols] / norms[cols], dX[:, j], rcond=None)
        coefficients[cols, j] = solution / norms[cols]
    return coefficients


def prune_and_refit(
    library: TermLibrary,
    X: np.ndarray,
    dX: np.ndarray,
    active: np.ndarray,
    tolerance: float,
    max_rounds: int = MAX_PRUNE_ROUNDS,
) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Drop terms of small contribution and refit until the term set stops changing.

    A term's contribution to state ``j`` is the RMS of ``coefficient * term(X)``
    over the samples, divided by the RMS of ``dX[:, j]``. Each round drops every
    term under ``tolerance`` and refits the rest.

    Returns:
        ``(coefficients (T, d), active (T, d), rounds)`` with one dict per round.
    """
    theta = library.evaluate(X)
    active = np.asarray(active, dtype=bool).copy()
    scale = np.sqrt(np.mean(dX**2, axis=0))
    scale = np.where(scale > 0, scale, 1.0)
    rounds = []
    coefficients = _least_squares_columns(theta, dX, active)
    for _ in range(max_rounds):
        contribution = np.sqrt(np.mean((theta[:, :, None] * coefficients[None]) ** 2, axis=0)) / scale
        keep = active & (contribution >= tolerance)
        rmse = np.sqrt(np.mean((dX - theta @ coefficients) ** 2, axis=0))
        rounds.append({"n_terms": int(active.sum()), "relative_rmse": (rmse / scale).tolist()})
        if np.array_equal(keep, active):
            break
        active = keep
        coefficients = _least_squares_columns(theta, dX, active)
    return coefficients, active, rounds


def _argument_numbers(expressions: Sequence[sp.Expr]) -> list[sp.Float]:
    """Return the distinct floats inside sin, cos, exp and tanh arguments, largest first."""
    numbers = {
        atom
        for expr in expressions
        for call in expr.atoms(*_ARGUMENT_FUNCTIONS)
        for atom in call.args[0].atoms(sp.Float)
    }
    return sorted(numbers, key=lambda f: (-abs(float(f)), float(f)))


def refit_arguments(
    expressions: Sequence[sp.Expr], state_names: Sequence[str], X: np.ndarray, dX: np.ndarray
) -> list[sp.Expr]:
    """Refit the numbers inside function arguments with the coefficients, by variable projection.

    Every float inside a sin, cos, exp or tanh argument becomes a parameter.
    For given parameters, the coefficients of each state's terms are the
    linear least-squares solution. The parameters minimise the stacked
    residuals (each state divided by its derivative's RMS) with
    ``scipy.optimize.least_squares`` (trust region, finite-difference
    Jacobian). The result is kept only when the residual does not grow.

    Args:
        expressions: one sympy expression per state.
        X: states, shape ``(n, d)``; dX: derivatives, shape ``(n, d)``.
    """
    expressions = [sp.expand(sp.sympify(e)) for e in expressions]
    numbers = _argument_numbers(expressions)
    if not numbers:
        return expressions
    if len(numbers) > MAX_ARGUMENT_NUMBERS:
        log.info("read-out: %d numbers inside function arguments, more than %d; not refitted",
                 len(numbers), MAX_ARGUMENT_NUMBERS)
        return expressions
    params = sp.symbols(f"p0:{len(numbers)}")
    template = [e.xreplace(_argument_substitution(e, numbers, params)) for e in expressions]
    if any(has_dense(e) for e in expressions):
        return expressions
    symbols = state_symbols(state_names)
    by_name = {s.name: s for s in symbols}
    per_state = [split_terms(e.subs({s: by_name[s.name] for s in e.free_symbols if s.name in by_name})) for e in template]
    terms = list(dict.fromkeys(term for split in per_state for term in split))
    active = np.array([[term in split for split in per_state] for term in terms])
    columns = sp.lambdify([symbols, params], terms, modules="numpy")
    scale = np.sqrt(np.mean(dX**2, axis=0))
    scale = np.where(scale > 0, scale, 1.0)
    states = [X[:, j] for j in range(X.shape[1])]

    def evaluate(p: np.ndarray) -> np.ndarray:
        values = columns(states, p)
        return np.stack([np.broadcast_to(np.asarray(v, dtype=float), X.shape[:1]) for v in values], axis=-1)

    def residual(p: np.ndarray) -> np.ndarray:
        theta = evaluate(p)
        if not np.all(np.isfinite(theta)):
            return np.full(dX.size, 1e10)
        fitted = _least_squares_columns(theta, dX, active)
        return ((dX - theta @ fitted) / scale).ravel()

    start = np.array([float(v) for v in numbers])
    before = float(np.sum(residual(start) ** 2))
    solution = scipy.optimize.least_squares(residual, start, method="trf", x_scale="jac", max_nfev=200 * (len(start) + 1))
    if not solution.cost * 2 < before:
        return expressions
    theta = evaluate(solution.x)
    fitted = _least_squares_columns(theta, dX, active)
    values = {p: sp.Float(v, 17) for p, v in zip(params, solution.x)}
    log.debug("refitted %d argument numbers; squared residual %.3g -> %.3g", len(numbers), before, 2 * solution.cost)
    terms = [t.xreplace(values) for t in terms]
    return [
        sp.Add(*(sp.Float(fitted[k, j], 17) * terms[k] for k in range(len(terms)) if active[k, j]))
        for j in range(len(state_names))
    ]


def _argument_substitution(expr: sp.Expr, numbers: Sequence[sp.Float], params) -> dict:
    lookup = dict(zip(numbers, params))
    return {call: call.func(call.args[0].xreplace(lookup)) for call in expr.atoms(*_ARGUMENT_FUNCTIONS)}


def eliminate_by_description_length(
    library: TermLibrary,
    X: np.ndarray,
    dX: np.ndarray,
    active: np.ndarray,
    floor: np.ndarray,
    effective_samples: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Drop terms, one at a time per equation, while that shortens the description.

    For an equation with term set ``S`` the description length is
    ``n/2 * log2(MSE_S + floor^2) + |S| * (1/2 * log2(n) + log2(T))`` bits: the
    residuals' Gaussian code length plus each coefficient and the choice of
    its term among ``T``. The term whose removal gives the shortest
    description goes, as long as that is shorter than keeping it (backward
    elimination under a BIC-like criterion). ``floor`` (shape ``(d,)``, in
    derivative units) is the resolution below which residuals are noise.
    ``effective_samples`` replaces ``n`` where smoothing correlates the
    derivative errors (default ``n``): counting correlated residuals as
    independent lets terms that fit the smoothing's bias pay for themselves.
    With more than ``EXACT_TRIAL_TERMS`` terms in an equation, only the
    removals that ``readout.elimination`` ranks first are refitted.

    Returns:
        ``(coefficients (T, d), active (T, d))``.
    """
    theta = library.evaluate(X)
    n_terms = theta.shape[1]
    n = float(theta.shape[0] if effective_samples is None else effective_samples)
    per_term = 0.5 * np.log2(n) + np.log2(max(n_terms, 2))
    active = np.asarray(active, dtype=bool).copy()

    def bits(j: int, mask: np.ndarray) -> float:
        column = np.zeros((n_terms, 1), dtype=bool)
        column[:, 0] = mask
        fitted = _least_squares_columns(theta, dX[:, j : j + 1], column)
        mse = float(np.mean((dX[:, j] - theta @ fitted[:, 0]) ** 2))
        return 0.5 * n * np.log2(mse + floor[j] ** 2) + int(mask.sum()) * per_term

    for j in range(dX.shape[1]):
        current = bits(j, active[:, j])
        while active[:, j].any():
            candidates = np.flatnonzero(active[:, j])
            if candidates.size > EXACT_TRIAL_TERMS:
                # Every removal costs the same bits, so the smallest estimated
                # residual increases are the shortest descriptions.
                columns = [slice(c, c + 1) for c in range(candidates.size)]
                _, increases = removal_increases(theta[:, candidates], dX[:, j], columns)
                candidates = candidates[np.argsort(increases, kind="stable")[:RANKED_TRIALS]]
            trials = []
            for k in candidates:
                mask = active[:, j].copy()
                mask[k] = False
                trials.append((bits(j, mask), k))
            best, k = min(trials)
            if best >= current:
                break
            active[k, j] = False
            current = best
    return _least_squares_columns(theta, dX, active), active


def snap_arguments(
    expressions: Sequence[sp.Expr], state_names: Sequence[str], X: np.ndarray, dX: np.ndarray
) -> list[sp.Expr]:
    """Snap numbers inside sin, cos, exp and tanh arguments when the refit holds.

    Each number is replaced by its simplest candidate within
    :data:`ARGUMENT_WINDOW` (``snap_number``). The snap is kept when the
    least-squares refit of all terms raises the derivative RMSE by at most
    :data:`SNAP_TOLERANCE` (relative) plus round-off.
    """
    expressions = [sp.expand(sp.sympify(e)) for e in expressions]
    numbers = _argument_numbers(expressions)
    if not numbers:
        return expressions

    reference = _refit_rmse(expressions, state_names, X, dX)
    floor = 64 * np.finfo(float).eps * np.sqrt(np.mean(dX**2, axis=0))
    for number in numbers:
        candidates = snap_number(float(number), window=ARGUMENT_WINDOW)
        if not candidates:
            continue
        replacement = candidates[0].value
        trial = [_replace_in_arguments(e, number, replacement) for e in expressions]
        rmse = _refit_rmse(trial, state_names, X, dX)
        if np.all(rmse <= reference * (1 + SNAP_TOLERANCE) + floor):
            log.debug("snapped argument number %s to %s", number, replacement)
            expressions = [sp.expand(e) for e in trial]
    return expressions


def _replace_in_arguments(expr: sp.Expr, number: sp.Float, value: sp.Expr) -> sp.Expr:
    calls = {call: call.func(call.args[0].xreplace({number: value})) for call in expr.atoms(*_ARGUMENT_FUNCTIONS)}
    return expr.xreplace(calls)


def _refit_rmse(expressions: Sequence[sp.Expr], state_names, X: np.ndarray, dX: np.ndarray) -> np.ndarray:
    library, coefficients, _ = expression_library(expressions, state_names)
    theta = library.evaluate(X)
    refit = _least_squares_columns(theta, dX, coefficients != 0)
    return np.sqrt(np.mean((dX - theta @ refit) ** 2, axis=0))


def snap_coefficients(
    equations: Mapping[str, sp.Expr], state_names: Sequence[str], X: np.ndarray, dX: np.ndarray
) -> dict[str, sp.Expr]:
    """Snap the numbers of each equation to simple values when the derivative fit holds.

    Uses ``snap_constants`` with a relative tolerance of :data:`SNAP_TOLERANCE`
    on each state's derivative RMSE. An equation with dense terms, or with
    more than :data:`MAX_SNAP_NUMBERS` numbers, is left as is.
    """
    symbols = state_symbols(state_names)
    snapped = {}
    for j, name in enumerate(state_names):
        expr = equations[name]
        if expr == 0 or has_dense(expr):
            snapped[name] = expr
            continue
        n_numbers = len(expr.atoms(sp.Float))
        if n_numbers > MAX_SNAP_NUMBERS:
            log.info("%s: %d numbers, more than %d; not snapped", name, n_numbers, MAX_SNAP_NUMBERS)
            snapped[name] = expr
            continue
        result = snap_constants(expr, symbols, X, dX[:, j], tolerance=SNAP_TOLERANCE)
        snapped[name] = result.expr
        log.debug("%s: snapped %d constants, RMSE %.3g -> %.3g", name, result.n_snapped, result.rmse_before, result.rmse_after)
    return snapped


def read_out(
    expressions: Sequence[sp.Expr],
    state_names: Sequence[str],
    X: np.ndarray,
    dX: np.ndarray,
    tolerance: float,
    snap: bool = True,
    floor: np.ndarray | None = None,
    effective_samples: float | None = None,
) -> Readout:
    """Turn expressions of a vector field (one per state) into pruned, refitted equations.

    Args:
        expressions: sympy expressions in the state symbols, e.g. ``S2KAN.to_sympy``.
        state_names: ``d`` names.
        X: states, shape ``(n, d)``.
        dX: derivatives at ``X``, shape ``(n, d)``.
        tolerance: pruning level, relative to each derivative's RMS.
        snap: snap coefficients to simple values when the fit does not get worse (default True).
        floor: residual resolution per state for the description length, shape
            ``(d,)`` in derivative units (default: round-off of each derivative's RMS).
        effective_samples: independent samples behind ``dX`` for the
            description length (default ``n``).
    """
    expressions = refit_arguments(expressions, state_names, X, dX)
    expressions = snap_arguments(expressions, state_names, X, dX)
    library, coefficients, dense = expression_library(expressions, state_names)
    coefficients, active, rounds = prune_and_refit(library, X, dX, coefficients != 0, tolerance)
    if floor is None:
        floor = 64 * np.finfo(float).eps * np.sqrt(np.mean(dX**2, axis=0))
    coefficients, active = eliminate_by_description_length(
        library, X, dX, active, np.asarray(floor, dtype=float), effective_samples
    )
    rounds.append({"n_terms": int(active.sum()), "step": "description length"})
    equations = library.to_equations(coefficients, active)
    if snap:
        equations = snap_coefficients(equations, state_names, X, dX)
    # NOTE: dense terms keep the network's coefficients and are neither pruned
    # nor refitted, because they cannot be evaluated without the network.
    dense_terms = []
    for name, pairs in dense.items():
        for term, coef in pairs:
            equations[name] = equations[name] + coef * term
            dense_terms.append(str(term))
    equations = {name: plain_symbols(expr) for name, expr in equations.items()}
    return Readout(library, coefficients, active, equations, sorted(set(dense_terms)), rounds)
