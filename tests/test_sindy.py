import numpy as np
import pytest
import sympy

import systems
from s2kan_dyn.baselines import SINDyBaseline
from s2kan_dyn.baselines.sindy import _feature_to_sympy
from s2kan_dyn.errors import FitError
from s2kan_dyn.metrics import equation_metrics


@pytest.fixture(scope="module")
def lorenz_fit():
    lorenz = systems.get("lorenz")
    data = lorenz.simulate(t_end=10.0)
    return lorenz, SINDyBaseline().fit(data)


def test_lorenz_exact_terms(lorenz_fit):
    lorenz, model = lorenz_fit
    m = equation_metrics(model.equations(), lorenz.equations(), lorenz.state_names)
    assert m["exact"] is True
    assert m["coef_error"] < 1e-3


def test_lorenz_equations_in_state_names(lorenz_fit):
    _, model = lorenz_fit
    eqs = model.equations()
    assert list(eqs) == ["x", "y", "z"]
    assert {str(s) for s in eqs["y"].free_symbols} == {"x", "y", "z"}


def test_lorenz_predict_and_score(lorenz_fit):
    lorenz, model = lorenz_fit
    states = lorenz.sample_initial_conditions(50, seed=3)
    assert np.allclose(model.predict(states), lorenz.rhs_numpy(states), rtol=1e-3, atol=1e-2)
    test = lorenz.simulate(t_end=2.0, x0=states[0])
    assert model.score(test, None) > 0.999


def test_lorenz_simulate_short_horizon(lorenz_fit):
    lorenz, model = lorenz_fit
    t = np.linspace(0.0, 1.0, 101)
    [truth] = lorenz.simulate(t_end=1.0, dt=0.01)
    pred = model.simulate(np.array(lorenz.x0), t)
    assert pred.shape == (101, 3)
    assert np.max(np.abs(pred - truth.x)) < 0.05


def test_threshold_from_grid(lorenz_fit):
    _, model = lorenz_fit
    assert model.threshold_ in model.thresholds
    assert len(model.validation_errors_) == len(model.thresholds)
    assert model.report_["fit_seconds"] > 0


def test_pendulum_fourier_library():
    pendulum = systems.get("pendulum")
    model = SINDyBaseline(fourier=True).fit(pendulum.simulate(t_end=10.0))
    omega = model.equations()["omega"]
    theta = sympy.Symbol("theta")
    assert omega.has(sympy.sin(theta))


def test_noisy_fit_runs_smoothed():
    lorenz = systems.get("lorenz")
    data = lorenz.simulate(t_end=10.0, noise=0.05, seed=1)
    model = SINDyBaseline(smooth=True).fit(data)
    m = equation_metrics(model.equations(), lorenz.equations(), lorenz.state_names)
    assert m["recall"] == 1.0
    assert m["coef_error"] < 0.1


def test_feature_names_parse():
    a, b = sympy.symbols("S I")
    symbols = {"x0": a, "x1": b}
    assert _feature_to_sympy("x0 x1^2", symbols) == a * b**2
    assert _feature_to_sympy("sin(1 x1)", symbols) == sympy.sin(b)
    assert _feature_to_sympy("1", symbols) == 1


def test_unfitted_raises():
    with pytest.raises(FitError, match="fit"):
        SINDyBaseline().equations()
