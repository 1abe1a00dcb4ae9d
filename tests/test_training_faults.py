"""Non-finite losses in training: rollback to the last finite loss with a smaller step."""

import logging
import math

import pytest
import torch

from s2kan_dyn.errors import FitError
from s2kan_dyn.model.network import S2KAN
from s2kan_dyn.model.rollback import ParameterRollback, restore, snapshot
from s2kan_dyn.model.train import GateSchedule, fit_gated


def _loss(w):
    # (w - 3)^2, but NaN outside |w| <= 10, like a primitive past its pole.
    value = (w - 3.0) ** 2
    return torch.where(w.abs() <= 10.0, value, torch.full_like(value, math.nan)).sum()


def test_rollback_recovers_with_smaller_step(caplog):
    w = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.SGD([w], lr=3.0)
    rollback = ParameterRollback([w], optimizer, "unit")
    with caplog.at_level(logging.WARNING, logger="s2kan_dyn.model.rollback"):
        for step in range(200):
            optimizer.zero_grad()
            loss = _loss(w)
            if not rollback.check(loss, step):
                continue
            loss.backward()
            optimizer.step()
    assert rollback.rollbacks >= 1
    assert abs(w.item() - 3.0) < 1e-6
    assert optimizer.param_groups[0]["lr"] < 3.0
    assert "rolled back to the last finite loss" in caplog.text


def test_rollback_restores_last_finite_parameters():
    w = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.SGD([w], lr=1.0)
    rollback = ParameterRollback([w], optimizer, "unit")
    assert rollback.check(_loss(w), 0)
    with torch.no_grad():
        w.fill_(50.0)
    assert not rollback.check(_loss(w), 1)
    assert w.item() == 1.0
    assert optimizer.param_groups[0]["lr"] == 0.5


def test_rollback_limit_raises():
    w = torch.tensor([50.0], dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.SGD([w], lr=1.0)
    rollback = ParameterRollback([w], optimizer, "unit", max_rollbacks=2)
    assert not rollback.check(_loss(w), 0)
    assert not rollback.check(_loss(w), 1)
    with pytest.raises(FitError, match="after 2 rollbacks"):
        rollback.check(_loss(w), 2)


def test_snapshot_restore_round_trip():
    w = torch.arange(3.0, requires_grad=True)
    saved = snapshot([w])
    with torch.no_grad():
        w.mul_(7.0)
    restore([w], saved)
    assert torch.equal(w.detach(), torch.arange(3.0))


def test_fit_gated_survives_overflowing_step(caplog):
    generator = torch.Generator().manual_seed(0)
    X = torch.rand(200, 1, generator=generator, dtype=torch.float64) * 4 - 2
    Y = 2 * X
    model = S2KAN([1, 1], primitives=("x",), spline=False, seed=0)
    with caplog.at_level(logging.WARNING, logger="s2kan_dyn.model.rollback"):
        # lr=1e160 moves a coefficient so far that the squared error overflows to inf.
        record = fit_gated(model, X, Y, schedule=GateSchedule(20, 10, 10, 20), lr=1e160, seed=0, scale=False)
    assert "rolled back" in caplog.text
    assert all(math.isfinite(stage.loss) for stage in record.stages)
    assert record.stage("polish").data_bits < -20
