"""Tests of the tabular symbolic regressor (s2kan_dyn.regression)."""

import numpy as np
import pytest
import sympy as sp

from s2kan_dyn.errors import DataError, S2KANDynError
from s2kan_dyn.regression import NotFittedError, S2KANRegressor


@pytest.fixture(scope="module")
def quadratic():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1.0, 1.0, (128, 2))
    y = 2.5 * X[:, 0] ** 2 - X[:, 1]
    model = S2KANRegressor(time_limit=30.0).fit(X, y)
    return model, X, y


def test_regressor_recovers_quadratic(quadratic):
    model, _, _ = quadratic
    x0, x1 = model.symbols_
    assert sp.simplify(model.sympy() - (sp.Rational(5, 2) * x0**2 - x1)) == 0


def test_regressor_fitted_attributes(quadratic):
    model, X, y = quadratic
    assert model.exact_
    assert model.search_ == "enumerate"
    assert model.structure_ == "one-layer"
    assert model.n_features_in_ == 2
    assert model.dense_edges_ == []
    assert model.rmse_ < 1e-12
    assert model.score(X, y) == pytest.approx(1.0, abs=1e-12)


def test_regressor_feature_names(quadratic):
    model, _, _ = quadratic
    expr = model.sympy(["speed", "height"])
    assert {s.name for s in expr.free_symbols} == {"speed", "height"}
    assert "speed" in model.latex(["speed", "height"])


def test_regressor_recovers_sine():
    rng = np.random.default_rng(1)
    X = rng.uniform(-2.0, 2.0, (128, 1))
    y = np.sin(X[:, 0]) + 0.5 * X[:, 0]
    model = S2KANRegressor(time_limit=30.0).fit(X, y)
    (x0,) = model.symbols_
    assert sp.simplify(model.sympy() - (sp.sin(x0) + x0 / 2)) == 0


def test_regressor_predict_matches_formula(quadratic):
    model, _, _ = quadratic
    Z = np.array([[0.3, -0.2], [1.5, 2.0]])
    assert np.allclose(model.predict(Z), 2.5 * Z[:, 0] ** 2 - Z[:, 1], rtol=0, atol=1e-12)


def test_regressor_plot_edges(quadratic, tmp_path):
    model, _, _ = quadratic
    path = tmp_path / "edges.png"
    figure = model.plot_edges(path)
    assert path.stat().st_size > 0
    assert figure.axes


def test_regressor_unfitted_raises():
    model = S2KANRegressor()
    with pytest.raises(NotFittedError, match="fit"):
        model.predict(np.zeros((3, 1)))
    with pytest.raises(NotFittedError):
        model.sympy()
    assert not hasattr(model, "expr_")


def test_regressor_init_stores_only():
    model = S2KANRegressor(search="relax", random_state=3)
    assert model.get_params()["search"] == "relax"
    assert model.get_params()["random_state"] == 3
    assert not [name for name in vars(model) if name.endswith("_")]


@pytest.mark.parametrize(
    ("X", "y", "message"),
    [
        (np.zeros((20, 2)), np.zeros(19), "rows"),
        (np.zeros((4, 1)), np.zeros(4), "at least"),
        (np.full((20, 1), np.nan), np.zeros(20), "NaN"),
        (np.zeros((20, 1)), np.full(20, np.inf), "NaN or infinite"),
        (np.zeros((20, 2, 2)), np.zeros(20), "2-D"),
        (np.zeros((20, 1)), np.zeros((20, 2)), "one target"),
        (np.zeros((20, 0)), np.zeros(20), "no columns"),
    ],
)
def test_regressor_rejects_bad_data(X, y, message):
    with pytest.raises(DataError, match=message):
        S2KANRegressor().fit(X, y)


def test_regressor_rejects_bad_search():
    with pytest.raises(S2KANDynError, match="search"):
        S2KANRegressor(search="anneal").fit(np.zeros((20, 1)), np.zeros(20))


