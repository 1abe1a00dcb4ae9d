"""Tests of the systems catalog: definitions, vector fields, simulation, noise, errors."""

from __future__ import annotations

import numpy as np
import pytest
import sympy

import systems
from s2kan_dyn.errors import DataError, S2KANDynError, UnknownNameError
from systems import SimulationError

REQUIRED = (
    "lorenz", "pendulum", "lotka_volterra", "van_der_pol", "duffing", "rossler", "hopf",
    "cubic_oscillator", "linear_oscillator", "chen", "halvorsen", "lorenz96", "double_pendulum",
)


def _double_pendulum(s):
    # Solve the Euler-Lagrange equations M @ (alpha1, alpha2) = f for each state.
    th1, th2, w1, w2 = s.T
    g, m1, m2, l1, l2 = 9.81, 1.0, 1.0, 1.0, 1.0
    d = th1 - th2
    mass = np.empty((len(s), 2, 2))
    mass[:, 0, 0] = (m1 + m2) * l1
    mass[:, 0, 1] = m2 * l2 * np.cos(d)
    mass[:, 1, 0] = l1 * np.cos(d)
    mass[:, 1, 1] = l2
    force = np.stack(
        [-m2 * l2 * w2**2 * np.sin(d) - (m1 + m2) * g * np.sin(th1), l1 * w1**2 * np.sin(d) - g * np.sin(th2)],
        axis=-1,
    )
    alpha = np.linalg.solve(mass, force[..., None])[..., 0]
    return np.stack([w1, w2, alpha[:, 0], alpha[:, 1]], axis=-1)


def _lorenz96(s, forcing=8.0):
    return (np.roll(s, -1, axis=1) - np.roll(s, 2, axis=1)) * np.roll(s, 1, axis=1) - s + forcing


# Textbook right-hand sides at the default parameters, written without sympy.
HAND_WRITTEN = {
    "lorenz": lambda s: np.stack(
        [10 * (s[:, 1] - s[:, 0]), s[:, 0] * (28 - s[:, 2]) - s[:, 1], s[:, 0] * s[:, 1] - 8 / 3 * s[:, 2]], -1
    ),
    "rossler": lambda s: np.stack(
        [-s[:, 1] - s[:, 2], s[:, 0] + 0.2 * s[:, 1], 0.2 + s[:, 2] * (s[:, 0] - 5.7)], -1
    ),
    "chen": lambda s: np.stack(
        [35 * (s[:, 1] - s[:, 0]), -7 * s[:, 0] - s[:, 0] * s[:, 2] + 28 * s[:, 1], s[:, 0] * s[:, 1] - 3 * s[:, 2]], -1
    ),
    "halvorsen": lambda s: np.stack(
        [-1.4 * s[:, i] - 4 * s[:, (i + 1) % 3] - 4 * s[:, (i + 2) % 3] - s[:, (i + 1) % 3] ** 2 for i in range(3)], -1
    ),
    "thomas": lambda s: np.stack([np.sin(s[:, (i + 1) % 3]) - 0.208186 * s[:, i] for i in range(3)], -1),
    "lorenz96": _lorenz96,
    "double_pendulum": _double_pendulum,
    "pendulum": lambda s: np.stack([s[:, 1], -9.81 * np.sin(s[:, 0]) - 0.1 * s[:, 1]], -1),
    "van_der_pol": lambda s: np.stack([s[:, 1], (1 - s[:, 0] ** 2) * s[:, 1] - s[:, 0]], -1),
    "duffing": lambda s: np.stack([s[:, 1], -0.1 * s[:, 1] + s[:, 0] - s[:, 0] ** 3], -1),
    "hopf": lambda s: np.stack(
        [
            s[:, 0] - s[:, 1] - s[:, 0] * (s[:, 0] ** 2 + s[:, 1] ** 2),
            s[:, 0] + s[:, 1] - s[:, 1] * (s[:, 0] ** 2 + s[:, 1] ** 2),
        ],
        -1,
    ),
    "cubic_oscillator": lambda s: np.stack(
        [-0.1 * s[:, 0] ** 3 + 2 * s[:, 1] ** 3, -2 * s[:, 0] ** 3 - 0.1 * s[:, 1] ** 3], -1
    ),
    "linear_oscillator": lambda s: np.stack([-0.1 * s[:, 0] + 2 * s[:, 1], -2 * s[:, 0] - 0.1 * s[:, 1]], -1),
    "fitzhugh_nagumo": lambda s: np.stack(
        [s[:, 0] - s[:, 0] ** 3 / 3 - s[:, 1] + 0.5, (s[:, 0] + 0.7 - 0.8 * s[:, 1]) / 12.5], -1
    ),
    "lotka_volterra": lambda s: np.stack(
        [1.1 * s[:, 0] - 0.4 * s[:, 0] * s[:, 1], 0.1 * s[:, 0] * s[:, 1] - 0.4 * s[:, 1]], -1
    ),
    "rosenzweig_macarthur": lambda s: np.stack(
        [
            s[:, 0] * (1 - s[:, 0] / 10) - s[:, 0] * s[:, 1] / (1 + 0.5 * s[:, 0]),
            0.5 * s[:, 0] * s[:, 1] / (1 + 0.5 * s[:, 0]) - 0.2 * s[:, 1],
        ],
        -1,
    ),
    "sir": lambda s: np.stack(
        [-0.5 * s[:, 0] * s[:, 1], 0.5 * s[:, 0] * s[:, 1] - 0.1 * s[:, 1], 0.1 * s[:, 1]], -1
    ),
    "selkov": lambda s: np.stack(
        [-s[:, 0] + 0.08 * s[:, 1] + s[:, 0] ** 2 * s[:, 1], 0.6 - 0.08 * s[:, 1] - s[:, 0] ** 2 * s[:, 1]], -1
    ),
    "brusselator": lambda s: np.stack(
        [1 - 4 * s[:, 0] + s[:, 0] ** 2 * s[:, 1], 3 * s[:, 0] - s[:, 0] ** 2 * s[:, 1]], -1
    ),
    "michaelis_menten": lambda s: -s / (0.5 + s),
}


