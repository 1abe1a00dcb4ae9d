"""Tests of the MDL objective and of the gated fit."""

import math

import pytest
import torch

from s2kan_dyn.errors import S2KANDynError
from s2kan_dyn.model import GateSchedule, S2KAN, data_bits, fit_gated, mdl_loss

SHORT = GateSchedule(warmup=60, ramp=150, freeze=100, polish=60)


def uniform(n, d, seed, low=-2.0, high=2.0):
    g = torch.Generator().manual_seed(seed)
    return low + (high - low) * torch.rand(n, d, generator=g, dtype=torch.float64)


def test_data_bits_gaussian_code_length():
    target = torch.tensor([[1.0, 10.0], [-1.0, -10.0]], dtype=torch.float64)
    pred = target + torch.tensor([[0.5, 2.0], [-0.5, -2.0]], dtype=torch.float64)
    expected = 0.5 * math.log2(0.25) + 0.5 * math.log2(4.0)
    assert data_bits(pred, target).item() == pytest.approx(expected, abs=1e-9)


def test_data_bits_each_dimension_in_own_units():
    target = uniform(50, 2, 0)
    pred = target + 0.1 * uniform(50, 2, 1)
    stretch = torch.tensor([1.0, 1000.0], dtype=torch.float64)
    shift = data_bits(pred * stretch, target * stretch) - data_bits(pred, target)
    assert shift.item() == pytest.approx(math.log2(1000.0), rel=1e-12)


def test_data_bits_floor_keeps_perfect_fit_finite():
    target = uniform(10, 3, 2)
    assert math.isfinite(data_bits(target, target).item())


def test_data_bits_shape_mismatch_raises():
    with pytest.raises(S2KANDynError, match="differs"):
        data_bits(torch.zeros(4, 2), torch.zeros(4, 3))


def test_mdl_loss_combines_bits_per_sample():
    model = S2KAN([2, 1], seed=0)
    x = uniform(40, 2, 3)
    y = x[:, :1]
    pred = model(x)
    loss, fit, complexity = mdl_loss(model, pred, y, 2.0, 40)
    assert fit.item() == pytest.approx(data_bits(pred, y).item())
    assert complexity.item() == pytest.approx(model.model_bits(40).item())
    assert loss.item() == pytest.approx(fit.item() + 2.0 * complexity.item() / 40)


def test_fit_closes_irrelevant_input_and_recovers_linear_map():
    x = uniform(300, 3, 4)
    y = (1.5 * x[:, 0] - 0.5 * x[:, 1])[:, None]
    model = S2KAN([3, 1], seed=0)
    record = fit_gated(model, x, y, lam=1.0, schedule=SHORT, seed=0)
    open_terms = model.layers[0].open_terms()[0, :, 0].tolist()
    assert open_terms == [True, True, False]
    coefficients = model.to_sympy(["a", "b", "c"])[0].as_coefficients_dict()
    a, b = [c for c in coefficients if str(c) in ("a", "b")]
    assert float(coefficients[a]) == pytest.approx(1.5, rel=1e-8)
    assert float(coefficients[b]) == pytest.approx(-0.5, rel=1e-8)
    assert record.stage("polish").data_bits < -15
    assert not model.training


def test_fit_record_has_stages_in_order():
    x = uniform(100, 2, 5)
    model = S2KAN([2, 1], seed=0)
    record = fit_gated(model, x, x[:, :1] + x[:, 1:], schedule=GateSchedule(5, 5, 5, 5), seed=1)
    assert [s.name for s in record.stages] == ["warmup", "ramp", "freeze", "polish"]
    assert record.stage("ramp").steps == 5
    assert record.n_samples == 100
    assert all(s.seconds >= 0 for s in record.stages)


def test_fit_record_unknown_stage_raises():
    x = uniform(50, 1, 6)
    record = fit_gated(S2KAN([1, 1]), x, 2 * x, schedule=GateSchedule(2, 2, 2, 2))
    with pytest.raises(S2KANDynError, match="no stage 'ramps'"):
        record.stage("ramps")


def test_fit_keeps_user_fixed_gates():
    x = uniform(100, 2, 7)
    y = x[:, :1] * 2.0 + x[:, 1:]
    model = S2KAN([2, 1], seed=0)
    mask = torch.full_like(model.layers[0].gates.fixed, float("nan"))
    mask[0, 1, 0] = 0.0
    model.layers[0].gates.fix(mask)
    fit_gated(model, x, y, schedule=GateSchedule(10, 10, 10, 10), seed=0)
    assert not model.layers[0].open_terms()[0, 1, 0].item()
    model.unfreeze_gates()
    assert model.layers[0].gates.fixed[0, 1, 0].item() == 0.0
    assert math.isnan(model.layers[0].gates.fixed[0, 0, 0].item())


def test_fit_wrong_target_shape_raises():
    with pytest.raises(S2KANDynError, match="Y has shape"):
        fit_gated(S2KAN([2, 1]), uniform(10, 2, 0), uniform(10, 2, 1))


def test_fit_non_finite_data_raises():
    x = uniform(10, 2, 0)
    x[3, 1] = float("nan")
    with pytest.raises(S2KANDynError, match="NaN"):
        fit_gated(S2KAN([2, 1]), x, x[:, :1])


def test_fit_negative_lambda_raises():
    x = uniform(10, 2, 0)
    with pytest.raises(S2KANDynError, match="lam="):
        fit_gated(S2KAN([2, 1]), x, x[:, :1], lam=-1.0)


def test_schedule_negative_steps_raises():
    with pytest.raises(S2KANDynError, match="GateSchedule.ramp"):
        GateSchedule(ramp=-1)


def test_fit_product_and_sine():
    x = uniform(400, 2, 8)
    y = (x[:, 0] * x[:, 1] + 2.0 * torch.sin(x[:, 0]))[:, None]
    model = S2KAN([2, [2, 1], 1], seed=0)
    total_terms = sum(layer.open_terms().numel() for layer in model.layers)
    record = fit_gated(model, x, y, lam=1.0, schedule=SHORT, seed=0)
    warmup, polish = record.stage("warmup"), record.stage("polish")
    assert polish.data_bits < warmup.data_bits
    assert polish.data_bits < -5.0
    assert polish.open_terms < 0.5 * total_terms
    assert record.stage("freeze").model_bits < warmup.model_bits
    model.eval()
    assert data_bits(model(x), y).item() == pytest.approx(polish.data_bits, abs=1e-9)
