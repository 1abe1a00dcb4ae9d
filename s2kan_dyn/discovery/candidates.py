"""Candidate terms for the trajectory stage: the kept terms and their cheap neighbourhood.

Refitting only the terms that derivative matching kept cannot repair a wrong
structure (a dropped weak term stays dropped, and the terms that compensated
for it stay in). So the trajectory stage starts from a wider library, every
candidate active, and eliminates terms under its own loss.
"""

from __future__ import annotations

import logging

import numpy as np
import sympy as sp

from s2kan_dyn.errors import S2KANDynError
from s2kan_dyn.readout.terms import TermLibrary, polynomial_terms

log = logging.getLogger(__name__)

# Monomials of all states above this degree are not added as neighbours,
# because their number grows as C(d + degree, degree). Kept terms of higher
# degree still stay in the library.
MAX_NEIGHBOURHOOD_DEGREE = 3


def candidate_library(
    library: TermLibrary,
    active: np.ndarray,
    max_neighbourhood_degree: int = MAX_NEIGHBOURHOOD_DEGREE,
) -> tuple[TermLibrary, np.ndarray]:
    """Build the library of kept terms plus their cheap neighbourhood.

    Rule, for ``d`` states:

    1. Every term active in at least one equation is kept, and becomes a
       candidate in every equation.
    2. The constant and all monomials of the states up to degree
       ``D = max(2, highest total degree of a kept polynomial term)`` are
       added, with ``D`` capped at ``max_neighbourhood_degree``.
    3. For each kept non-polynomial term of one state (``sin(theta)``,
       ``exp(-x)``), the same function of each other state is added
       (``sin(omega)``). Other functions of the same state (``cos(theta)``)
       are not added. Non-polynomial terms of several states are kept as
       they are, without variants.

    Args:
        library: the library the derivative stage used, ``T`` terms.
        active: boolean mask of shape ``(T, d)``: the terms kept per equation.
        max_neighbourhood_degree: cap on ``D`` (default 3).

    Returns:
        ``(candidates, mask)``: a new :class:`TermLibrary` with the
        polynomial terms first (constant, then by degree), then the
        non-polynomial ones, and its initial active mask of shape
        ``(T', d)``, all true.

    Raises:
        S2KANDynError: ``active`` does not have shape ``(T, d)``.
    """
    active = np.asarray(active, dtype=bool)
    expected = (len(library), len(library.state_names))
    if active.shape != expected:
        raise S2KANDynError(
            f"active mask has shape {active.shape}, expected {expected} "
            "(one row per term, one column per state)."
        )

    symbols = library.symbols
    kept = [term for term, row in zip(library.terms, active) if row.any()]
    polynomial = [term for term in kept if term.is_polynomial(*symbols)]
    other = [term for term in kept if not term.is_polynomial(*symbols)]

    kept_degree = max((sp.total_degree(term, *symbols) for term in polynomial), default=0)
    degree = min(max(2, kept_degree), max_neighbourhood_degree)
    terms = list(polynomial_terms(library.state_names, degree))
    terms += [term for term in polynomial if term not in terms]

    for term in other:
        for variant in _same_function_of_other_states(term, symbols):
            if variant not in terms:
                terms.append(variant)

    candidates = TermLibrary(terms, library.state_names)
    mask = np.ones((len(terms), len(library.state_names)), dtype=bool)
    log.debug(
        "candidate library: %d kept terms -> %d candidates (monomials to degree %d)",
        len(kept), len(terms), degree,
    )
    return candidates, mask


def _same_function_of_other_states(term: sp.Expr, symbols) -> list[sp.Expr]:
    """Return ``term`` and, if it depends on one state only, its copies in each other state."""
    used = [s for s in symbols if s in term.free_symbols]
    if len(used) != 1:
        return [term]
    return [term] + [term.subs(used[0], other) for other in symbols if other != used[0]]


def transfer_coefficients(
    source: TermLibrary, coefficients: np.ndarray, target: TermLibrary
) -> np.ndarray:
    """Map coefficients ``(T_source, d)`` onto the terms of ``target``: ``(T_target, d)``.

    Terms are matched by sympy equality; a target term missing from the
    source gets coefficient 0.

    Raises:
        S2KANDynError: the libraries have different states, a source term
            with a nonzero coefficient has no match in ``target``, or
            ``coefficients`` has the wrong shape.
    """
    coefficients = np.asarray(coefficients, dtype=float)
    if source.state_names != target.state_names:
        raise S2KANDynError(
            f"libraries have states {list(source.state_names)} and {list(target.state_names)}; "
            "coefficients can only be moved between libraries of the same states."
        )
    if coefficients.shape != (len(source), len(source.state_names)):
        raise S2KANDynError(
            f"coefficients have shape {coefficients.shape}, expected "
            f"{(len(source), len(source.state_names))}."
        )

    index = {term: k for k, term in enumerate(target.terms)}
    out = np.zeros((len(target), len(target.state_names)))
    for k, term in enumerate(source.terms):
        if term in index:
            out[index[term]] = coefficients[k]
        elif np.any(coefficients[k] != 0.0):
            raise S2KANDynError(
                f"term {term} has nonzero coefficients but is not in the target library; "
                "build the target with candidate_library() from the source library."
            )
    return out
