"""Tests of the S2KAN layer: values, gradients, gates, bits and sympy twin."""

import math

import pytest
import sympy
import torch
from sympy.core.function import AppliedUndef

from s2kan_dyn.errors import S2KANDynError
from s2kan_dyn.model.layer import SPLINE_BITS, S2KANLayer
from s2kan_dyn.model.primitives import DEFAULT_PRIMITIVES, get_primitive


def make_layer(n_in=3, n_out=2, seed=0, **kwargs):
    layer = S2KANLayer(n_in, n_out, generator=torch.Generator().manual_seed(seed), **kwargs)
    with torch.no_grad():
        layer.bias.copy_(torch.linspace(-0.5, 0.5, n_out, dtype=torch.float64))
        layer.spline_coef.normal_(generator=torch.Generator().manual_seed(seed + 1))
    return layer


def inputs(n=7, n_in=3, seed=0):
    # Magnitudes in [0.2, 2.7), away from the clamps of 1/x, log and sqrt.
    g = torch.Generator().manual_seed(seed)
    magnitude = 0.2 + 2.5 * torch.rand(n, n_in, generator=g, dtype=torch.float64)
    sign = torch.where(torch.rand(n, n_in, generator=g) < 0.5, -1.0, 1.0).double()
    return magnitude * sign


def reference_forward(layer, x):
    """The layer formula with explicit loops over edges and terms."""
    z = layer.gate_values().detach()
    basis = layer.basis(x).detach()
    out = torch.zeros(x.shape[0], layer.n_out, dtype=torch.float64)
    for o in range(layer.n_out):
        out[:, o] += layer.bias[o].detach()
        for i in range(layer.n_in):
            for k, primitive in enumerate(layer.primitives):
                argument = x[:, i]
                if primitive.affine:
                    argument = layer.inner_a[o, i, k].detach() * x[:, i] + layer.inner_b[o, i, k].detach()
                out[:, o] += z[o, i, k] * layer.coef[o, i, k].detach() * primitive.torch_fn(argument)
            spline = basis[:, i, :] @ layer.spline_coef[o, i].detach()
            out[:, o] += z[o, i, layer.n_terms] * spline
    return out


def test_forward_shape_and_dtype():
    layer = make_layer()
    y = layer(inputs())
    assert y.shape == (7, 2)
    assert y.dtype == torch.float64


def test_forward_matches_loop_reference():
    layer = make_layer()
    layer.eval()
    x = inputs()
    assert torch.allclose(layer(x), reference_forward(layer, x), rtol=1e-12, atol=1e-12)


def test_forward_matches_reference_with_sampled_gates():
    layer = make_layer()
    layer.train()
    layer.gates.resample(torch.Generator().manual_seed(3))
    x = inputs()
    assert torch.allclose(layer(x), reference_forward(layer, x), rtol=1e-12, atol=1e-12)


def test_gradcheck_input_eval_mode():
    layer = make_layer()
    layer.eval()
    x = inputs(n=4).requires_grad_(True)
    assert torch.autograd.gradcheck(layer, (x,), eps=1e-6, atol=1e-6)


def test_gradcheck_parameters_sampled_gates():
    layer = make_layer(n_in=2, n_out=2)
    layer.train()
    layer.gates.resample(torch.Generator().manual_seed(5))
    x = inputs(n=4, n_in=2)
    names = ["coef", "inner_a", "inner_b", "spline_coef", "bias", "gates.log_alpha"]
    params = tuple(dict(layer.named_parameters())[n].detach().clone().requires_grad_(True) for n in names)

    def call(*values):
        return torch.func.functional_call(layer, dict(zip(names, values)), (x,))

    assert torch.autograd.gradcheck(call, params, eps=1e-6, atol=1e-6)


def test_closed_gates_give_zero_output_and_gradient():
    layer = make_layer()
    layer.gates.fix(torch.zeros_like(layer.gates.fixed))
    layer.train()
    x = inputs()
    y = layer(x)
    assert torch.equal(y, layer.bias.expand(7, 2))
    y.sum().backward()
    for name in ("coef", "inner_a", "inner_b", "spline_coef"):
        grad = getattr(layer, name).grad
        assert torch.count_nonzero(grad) == 0, name
    assert torch.count_nonzero(layer.gates.log_alpha.grad) == 0


def test_one_closed_term_inert():
    layer = make_layer()
    sin = layer.primitive_names.index("sin")
    mask = torch.full_like(layer.gates.fixed, float("nan"))
    mask[1, 2, sin] = 0.0
    mask[0, 1, layer.n_terms] = 0.0
    layer.gates.fix(mask)
    layer.train()
    x = inputs()
    before = layer(x).detach()
    with torch.no_grad():
        layer.coef[1, 2, sin] += 100.0
        layer.inner_a[1, 2, sin] += 3.0
        layer.spline_coef[0, 1] += 7.0
    assert torch.equal(layer(x).detach(), before)
    layer(x).sum().backward()
    assert layer.coef.grad[1, 2, sin].item() == 0.0
    assert layer.inner_a.grad[1, 2, sin].item() == 0.0
    assert layer.inner_b.grad[1, 2, sin].item() == 0.0
    assert torch.count_nonzero(layer.spline_coef.grad[0, 1]) == 0
    assert layer.coef.grad[0, 2, sin].item() != 0.0


def test_no_spline_option_holds_spline_closed():
    layer = make_layer(spline=False)
    assert torch.equal(layer.prob_open()[..., -1], torch.zeros(2, 3, dtype=torch.float64))
    assert not layer.open_terms()[..., -1].any()
    layer.eval()
    x = inputs()
    assert torch.allclose(layer(x), reference_forward(layer, x), rtol=1e-12, atol=1e-12)


