"""Tests of the S2KAN network: widths, multiplication nodes, scaling, bits, read-out."""

import pytest
import sympy
import torch
from sympy.core.function import AppliedUndef

from s2kan_dyn.errors import S2KANDynError
from s2kan_dyn.model.network import S2KAN, parse_widths

X, Y, Z = sympy.symbols("x y z")


def lorenz_like(x_scale=(2.0, 4.0, 0.5), y_scale=(8.0, 0.25, 2.0)):
    """A [3, [3, 2], 3] network set by hand to a Lorenz-like vector field.

    Hidden nodes (scaled units): x, y, z + 0.5 sin(4x + 0.25), x*z, x*y.
    Outputs: 10 (y - x), 28 x - x z - y, x y - 2.5 (z + 0.5 sin(4x + 0.25)).
    """
    model = S2KAN([3, [3, 2], 3], primitives=("x", "sin"), seed=0)
    first, second = model.layers
    mask0 = torch.zeros_like(first.gates.fixed)
    coef0 = torch.zeros_like(first.coef)
    # Sub-nodes 0-2 are the sums, 3-4 and 5-6 the factors of the two products.
    for sub_node, source in ((0, 0), (1, 1), (2, 2), (3, 0), (4, 2), (5, 0), (6, 1)):
        mask0[sub_node, source, 0] = 1.0
        coef0[sub_node, source, 0] = 1.0
    mask0[2, 0, 1] = 1.0
    coef0[2, 0, 1] = 0.5
    mask1 = torch.zeros_like(second.gates.fixed)
    coef1 = torch.zeros_like(second.coef)
    for out, node, value in (
        (0, 1, 10.0), (0, 0, -10.0),
        (1, 0, 28.0), (1, 3, -1.0), (1, 1, -1.0),
        (2, 4, 1.0), (2, 2, -2.5),
    ):
        mask1[out, node, 0] = 1.0
        coef1[out, node, 0] = value
    with torch.no_grad():
        first.coef.copy_(coef0)
        first.inner_a[2, 0, 1] = 4.0
        first.inner_b[2, 0, 1] = 0.25
        first.bias.zero_()
        second.coef.copy_(coef1)
        second.bias.zero_()
    first.gates.fix(mask0)
    second.gates.fix(mask1)
    model.set_scaling(torch.tensor(x_scale, dtype=torch.float64), torch.tensor(y_scale, dtype=torch.float64))
    model.eval()
    return model


def evaluate(expressions, points):
    functions = [sympy.lambdify((X, Y, Z), e, "math") for e in expressions]
    return torch.tensor([[f(*row) for f in functions] for row in points.tolist()], dtype=torch.float64)


