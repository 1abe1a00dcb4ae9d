import time

import numpy as np
import pytest
import sympy
from scipy.integrate import solve_ivp

from s2kan_dyn.errors import S2KANDynError, UnknownNameError
from s2kan_dyn.rollout import default_bound, equations_to_numpy, rollout

x, y, z = sympy.symbols("x y z")
LORENZ = {"x": 10 * (y - x), "y": x * (28 - z) - y, "z": x * y - sympy.Rational(8, 3) * z}


def test_numpy_field_shapes():
    f = equations_to_numpy(LORENZ, ["x", "y", "z"])
    single = f(np.array([1.0, 2.0, 3.0]))
    many = f(np.ones((5, 3)))
    assert single.shape == (3,)
    assert many.shape == (5, 3)
    assert np.allclose(single, [10.0, 1 * (28 - 3) - 2, 2 - 8.0])


def test_numpy_field_constant_equation():
    f = equations_to_numpy({"x": sympy.Integer(3), "y": x}, ["x", "y"])
    out = f(np.array([[1.0, 5.0], [2.0, 6.0]]))
    assert np.array_equal(out, [[3.0, 1.0], [3.0, 2.0]])


def test_numpy_field_ignores_assumptions():
    xr = sympy.Symbol("x", real=True)
    f = equations_to_numpy({"x": -xr}, ["x"])
    assert f(np.array([2.0]))[0] == -2.0


def test_numpy_field_unknown_symbol():
    with pytest.raises(S2KANDynError, match="'a'"):
        equations_to_numpy({"x": sympy.Symbol("a") * x}, ["x"])


def test_numpy_field_missing_state():
    with pytest.raises(S2KANDynError, match=r"\['y'\]"):
        equations_to_numpy({"x": x}, ["x", "y"])


def test_rollout_matches_solve_ivp():
    f = equations_to_numpy(LORENZ, ["x", "y", "z"])
    t = np.arange(0, 500) * 0.01
    out = rollout(f, [1.0, 1.0, 1.0], t)
    ref = solve_ivp(lambda _, s: f(s), (t[0], t[-1]), [1.0, 1.0, 1.0], method="DOP853",
                    rtol=1e-10, atol=1e-12, t_eval=t)
    assert out.status == "ok"
    assert out.diverged_at is None
    assert out.x.shape == (500, 3)
    assert np.max(np.abs(out.x - ref.y.T)) < 1e-6


def test_blowup_stops_near_singularity():
    f = equations_to_numpy({"x": x**2}, ["x"])
    start = time.perf_counter()
    out = rollout(f, [1.0], np.linspace(0.0, 2.0, 201))
    elapsed = time.perf_counter() - start
    assert out.status == "diverged"
    assert abs(out.diverged_at - 1.0) < 2e-3
    assert out.t[-1] < out.diverged_at
    assert out.t.shape[0] == out.x.shape[0]
    assert np.all(np.isfinite(out.x))
    assert elapsed < 1.0


def test_blowup_explicit_bound():
    f = equations_to_numpy({"x": x**2}, ["x"])
    out = rollout(f, [1.0], np.linspace(0.0, 2.0, 21), bound=10.0)
    # x(t) = 1 / (1 - t) reaches 10 at t = 0.9.
    assert out.status == "diverged"
    assert abs(out.diverged_at - 0.9) < 1e-6


def test_initial_state_beyond_bound():
    f = equations_to_numpy({"x": -x}, ["x"])
    out = rollout(f, [5.0], np.linspace(0.0, 1.0, 11), bound=1.0)
    assert out.status == "diverged"
    assert out.t.size == 0


def test_step_limit_on_stiff_field():
    f = equations_to_numpy({"x": -1e6 * (x - sympy.cos(y)), "y": sympy.Integer(1)}, ["x", "y"])
    out = rollout(f, [0.0, 0.0], np.linspace(0.0, 100.0, 11), max_steps=200)
    assert out.status == "max_steps"
    assert out.n_steps == 200
    assert out.t.shape[0] == out.x.shape[0]


def test_nan_at_start_fails_fast():
    f = equations_to_numpy({"x": sympy.sqrt(x - 1)}, ["x"])
    start = time.perf_counter()
    out = rollout(f, [0.5], np.linspace(0.0, 1.0, 11))
    assert out.status == "failed"
    assert "not finite" in out.message
    assert time.perf_counter() - start < 1.0


def test_nan_midway_does_not_warn(recwarn):
    f = equations_to_numpy({"x": -sympy.sqrt(x - 1)}, ["x"])
    out = rollout(f, [1.5], np.linspace(0.0, 3.0, 31))
    assert out.status in ("ok", "failed")
    assert len(recwarn) == 0


def test_stiff_method_by_name():
    f = equations_to_numpy({"x": -1e4 * (x - 1)}, ["x"])
    out = rollout(f, [0.0], np.linspace(0.0, 1.0, 11), method="Radau")
    assert out.status == "ok"
    assert abs(out.x[-1, 0] - 1.0) < 1e-8


def test_unknown_method():
    f = equations_to_numpy({"x": -x}, ["x"])
    with pytest.raises(UnknownNameError, match="DOP853"):
        rollout(f, [1.0], [0.0, 1.0], method="DOP85")


def test_default_bound_floor():
    assert default_bound([0.001, 0.0]) == 1e3
    assert default_bound([[-50.0, 2.0], [3.0, 4.0]]) == 5e4
