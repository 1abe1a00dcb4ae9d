"""Snapping of fitted constants to simple values: integers, fractions, multiples of pi.

A fitted expression carries floating-point constants (``2.4999999998*x**2``,
``sin(1.0000001*x + 1.5707963)``). Snapping replaces each constant by a
simple value near it when the fit does not get worse beyond a tolerance.
After every snap the constants still free are refitted by least squares,
so that they absorb what the snap moved.

On noise-free data this is also the test of structure: the right structure
drops to round-off once its constants are snapped, while a wrong one that
fitted to 1e-12 with free constants gets worse.

Order of work: the candidates of all free constants are tried simplest
first (zero, small integers, fractions with small denominators, multiples
of pi), nearest first among equally simple ones; the first snap whose
refit stays within the tolerance is kept, and the list is rebuilt.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence

import numpy as np
import scipy.optimize
import sympy as sp

from ..errors import DataError

log = logging.getLogger(__name__)

# Absolute floor of the RMSE, relative to the RMS of the target: 8 float64
# machine epsilons. Differences at round-off then never block a snap, but a
# wrong structure that fits to 1e-14 still fails where an exact one holds.
_ROUNDOFF = 8.0 * np.finfo(np.float64).eps

# A residual that is not finite (a log of a negative number during a refit)
# is replaced by this value, which Levenberg-Marquardt can still handle.
_BAD_RESIDUAL = 1e100


@dataclass(frozen=True)
class SnapCandidate:
    """A simple value near a fitted constant.

    Attributes:
        value: the exact sympy value (``Integer``, ``Rational`` or ``Rational*pi``).
        bits: its description length in bits, used to order candidates.
    """

    value: sp.Expr
    bits: float


@dataclass(frozen=True)
class SnapResult:
    """Result of :func:`snap_constants`.

    Attributes:
        expr: the expression with snapped constants and the free ones refitted.
        rmse_before: RMSE of ``expr`` as given, with its constants refitted first.
        rmse_after: RMSE of the returned expression.
        n_snapped: how many constants were replaced by a simple value.
        n_free: how many constants stayed free (floats in ``expr``).
    """

    expr: sp.Expr
    rmse_before: float
    rmse_after: float
    n_snapped: int
    n_free: int


def _rational_bits(fraction: Fraction) -> float:
    # Elias-style length of numerator and denominator; zero is the cheapest value.
    if fraction == 0:
        return 0.0
    return 1.0 + math.log2(1 + abs(fraction.numerator)) + 2.0 * math.log2(fraction.denominator)


def snap_number(value: float, max_denominator: int = 12, window: float = 0.25, pi_multiples: bool = True) -> list[SnapCandidate]:
    """Generate simple values near ``value``, simplest first.

    Candidates are zero, the nearest integers, the nearest fractions ``p/q``
    with ``q <= max_denominator`` and, if ``pi_multiples``, the same fractions
    times pi. A candidate ``c`` is kept when ``|c - value| <= window *
    max(|value|, 1)``: a wide window, because the refit after a snap, not the
    distance, decides whether the snap holds.

    Args:
        value: the fitted constant.
        max_denominator: largest denominator tried (default 12).
        window: relative half-width of the window (default 0.25).
        pi_multiples: also try ``(p/q)*pi`` (default True).

    Returns:
        Distinct candidates ordered by description length in bits, then by
        distance to ``value``.
    """
    if not math.isfinite(value):
        return []
    radius = window * max(abs(value), 1.0)
    found: dict[sp.Expr, tuple[float, float]] = {}

    def consider(fraction: Fraction, with_pi: bool) -> None:
        number = float(fraction) * (math.pi if with_pi else 1.0)
        if abs(number - value) > radius:
            return
        exact = sp.Rational(fraction.numerator, fraction.denominator)
        if with_pi:
            if fraction == 0:
                return
            exact = exact * sp.pi
        bits = _rational_bits(fraction) + (2.0 if with_pi else 0.0)
        found.setdefault(exact, (bits, abs(number - value)))

    for with_pi, scale in ((False, 1.0), (True, math.pi)):
        if with_pi and not pi_multiples:
            continue
        target = value / scale
        consider(Fraction(0), with_pi)
        for q in range(1, max_denominator + 1):
            for p in (math.floor(target * q), math.ceil(target * q)):
                consider(Fraction(p, q), with_pi)

    ordered = sorted(found.items(), key=lambda item: (item[1][0], item[1][1]))
    return [SnapCandidate(value=exact, bits=bits) for exact, (bits, _) in ordered]


def _parametrize(expr: sp.Expr) -> tuple[sp.Expr, list[sp.Symbol], list[float]]:
    """Replace every float in ``expr`` by its own parameter symbol, occurrence by occurrence."""
    params: list[sp.Symbol] = []
    values: list[float] = []

    def walk(node: sp.Expr) -> sp.Expr:
        if isinstance(node, sp.Float):
            symbol = sp.Symbol(f"_snap_c{len(params)}", real=True)
            params.append(symbol)
            values.append(float(node))
            return symbol
        if not node.args:
            return node
        return node.func(*[walk(arg) for arg in node.args], evaluate=False)

    return walk(sp.sympify(expr)), params, values


class _Refitter:
    """Least-squares refit of a parametrized expression with some parameters held fixed."""

    def __init__(self, template: sp.Expr, symbols: Sequence[sp.Symbol], params: list[sp.Symbol], X: np.ndarray, y: np.ndarray):
        self.X = X
        self.y = y
        arguments = [*symbols, *params]
        self._f = sp.lambdify(arguments, template, modules="numpy")
        gradient = [sp.diff(template, p) for p in params]
        self._grad = sp.lambdify(arguments, gradient, modules="numpy")
        self._columns = [X[:, j] for j in range(X.shape[1])]

    def _broadcast(self, value) -> np.ndarray:
        return np.broadcast_to(np.asarray(value, dtype=float), self.y.shape)

    def residual(self, theta: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            r = self._broadcast(self._f(*self._columns, *theta)) - self.y
        return np.where(np.isfinite(r), r, _BAD_RESIDUAL)

    def jacobian(self, theta: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            columns = [self._broadcast(g) for g in self._grad(*self._columns, *theta)]
        J = np.stack(columns, axis=1) if columns else np.zeros((self.y.size, 0))
        return np.where(np.isfinite(J), J, 0.0)

    def rmse(self, theta: np.ndarray) -> float:
        return float(np.sqrt(np.mean(self.residual(theta) ** 2)))

    def refit(self, theta: np.ndarray, free: np.ndarray, max_nfev: int = 200) -> np.ndarray:
        """Return ``theta`` with its ``free`` entries refitted by least squares."""
        theta = theta.copy()
        if not free.any():
            return theta

        def fun(z: np.ndarray) -> np.ndarray:
            theta[free] = z
            return self.residual(theta)

        def jac(z: np.ndarray) -> np.ndarray:
            theta[free] = z
            return self.jacobian(theta)[:, free]

        start = theta[free].copy()
        method = "lm" if free.sum() <= self.y.size else "trf"
        try:
            solution = scipy.optimize.least_squares(fun, start, jac=jac, method=method, xtol=1e-15, ftol=1e-15, gtol=1e-15, max_nfev=max_nfev)
        except (ValueError, np.linalg.LinAlgError) as error:
            log.debug("refit of %d constants failed (%s); keeping the start values", int(free.sum()), error)
            theta[free] = start
            return theta
        best = solution.x if self.rmse(_with(theta, free, solution.x)) <= self.rmse(_with(theta, free, start)) else start
        theta[free] = best
        return theta


def _with(theta: np.ndarray, free: np.ndarray, values: np.ndarray) -> np.ndarray:
    out = theta.copy()
    out[free] = values
    return out


def snap_constants(
    expr: sp.Expr,
    symbols: Sequence[sp.Symbol],
    X: np.ndarray,
    y: np.ndarray,
    tolerance: float = 1e-3,
    max_denominator: int = 12,
    window: float = 0.25,
    pi_multiples: bool = True,
    max_candidates: int = 6,
    max_rounds: int = 100,
    max_nfev: int = 200,
) -> SnapResult:
    """Snap the float constants of ``expr`` to simple values while the fit holds.

    Every float in ``expr`` is a constant. They are first refitted together by
    least squares (Levenberg-Marquardt, Jacobian from sympy), which gives the
    reference RMSE. A snap is kept when the refitted RMSE stays within
    ``rmse_ref * (1 + tolerance)`` plus a round-off floor of 8 machine
    epsilons times the RMS of ``y``. The reference is never updated, so the
    snaps together cannot worsen the fit beyond the tolerance.

    Args:
        expr: sympy expression in ``symbols`` with float constants.
        symbols: the input symbols, in the column order of ``X``.
        X: inputs, shape ``(n, d)`` with ``d = len(symbols)``.
        y: targets, shape ``(n,)``.
        tolerance: allowed relative increase of the RMSE (default 1e-3).
        max_denominator: largest denominator of a snapped fraction (default 12).
        window: relative half-width of the window of candidates (default 0.25).
        pi_multiples: also snap to rational multiples of pi (default True).
        max_candidates: candidates tried per constant and round, simplest first (default 6).
        max_rounds: cap on the number of snaps kept.
        max_nfev: cap on residual evaluations of each refit after a snap.

    Returns:
        A :class:`SnapResult`.

    Raises:
        DataError: if ``X`` and ``y`` do not match ``symbols`` or contain NaN.
    """
    symbols = list(symbols)
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).ravel()
    if X.ndim == 1:
        X = X[:, None]
    if X.shape != (y.size, len(symbols)):
        raise DataError(f"X has shape {X.shape} but {y.size} targets and {len(symbols)} symbols need ({y.size}, {len(symbols)}); pass one column per symbol.")
    if not (np.isfinite(X).all() and np.isfinite(y).all()):
        raise DataError("X or y contains NaN or infinite values; remove those samples before snapping.")
    if tolerance < 0:
        raise ValueError(f"tolerance={tolerance} is negative; pass a relative RMSE increase >= 0.")

    template, params, values = _parametrize(expr)
    if not params:
        rmse = float(np.sqrt(np.mean((np.broadcast_to(sp.lambdify(symbols, expr, "numpy")(*X.T), y.shape) - y) ** 2)))
        return SnapResult(sp.sympify(expr), rmse, rmse, 0, 0)

    refitter = _Refitter(template, symbols, params, X, y)
    free = np.ones(len(params), dtype=bool)
    theta = refitter.refit(np.asarray(values), free)
    rmse_ref = refitter.rmse(theta)
    limit = rmse_ref * (1.0 + tolerance) + _ROUNDOFF * float(np.sqrt(np.mean(y**2)))
    snapped: dict[int, sp.Expr] = {}

    # Trials go simplest candidate first over all free constants, then nearest
    # first. After a snap holds, the list is rebuilt from the refitted values.
    # A (constant, value) pair that failed is not tried again until a snap
    # holds, because only a snap moves the other constants.
    failed: set[tuple[int, sp.Expr]] = set()
    for _ in range(max_rounds):
        accepted = False
        for _, _, k, candidate in _trials(theta, free, max_denominator, window, pi_multiples, max_candidates):
            if (k, candidate.value) in failed:
                continue
            trial = theta.copy()
            trial[k] = float(candidate.value)
            trial_free = free.copy()
            trial_free[k] = False
            trial = refitter.refit(trial, trial_free, max_nfev)
            if refitter.rmse(trial) <= limit:
                theta, free = trial, trial_free
                snapped[k] = candidate.value
                failed.clear()
                accepted = True
                break
            failed.add((k, candidate.value))
        if not accepted or not free.any():
            break

    replacements = {p: snapped[k] if k in snapped else sp.Float(theta[k], 17) for k, p in enumerate(params)}
    result = sp.sympify(template.xreplace(replacements))
    rmse_after = refitter.rmse(theta)
    log.debug("snapped %d of %d constants; RMSE %.3g -> %.3g", len(snapped), len(params), rmse_ref, rmse_after)
    return SnapResult(result, rmse_ref, rmse_after, len(snapped), int(free.sum()))


def _trials(
    theta: np.ndarray, free: np.ndarray, max_denominator: int, window: float, pi_multiples: bool, max_candidates: int
) -> list[tuple[float, float, int, SnapCandidate]]:
    """List ``(bits, relative distance, constant index, candidate)`` for the free constants, simplest first."""
    trials = []
    for k in np.flatnonzero(free):
        for candidate in snap_number(theta[k], max_denominator, window, pi_multiples)[:max_candidates]:
            distance = abs(float(candidate.value) - theta[k]) / max(abs(theta[k]), 1.0)
            trials.append((candidate.bits, distance, int(k), candidate))
    trials.sort(key=lambda t: (t[0], t[1], t[2]))
    return trials


def snap_expression(
    expr: sp.Expr,
    symbols: Sequence[sp.Symbol],
    X: np.ndarray,
    y: np.ndarray,
    tolerance: float = 1e-3,
    max_denominator: int = 12,
) -> sp.Expr:
    """Return ``expr`` with its constants snapped to simple values; see :func:`snap_constants`."""
    return snap_constants(expr, symbols, X, y, tolerance=tolerance, max_denominator=max_denominator).expr
