import math

import numpy as np
import pytest
import sympy

from s2kan_dyn.errors import DataError
from s2kan_dyn.metrics import (
    equation_metrics,
    equation_terms,
    forecast_metrics,
    rmse,
    smape,
    term_scores,
    valid_prediction_time,
)

x, y, z = sympy.symbols("x y z")
XY = ["x", "y"]
LORENZ = {"x": 10 * (y - x), "y": x * (28 - z) - y, "z": x * y - sympy.Rational(8, 3) * z}


# Forecast metrics


def test_rmse_known_value():
    pred = np.array([[1.0, 2.0], [3.0, 4.0]])
    true = np.array([[1.0, 2.0], [3.0, 8.0]])
    assert rmse(pred, true) == pytest.approx(2.0)


def test_smape_known_value():
    pred = np.array([[1.0], [0.0], [3.0]])
    true = np.array([[1.0], [0.0], [1.0]])
    # Terms: 0, 0 (0/0 counts as 0), 2*2/4 = 1 -> mean 1/3 -> 33.3 %.
    assert smape(pred, true) == pytest.approx(100.0 / 3.0)


def test_smape_opposite_signs_is_max():
    assert smape([[1.0]], [[-1.0]]) == pytest.approx(200.0)


def test_rmse_shape_mismatch():
    with pytest.raises(DataError, match="shape"):
        rmse(np.zeros((3, 2)), np.zeros((4, 2)))


def test_vpt_first_crossing():
    t = np.linspace(0.0, 1.0, 11)
    true = np.zeros((11, 2))
    pred = np.zeros((11, 2))
    pred[6:, 0] = 1.0  # normalised error sqrt((1/1)^2 / 2) = 0.707 from t = 0.6
    assert valid_prediction_time(t, pred, true, scale=[1.0, 1.0]) == pytest.approx(0.6)


def test_vpt_uses_scale_per_state():
    t = np.linspace(0.0, 1.0, 11)
    true = np.zeros((11, 2))
    pred = np.zeros((11, 2))
    pred[6:, 0] = 1.0
    # With scale 10 on the first state the error is 0.0707, below 0.4.
    assert valid_prediction_time(t, pred, true, scale=[10.0, 1.0]) == pytest.approx(1.0)


def test_vpt_never_exceeds_is_horizon():
    t = np.linspace(2.0, 5.0, 7)
    true = np.ones((7, 1))
    assert valid_prediction_time(t, true, true, scale=1.0) == pytest.approx(3.0)


def test_vpt_nan_counts_as_exceeding():
    t = np.linspace(0.0, 1.0, 5)
    pred = np.zeros((5, 1))
    pred[2] = np.nan
    assert valid_prediction_time(t, pred, np.zeros((5, 1)), scale=1.0) == pytest.approx(0.5)


def test_vpt_zero_scale_rejected():
    with pytest.raises(DataError, match="positive"):
        valid_prediction_time([0.0, 1.0], np.zeros((2, 1)), np.zeros((2, 1)), scale=0.0)


def test_forecast_metrics_full():
    t = np.linspace(0.0, 1.0, 11)
    true = np.ones((11, 1))
    out = forecast_metrics(t, true + 0.1, true, scale=1.0, lyapunov_time=0.5)
    assert out["rmse"] == pytest.approx(0.1)
    assert out["vpt"] == pytest.approx(1.0)
    assert out["vpt_lyapunov"] == pytest.approx(2.0)
    assert out["covered"] == 1.0


def test_forecast_metrics_no_lyapunov():
    t = np.linspace(0.0, 1.0, 11)
    true = np.ones((11, 1))
    assert forecast_metrics(t, true, true, scale=1.0)["vpt_lyapunov"] is None


def test_forecast_metrics_diverged():
    t = np.linspace(0.0, 1.0, 11)
    true = np.ones((11, 1))
    pred = true[:5]  # stopped after t = 0.4 ...
    out = forecast_metrics(t, pred, true, scale=1.0, diverged_at=0.45)
    assert math.isinf(out["rmse"])
    assert out["smape"] == pytest.approx(200.0 * 6 / 11)
    assert out["vpt"] == pytest.approx(0.45)
    assert out["covered"] == pytest.approx(5 / 11)


def test_forecast_metrics_stopped_without_divergence():
    t = np.linspace(0.0, 1.0, 11)
    true = np.ones((11, 1))
    out = forecast_metrics(t, true[:5], true, scale=1.0)
    # Valid on every reached sample: valid until the first missing one, t = 0.5.
    assert out["vpt"] == pytest.approx(0.5)


