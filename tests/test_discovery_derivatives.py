"""Smoothed derivatives and the noise estimate."""

import numpy as np
import pytest

from s2kan_dyn.discovery.derivatives import (
    estimate_noise,
    estimate_noise_irregular,
    is_uniform,
    smoothed_derivative,
)
from s2kan_dyn.trajectory import Trajectory


def _waves(t):
    x = np.stack([np.sin(t), np.cos(2 * t)], axis=1)
    dxdt = np.stack([np.cos(t), -2 * np.sin(2 * t)], axis=1)
    return x, dxdt


def test_uniform_grid_detected():
    assert is_uniform(np.arange(0, 5, 0.1))
    assert not is_uniform(np.array([0.0, 0.1, 0.25, 0.3, 0.5]))


def test_noise_estimate_clean():
    x, _ = _waves(np.arange(0, 10, 0.01))
    assert np.all(estimate_noise(x) < 1e-9)


def test_noise_estimate_noisy():
    rng = np.random.default_rng(0)
    x, _ = _waves(np.arange(0, 10, 0.01))
    noise = estimate_noise(x + 0.05 * rng.standard_normal(x.shape))
    np.testing.assert_allclose(noise, 0.05, rtol=0.15)


def test_noise_estimate_irregular():
    rng = np.random.default_rng(1)
    t = np.sort(rng.uniform(0, 10, 1000))
    x, _ = _waves(t)
    np.testing.assert_allclose(estimate_noise_irregular(t, x + 0.05 * rng.standard_normal(x.shape)), 0.05, rtol=0.2)


def test_clean_uniform_derivative_exact():
    t = np.arange(0, 10, 0.01)
    x, dxdt = _waves(t)
    result = smoothed_derivative(Trajectory(t, x, ("a", "b")))
    assert result.method.startswith("savgol")
    assert np.max(np.abs(result.dxdt - dxdt)) < 1e-8
    assert np.all(result.derivative_noise < 1e-8)


def test_clean_truncation_error_bounds_error():
    # x' = -x^3 from 3.4: fast at the start, so the 8th-order difference at
    # dt = 10/511 is off by about 1e-4 of the derivative's RMS inside.
    t = np.linspace(0.0, 10.0, 512)
    x = (1.0 / np.sqrt(2.0 * t + 1.0 / 3.4**2))[:, None]
    result = smoothed_derivative(Trajectory(t, x, ("x",)))
    inside = result.interior()
    error = np.sqrt(np.mean((result.dxdt[inside] + x[inside] ** 3) ** 2))
    assert error > 0
    assert result.derivative_noise[0] >= error
    assert result.derivative_noise[0] < 100 * error


def test_interior_drops_one_sided_edges():
    t = np.arange(0, 10, 0.01)
    result = smoothed_derivative(Trajectory(t, _waves(t)[0], ("a", "b")))
    assert result.edge == 4
    assert result.interior() == slice(4, t.size - 4)


def test_interior_keeps_short_series_whole():
    t = np.arange(0, 0.6, 0.01)
    result = smoothed_derivative(Trajectory(t, _waves(t)[0], ("a", "b")))
    assert result.interior() == slice(0, t.size)


def test_noisy_uniform_derivative_smoothed():
    rng = np.random.default_rng(2)
    t = np.arange(0, 10, 0.01)
    x, dxdt = _waves(t)
    result = smoothed_derivative(Trajectory(t, x + 0.02 * rng.standard_normal(x.shape), ("a", "b")))
    rmse = np.sqrt(np.mean((result.dxdt - dxdt) ** 2, axis=0))
    # A plain central difference would leave about 0.02 * sqrt(2) / (2 * 0.01) = 1.4.
    assert np.all(rmse < 0.1)
    assert np.all(result.derivative_noise > 0)


def test_clean_irregular_derivative_spline():
    t = np.linspace(0, 10, 800) + np.random.default_rng(3).uniform(-0.004, 0.004, 800)
    x, dxdt = _waves(t)
    result = smoothed_derivative(Trajectory(t, x, ("a", "b")))
    assert result.method.startswith("interpolating spline")
    assert np.max(np.abs(result.dxdt - dxdt)) < 1e-6


@pytest.mark.parametrize("n", [5, 6, 9])
def test_short_series_derivative(n):
    t = np.arange(n) * 0.1
    x = np.stack([t**2, 3 * t], axis=1)
    result = smoothed_derivative(Trajectory(t, x, ("a", "b")))
    assert result.dxdt.shape == (n, 2)
    np.testing.assert_allclose(result.dxdt[:, 1], 3.0, atol=1e-8)
