"""Tests of the hard-concrete gates."""

import math

import pytest
import torch

from s2kan_dyn.errors import S2KANDynError
from s2kan_dyn.model.gates import HardConcreteGate


def make_gate(shape=(4, 3, 5), log_alpha=None):
    gate = HardConcreteGate(shape)
    if log_alpha is not None:
        with torch.no_grad():
            gate.log_alpha.copy_(log_alpha)
    return gate


def test_prob_open_in_unit_interval():
    values = torch.linspace(-30.0, 30.0, 61, dtype=torch.float64)
    gate = make_gate((61,), values)
    p = gate.prob_open()
    assert (p >= 0).all()
    assert (p <= 1).all()
    assert (p[1:] >= p[:-1]).all()


def test_prob_open_matches_paper_formula():
    gate = make_gate((1,), torch.tensor([0.7], dtype=torch.float64))
    expected = 1 / (1 + math.exp(-(0.7 - (2 / 3) * math.log(0.1 / 1.1))))
    assert gate.prob_open().item() == pytest.approx(expected, rel=1e-14)


def test_prob_open_differentiable():
    gate = make_gate()
    gate.prob_open().sum().backward()
    assert (gate.log_alpha.grad > 0).all()


def test_prob_open_matches_sample_frequency():
    gate = make_gate((20000,), torch.full((20000,), 0.3, dtype=torch.float64))
    gate.train()
    torch.manual_seed(0)
    frequency = (gate.sample() > 0).double().mean().item()
    assert frequency == pytest.approx(gate.prob_open()[0].item(), abs=0.02)


def test_samples_reach_exactly_zero_and_one():
    gate = make_gate((10000,), torch.zeros(10000, dtype=torch.float64))
    gate.train()
    torch.manual_seed(1)
    z = gate.sample()
    assert (z == 0.0).any()
    assert (z == 1.0).any()
    assert ((z > 0) & (z < 1)).any()
    assert (z >= 0).all()
    assert (z <= 1).all()


def test_noise_held_between_resamples():
    gate = make_gate((1000,), torch.zeros(1000, dtype=torch.float64))
    gate.train()
    first = gate.sample()
    assert torch.equal(gate(), first)
    gate.resample()
    assert not torch.equal(gate(), first)


def test_stochastic_gradient_reaches_log_alpha():
    gate = make_gate((1000,), torch.zeros(1000, dtype=torch.float64))
    gate.train()
    z = gate.sample()
    z.sum().backward()
    middle = (z > 0) & (z < 1)
    assert (gate.log_alpha.grad[middle] > 0).all()
    assert (gate.log_alpha.grad[~middle] == 0).all()


def test_eval_is_deterministic():
    gate = make_gate((5,), torch.tensor([-5.0, -0.5, 0.0, 0.5, 5.0], dtype=torch.float64))
    gate.eval()
    first = gate.sample()
    second = gate.sample()
    assert torch.equal(first, second)
    assert first[0].item() == 0.0
    assert first[-1].item() == 1.0
    assert first[2].item() == pytest.approx(0.5)


def test_fix_overrides_sampling():
    gate = make_gate((3,), torch.zeros(3, dtype=torch.float64))
    gate.fix(torch.tensor([0.0, 1.0, float("nan")]))
    gate.train()
    for _ in range(20):
        z = gate.sample()
        assert z[0].item() == 0.0
        assert z[1].item() == 1.0
    assert gate.prob_open()[0].item() == 0.0
    assert gate.prob_open()[1].item() == 1.0


def test_fixed_gate_blocks_gradient():
    gate = make_gate((2,), torch.zeros(2, dtype=torch.float64))
    gate.fix(torch.tensor([0.0, float("nan")]))
    gate.train()
    (gate.sample().sum() + gate.prob_open().sum()).backward()
    assert gate.log_alpha.grad[0].item() == 0.0
    assert gate.log_alpha.grad[1].item() != 0.0


def test_unfix_frees_gates():
    gate = make_gate((2,), torch.full((2,), 5.0, dtype=torch.float64))
    gate.fix(torch.tensor([0.0, 0.0]))
    gate.unfix()
    gate.eval()
    assert torch.equal(gate(), torch.ones(2, dtype=torch.float64))


def test_freeze_by_log_alpha_sign():
    gate = make_gate((4,), torch.tensor([-1.0, 1.0, -1.0, 1.0], dtype=torch.float64))
    gate.fix(torch.tensor([float("nan"), float("nan"), 1.0, 0.0]))
    gate.freeze()
    assert gate.fixed.tolist() == [0.0, 1.0, 1.0, 0.0]
    gate.unfreeze()
    assert gate.fixed[2].item() == 1.0
    assert math.isnan(gate.fixed[0].item())


def test_fix_rejects_wrong_shape():
    gate = make_gate((2, 2))
    with pytest.raises(S2KANDynError, match="shape"):
        gate.fix(torch.ones(3))


def test_fix_rejects_fractional_values():
    gate = make_gate((2,))
    with pytest.raises(S2KANDynError, match="0, 1 or NaN"):
        gate.fix(torch.tensor([0.5, 1.0]))


def test_invalid_constants_raise():
    with pytest.raises(S2KANDynError, match="gamma"):
        HardConcreteGate((2,), gamma=0.1)
