"""Tests of the trajectory stage (multiple shooting) and its candidate library."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
import torch
from scipy.integrate import solve_ivp
from scipy.signal import savgol_filter

from s2kan_dyn.discovery.candidates import candidate_library, transfer_coefficients
from s2kan_dyn.discovery.shooting import fit_trajectory_stage
from s2kan_dyn.discovery.shooting_rollout import (
    TermEvaluator,
    _Tangents,
    make_windows,
    rollout,
)
from s2kan_dyn.errors import S2KANDynError
from s2kan_dyn.readout.terms import TermLibrary, polynomial_terms
from s2kan_dyn.trajectory import Trajectory

NAMES = ["x", "y"]


def oscillator(t, state):
    """Damped linear oscillator: x' = y, y' = -4 x - 0.3 y."""
    x, y = state
    return [y, -4.0 * x - 0.3 * y]


def simulate(t, x0, noise, seed):
    solution = solve_ivp(oscillator, (t[0], t[-1]), x0, t_eval=t, rtol=1e-11, atol=1e-11, method="DOP853")
    states = solution.y.T
    rng = np.random.default_rng(seed)
    return states + noise * states.std(axis=0) * rng.standard_normal(states.shape)


def true_coefficients(library):
    names = [str(term) for term in library.terms]
    truth = np.zeros((len(library), 2))
    truth[names.index("y"), 0] = 1.0
    truth[names.index("x"), 1] = -4.0
    truth[names.index("y"), 1] = -0.3
    return truth


def least_squares_start(library, trajectories):
    """Least squares on Savitzky-Golay derivatives: the usual starting point of the stage."""
    rows, targets = [], []
    for tr in trajectories:
        step = float(np.median(np.diff(tr.t)))
        smooth = savgol_filter(tr.x, 7, 3, axis=0)
        rows.append(library.evaluate(smooth))
        targets.append(savgol_filter(tr.x, 7, 3, deriv=1, delta=step, axis=0))
    return np.linalg.lstsq(np.concatenate(rows), np.concatenate(targets), rcond=None)[0]


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_stage_recovers_oscillator_terms():
    t = np.arange(0.0, 20.0 + 1e-9, 0.2)
    data = [Trajectory(t, simulate(t, [2.0, 0.0], noise=0.03, seed=0), NAMES)]
    library = TermLibrary(polynomial_terms(NAMES, 2), NAMES)
    start = least_squares_start(library, data)

    result = fit_trajectory_stage(library, start, np.ones_like(start, dtype=bool), data)

    truth = true_coefficients(library)
    assert result.skipped_reason is None
    assert np.array_equal(result.active, truth != 0)
    assert np.linalg.norm(result.coefficients - truth) / np.linalg.norm(truth) < 0.02
    assert result.windows == pytest.approx(16 * 0.2)
    assert result.rounds[0]["terms"] == 12


def test_stage_eliminates_spurious_candidate():
    t = np.arange(0.0, 20.0 + 1e-9, 0.2)
    data = [Trajectory(t, simulate(t, [2.0, 0.0], noise=0.03, seed=1), NAMES)]
    library = TermLibrary([sp.Symbol("x"), sp.Symbol("y"), sp.Symbol("x") ** 2], NAMES)
    start = np.array([[0.0, -4.0], [1.0, -0.3], [0.0, 0.5]])

    result = fit_trajectory_stage(library, start, np.ones_like(start, dtype=bool), data)

    assert not result.active[2, 1]
    assert result.active[0, 1]
    assert result.coefficients[2, 1] == 0.0
    assert result.standard_errors[0, 1] > 0.0


def test_tangents_match_finite_differences():
    library = TermLibrary(polynomial_terms(NAMES, 2), NAMES)
    rng = np.random.default_rng(3)
    coefficients = torch.as_tensor(true_coefficients(library) + 0.05 * rng.standard_normal((6, 2)))
    start = torch.as_tensor(rng.standard_normal((3, 2)))
    steps = torch.as_tensor([[0.1, 0.15, 0.2], [0.2, 0.05, 0.0], [0.1, 0.1, 0.1]])
    directions = [-1, -1, 1 * 2 + 1, 4 * 2 + 0]  # x0, y0, coefficient (y, dy/dt), (x**2, dx/dt)
    start_tangent = torch.zeros(4, 3, 2, dtype=torch.float64)
    start_tangent[0, :, 0] = 1.0
    start_tangent[1, :, 1] = 1.0
    terms = TermEvaluator(library)
    tangents = _Tangents(terms, start_tangent, directions)

    _, jacobian = rollout(terms, coefficients, start, steps, 4, tangents)

    h = 1e-6
    for p, flat in enumerate(directions):
        plus_start, minus_start = start.clone(), start.clone()
        plus_coef, minus_coef = coefficients.clone(), coefficients.clone()
        if flat < 0:
            plus_start[:, p] += h
            minus_start[:, p] -= h
        else:
            plus_coef.view(-1)[flat] += h
            minus_coef.view(-1)[flat] -= h
        difference = (rollout(terms, plus_coef, plus_start, steps, 4)
                      - rollout(terms, minus_coef, minus_start, steps, 4)) / (2 * h)
        assert torch.allclose(jacobian[p], difference, rtol=1e-6, atol=1e-8), f"direction {p}"


def test_tangents_match_torch_forward_ad():
    import torch.autograd.forward_ad as fwad

    library = TermLibrary([1, sp.Symbol("x") * sp.Symbol("y"), sp.sin(sp.Symbol("x")), sp.Symbol("y")], NAMES)
    coefficients = torch.tensor([[0.1, -0.2], [0.3, 0.0], [-1.0, 0.5], [1.0, -0.3]], dtype=torch.float64)
    start = torch.tensor([[0.5, -0.2], [1.0, 1.0]], dtype=torch.float64)
    steps = torch.tensor([[0.1, 0.2], [0.3, 0.1]], dtype=torch.float64)
    coefficient_tangent = torch.zeros_like(coefficients)
    coefficient_tangent[2, 0] = 1.0
    terms = TermEvaluator(library)
    tangents = _Tangents(terms, torch.zeros(1, 2, 2, dtype=torch.float64), [4])

    _, jacobian = rollout(terms, coefficients, start, steps, 8, tangents)
    with fwad.dual_level():
        dual = fwad.make_dual(coefficients, coefficient_tangent)
        expected = fwad.unpack_dual(rollout(terms, dual, start, steps, 8)).tangent

    assert torch.allclose(jacobian[0], expected, rtol=1e-10, atol=1e-12)


def test_windows_share_end_samples():
    t = np.array([0.0, 0.1, 0.25, 0.3, 0.5, 0.55, 0.7])
    tr = Trajectory(t, np.zeros((7, 2)), NAMES)

    windows = make_windows([tr], 0.3, [tr.x], torch.float64, "cpu")

    assert windows.samples[0].tolist() == [0, 1, 2, 3]
    assert windows.samples[1].tolist() == [3, 4, 5, 6]
    assert windows.steps[0].tolist() == pytest.approx([0.1, 0.15, 0.05])


def test_stage_irregular_unequal_trajectories():
    rng = np.random.default_rng(5)
    data = []
    for n, x0 in [(70, [2.0, 0.0]), (45, [-1.0, 1.5])]:
        t = np.cumsum(np.concatenate([[0.0], rng.uniform(0.1, 0.3, n - 1)]))
        data.append(Trajectory(t, simulate(t, x0, noise=0.02, seed=n), NAMES))
    library = TermLibrary(polynomial_terms(NAMES, 2), NAMES)
    start = least_squares_start(library, data)

    result = fit_trajectory_stage(library, start, np.ones_like(start, dtype=bool), data)

    truth = true_coefficients(library)
    assert np.array_equal(result.active, truth != 0)
    assert np.linalg.norm(result.coefficients - truth) / np.linalg.norm(truth) < 0.03
    assert [s.shape for s in result.fitted_states] == [(70, 2), (45, 2)]


def test_stage_survives_diverging_window(caplog):
    # x**2 in dy/dt with coefficient 2 blows up within one window that starts
    # near x = 40 but not near x = 1, so only the large trajectory's windows diverge.
    t = np.arange(0.0, 4.0 + 1e-9, 0.2)
    data = [
        Trajectory(t, simulate(t, [1.0, 0.0], noise=0.02, seed=2), NAMES),
        Trajectory(t, simulate(t, [40.0, 0.0], noise=0.02, seed=3), NAMES),
    ]
    library = TermLibrary([sp.Symbol("x"), sp.Symbol("y"), sp.Symbol("x") ** 2], NAMES)
    start = np.array([[0.0, -4.0], [1.0, -0.3], [0.0, 2.0]])

    result = fit_trajectory_stage(library, start, np.ones_like(start, dtype=bool), data)

    assert result.rounds[0]["dropped_windows"] > 0
    assert "retrying with" in caplog.text
    assert "not finite" in caplog.text
    assert np.all(np.isfinite(result.coefficients))
    assert not result.active[2, 1]


def test_stage_skips_when_every_window_diverges():
    t = np.arange(0.0, 4.0 + 1e-9, 0.2)
    data = [Trajectory(t, simulate(t, [40.0, 0.0], noise=0.02, seed=4), NAMES)]
    library = TermLibrary([sp.Symbol("x"), sp.Symbol("y"), sp.Symbol("x") ** 2], NAMES)
    start = np.array([[0.0, -4.0], [1.0, -0.3], [0.0, 50.0]])

    result = fit_trajectory_stage(library, start, np.ones_like(start, dtype=bool), data)

    assert result.skipped_reason is not None
    assert "non-finite" in result.skipped_reason
    assert np.array_equal(result.coefficients, start)
    assert np.array_equal(result.active, np.ones_like(start, dtype=bool))


def test_stage_skips_clean_dense_data():
    t = np.arange(0.0, 10.0 + 1e-9, 0.01)
    data = [Trajectory(t, simulate(t, [2.0, 0.0], noise=0.0, seed=0), NAMES)]
    library = TermLibrary(polynomial_terms(NAMES, 1), NAMES)
    start = true_coefficients(library)

    result = fit_trajectory_stage(library, start, start != 0, data)

    assert result.skipped_reason is not None
    assert np.array_equal(result.coefficients, start)
    assert result.rounds == []


def test_stage_rejects_wrong_mask_shape():
    t = np.arange(0.0, 2.0, 0.1)
    data = [Trajectory(t, simulate(t, [2.0, 0.0], noise=0.0, seed=0), NAMES)]
    library = TermLibrary(polynomial_terms(NAMES, 1), NAMES)

    with pytest.raises(S2KANDynError, match="active mask has shape"):
        fit_trajectory_stage(library, np.zeros((3, 2)), np.ones((2, 2), dtype=bool), data)


def test_candidates_polynomial_neighbourhood():
    library = TermLibrary([sp.Symbol("x"), sp.Symbol("x") * sp.Symbol("y") ** 2], NAMES)
    active = np.array([[True, False], [False, False]])

    candidates, mask = candidate_library(library, active)

    assert sorted(str(term) for term in candidates.terms) == ["1", "x", "x**2", "x*y", "y", "y**2"]
    assert mask.shape == (6, 2)
    assert mask.all()


def test_candidates_degree_follows_kept_terms():
    x, y = sp.symbols("x y")
    library = TermLibrary([x, x * y**2], NAMES)
    active = np.array([[True, False], [False, True]])

    candidates, _ = candidate_library(library, active)

    assert len(candidates) == 10
    assert sp.Symbol("y", real=True) ** 3 in candidates.terms


def test_candidates_other_state_functions():
    theta, omega = sp.symbols("theta omega")
    library = TermLibrary([omega, sp.sin(theta), sp.cos(theta)], ["theta", "omega"])
    active = np.array([[True, False], [False, True], [False, False]])

    candidates, _ = candidate_library(library, active)
    names = [str(term) for term in candidates.terms]

    assert "sin(omega)" in names
    assert "sin(theta)" in names
    assert "cos(theta)" not in names


def test_candidates_reject_wrong_shape():
    library = TermLibrary(polynomial_terms(NAMES, 1), NAMES)

    with pytest.raises(S2KANDynError, match="expected \\(3, 2\\)"):
        candidate_library(library, np.ones((2, 2), dtype=bool))


def test_transfer_coefficients_by_term():
    library = TermLibrary([sp.Symbol("y"), sp.Symbol("x")], NAMES)
    candidates, _ = candidate_library(library, np.ones((2, 2), dtype=bool))

    moved = transfer_coefficients(library, np.array([[1.0, 2.0], [3.0, 4.0]]), candidates)

    names = [str(term) for term in candidates.terms]
    assert moved[names.index("y")].tolist() == [1.0, 2.0]
    assert moved[names.index("x")].tolist() == [3.0, 4.0]
    assert moved[names.index("1")].tolist() == [0.0, 0.0]


@pytest.mark.slow
def test_stage_lorenz_noisy_coarse():
    def lorenz(t, state):
        x, y, z = state
        return [10.0 * (y - x), x * (28.0 - z) - y, x * y - 8.0 / 3.0 * z]

    names = ["x", "y", "z"]
    t = np.arange(0.0, 10.0 + 1e-9, 0.05)
    clean = solve_ivp(lorenz, (0.0, 10.0), [-8.0, 8.0, 27.0], t_eval=t, rtol=1e-11, atol=1e-11,
                      method="DOP853").y.T
    noisy = clean + 0.05 * clean.std(axis=0) * np.random.default_rng(0).standard_normal(clean.shape)
    data = [Trajectory(t, noisy, names)]
    library = TermLibrary(polynomial_terms(names, 2), names)
    start = least_squares_start(library, data)

    result = fit_trajectory_stage(library, start, np.ones_like(start, dtype=bool), data,
                                  smoothed_states=[savgol_filter(noisy, 7, 3, axis=0)])

    truth = np.zeros_like(start)
    terms = [str(term) for term in library.terms]
    for term, j, value in [("x", 0, -10.0), ("y", 0, 10.0), ("x", 1, 28.0), ("y", 1, -1.0),
                           ("x*z", 1, -1.0), ("x*y", 2, 1.0), ("z", 2, -8.0 / 3.0)]:
        truth[terms.index(term), j] = value
    assert np.array_equal(result.active, truth != 0)
    assert np.linalg.norm(result.coefficients - truth) / np.linalg.norm(truth) < 0.05


def test_term_evaluator_matches_library():
    x, y = sp.symbols("x y")
    library = TermLibrary([1, x, x**2 * y, sp.sin(x), x * sp.exp(y), 2 * y], NAMES)
    states = np.random.default_rng(7).normal(size=(5, 2))
    evaluator = TermEvaluator(library)

    values, jacobian = evaluator.values_and_jacobian(torch.as_tensor(states))

    assert np.allclose(values.numpy(), library.evaluate(states), rtol=1e-13)
    h = 1e-6
    for j in range(2):
        step = np.zeros(2)
        step[j] = h
        difference = (library.evaluate(states + step) - library.evaluate(states - step)) / (2 * h)
        assert np.allclose(jacobian[:, :, j].numpy(), difference, rtol=1e-7, atol=1e-9), f"state {j}"
