"""Bounded rollouts of an autonomous vector field with scipy's ODE solvers.

:func:`rollout` integrates ``dx/dt = f(x)`` on a grid of output times and
stops cleanly instead of hanging or flooding the log:

- when the state's size passes a bound (the rollout *diverged*; the time
  of divergence is located inside the last step),
- when the solver has taken ``max_steps`` accepted steps,
- when the solver fails (a step size under the floating-point spacing, or
  a right-hand side that raised an arithmetic error).

The solver is driven step by step through scipy's ``OdeSolver`` classes,
the loop that ``scipy.integrate.solve_ivp`` runs internally, so that the
part of the trajectory computed before a stop is kept. The bound check
plays the role of a terminal ``solve_ivp`` event.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import scipy.integrate
import sympy

from .errors import DataError, S2KANDynError, UnknownNameError

log = logging.getLogger(__name__)

SOLVERS = {
    "RK23": scipy.integrate.RK23,
    "RK45": scipy.integrate.RK45,
    "DOP853": scipy.integrate.DOP853,
    "Radau": scipy.integrate.Radau,
    "BDF": scipy.integrate.BDF,
    "LSODA": scipy.integrate.LSODA,
}

# The default bound is this multiple of the state's scale. 1e3 leaves room for
# transients far larger than any attractor seen in the data, while a blow-up
# such as x' = x^2 still crosses it within about 1e-3 of its singular time.
BOUND_FACTOR = 1e3

# Default number of accepted solver steps. DOP853 at rtol=1e-10 takes about
# 1,000 steps for 25 time units of Lorenz, so this stops only stiff or runaway
# solves (a stiff 2-state field ran 2,000-4,000 steps a second on one shared core).
MAX_STEPS = 20_000

# Right-hand side evaluations allowed per allowed step. A DOP853 step costs 12
# evaluations plus rejected tries. The cap also ends scipy's step-size loop,
# which never ends when the initial derivative is NaN (seen with scipy 1.17).
EVALUATIONS_PER_STEP = 40

STATUSES = ("ok", "diverged", "max_steps", "failed")


@dataclass
class Rollout:
    """The result of :func:`rollout`.

    Attributes:
        t: output times reached, shape ``(m,)``, a prefix of the requested times.
        x: states at those times, shape ``(m, d)``.
        status: ``"ok"`` (the whole grid was reached), ``"diverged"`` (the
            state's size passed the bound), ``"max_steps"`` (the step limit was
            reached) or ``"failed"`` (the solver or the right-hand side failed).
        diverged_at: time at which the bound was crossed, or ``None``.
        message: one line saying why the rollout stopped.
        n_steps: accepted solver steps.
        n_evaluations: right-hand side evaluations.
        n_nonfinite: evaluations that returned NaN or inf.
    """

    t: np.ndarray
    x: np.ndarray
    status: str
    diverged_at: float | None
    message: str
    n_steps: int = 0
    n_evaluations: int = 0
    n_nonfinite: int = 0

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def stopped_at(self) -> float:
        """Time where the rollout ended: the divergence time, else the last output time."""
        if self.diverged_at is not None:
            return float(self.diverged_at)
        return float(self.t[-1]) if self.t.size else float("nan")


def equations_to_numpy(
    equations: Mapping[str, sympy.Expr], state_names: Sequence[str]
) -> Callable[[np.ndarray], np.ndarray]:
    """Turn sympy right-hand sides into one vectorised numpy function.

    Args:
        equations: state name -> right-hand side, in sympy symbols named like
            the states (symbol assumptions are ignored; only names count).
        state_names: the ``d`` states, in column order.

    Returns:
        ``f(x)`` taking ``x`` of shape ``(d,)`` or ``(n, d)`` and returning
        the derivative of the same shape, float64.

    Raises:
        S2KANDynError: a state has no equation, or an equation uses a symbol
            that is not a state.
    """
    names = [str(s) for s in state_names]
    missing = [n for n in names if n not in equations]
    if missing:
        raise S2KANDynError(
            f"no equation for state(s) {missing}; equations are given for {sorted(equations)}."
        )
    symbols = [sympy.Symbol(n) for n in names]
    exprs = [canonical_symbols(sympy.sympify(equations[n]), names) for n in names]
    functions = [sympy.lambdify(symbols, e, modules="numpy") for e in exprs]
    d = len(names)

    def vector_field(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        if x.shape[-1] != d:
            raise DataError(f"states have {x.shape[-1]} columns; the equations need {d} ({names}).")
        columns = [x[..., i] for i in range(d)]
        out = np.empty(x.shape, dtype=float)
        for i, fn in enumerate(functions):
            # A constant right-hand side lambdifies to a scalar: broadcast it.
            out[..., i] = np.real(fn(*columns))
        return out

    return vector_field


def canonical_symbols(expr: sympy.Expr, state_names: Sequence[str]) -> sympy.Expr:
    """Replace every symbol of ``expr`` by a plain ``Symbol`` of the same name.

    Raises :class:`S2KANDynError` when ``expr`` uses a symbol that is not a state.
    """
    names = set(state_names)
    unknown = sorted(str(s) for s in expr.free_symbols if str(s) not in names)
    if unknown:
        raise S2KANDynError(
            f"equation {expr} uses symbol(s) {unknown} that are not states {list(state_names)}; "
            "substitute parameter values before using it."
        )
    return expr.xreplace({s: sympy.Symbol(str(s)) for s in expr.free_symbols})


def default_bound(scale) -> float:
    """Return the bound on ``max_i |x_i|``: ``BOUND_FACTOR * max(1, max |scale|)``.

    ``scale`` is the initial state or the data. The floor of 1 keeps a start
    near zero from giving a bound that an ordinary attractor would cross.
    """
    values = np.abs(np.asarray(scale, dtype=float))
    values = values[np.isfinite(values)]
    size = float(values.max()) if values.size else 1.0
    return BOUND_FACTOR * max(1.0, size)


def rollout(
    rhs: Callable[[np.ndarray], np.ndarray],
    x0,
    t,
    bound: float | None = None,
    max_steps: int = MAX_STEPS,
    rtol: float = 1e-10,
    atol: float = 1e-12,
    method: str = "DOP853",
    scale=None,
) -> Rollout:
    """Integrate ``dx/dt = rhs(x)`` from ``x0`` and sample it at times ``t``.

    Args:
        rhs: the vector field, ``(d,) -> (d,)`` (e.g. from :func:`equations_to_numpy`).
        x0: initial state, shape ``(d,)``, taken at ``t[0]``.
        t: output times, shape ``(n,)``, strictly increasing.
        bound: the rollout stops as diverged when ``max_i |x_i|`` exceeds it.
            Default :func:`default_bound` of ``scale``.
        max_steps: limit on accepted solver steps. Right-hand side evaluations
            are capped too, at ``EVALUATIONS_PER_STEP * max_steps``; either
            limit ends the rollout with status ``"max_steps"``.
        rtol, atol: solver tolerances.
        method: a scipy solver name: one of :data:`SOLVERS`.
        scale: typical size of the states (the data, or its maximum); default ``x0``.

    Returns:
        A :class:`Rollout`. Solver and numpy warnings are caught, counted and
        logged as one debug line, never re-emitted.
    """
    if method not in SOLVERS:
        raise UnknownNameError("solver method", method, list(SOLVERS))
    t = np.asarray(t, dtype=float)
    x0 = np.asarray(x0, dtype=float).reshape(-1)
    if t.ndim != 1 or t.size < 1:
        raise DataError(f"output times must be a non-empty 1-D array, got shape {t.shape}.")
    if t.size > 1 and np.any(np.diff(t) <= 0):
        raise DataError("output times must be strictly increasing.")
    if not np.all(np.isfinite(x0)):
        raise DataError(f"initial state {x0.tolist()} is not finite.")
    if bound is None:
        bound = default_bound(x0 if scale is None else scale)

    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught, np.errstate(all="ignore"):
        warnings.simplefilter("always")
        result = _integrate(rhs, x0, t, float(bound), int(max_steps), rtol, atol, method)
    if caught:
        counts = Counter(f"{w.category.__name__}: {w.message}" for w in caught)
        log.debug(
            "rollout caught %d warning(s): %s",
            len(caught),
            "; ".join(f"{n} x {m}" for m, n in counts.most_common(3)),
        )
    log.debug(
        "rollout %s after %d steps, %d evaluations, %.3f s: %s",
        result.status, result.n_steps, result.n_evaluations, time.perf_counter() - start, result.message,
    )
    return result


class _EvaluationLimit(Exception):
    """Raised inside the solver when the right-hand side was called too often."""


class _CountedField:
    """Wraps ``rhs`` as scipy's ``fun(t, y)``, counting calls and non-finite results."""

    def __init__(self, rhs: Callable[[np.ndarray], np.ndarray], d: int, max_calls: int):
        self.rhs = rhs
        self.d = d
        self.max_calls = max_calls
        self.calls = 0
        self.nonfinite = 0

    def __call__(self, t: float, y: np.ndarray) -> np.ndarray:
        if self.calls >= self.max_calls:
            raise _EvaluationLimit
        self.calls += 1
        dy = np.asarray(self.rhs(y), dtype=float).reshape(self.d)
        if not np.all(np.isfinite(dy)):
            self.nonfinite += 1
        return dy