def test_forecast_metrics_empty_rollout():
    t = np.linspace(0.0, 1.0, 11)
    out = forecast_metrics(t, np.empty((0, 1)), np.ones((11, 1)), scale=1.0, diverged_at=0.0)
    assert out["vpt"] == 0.0
    assert out["smape"] == pytest.approx(200.0)


# Equation metrics


def test_terms_expand_products():
    terms = equation_terms(x * (28 - z) - y, ["x", "y", "z"])
    assert terms == {x: 28.0, x * z: -1.0, y: -1.0}


def test_terms_constant_and_zero():
    assert equation_terms(sympy.Float(2.5), XY) == {sympy.Integer(1): 2.5}
    assert equation_terms(sympy.Integer(0), XY) == {}


def test_terms_symbolic_constants_are_coefficients():
    terms = equation_terms(sympy.pi * x + sympy.sqrt(2) * y, XY)
    assert terms[x] == pytest.approx(math.pi)
    assert terms[y] == pytest.approx(math.sqrt(2))


def test_terms_round_function_arguments():
    found = equation_terms(3 * sympy.sin(0.49996 * x), XY)
    true = equation_terms(3 * sympy.sin(x / 2), XY)
    assert set(found) == set(true)


def test_terms_keep_distinct_arguments():
    found = equation_terms(sympy.sin(0.52 * x), XY)
    true = equation_terms(sympy.sin(x / 2), XY)
    assert set(found) != set(true)


def test_terms_float_exponent():
    assert equation_terms(x**2.0 * y, XY) == {x**2 * y: 1.0}


def test_terms_merge_after_rounding():
    terms = equation_terms(sympy.sin(0.50001 * x) + 2 * sympy.sin(0.49999 * x), XY)
    assert terms == {sympy.sin(x / 2): 3.0}


def test_terms_denominator_normalised():
    a = equation_terms(2 * x / (2 + x), XY)
    b = equation_terms(x / (1 + x / 2), XY)
    assert a == b


def test_terms_assumptions_ignored():
    xr = sympy.Symbol("x", positive=True)
    assert equation_terms(3 * xr, XY) == {x: 3.0}


def test_term_scores_counts():
    found = {x: 1.0, y: 2.0, x * y: 0.5}
    true = {x: 1.0, y: 2.0, z: 4.0}
    s = term_scores(found, true)
    assert s["precision"] == pytest.approx(2 / 3)
    assert s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(2 / 3)
    assert s["exact"] is False
    # Missing z counts 4, extra x*y counts 0.5; ||true|| = sqrt(21).
    assert s["coef_error"] == pytest.approx(math.sqrt(16.25) / math.sqrt(21))


def test_term_scores_empty_cases():
    assert term_scores({}, {})["f1"] == 1.0
    assert term_scores({}, {})["coef_error"] == 0.0
    assert term_scores({x: 1.0}, {})["f1"] == 0.0
    assert math.isinf(term_scores({x: 1.0}, {})["coef_error"])
    assert term_scores({}, {x: 1.0})["coef_error"] == 1.0


def test_equation_metrics_exact():
    m = equation_metrics(LORENZ, LORENZ, ["x", "y", "z"])
    assert m["exact"] is True
    assert m["f1"] == 1.0
    assert m["coef_error"] == 0.0
    assert m["n_terms_true"] == 7
    assert m["r2"] is None


def test_equation_metrics_extra_and_error():
    found = {"x": -10.1 * x + 9.9 * y, "y": 28 * x - y - x * z + 0.01 * x**2, "z": x * y - 2.66 * z}
    states = np.random.default_rng(0).normal(size=(200, 3)) * 10
    m = equation_metrics(found, LORENZ, ["x", "y", "z"], x_test=states)
    assert m["per_state"]["x"]["exact"] is True
    assert m["per_state"]["y"]["precision"] == pytest.approx(0.75)
    assert m["exact"] is False
    assert m["precision"] == pytest.approx(7 / 8)
    assert m["recall"] == 1.0
    assert 0.99 < m["r2"] < 1.0
    assert m["per_state"]["x"]["coef_error"] == pytest.approx(math.sqrt(0.02) / math.sqrt(200))


def test_equation_metrics_missing_state_is_zero():
    m = equation_metrics({"x": -x}, {"x": -x, "y": x}, XY)
    assert m["per_state"]["y"]["recall"] == 0.0
    assert m["recall"] == pytest.approx(0.5)


def test_derivative_r2_nonfinite():
    states = np.array([[-1.0, 1.0], [2.0, 1.0], [3.0, 2.0]])
    m = equation_metrics({"x": sympy.log(x), "y": y}, {"x": x, "y": y}, XY, x_test=states)
    assert m["per_state"]["x"]["r2"] == -math.inf
    assert m["per_state"]["y"]["r2"] == 1.0
