"""Univariate factors and product terms of the one-layer dictionary.

A *factor* is one primitive applied to one input, ``f(a*x_i + b)`` for the
affine primitives (sin, exp, tanh, gaussian) and ``f(x_i)`` for the others.
A *term* is a product of one or two factors; the one-layer model is
``y = c_0 + sum_t c_t * term_t(x)``, linear in the outer coefficients.

Cosines are sines with the phase ``pi/2`` held exact, so that a snapped
read-out shows ``cos(x)`` rather than ``sin(x + 1.5707963)``.

The spline factor is a B-spline basis of one input (model.spline), a group
of columns with one coefficient each. Its sympy form is the undefined
function ``dense_l0_0_<i>(x_i)``, so an open spline is named in the
read-out rather than dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import sympy as sp
import torch

from ..model.primitives import get_primitive

SPLINE = "spline"
# Inner scales of the affine primitives start on these multiples of
# 1 / (decimal magnitude of the input's RMS); Levenberg-Marquardt refines them.
# TODO: on inputs spanning many periods (RMS about 10), sin(x) is missed because
# the grid starts at 0.05-0.3 and LM does not climb to 1 over many periods.
INNER_SCALES = (0.5, 1.0, 2.0, 3.0)
# Bits of an inner scale taken from the grid above (log2 of its size).
GRID_BITS = 2.0
# Bits of choosing the spline, as for the costliest primitives plus two;
# its coefficients are priced separately, 1/2 log2(n) bits each.
SPLINE_BITS = 8.0


@dataclass(frozen=True)
class Factor:
    """One primitive on one input.

    Attributes:
        primitive: registry name, or ``"spline"``.
        input: column index of the input.
        a, b: inner map ``a*x + b`` (used by affine primitives only).
        cosine: for ``sin``, add the exact phase ``pi/2``.
    """

    primitive: str
    input: int
    a: float = 1.0
    b: float = 0.0
    cosine: bool = False

    @property
    def affine(self) -> bool:
        return self.primitive != SPLINE and get_primitive(self.primitive).affine

    @property
    def bits(self) -> float:
        """Bits of choosing this factor: the primitive, plus the grid choice of its scale."""
        if self.primitive == SPLINE:
            return SPLINE_BITS
        bits = get_primitive(self.primitive).bits
        if self.affine:
            bits += GRID_BITS
        if self.cosine:
            bits += 1.0
        return bits

    def key(self) -> tuple:
        return (self.primitive, self.input, round(self.a, 12), round(self.b, 12), self.cosine)

    def label(self) -> str:
        """Short text for plots: ``sin(1.0*x + 0)``, ``x^2``, ``spline``."""
        if self.primitive == SPLINE:
            return "spline (dense)"
        if not self.affine:
            return self.primitive
        name = "cos" if self.cosine else self.primitive
        return f"{name}({self.a:.3g}x{self.b:+.3g})"

    def evaluate(self, x: torch.Tensor) -> torch.Tensor:
        """Evaluate on one input column ``x`` of shape ``(n,)``; returns ``(n,)``."""
        primitive = get_primitive(self.primitive)
        if not primitive.affine:
            return primitive.torch_fn(x)
        phase = math.pi / 2 if self.cosine else 0.0
        return primitive.torch_fn(self.a * x + self.b + phase)

    def sympy(self, symbol: sp.Symbol, a: sp.Expr | None = None, b: sp.Expr | None = None) -> sp.Expr:
        """Sympy form with the inner constants ``a``, ``b`` (floats of this factor by default)."""
        primitive = get_primitive(self.primitive)
        if not primitive.affine:
            return primitive.sympy_fn(symbol)
        a = sp.Float(self.a) if a is None else a
        b = sp.Float(self.b) if b is None else b
        inner = a * symbol + b
        if self.cosine:
            inner = inner + sp.pi / 2
        return primitive.sympy_fn(inner)


@dataclass(frozen=True)
class Term:
    """A product of one or two factors (``len(factors)``), or one spline factor."""

    factors: tuple[Factor, ...]

    @property
    def bits(self) -> float:
        """Bits of the structure: its factors, plus one for a product."""
        return sum(f.bits for f in self.factors) + (1.0 if len(self.factors) > 1 else 0.0)

    @property
    def is_spline(self) -> bool:
        return self.factors[0].primitive == SPLINE

    def key(self) -> tuple:
        return tuple(sorted(f.key() for f in self.factors))

    def label(self) -> str:
        return " * ".join(f.label() for f in self.factors)


def inner_scale_grid(x: np.ndarray) -> tuple[float, ...]:
    """Return the starting inner scales for one input column ``x`` of shape ``(n,)``."""
    rms = float(np.sqrt(np.mean(x**2)))
    magnitude = 10.0 ** round(math.log10(rms)) if rms > 0 else 1.0
    return tuple(s / magnitude for s in INNER_SCALES)


def univariate_factors(X: np.ndarray, primitives: Sequence[str]) -> list[Factor]:
    """Build the factors of every input for ``primitives``, in the given (cost) order.

    Affine primitives give one factor per grid scale, and ``exp`` one per
    sign. ``sin`` gives a sine and a cosine, which together express any phase
    with linear coefficients.
    """
    factors: list[Factor] = []
    for name in primitives:
        primitive = get_primitive(name)
        for i in range(X.shape[1]):
            if not primitive.affine:
                factors.append(Factor(name, i))
                continue
            for a in inner_scale_grid(X[:, i]):
                if name == "sin":
                    factors += [Factor(name, i, a), Factor(name, i, a, cosine=True)]
                elif name == "exp":
                    factors += [Factor(name, i, a), Factor(name, i, -a)]
                else:
                    factors.append(Factor(name, i, a))
    return factors


def product_terms(factors: Sequence[Factor], symbols: Sequence[sp.Symbol]) -> list[Term]:
    """Return single factors and all products of two, without duplicates.

    Two terms are duplicates when their sympy forms agree (``x*x^4`` and
    ``x^2*x^3`` are both ``x^5``); the cheaper one is kept.
    """
    candidates = [Term((f,)) for f in factors]
    for j, f in enumerate(factors):
        for g in factors[j:]:
            candidates.append(Term((f, g)))
    candidates.sort(key=lambda t: t.bits)
    seen: set = set()
    unique = []
    for term in candidates:
        form = sp.srepr(term_sympy(term, symbols))
        if form not in seen:
            seen.add(form)
            unique.append(term)
    return unique


def term_sympy(term: Term, symbols: Sequence[sp.Symbol]) -> sp.Expr:
    """Sympy form of a non-spline term with its float inner constants."""
    out = sp.Integer(1)
    for f in term.factors:
        out = out * f.sympy(symbols[f.input])
    return out


def dense_function(layer: int, out: int, inp: int) -> sp.Function:
    """The undefined sympy function that names an open spline edge, as in the model package."""
    return sp.Function(f"dense_l{layer}_{out}_{inp}")
