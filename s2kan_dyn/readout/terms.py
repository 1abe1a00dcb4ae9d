"""Vector fields written as sums of terms with one coefficient each.

The read-out expands the S2KAN into terms (``x*y``, ``sin(theta)``, ...),
and the trajectory stage refits and eliminates those terms. Both work on a
:class:`TermLibrary`: a fixed list of sympy terms in the state symbols, and
a coefficient matrix of shape ``(n_terms, n_states)``, so that

    dx_j/dt = sum_k coefficients[k, j] * terms[k](x)

which is linear in the coefficients (what Levenberg-Marquardt and least
squares need) whatever the terms are.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import sympy as sp
import torch

# sympy function names mapped to torch, for lambdify.
_TORCH_FUNCTIONS = {
    "sin": torch.sin,
    "cos": torch.cos,
    "tan": torch.tan,
    "exp": torch.exp,
    "log": torch.log,
    "tanh": torch.tanh,
    "sqrt": torch.sqrt,
    "Abs": torch.abs,
    "sign": torch.sign,
    "sinh": torch.sinh,
    "cosh": torch.cosh,
    "atan": torch.atan,
}


def state_symbols(state_names: Sequence[str]) -> tuple[sp.Symbol, ...]:
    """Return the real sympy symbols used for these state names."""
    return tuple(sp.Symbol(name, real=True) for name in state_names)


def _rebind(expr: sp.Expr, by_name: Mapping[str, sp.Symbol]) -> sp.Expr:
    return expr.subs({s: by_name[s.name] for s in expr.free_symbols if s.name in by_name})


def split_terms(expr: sp.Expr) -> dict[sp.Expr, float]:
    """Expand ``expr`` into ``{term: coefficient}``; the constant term is keyed by ``1``.

    Terms are products of powers and functions of the states with their
    numeric factor removed, as ``sympy.Expr.as_coefficients_dict`` gives them.
    """
    expanded = sp.expand(sp.sympify(expr))
    terms: dict[sp.Expr, float] = {}
    for term, coef in expanded.as_coefficients_dict().items():
        value = float(coef)
        if value != 0.0:
            terms[term] = terms.get(term, 0.0) + value
    return terms


class TermLibrary:
    """A fixed list of candidate terms of a vector field.

    Args:
        terms: sympy expressions in the state symbols (``1`` for a constant).
        state_names: names of the states, in column order.

    Attributes:
        terms: the terms, as given.
        symbols: the state symbols, shape ``(d,)``.
    """

    def __init__(self, terms: Sequence[sp.Expr], state_names: Sequence[str]):
        self.state_names = tuple(state_names)
        self.symbols = state_symbols(self.state_names)
        by_name = {s.name: s for s in self.symbols}
        # Rebind symbols by name so that terms built with plain Symbol("x") match.
        self.terms = [_rebind(sp.sympify(term), by_name) for term in terms]
        unknown = {s.name for term in self.terms for s in term.free_symbols} - set(by_name)
        if unknown:
            raise ValueError(f"terms use symbols {sorted(unknown)} that are not states {list(self.state_names)}.")
        self._numpy = sp.lambdify([self.symbols], self.terms, modules="numpy")
        self._torch = sp.lambdify([self.symbols], self.terms, modules=[_TORCH_FUNCTIONS, "math"])

    def __len__(self) -> int:
        return len(self.terms)

    def __repr__(self) -> str:
        return f"TermLibrary({[str(t) for t in self.terms]}, state_names={list(self.state_names)})"

    def evaluate(self, x: np.ndarray) -> np.ndarray:
        """Evaluate every term at states ``x`` of shape ``(n, d)``; return ``(n, n_terms)``."""
        x = np.asarray(x, dtype=float)
        columns = self._numpy([x[..., j] for j in range(x.shape[-1])])
        return np.stack([np.broadcast_to(np.asarray(c, dtype=float), x.shape[:-1]) for c in columns], axis=-1)

    def evaluate_torch(self, x: torch.Tensor) -> torch.Tensor:
        """Evaluate every term at states ``x`` of shape ``(..., d)``; return ``(..., n_terms)``."""
        columns = self._torch([x[..., j] for j in range(x.shape[-1])])
        shape = x.shape[:-1]
        out = [
            c.expand(shape) if torch.is_tensor(c) else torch.full(shape, float(c), dtype=x.dtype, device=x.device)
            for c in columns
        ]
        return torch.stack(out, dim=-1)

    def vector_field(self, x: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
        """Return ``dx/dt`` of shape ``(n, d)`` at states ``x`` for coefficients ``(n_terms, d)``."""
        return self.evaluate(x) @ coefficients

    def to_equations(self, coefficients: np.ndarray, active: np.ndarray | None = None) -> dict[str, sp.Expr]:
        """Return ``{state name: sympy expression}`` from coefficients of shape ``(n_terms, d)``.

        Terms whose ``active`` entry is false, or whose coefficient is zero, are left out.
        """
        coefficients = np.asarray(coefficients, dtype=float)
        if active is None:
            active = coefficients != 0.0
        equations = {}
        for j, name in enumerate(self.state_names):
            parts = [
                sp.Float(coefficients[k, j], 15) * self.terms[k]
                for k in range(len(self.terms))
                if active[k, j] and coefficients[k, j] != 0.0
            ]
            equations[name] = sp.Add(*parts) if parts else sp.Integer(0)
        return equations

    @classmethod
    def from_equations(
        cls, equations: Mapping[str, sp.Expr], state_names: Sequence[str]
    ) -> tuple["TermLibrary", np.ndarray]:
        """Build the library of all terms in ``equations`` and their coefficient matrix."""
        per_state = [split_terms(equations[name]) for name in state_names]
        lib_terms: list[sp.Expr] = []
        for terms in per_state:
            for term in terms:
                if term not in lib_terms:
                    lib_terms.append(term)
        library = cls(lib_terms, state_names)
        coefficients = np.zeros((len(lib_terms), len(state_names)))
        for j, terms in enumerate(per_state):
            for term, coef in terms.items():
                coefficients[lib_terms.index(term), j] = coef
        return library, coefficients


def polynomial_terms(state_names: Sequence[str], degree: int) -> list[sp.Expr]:
    """Return all monomials of the states up to ``degree``, the constant first."""
    symbols = state_symbols(state_names)
    monomials = sorted(
        sp.itermonomials(symbols, degree),
        key=lambda m: (sp.total_degree(m, *symbols), sp.default_sort_key(m)),
    )
    return list(monomials)


def term_description_length(term: sp.Expr) -> float:
    """Return an estimate of the bits needed to write ``term``: log2 of its operation count plus one."""
    return math.log2(2.0 + sp.count_ops(term, visual=False)) + 1.0
