"""Slow end-to-end tests of S2KANRegressor: two layers, a target outside the dictionary, the relaxation."""

import numpy as np
import pytest
import scipy.special
import sympy as sp

from s2kan_dyn.model.train import GateSchedule
from s2kan_dyn.regression import S2KANRegressor


@pytest.mark.slow
def test_bessel_keeps_dense_edge():
    rng = np.random.default_rng(0)
    X = rng.uniform(0.0, 10.0, (256, 1))
    model = S2KANRegressor(time_limit=30.0).fit(X, scipy.special.j0(X[:, 0]))
    X_test = rng.uniform(0.0, 10.0, (1000, 1))
    assert model.score(X_test, scipy.special.j0(X_test[:, 0])) >= 0.999
    assert model.dense_edges_ == ["dense_l0_0_0"]
    assert not model.exact_
    calls = model.sympy().atoms(sp.core.function.AppliedUndef)
    assert [str(c) for c in calls] == ["dense_l0_0_0(x0)"]


@pytest.mark.slow
def test_relax_search_fits():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1.0, 1.0, (256, 2))
    y = 2.0 * X[:, 0] + X[:, 1] ** 2
    schedule = GateSchedule(warmup=60, ramp=100, freeze=60, polish=60)
    model = S2KANRegressor(search="relax", relax_schedule=schedule, spline_grid=None).fit(X, y)
    assert model.search_ == "relax"
    assert model.structure_ == "relax"
    assert model.score(X, y) >= 0.999
    assert np.isfinite(model.predict(X)).all()


@pytest.mark.slow
def test_two_layer_recovers_sine_of_square():
    rng = np.random.default_rng(2)
    X = rng.uniform(-1.0, 1.0, (256, 2))
    y = np.sin(X[:, 0]) + np.sin(X[:, 1] ** 2)
    model = S2KANRegressor(time_limit=40.0).fit(X, y)
    x0, x1 = model.symbols_
    assert model.structure_ == "two-layer"
    assert model.exact_
    assert sp.simplify(model.sympy() - (sp.sin(x0) + sp.sin(x1**2))) == 0
    assert {e.layer for e in model.edges_} == {0, 1}
