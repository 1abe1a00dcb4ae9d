"""The self-check: vector fields of equations and network compared on the data, rollouts as information."""

import logging

import numpy as np
import pytest
import sympy as sp
import torch

import systems
from s2kan_dyn.discovery.selfcheck import check_readout, field_comparison

X, Y, Z = sp.symbols("x y z")
LORENZ = {"x": 10 * (Y - X), "y": X * (28 - Z) - Y, "z": X * Y - sp.Rational(8, 3) * Z}


class LorenzField(torch.nn.Module):
    """Lorenz's vector field with learnable sigma, rho and beta: a stand-in for a fitted network."""

    def __init__(self, rho: float = 28.0):
        super().__init__()
        self.theta = torch.nn.Parameter(torch.tensor([10.0, rho, 8.0 / 3.0], dtype=torch.float64))

    def forward(self, state):
        x, y, z = state.unbind(-1)
        sigma, rho, beta = self.theta
        return torch.stack([sigma * (y - x), x * (rho - z) - y, x * y - beta * z], dim=-1)


@pytest.fixture(scope="module")
def noisy():
    return systems.get("lorenz").simulate(t_end=10.0, noise=0.05, seed=1)


@pytest.fixture(scope="module")
def clean():
    return systems.get("lorenz").simulate(t_end=10.0)


def test_chaotic_noisy_fit_faithful(noisy, caplog):
    """A 0.4 % change of rho: the rollouts part within the horizon, yet the fields agree within the noise."""
    with caplog.at_level(logging.INFO, logger="s2kan_dyn.discovery.selfcheck"):
        check = check_readout(LorenzField(rho=28.1), LORENZ, noisy, compared="trajectory-stage refit")
    assert check["faithful"]
    assert check["agreement_time"] < check["horizon"]
    assert max(check["field_difference"]) < min(check["network_residual"])
    assert not any(record.levelno >= logging.WARNING for record in caplog.records)
    assert "self-check of the trajectory-stage refit" in caplog.text
    assert f"agree for {check['agreement_time']:.3g} of" in caplog.text


def test_dropped_term_unfaithful(clean, caplog):
    """Equations without y's -y term differ from the exact field by far more than its residual."""
    dropped = {**LORENZ, "y": X * (28 - Z)}
    with caplog.at_level(logging.INFO, logger="s2kan_dyn.discovery.selfcheck"):
        check = check_readout(LorenzField(), dropped, clean, compared="derivative-stage read-out")
    assert not check["faithful"]
    assert check["field_difference"][1] > check["tolerance"][1]
    assert check["field_difference"][0] <= check["tolerance"][0]
    assert check["equation_residual"][1] > check["network_residual"][1]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "derivative-stage read-out" in warnings[0].getMessage()
    assert "(y)" in warnings[0].getMessage()
    assert "(x)" not in warnings[0].getMessage()


def test_report_keeps_keys(clean):
    check = check_readout(LorenzField(), LORENZ, clean)
    for key in ("agreement_time", "agreement_min", "horizon", "n_starts", "short"):
        assert key in check
    for key in ("field_difference", "network_residual", "equation_residual", "tolerance"):
        assert len(check[key]) == 3
    assert check["compared"] == "read-out equations"
    assert check["faithful"]
    assert not check["short"]


def test_field_comparison_given_derivatives():
    """Exact derivatives: the network's residual is zero, so only round-off separates equal fields."""
    states = np.random.default_rng(0).normal(size=(200, 3)) * 5
    exact = LorenzField()(torch.as_tensor(states)).detach().numpy()
    same = field_comparison(LorenzField(), LORENZ, ["x", "y", "z"], states, exact)
    assert same["faithful"]
    assert max(same["network_residual"]) < 1e-12
    shifted = {**LORENZ, "y": X * (sp.Float(28.001) - Z) - Y}
    off = field_comparison(LorenzField(), shifted, ["x", "y", "z"], states, exact)
    assert not off["faithful"]
    assert off["field_difference"][1] > 1e-6
