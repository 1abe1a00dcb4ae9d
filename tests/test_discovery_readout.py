"""Read-out of expressions as pruned, refitted and snapped equations."""

import numpy as np
import sympy as sp

from s2kan_dyn.discovery.readout import (
    expression_library,
    has_dense,
    prune_and_refit,
    read_out,
    refit_arguments,
    snap_arguments,
)
from s2kan_dyn.readout.terms import TermLibrary, polynomial_terms

x, y = sp.symbols("x y")


def _states(n=400, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-2, 2, size=(n, 2))


def _lotka(X):
    return np.stack([1.1 * X[:, 0] - 0.4 * X[:, 0] * X[:, 1], 0.1 * X[:, 0] * X[:, 1] - 0.4 * X[:, 1]], axis=1)


def test_prune_drops_spurious_terms():
    X = _states()
    library = TermLibrary(polynomial_terms(["x", "y"], 2), ["x", "y"])
    active = np.ones((len(library), 2), dtype=bool)
    coefficients, kept, rounds = prune_and_refit(library, X, _lotka(X), active, tolerance=1e-2)
    found = library.to_equations(coefficients, kept)
    assert int(kept.sum()) == 4
    assert abs(coefficients[library.terms.index(library.symbols[0] * library.symbols[1]), 0] + 0.4) < 1e-10
    assert len(rounds) >= 2


def test_prune_noisy_repeats_until_stable():
    rng = np.random.default_rng(1)
    X = _states(2000)
    dX = _lotka(X) + 0.05 * rng.standard_normal((2000, 2))
    library = TermLibrary(polynomial_terms(["x", "y"], 3), ["x", "y"])
    active = np.ones((len(library), 2), dtype=bool)
    _, kept, rounds = prune_and_refit(library, X, dX, active, tolerance=5e-2)
    assert int(kept.sum()) == 4
    assert rounds[-1]["n_terms"] == 4


def test_dense_terms_listed():
    dense = sp.Function("dense_l0_0_1")(x)
    library, coefficients, dense_terms = expression_library([2 * x + 0.5 * dense, y], ["x", "y"])
    assert has_dense(dense)
    assert len(library) == 2
    assert [str(term) for term, _ in dense_terms["x"]] == ["dense_l0_0_1(x)"]
    assert dense_terms["y"] == []


def test_refit_arguments_finds_frequency():
    X = _states()
    dX = np.stack([X[:, 1], -3.0 * np.sin(X[:, 0])], axis=1)
    wrong = [1.0 * y, -2.5 * sp.sin(1.1 * x + 0.02) - 0.4 * x]
    refitted = refit_arguments(wrong, ["x", "y"], X, dX)
    snapped = snap_arguments(refitted, ["x", "y"], X, dX)
    arguments = {str(call) for call in sp.expand(snapped[1]).atoms(sp.sin)}
    assert arguments == {"sin(x)"}


def test_read_out_duplicates_merge():
    X = _states()
    dX = np.stack([X[:, 1], -3.0 * np.sin(X[:, 0])], axis=1)
    expressions = [1.0 * y, -1.5 * sp.sin(1.0000001 * x) - 1.5 * sp.sin(0.9999999 * x + 1e-9)]
    result = read_out(expressions, ["x", "y"], X, dX, tolerance=1e-2)
    assert sp.simplify(result.equations["y"] + 3 * sp.sin(x)) == 0
    assert result.equations["x"] == y


def test_read_out_snaps_coefficients():
    X = _states()
    dX = _lotka(X)
    noisy = [1.1000001 * x - 0.3999999 * x * y + 1e-9 * y**2, 0.1 * x * y - 0.4000002 * y]
    result = read_out(noisy, ["x", "y"], X, dX, tolerance=1e-2)
    found = result.equations["x"]
    assert found.coeff(x * y) == sp.Rational(-2, 5)
    assert abs(float(found.coeff(x, 1).subs(y, 0)) - 1.1) < 1e-12
    assert y**2 not in sp.Add.make_args(found)