def sample_points(n=6, seed=0):
    return torch.randn(n, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def test_parse_widths_mult_nodes():
    assert parse_widths([3, [3, 3], 3]) == [(3, 0), (3, 3), (3, 0)]


@pytest.mark.parametrize("widths", [[3], [[2, 1], 3], [3, [0, 0], 2], [3, -1, 2], [3, "a", 2], [3, [1, 2, 3], 1]])
def test_parse_widths_invalid_raises(widths):
    with pytest.raises(S2KANDynError, match="width"):
        parse_widths(widths)


def test_layer_sizes_with_mult_nodes():
    model = S2KAN([3, [3, 3], 3])
    assert [(layer.n_in, layer.n_out) for layer in model.layers] == [(3, 9), (6, 3)]
    assert model.n_in == 3
    assert model.n_out == 3


def test_output_layer_linear_without_spline():
    model = S2KAN([2, 4, 1])
    assert model.layers[-1].primitive_names == ("x",)
    assert not model.layers[-1].has_spline
    assert model.layers[0].has_spline


def test_mult_nodes_multiply_sub_node_pairs():
    model = S2KAN([2, [1, 2], 1], seed=3)
    model.eval()
    x = sample_points()[:, :2]
    sub = model.layers[0](x)
    expected_nodes = torch.stack([sub[:, 0], sub[:, 1] * sub[:, 2], sub[:, 3] * sub[:, 4]], dim=1)
    assert torch.allclose(model(x), model.layers[1](expected_nodes), rtol=1e-14, atol=1e-14)


def test_to_sympy_lorenz_like_exact():
    model = lorenz_like()
    got = model.to_sympy(["x", "y", "z"])
    expected = [
        20 * Y - 40 * X,
        3.5 * X - 0.25 * X * Z - Y / 16,
        X * Y / 4 - 10 * Z - 2.5 * sympy.sin(2.0 * X + 0.25),
    ]
    for g, e in zip(got, expected):
        assert sympy.expand(g - e) == 0


def test_to_sympy_lorenz_like_matches_forward():
    model = lorenz_like()
    points = sample_points()
    expressions = model.to_sympy(["x", "y", "z"])
    assert torch.allclose(evaluate(expressions, points), model(points).detach(), rtol=1e-12, atol=1e-12)


def test_to_sympy_undoes_non_dyadic_scaling():
    model = lorenz_like(x_scale=(3.7, 0.31, 1.9), y_scale=(0.9, 7.3, 2.2))
    expressions = model.to_sympy([X, Y, Z])
    points = sample_points(seed=4)
    assert torch.allclose(evaluate(expressions, points), model(points).detach(), rtol=1e-12, atol=1e-12)
    coefficients = sympy.expand(expressions[1]).as_coefficients_dict()
    assert float(coefficients[X * Z]) == pytest.approx(-7.3 / (3.7 * 1.9), rel=1e-14)
    assert float(coefficients[X]) == pytest.approx(7.3 * 28 / 3.7, rel=1e-14)


def test_to_sympy_keeps_open_spline_dense():
    model = lorenz_like()
    mask = model.layers[0].gates.fixed.clone()
    mask[2, 1, 2] = 1.0
    model.layers[0].gates.fix(mask)
    expressions = model.to_sympy(["x", "y", "z"])
    dense = expressions[2].atoms(AppliedUndef)
    assert {f.func.__name__ for f in dense} == {"dense_l0_2_1"}
    assert [f.args for f in dense] == [(0.25 * Y,)]
    assert not expressions[0].atoms(AppliedUndef)
    assert model.dense_edges() == [(0, 2, 1)]


def test_to_sympy_wrong_name_count_raises():
    with pytest.raises(S2KANDynError, match="expected 3"):
        lorenz_like().to_sympy(["x", "y"])


def test_n_open_terms_counts_fixed_masks():
    assert lorenz_like().n_open_terms() == 8 + 7


def test_dense_edges_none_when_closed():
    assert lorenz_like().dense_edges() == []


def test_model_bits_is_expected_description_length():
    model = S2KAN([2, [2, 1], 1], seed=0)
    expected = sum((layer.prob_open() * layer.term_bits(500)).sum() for layer in model.layers)
    bits = model.model_bits(500)
    assert bits.item() == pytest.approx(expected.item(), rel=1e-14)
    bits.backward()
    assert (model.layers[0].gates.log_alpha.grad > 0).all()


def test_model_bits_zero_when_all_closed():
    model = S2KAN([2, 2, 1])
    for layer in model.layers:
        layer.gates.fix(torch.zeros_like(layer.gates.fixed))
    assert model.model_bits(100).item() == 0.0
    assert model.n_open_terms() == 0


def test_prob_open_per_layer_shapes():
    model = S2KAN([3, [3, 3], 3])
    shapes = [tuple(p.shape) for p in model.prob_open()]
    assert shapes == [(9, 3, 12), (3, 6, 2)]


def test_freeze_and_unfreeze():
    model = S2KAN([2, 2, 1], seed=0)
    with torch.no_grad():
        model.layers[0].gates.log_alpha[0, 0, :] = -1.0
    model.freeze_gates()
    model.train()
    model.resample_gates()
    assert model.layers[0].gates()[0, 0].max().item() == 0.0
    assert model.layers[0].gates()[1, 0].min().item() == 1.0
    model.unfreeze_gates()
    assert torch.isnan(model.layers[0].gates.fixed).all()


def test_set_scaling_wrong_shape_raises():
    with pytest.raises(S2KANDynError, match="x_scale has shape"):
        S2KAN([3, 1]).set_scaling(torch.ones(2), torch.ones(1))


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_set_scaling_invalid_value_raises(bad):
    with pytest.raises(S2KANDynError, match="positive and finite"):
        S2KAN([2, 1]).set_scaling(torch.tensor([1.0, bad]), torch.ones(1))


def test_set_scaling_from_data_uses_rms():
    model = S2KAN([2, 1])
    x = torch.tensor([[3.0, 1.0], [-4.0, 1.0]], dtype=torch.float64)
    y = torch.tensor([[6.0], [8.0]], dtype=torch.float64)
    model.set_scaling_from_data(x, y)
    assert model.x_scale.tolist() == pytest.approx([(12.5) ** 0.5, 1.0])
    assert model.y_scale.tolist() == pytest.approx([50.0**0.5])


def test_scaling_applied_in_forward():
    model = S2KAN([2, [2, 1], 1], seed=1)
    model.eval()
    x = sample_points()[:, :2]
    base = model(x).detach()
    model.set_scaling(torch.tensor([2.0, 0.5]), torch.tensor([3.0]))
    scaled = model(x * torch.tensor([2.0, 0.5], dtype=torch.float64)).detach()
    assert torch.allclose(scaled, 3.0 * base, rtol=1e-13, atol=1e-13)


def test_seed_reproducible():
    first = S2KAN([2, [2, 1], 1], seed=7)
    second = S2KAN([2, [2, 1], 1], seed=7)
    third = S2KAN([2, [2, 1], 1], seed=8)
    assert torch.equal(first.layers[0].coef, second.layers[0].coef)
    assert not torch.equal(first.layers[0].coef, third.layers[0].coef)


def test_explicit_cpu_device():
    model = S2KAN([3, [3, 3], 3], device="cpu", seed=0)
    assert model(sample_points()).device.type == "cpu"
    assert all(b.device.type == "cpu" for b in model.buffers())
    # NOTE: CUDA runs are checked outside this suite; no test here needs a GPU.


def test_forward_wrong_shape_raises():
    with pytest.raises(S2KANDynError, match=r"expected \(batch, 3\)"):
        S2KAN([3, 1])(torch.zeros(4, 2, dtype=torch.float64))


def test_config_rebuilds_same_shapes():
    model = S2KAN([3, [3, 3], 3], primitives=("x", "sin"), grid_size=4)
    rebuilt = S2KAN(**model.config)
    assert [tuple(p.shape) for p in rebuilt.parameters()] == [tuple(p.shape) for p in model.parameters()]


def test_to_sympy_cap_raises_before_expanding():
    model = S2KAN([3, [3, 3], 3], seed=0)
    model.eval()
    with pytest.raises(S2KANDynError, match="max_terms=100"):
        model.to_sympy(["x", "y", "z"], max_terms=100)


def test_to_sympy_deep_network_all_open_capped():
    model = S2KAN([2, [2, 2], [2, 1], 1], seed=0)
    model.eval()
    with pytest.raises(S2KANDynError, match="close more gates"):
        model.to_sympy(["x", "y"])


def test_to_sympy_deep_network_sparse():
    model = S2KAN([2, [1, 1], 1, 1], primitives=("x", "sin"), seed=0)
    for layer in model.layers:
        mask = torch.zeros_like(layer.gates.fixed)
        mask[..., 0] = 1.0
        layer.gates.fix(mask)
    mask = model.layers[1].gates.fixed.clone()
    mask[0, 1, 1] = 1.0
    model.layers[1].gates.fix(mask)
    model.eval()
    x = torch.randn(5, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    expression = model.to_sympy([X, Y])[0]
    function = sympy.lambdify((X, Y), expression, "math")
    got = torch.tensor([function(*row) for row in x.tolist()], dtype=torch.float64)
    assert expression.has(sympy.sin)
    assert torch.allclose(got, model(x).detach()[:, 0], rtol=1e-12, atol=1e-12)


def test_set_scaling_from_data_zero_column(caplog):
    model = S2KAN([2, 1])
    x = torch.tensor([[3.0, 0.0], [-4.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([[6.0], [8.0]], dtype=torch.float64)
    with caplog.at_level("WARNING"):
        model.set_scaling_from_data(x, y)
    assert model.x_scale[1].item() == 1.0
    assert "input columns [1]" in caplog.text


def test_update_grids_cover_scaled_inputs():
    model = S2KAN([2, [2, 1], 1], seed=0)
    x = 10.0 * torch.randn(200, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    model.set_scaling(torch.tensor([5.0, 20.0], dtype=torch.float64), torch.ones(1, dtype=torch.float64))
    model.update_grids(x)
    scaled = x / model.x_scale
    assert (model.layers[0].basis.lower <= scaled.min(0).values).all()
    assert (model.layers[0].basis.upper >= scaled.max(0).values).all()
    assert model.layers[0].basis.upper[0].item() < 1.2 * scaled[:, 0].max().item()


def test_gradcheck_network_with_products():
    model = S2KAN([2, [1, 1], 1], primitives=("x", "x^2", "sin", "tanh"), seed=2)
    model.set_scaling(torch.tensor([1.5, 0.7], dtype=torch.float64), torch.tensor([2.0], dtype=torch.float64))
    model.eval()
    x = torch.randn(5, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    assert torch.autograd.gradcheck(model, (x.requires_grad_(True),), eps=1e-6, atol=1e-6)
