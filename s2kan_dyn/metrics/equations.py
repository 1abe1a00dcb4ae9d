"""Quality of found equations against known ones: terms, coefficients, derivative fit.

Each right-hand side is written as a sum of terms ``c_k * m_k``: a number
``c_k`` times a *monomial* ``m_k`` that holds every factor depending on the
states (``x*y``, ``sin(x)``, ``x/(x + 1)``). Terms are matched by equal
monomials after this canonical form:

1. ``sympy.expand`` (default hints: products and integer powers of sums
   are multiplied out, ``exp(a + b)`` becomes ``exp(a)*exp(b)``, trig
   functions are left as they are).
2. Each additive term is split with ``as_independent`` into its constant
   factor (including ``pi``, ``sqrt(2)``, ...), which becomes the
   coefficient, and its state-dependent monomial.
3. A denominator that is a sum is scaled to constant term 1 (or, without
   a constant term, to leading coefficient 1), and the scale moves into
   the coefficient: ``x/(2 + x)`` is ``0.5 * x/(1 + x/2)``.
4. Every number left inside the monomial (function arguments, exponents,
   denominators) is rounded to ``arg_digits`` significant digits (3 by
   default) and made an exact rational, so ``sin(0.49996*x)`` and
   ``sin(x/2)`` match and ``x**2.0`` is ``x**2``. Numbers that differ after
   rounding are different terms: the metrics do not score inner constants
   beyond that.

Terms whose merged coefficient is exactly 0 are dropped.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Mapping, Sequence

import numpy as np
import sympy

from ..rollout import canonical_symbols, equations_to_numpy

ARG_DIGITS = 3


def equation_terms(
    expr, state_names: Sequence[str], arg_digits: int = ARG_DIGITS
) -> dict[sympy.Expr, float]:
    """Split ``expr`` into ``{monomial: coefficient}`` in the canonical form of this module.

    The constant term has monomial ``1``.
    """
    expr = canonical_symbols(sympy.sympify(expr), state_names)
    symbols = [sympy.Symbol(n) for n in state_names]
    terms: dict[sympy.Expr, float] = defaultdict(float)
    for term in sympy.Add.make_args(sympy.expand(expr)):
        number, monomial = term.as_independent(*symbols, as_Add=False)
        scale, monomial = _normalise_denominators(monomial, symbols)
        monomial = _round_numbers(monomial, arg_digits)
        # Rounding can turn the monomial into a number (x**1e-9 -> 1).
        extra, monomial = monomial.as_independent(*symbols, as_Add=False)
        coefficient = complex(sympy.N(number * scale * extra))
        terms[monomial] += coefficient.real
    return {m: c for m, c in terms.items() if c != 0.0}


def _normalise_denominators(monomial: sympy.Expr, symbols) -> tuple[sympy.Expr, sympy.Expr]:
    """Scale each ``(sum)**(-p)`` factor so the sum has constant term 1; return (scale, monomial)."""
    scale = sympy.Integer(1)
    factors = []
    for factor in sympy.Mul.make_args(monomial):
        base, exponent = factor.as_base_exp()
        if isinstance(base, sympy.Add) and exponent.is_number and exponent.is_negative:
            constant, _ = base.as_independent(*symbols, as_Add=True)
            if constant == 0:
                first = sorted(sympy.Add.make_args(base), key=sympy.default_sort_key)[0]
                constant, _ = first.as_independent(*symbols, as_Add=False)
            if constant != 0:
                base = sympy.expand(base / constant)
                scale *= constant**exponent
        factors.append(base**exponent)
    return scale, sympy.Mul(*factors)


def _round_numbers(expr: sympy.Expr, digits: int) -> sympy.Expr:
    """Round every Float in ``expr`` to ``digits`` significant digits as an exact Rational."""
    floats = expr.atoms(sympy.Float)
    if not floats:
        return expr
    return expr.xreplace({f: sympy.Rational(f"{float(f):.{digits}g}") for f in floats})


def term_scores(found: Mapping, true: Mapping) -> dict:
    """Precision, recall, F1 and relative coefficient error of two term dicts.

    ``precision = matched / found terms`` (1 when nothing was found),
    ``recall = matched / true terms`` (1 when there is nothing to find), F1
    their harmonic mean (0 when both are 0). The coefficient error is
    ``||c_found - c_true||_2 / ||c_true||_2`` over the union of monomials, a
    missing or extra term counting its whole coefficient; with no true terms
    it is 0 when nothing was found and ``inf`` otherwise.
    """
    matched = len(set(found) & set(true))
    precision = matched / len(found) if found else 1.0
    recall = matched / len(true) if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    union = set(found) | set(true)
    # fsum rounds the exact sum, so the result does not depend on set order (PYTHONHASHSEED).
    diff = math.sqrt(math.fsum((found.get(m, 0.0) - true.get(m, 0.0)) ** 2 for m in union))
    norm = math.sqrt(math.fsum(c**2 for c in true.values()))
    if norm > 0:
        coef_error = diff / norm
    else:
        coef_error = 0.0 if diff == 0 else math.inf
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "exact": f1 == 1.0,
        "coef_error": coef_error,
        "n_terms_found": len(found),
        "n_terms_true": len(true),
    }


def derivative_r2(found: Mapping, truth: Mapping, state_names: Sequence[str], x) -> np.ndarray:
    """R^2 of the found right-hand sides against the true ones at states ``x``, shape ``(d,)``.

    ``x`` has shape ``(n, d)``. Per state ``1 - SS_res / SS_tot`` with
    ``SS_tot`` about the mean true derivative; a constant true derivative gives
    1 for an exact fit and 0 otherwise (as scikit-learn's ``r2_score``), and a
    found derivative that is not finite anywhere gives ``-inf``.
    """
    x = np.atleast_2d(np.asarray(x, dtype=float))
    with np.errstate(all="ignore"):
        pred = equations_to_numpy(found, state_names)(x)
        true = equations_to_numpy(truth, state_names)(x)
    scores = np.empty(len(state_names))
    for i in range(len(state_names)):
        if not np.all(np.isfinite(pred[:, i])):
            scores[i] = -np.inf
            continue
        ss_res = float(np.sum((pred[:, i] - true[:, i]) ** 2))
        ss_tot = float(np.sum((true[:, i] - true[:, i].mean()) ** 2))
        if ss_tot > 0:
            scores[i] = 1.0 - ss_res / ss_tot
        else:
            scores[i] = 1.0 if ss_res == 0 else 0.0
    return scores


def equation_metrics(
    found: Mapping[str, sympy.Expr],
    truth: Mapping[str, sympy.Expr],
    state_names: Sequence[str],
    x_test=None,
    arg_digits: int = ARG_DIGITS,
) -> dict:
    """Compare found equations with the true ones, per state and overall.

    Args:
        found, truth: state name -> right-hand side (sympy, symbols named like
            the states; a missing state in ``found`` counts as ``0``).
        state_names: the ``d`` states.
        x_test: test states of shape ``(n, d)`` for the derivative R^2, or ``None``.
        arg_digits: significant digits kept of numbers inside monomials.

    Returns:
        dict with ``per_state`` (state -> :func:`term_scores` plus ``r2``) and
        the overall ``precision``, ``recall``, ``f1`` (micro-averaged: every
        term of every state counted once), ``exact`` (every state exact),
        ``coef_error`` (over all states' terms together), ``n_terms_found``,
        ``n_terms_true`` and ``r2`` (mean of the per-state R^2; ``None``
        without ``x_test``).
    """
    names = [str(n) for n in state_names]
    found = {n: found.get(n, sympy.Integer(0)) for n in names}
    all_found, all_true = {}, {}
    per_state = {}
    for name in names:
        f_terms = equation_terms(found[name], names, arg_digits)
        t_terms = equation_terms(truth[name], names, arg_digits)
        per_state[name] = term_scores(f_terms, t_terms)
        all_found.update({(name, m): c for m, c in f_terms.items()})
        all_true.update({(name, m): c for m, c in t_terms.items()})

    overall = term_scores(all_found, all_true)
    if x_test is not None:
        r2 = derivative_r2(found, truth, names, x_test)
        for name, value in zip(names, r2):
            per_state[name]["r2"] = float(value)
        overall["r2"] = float(np.mean(r2))
    else:
        overall["r2"] = None
    overall["per_state"] = per_state
    return overall