def _integrate(rhs, x0, t, bound, max_steps, rtol, atol, method) -> Rollout:
    d = x0.size
    field = _CountedField(rhs, d, EVALUATIONS_PER_STEP * max(max_steps, 1))
    xs = np.full((t.size, d), np.nan)
    xs[0] = x0

    def finish(n_out: int, status: str, message: str, diverged_at: float | None = None) -> Rollout:
        return Rollout(
            t[:n_out].copy(), xs[:n_out].copy(), status, diverged_at, message,
            n_steps, field.calls, field.nonfinite,
        )

    n_steps = 0
    if np.max(np.abs(x0)) > bound:
        return finish(0, "diverged", f"initial state exceeds the bound {bound:g}", float(t[0]))
    if t.size == 1:
        return finish(1, "ok", "single output time")
    if not np.all(np.isfinite(field(t[0], x0))):
        return finish(1, "failed", f"right-hand side is not finite at the initial state {x0.tolist()}")

    try:
        solver = SOLVERS[method](field, t[0], x0, t[-1], rtol=rtol, atol=atol)
    except (ArithmeticError, ValueError) as exc:
        return finish(1, "failed", f"solver could not start: {exc}")

    filled = 1  # output times [0, filled) are set
    while solver.status == "running":
        t_old = solver.t
        try:
            error = solver.step()
        except ArithmeticError as exc:
            return finish(filled, "failed", f"right-hand side raised {type(exc).__name__} near t={t_old:g}: {exc}")
        except _EvaluationLimit:
            return finish(
                filled, "max_steps", f"stopped after {field.calls} right-hand side evaluations near t={t_old:g}"
            )
        if solver.status == "failed":
            return finish(filled, "failed", f"solver failed near t={t_old:g}: {error}")
        n_steps += 1

        dense = solver.dense_output()
        y = solver.y
        if not np.all(np.isfinite(y)) or np.max(np.abs(y)) > bound:
            t_cross = _crossing_time(dense, t_old, solver.t, bound)
            filled = _fill(xs, t, filled, dense, t_cross, inclusive=False)
            return finish(
                filled, "diverged", f"max |x| passed the bound {bound:g} at t={t_cross:.6g}", t_cross
            )
        filled = _fill(xs, t, filled, dense, solver.t, inclusive=True)
        if n_steps >= max_steps and solver.status == "running":
            return finish(filled, "max_steps", f"stopped after {n_steps} steps at t={solver.t:.6g}")

    rejected = f" ({field.nonfinite} non-finite evaluations rejected)" if field.nonfinite else ""
    return finish(t.size, "ok", f"reached t={t[-1]:.6g} in {n_steps} steps{rejected}")


def _fill(xs, t, filled, dense, t_end, inclusive) -> int:
    """Write the dense output at the output times after ``filled`` and up to ``t_end``."""
    side = "right" if inclusive else "left"
    upto = int(np.searchsorted(t, t_end, side=side))
    if upto > filled:
        xs[filled:upto] = dense(t[filled:upto]).T
    return max(upto, filled)


def _crossing_time(dense, t_old: float, t_new: float, bound: float, iterations: int = 60) -> float:
    """Locate by bisection the first time in ``[t_old, t_new]`` where ``max |x|`` passes ``bound``."""

    def outside(tau: float) -> bool:
        y = dense(tau)
        return (not np.all(np.isfinite(y))) or float(np.max(np.abs(y))) > bound

    lo, hi = t_old, t_new
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if outside(mid):
            hi = mid
        else:
            lo = mid
    return hi