def test_catalog_size_and_required_names():
    names = systems.names()
    assert len(names) >= 15
    for name in REQUIRED:
        assert name in names


def test_catalog_every_system_hand_checked():
    assert sorted(HAND_WRITTEN) == systems.names()


@pytest.mark.parametrize("name", systems.names())
def test_defaults_simulate_finite(name):
    system = systems.get(name)
    [traj] = system.simulate()
    n = int(np.floor(system.t_end / system.dt * (1 + 1e-12))) + 1
    assert traj.x.shape == (n, system.dimension)
    assert np.all(np.isfinite(traj.x))
    assert traj.source == name
    assert traj.state_names == system.state_names
    np.testing.assert_allclose(traj.x[0], system.x0)
    np.testing.assert_allclose(np.diff(traj.t), system.dt, rtol=1e-12)
    # A few thousand samples at most keep default fits fast.
    assert n <= 3000


@pytest.mark.parametrize("name", systems.names())
def test_rhs_matches_hand_written(name):
    system = systems.get(name)
    rng = np.random.default_rng(1)
    states = rng.uniform(0.2, 3.0, size=(50, system.dimension)) * rng.choice([-1, 1], size=(50, system.dimension))
    if name in ("michaelis_menten",):
        states = np.abs(states)
    expected = HAND_WRITTEN[name](states)
    np.testing.assert_allclose(system.rhs_numpy(states), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(system.rhs_numpy(states[0]), expected[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["lorenz", "double_pendulum", "michaelis_menten", "lorenz96"])
def test_jacobian_matches_finite_differences(name):
    system = systems.get(name)
    state = np.linspace(0.3, 1.7, system.dimension)
    step = 1e-6
    columns = [
        (system.rhs_numpy(state + step * e) - system.rhs_numpy(state - step * e)) / (2 * step)
        for e in np.eye(system.dimension)
    ]
    np.testing.assert_allclose(system.jacobian_numpy(state), np.stack(columns, -1), rtol=1e-6, atol=1e-7)
    assert system.jacobian_numpy(state[None]).shape == (1, system.dimension, system.dimension)


def test_rhs_rejects_wrong_width():
    with pytest.raises(DataError, match="do not match the 3 states"):
        systems.get("lorenz").rhs_numpy(np.ones((4, 2)))


def test_equations_lorenz_exact():
    x, y, z = sympy.symbols("x y z")
    equations = systems.get("lorenz").equations()
    assert list(equations) == ["x", "y", "z"]
    assert sympy.expand(equations["x"] - 10 * (y - x)) == 0
    assert sympy.expand(equations["y"] - (x * (28 - z) - y)) == 0
    assert sympy.expand(equations["z"] - (x * y - sympy.Rational(8, 3) * z)) == 0


def test_rhs_symbols_named_like_states_and_parameters():
    system = systems.get("lorenz")
    names = {str(s) for e in system.rhs for s in e.free_symbols}
    assert names == {"x", "y", "z", "sigma", "rho", "beta"}


def test_parameter_override_changes_equations():
    system = systems.get("lorenz", rho=35)
    x, z = sympy.symbols("x z")
    assert system.parameters["rho"] == 35
    assert sympy.expand(system.equations()["y"]).as_coefficients_dict()[x] == 35
    assert system.equations()["y"].has(z)


def test_parameter_override_drops_lyapunov():
    assert systems.get("lorenz", rho=35).lyapunov_exponent is None
    assert systems.get("lorenz", rho=28).lyapunov_exponent == pytest.approx(0.906)
    assert systems.get("lorenz", rho=28.0, beta=8 / 3).lyapunov_exponent == pytest.approx(0.906)


def test_unknown_parameter_names_valid_ones():
    with pytest.raises(S2KANDynError) as info:
        systems.get("lorenz", rhoo=3)
    assert "rhoo" in str(info.value)
    assert "sigma" in str(info.value)
    assert "rho" in str(info.value)


def test_parameter_non_numeric_rejected():
    with pytest.raises(S2KANDynError, match="finite real number"):
        systems.get("pendulum", g="9.81")


def test_unknown_system_suggests_closest():
    with pytest.raises(UnknownNameError) as info:
        systems.get("lorenzz")
    assert "Did you mean 'lorenz'?" in str(info.value)


def test_unknown_system_is_value_error():
    with pytest.raises(ValueError):
        systems.get("no_such_system")


def test_lorenz96_dimension_parameter():
    system = systems.get("lorenz96", n=8)
    assert system.dimension == 8
    assert system.state_names[-1] == "x8"
    np.testing.assert_allclose(system.rhs_numpy(np.ones((2, 8)) * 3), _lorenz96(np.ones((2, 8)) * 3))


def test_lorenz96_small_n_rejected():
    with pytest.raises(S2KANDynError, match="integer >= 4"):
        systems.get("lorenz96", n=3)


def test_kind_labels():
    assert systems.get("lorenz").kind == "polynomial"
    assert systems.get("pendulum").kind == "trigonometric"
    assert systems.get("thomas").kind == "trigonometric"
    assert systems.get("michaelis_menten").kind == "rational"
    assert systems.get("rosenzweig_macarthur").kind == "rational"
    for name in systems.names():
        assert systems.get(name).kind in systems.KINDS


def test_double_pendulum_trig_and_rational():
    classes = systems.get("double_pendulum").term_classes
    assert "trigonometric" in classes
    assert "rational" in classes


def test_lyapunov_time_chaotic_only():
    assert systems.get("lorenz").lyapunov_time == pytest.approx(1 / 0.906)
    assert systems.get("van_der_pol").lyapunov_time is None
    for name in systems.names():
        system = systems.get(name)
        if system.lyapunov_exponent is not None:
            assert system.lyapunov_source


def test_table_row_fields():
    row = systems.get("pendulum").table_row()
    assert row["name"] == "pendulum"
    assert row["dimension"] == "2"
    assert row["kind"] == "trigonometric"
    assert "sin(theta)" in row["equations"]
    assert "Strogatz" in row["source"]


def test_simulate_first_trajectory_from_x0():
    system = systems.get("van_der_pol")
    trajs = system.simulate(t_end=1.0, x0=[1.0, -1.0], n_trajectories=3, seed=4)
    assert len(trajs) == 3
    np.testing.assert_allclose(trajs[0].x[0], [1.0, -1.0])
    np.testing.assert_allclose(trajs[1].x[0], system.sample_initial_conditions(2, seed=4)[0])
    np.testing.assert_allclose(trajs[2].x[0], system.sample_initial_conditions(2, seed=4)[1])


def test_initial_conditions_inside_box():
    system = systems.get("pendulum")
    starts = system.sample_initial_conditions(200, seed=0)
    low, high = np.array(system.initial_box).T
    assert starts.shape == (200, 2)
    assert np.all(starts >= low)
    assert np.all(starts <= high)


def test_initial_conditions_on_attractor():
    starts = systems.get("lorenz").sample_initial_conditions(50, seed=2)
    assert starts.shape == (50, 3)
    # The Lorenz attractor lies within |x|, |y| < 30 and 0 < z < 55.
    assert np.all(np.abs(starts[:, :2]) < 30)
    assert np.all((starts[:, 2] > 0) & (starts[:, 2] < 55))
    assert len(np.unique(starts[:, 0])) == 50


def test_initial_conditions_seeded():
    system = systems.get("lorenz")
    np.testing.assert_array_equal(system.sample_initial_conditions(3, 7), system.sample_initial_conditions(3, 7))
    assert not np.array_equal(system.sample_initial_conditions(3, 7), system.sample_initial_conditions(3, 8))


def test_noise_std_matches_level():
    system = systems.get("linear_oscillator")
    kwargs = dict(t_end=50.0, n_trajectories=2, seed=3)
    clean = system.simulate(**kwargs)
    noisy = system.simulate(noise=0.2, **kwargs)
    clean_x = np.concatenate([tr.x for tr in clean])
    residual = np.concatenate([tr.x for tr in noisy]) - clean_x
    # 10002 samples per state: the sample std is within about 0.7% (one sigma) of the true one.
    np.testing.assert_allclose(residual.std(axis=0), 0.2 * clean_x.std(axis=0), rtol=0.03)
    np.testing.assert_allclose(residual.mean(axis=0), 0.0, atol=0.01 * clean_x.std(axis=0).max())


def test_noise_seeded():
    system = systems.get("hopf")
    first = system.simulate(t_end=1.0, noise=0.1, seed=5)[0].x
    again = system.simulate(t_end=1.0, noise=0.1, seed=5)[0].x
    other = system.simulate(t_end=1.0, noise=0.1, seed=6)[0].x
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_lsoda_agrees_with_dop853():
    system = systems.get("lorenz")
    [reference] = system.simulate(t_end=1.0)
    [lsoda] = system.simulate(t_end=1.0, method="LSODA")
    np.testing.assert_allclose(lsoda.x, reference.x, rtol=1e-6, atol=1e-6)


def test_time_grid_includes_t_end():
    # 0.5 / 0.1 is 4.999... in floating point; the grid must still end at 0.5.
    [traj] = systems.get("hopf").simulate(t_end=0.5, dt=0.1)
    np.testing.assert_allclose(traj.t, [0.0, 0.1, 0.2, 0.3, 0.4, 0.5], rtol=0, atol=1e-15)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"noise": -0.1}, "noise=-0.1 is invalid"),
        ({"noise": float("nan")}, "noise=nan is invalid"),
        ({"dt": 0.0}, "dt=0.0 is invalid"),
        ({"dt": -0.01}, "dt=-0.01 is invalid"),
        ({"t_end": 0.005}, "shorter than dt"),
        ({"t_end": 0.02}, "fewer than the minimum"),
        ({"x0": [1.0, 2.0]}, "x0 has 2 values"),
        ({"x0": [1.0, float("inf"), 2.0]}, "NaN or inf"),
        ({"n_trajectories": 0}, "n_trajectories=0 is invalid"),
        ({"n_trajectories": 1.5}, "n_trajectories=1.5 is invalid"),
        ({"seed": -1}, "seed=-1 is invalid"),
    ],
)
def test_simulate_bad_argument(kwargs, message):
    with pytest.raises(DataError, match=message.replace("(", r"\(")):
        systems.get("lorenz").simulate(**kwargs)


def test_simulate_unknown_method_suggests():
    with pytest.raises(UnknownNameError, match="Did you mean 'RK45'"):
        systems.get("lorenz").simulate(t_end=1.0, method="RK5")


def test_simulate_divergence_reported():
    # A softening spring (alpha=1, beta=-1) sends x to infinity in finite time from x=3.
    system = systems.get("duffing", alpha=1, beta=-1)
    with pytest.raises(SimulationError, match="diverged") as info:
        system.simulate(x0=[3.0, 0.0])
    assert "t=" in str(info.value)


def test_simulate_too_many_samples_rejected():
    with pytest.raises(DataError, match="more than the maximum"):
        systems.get("lorenz").simulate(dt=1e-9)