def test_regressor_rejects_unknown_primitive():
    with pytest.raises(S2KANDynError, match="cosh"):
        S2KANRegressor(primitives=("x", "cosh")).fit(np.zeros((20, 1)), np.zeros(20))


def test_regressor_predict_checks_columns(quadratic):
    model, _, _ = quadratic
    with pytest.raises(DataError, match="columns"):
        model.predict(np.zeros((3, 3)))


def test_regressor_predict_rejects_flat_sample(quadratic):
    model, _, _ = quadratic
    with pytest.raises(DataError, match=r"reshape\(1, -1\)"):
        model.predict(np.zeros(2))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"hidden_primitives": "log"}, "hidden_primitives='log' is invalid"),
        ({"primitives": ()}, "primitives=\\(\\) is invalid"),
        ({"time_limit": "abc"}, "time_limit='abc' is invalid"),
        ({"max_terms": 0}, "max_terms=0 is invalid"),
        ({"max_patterns": -1}, "max_patterns=-1 is invalid"),
        ({"relax_hidden": 0}, "relax_hidden=0 is invalid"),
        ({"max_enumerate_inputs": -1}, "max_enumerate_inputs=-1 is invalid"),
        ({"lam": -1.0}, "lam=-1.0 is invalid"),
        ({"spline_grid": 2.5}, "spline_grid=2.5 is invalid"),
        ({"random_state": None}, "random_state=None is invalid"),
    ],
)
def test_regressor_rejects_bad_params(params, message):
    with pytest.raises(S2KANDynError, match=message):
        S2KANRegressor(**params).fit(np.zeros((20, 1)), np.zeros(20))


def test_evaluate_finite_at_pole():
    from s2kan_dyn.regression.candidate import Candidate, evaluate

    x0 = sp.Symbol("x0", real=True)
    candidate = Candidate(1e-8 / x0 + sp.log(sp.Abs(x0)) + 1 / (x0**2 + 1), 0.0, [], "one-layer")
    values = evaluate(candidate, [x0], np.array([[0.0], [0.5]]))
    assert np.isfinite(values).all()
    assert values[1] == pytest.approx(2e-8 + np.log(0.5) + 0.8, rel=1e-14)


def test_evaluate_follows_formula_off_pole():
    from s2kan_dyn.regression.candidate import Candidate, evaluate

    x0, x1 = sp.symbols("x0 x1", real=True)
    candidate = Candidate(sp.exp(x1 * sp.log(sp.Abs(x0))) + 1 / (x0 + 1), 0.0, [], "two-layer")
    values = evaluate(candidate, [x0, x1], np.array([[0.0, 0.5], [1e-8, 0.5], [-0.996, 1.0]]))
    assert values[0] == 1.0
    assert values[1] == pytest.approx(1e-4 + 1 / (1 + 1e-8), rel=1e-12)
    assert values[2] == pytest.approx(0.996 + 250.0, rel=1e-9)


def test_removal_ranking_drops_spurious_first():
    from s2kan_dyn.regression.features import Factor, Term
    from s2kan_dyn.regression.one_layer import Design, _removal_ranking

    rng = np.random.default_rng(1)
    X = rng.uniform(-1.0, 1.0, (200, 2))
    y = 3.0 * X[:, 0] - X[:, 1] ** 2
    terms = [Term((Factor("x", 0),)), Term((Factor("x^2", 1),)), Term((Factor("x^3", 0),)), Term((Factor("x", 1),))]
    order = _removal_ranking(Design(terms, X, None), [0, 1, 2, 3], y)
    assert sorted(order[:2]) == [2, 3]
    assert sorted(order[2:]) == [0, 1]


@pytest.mark.slow
def test_regressor_many_samples_product_with_sine():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1.0, 1.0, (600, 2))
    model = S2KANRegressor().fit(X, X[:, 1] * np.sin(X[:, 0]) + X[:, 1] ** 2)
    x0, x1 = model.symbols_
    assert model.exact_
    assert sp.simplify(model.sympy() - (x1 * sp.sin(x0) + x1**2)) == 0
