"""Tests of snapping fitted constants to simple values (s2kan_dyn.readout.snap)."""

import numpy as np
import pytest
import sympy as sp

from s2kan_dyn.errors import DataError
from s2kan_dyn.readout.snap import snap_constants, snap_expression, snap_number


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1.0, 1.0, (200, 2))
    return X, sp.symbols("x0 x1", real=True)


def test_snap_number_orders_simplest_first():
    values = [c.value for c in snap_number(3.0001)]
    assert values[0] == 3
    assert sp.pi in values


def test_snap_number_finds_half_and_pi():
    assert sp.Rational(1, 2) in [c.value for c in snap_number(0.50002)]
    assert sp.pi / 2 in [c.value for c in snap_number(1.5707)]


def test_snap_number_rejects_nan():
    assert snap_number(float("nan")) == []


def test_snap_recovers_three_half_pi(data):
    X, (x0, x1) = data
    y = 3 * X[:, 0] + 0.5 * X[:, 1] ** 2 + np.sin(np.pi * X[:, 0])
    near = 3.0002 * x0 + 0.49997 * x1**2 + sp.sin(3.1414 * x0)
    snapped = snap_expression(near, [x0, x1], X, y)
    assert sp.simplify(snapped - (3 * x0 + sp.Rational(1, 2) * x1**2 + sp.sin(sp.pi * x0))) == 0
    assert not snapped.atoms(sp.Float)


def test_snap_drops_tiny_term(data):
    X, (x0, x1) = data
    y = 2 * X[:, 0] - X[:, 1]
    snapped = snap_expression(2.0 * x0 - 1.0 * x1 + 1e-9 * x0**3, [x0, x1], X, y)
    assert snapped == 2 * x0 - x1


@pytest.mark.parametrize("noise", [0.0, 0.01, 0.1])
def test_snap_never_worsens_beyond_tolerance(data, noise):
    X, (x0, x1) = data
    rng = np.random.default_rng(1)
    y = 1.37 * X[:, 0] + 0.52 * np.exp(X[:, 1]) + noise * rng.standard_normal(X.shape[0])
    tolerance = 1e-3
    result = snap_constants(1.3 * x0 + 0.5 * sp.exp(x1) + 0.1, [x0, x1], X, y, tolerance=tolerance)
    floor = 8 * np.finfo(float).eps * np.sqrt(np.mean(y**2))
    assert result.rmse_after <= result.rmse_before * (1 + tolerance) + floor
    value = sp.lambdify([x0, x1], result.expr)(X[:, 0], X[:, 1])
    assert np.sqrt(np.mean((value - y) ** 2)) == pytest.approx(result.rmse_after, rel=1e-6, abs=1e-12)


def test_snap_keeps_irrational_constant(data):
    X, (x0, _) = data
    y = 1.2345678 * X[:, 0]
    result = snap_constants(1.2 * x0, list(data[1]), X, y, tolerance=1e-6)
    assert result.n_free == 1
    assert float(result.expr.coeff(x0)) == pytest.approx(1.2345678, rel=1e-9)


def test_snap_rejects_mismatched_shapes(data):
    X, symbols = data
    with pytest.raises(DataError, match="shape"):
        snap_expression(1.0 * symbols[0], symbols, X[:, :1], X[:, 0])


def test_snap_rejects_nan(data):
    X, symbols = data
    y = X[:, 0].copy()
    y[3] = np.nan
    with pytest.raises(DataError, match="NaN"):
        snap_expression(1.0 * symbols[0], symbols, X, y)
