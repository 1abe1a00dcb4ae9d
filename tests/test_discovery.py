"""SymbolicODE end to end on small problems, with the real S2KAN, torchdiffeq and scipy."""

import numpy as np
import pytest
import sympy as sp

import systems
from s2kan_dyn.discovery import SymbolicODE
from s2kan_dyn.errors import DataError, FitError, S2KANDynError
from s2kan_dyn.metrics.equations import equation_metrics
from s2kan_dyn.model.train import GateSchedule

# A small budget: enough for Lotka-Volterra's products, fast on one core.
SMALL = dict(
    stages=("derivative",),
    dictionary=(("x",),),
    dense_fallback=False,
    schedule=GateSchedule(warmup=100, ramp=100, freeze=50, polish=100),
    progress=False,
)


@pytest.fixture(scope="module")
def lotka():
    return systems.get("lotka_volterra")


@pytest.fixture(scope="module")
def fitted(lotka):
    trajectories = lotka.simulate(t_end=15.0, dt=0.05)
    return SymbolicODE(**SMALL).fit(trajectories)


def test_lotka_volterra_four_terms(fitted, lotka):
    scores = equation_metrics(fitted.equations(), lotka.equations(), lotka.state_names)
    assert scores["exact"]
    assert scores["n_terms_found"] == 4
    assert scores["coef_error"] < 1e-4


def test_equations_use_plain_symbols(fitted):
    symbols = set().union(*(e.free_symbols for e in fitted.equations().values()))
    assert symbols <= {sp.Symbol("x"), sp.Symbol("y")}


def test_report_names_stages(fitted):
    stages = fitted.report_["stages"]
    assert stages["derivative"]["ran"]
    assert not stages["trajectory"]["ran"]
    assert stages["trajectory"]["reason"] == "not requested"
    assert fitted.report_["timings"]["total"] > 0


def test_self_check_agrees(fitted):
    check = fitted.report_["self_check"]
    assert not check["short"]
    assert check["agreement_time"] > 0


def test_predict_matches_truth(fitted, lotka):
    x = np.array([[1.0, 2.0], [3.0, 0.5]])
    np.testing.assert_allclose(fitted.predict(x), lotka.rhs_numpy(x), rtol=1e-5)


def test_simulate_matches_truth(fitted, lotka):
    t = np.linspace(0, 5, 51)
    [truth] = lotka.simulate(t_end=5.0, dt=0.1, x0=(2.0, 1.0))
    np.testing.assert_allclose(fitted.simulate([2.0, 1.0], t), truth.x, rtol=1e-4, atol=1e-6)


def test_simulate_network_close(fitted, lotka):
    t = np.linspace(0, 2, 21)
    [truth] = lotka.simulate(t_end=2.0, dt=0.1, x0=(2.0, 1.0))
    network = fitted.simulate([2.0, 1.0], t, use_network=True)
    assert network.shape == (21, 2)
    assert np.max(np.abs(network - truth.x)) < 1e-2


def test_score_near_one(fitted, lotka):
    [test] = lotka.simulate(t_end=5.0, dt=0.05, x0=(3.0, 2.0))
    assert fitted.score(test.x, test.t) > 0.9999


def test_print_lists_states(fitted, capsys):
    fitted.print()
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(" = ")[0] for line in lines] == ["(x)'", "(y)'"]


def test_several_trajectories_unequal(lotka):
    long, short = lotka.simulate(t_end=10.0, dt=0.05, n_trajectories=2, seed=3)
    model = SymbolicODE(**SMALL).fit([long.x, short.x[:120]], [long.t, short.t[:120]], state_names=["x", "y"])
    assert model.report_["n_trajectories"] == 2
    assert equation_metrics(model.equations(), lotka.equations(), lotka.state_names)["exact"]


def test_irregular_times(lotka):
    rng = np.random.default_rng(0)
    t = np.sort(np.concatenate([[0.0], rng.uniform(0, 15, 400)]))
    x = _solve_at(lotka, t)
    model = SymbolicODE(**SMALL).fit(x, t, state_names=["x", "y"])
    assert model.report_["derivatives"]["methods"] == ["interpolating spline (k=5)"]
    assert equation_metrics(model.equations(), lotka.equations(), lotka.state_names)["exact"]


def _solve_at(system, t):
    from scipy.integrate import solve_ivp

    solution = solve_ivp(lambda _, v: system.rhs_numpy(v), (t[0], t[-1]), system.x0, t_eval=t,
                         method="DOP853", rtol=1e-12, atol=1e-12)
    return solution.y.T


def test_nan_rejected():
    x = np.ones((50, 2))
    x[10, 1] = np.nan
    with pytest.raises(DataError, match="non-finite"):
        SymbolicODE(**SMALL).fit(x, 0.1)


def test_too_few_samples_rejected():
    with pytest.raises(DataError, match="fewer than the minimum"):
        SymbolicODE(**SMALL).fit(np.ones((3, 2)), 0.1)


def test_unknown_stage_rejected():
    with pytest.raises(S2KANDynError, match="stages"):
        SymbolicODE(stages=("derivatives",)).fit(np.random.default_rng(0).normal(size=(50, 2)), 0.1)


def test_unfitted_predict_rejected():
    with pytest.raises(FitError, match="not fitted"):
        SymbolicODE().predict(np.ones((2, 2)))


def test_predict_wrong_shape_rejected(fitted):
    with pytest.raises(DataError, match="expected"):
        fitted.predict(np.ones((4, 3)))


def test_set_params_unknown_rejected():
    with pytest.raises(S2KANDynError, match="invalid parameter"):
        SymbolicODE().set_params(learning_rate=0.1)


@pytest.mark.slow
def test_pendulum_sin_term():
    pendulum = systems.get("pendulum")
    model = SymbolicODE(stages=("derivative",), progress=False).fit(pendulum.simulate(t_end=10.0))
    scores = equation_metrics(model.equations(), pendulum.equations(), pendulum.state_names)
    assert scores["exact"]
    assert scores["coef_error"] < 1e-2