def test_term_bits_values():
    layer = make_layer(primitives=("x", "sin"))
    bits = layer.term_bits(1024)
    assert bits.shape == (2, 3, 3)
    assert bits[0, 0, 0].item() == pytest.approx(get_primitive("x").bits + 5.0)
    assert bits[1, 2, 1].item() == pytest.approx(get_primitive("sin").bits + 15.0)
    assert bits[1, 1, 2].item() == pytest.approx(SPLINE_BITS + 5.0 * layer.basis.n_basis)


def test_term_bits_invalid_samples_raises():
    with pytest.raises(S2KANDynError, match="n_samples"):
        make_layer().term_bits(0)


def test_edge_sympy_matches_forward():
    layer = make_layer()
    layer.gates.fix(torch.where(
        torch.arange(layer.n_terms + 1) == layer.n_terms, 0.0, float("nan")
    ).expand_as(layer.gates.fixed).clone())
    with torch.no_grad():
        layer.gates.log_alpha.uniform_(-1.0, 3.0, generator=torch.Generator().manual_seed(2))
    layer.eval()
    symbols = sympy.symbols("u0:3")
    expressions = layer.edge_sympy(symbols)
    x = inputs()
    y = layer(x).detach()
    for o, expression in enumerate(expressions):
        function = sympy.lambdify(symbols, expression, "math")
        for row in range(x.shape[0]):
            assert function(*x[row].tolist()) == pytest.approx(y[row, o].item(), rel=1e-12, abs=1e-12)


def test_edge_sympy_closed_terms_absent():
    layer = make_layer(n_in=1, n_out=1, primitives=("x", "sin", "exp"))
    layer.gates.fix(torch.tensor([[[0.0, 1.0, 0.0, 0.0]]]))
    with torch.no_grad():
        layer.coef.copy_(torch.tensor([[[3.0, 0.5, 2.0]]]))
        layer.inner_a.fill_(2.0)
        layer.inner_b.fill_(0.25)
        layer.bias.fill_(-1.0)
    u = sympy.Symbol("u")
    (expression,) = layer.edge_sympy([u])
    # Float 2.0, as the layer writes it: sympy does not equate sin(2.0*u) and sin(2*u).
    assert sympy.expand(expression - (0.5 * sympy.sin(2.0 * u + 0.25) - 1)) == 0


def test_open_spline_is_dense_function():
    layer = make_layer(n_in=2, n_out=2, primitives=("x",))
    mask = torch.zeros_like(layer.gates.fixed)
    mask[1, 0, 1] = 1.0
    layer.gates.fix(mask)
    x0, x1 = sympy.symbols("x0 x1")
    expressions = layer.edge_sympy([x0, x1], layer_index=4)
    dense = [f for f in expressions[1].atoms(AppliedUndef)]
    assert len(dense) == 1
    assert dense[0].func.__name__ == "dense_l4_1_0"
    assert dense[0].args == (x0,)
    assert not expressions[0].atoms(AppliedUndef)


def test_wrong_input_shape_raises():
    with pytest.raises(S2KANDynError, match=r"expected \(batch, 3\)"):
        make_layer()(torch.zeros(4, 2, dtype=torch.float64))


def test_unknown_primitive_raises():
    with pytest.raises(S2KANDynError, match="unknown primitive"):
        S2KANLayer(2, 2, primitives=("x", "sinh"))


def test_duplicate_primitive_raises():
    with pytest.raises(S2KANDynError, match="duplicates"):
        S2KANLayer(2, 2, primitives=("x", "x"))


def test_update_grid_keeps_linear_spline():
    # A linear function is in the span of every cubic spline basis, so the
    # refit on the new grid reproduces it exactly. Its B-spline coefficients
    # are the function at the Greville abscissae (knot averages).
    layer = make_layer(primitives=("x",))
    knots = layer.basis.knots
    greville = torch.stack([knots[:, j + 1 : j + 4].mean(-1) for j in range(layer.basis.n_basis)], -1)
    with torch.no_grad():
        layer.spline_coef.copy_(0.7 * greville - 0.2)
    layer.eval()
    x = inputs(n=200) * 3.0
    before = layer(x).detach()
    layer.update_grid(x)
    assert layer.basis.upper.max().item() > 7.0
    assert torch.allclose(layer(x).detach(), before, rtol=1e-9, atol=1e-9)


def test_update_grid_approximates_curved_spline():
    layer = make_layer(primitives=("x",))
    layer.eval()
    x = inputs(n=200)
    before = layer(x).detach()
    layer.update_grid(x)
    error = (layer(x).detach() - before).pow(2).mean().sqrt()
    assert error.item() < 0.1 * before.pow(2).mean().sqrt().item()


def test_explicit_cpu_device():
    layer = S2KANLayer(3, 2, device="cpu")
    x = inputs().to("cpu")
    assert layer(x).device.type == "cpu"
    assert layer.gates.log_alpha.device.type == "cpu"
    assert layer.basis.knots.device.type == "cpu"
    # NOTE: CUDA runs are checked outside this suite; no test here needs a GPU.


def test_default_float64():
    layer = S2KANLayer(2, 2)
    for name, parameter in layer.named_parameters():
        assert parameter.dtype == torch.float64, name


def test_float32_option():
    layer = S2KANLayer(2, 2, dtype=torch.float32)
    y = layer(torch.ones(3, 2, dtype=torch.float32))
    assert y.dtype == torch.float32
    assert math.isfinite(y.sum().item())


def test_all_default_primitives_used():
    layer = make_layer()
    assert layer.primitive_names == DEFAULT_PRIMITIVES
    assert layer.coef.shape == (2, 3, len(DEFAULT_PRIMITIVES))
    assert layer.gates.log_alpha.shape == (2, 3, len(DEFAULT_PRIMITIVES) + 1)
