"""Tests of the B-spline basis with linear extension."""

import pytest
import torch

from s2kan_dyn.errors import S2KANDynError
from s2kan_dyn.model.spline import BSplineBasis


def test_partition_of_unity_inside_range():
    basis = BSplineBasis(2, grid_size=5, order=3)
    x = torch.linspace(-2.0, 2.0, 101, dtype=torch.float64)[:, None].expand(-1, 2)
    values = basis(x)
    assert values.shape == (101, 2, 8)
    assert torch.allclose(values.sum(-1), torch.ones(101, 2, dtype=torch.float64), atol=1e-14)
    assert (values >= -1e-15).all()


def test_linear_outside_range():
    basis = BSplineBasis(1)
    x = torch.tensor([[3.0], [4.0], [5.0], [-3.0], [-4.0], [-5.0]], dtype=torch.float64)
    values = basis(x)
    right = values[2] - 2 * values[1] + values[0]
    left = values[5] - 2 * values[4] + values[3]
    assert torch.allclose(right, torch.zeros_like(right), atol=1e-13)
    assert torch.allclose(left, torch.zeros_like(left), atol=1e-13)


def test_continuous_at_range_ends():
    basis = BSplineBasis(1)
    for end in (2.0, -2.0):
        x = torch.tensor([[end - 1e-9], [end + 1e-9]], dtype=torch.float64)
        values = basis(x)
        assert torch.allclose(values[0], values[1], atol=1e-8)


def test_first_derivative_continuous_at_end():
    basis = BSplineBasis(1)
    coef = torch.randn(basis.n_basis, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    h = 1e-6
    points = torch.tensor([[2.0 - 2 * h], [2.0 - h], [2.0 + h], [2.0 + 2 * h]], dtype=torch.float64)
    spline = basis(points)[:, 0, :] @ coef
    slope_in = (spline[1] - spline[0]) / h
    slope_out = (spline[3] - spline[2]) / h
    assert slope_in.item() == pytest.approx(slope_out.item(), rel=1e-4, abs=1e-6)


def test_update_grid_covers_data():
    basis = BSplineBasis(2)
    x = torch.stack(
        [torch.linspace(-10.0, 30.0, 50), torch.linspace(0.5, 0.7, 50)], dim=1
    ).double()
    basis.update_grid(x)
    assert (basis.lower <= x.min(0).values).all()
    assert (basis.upper >= x.max(0).values).all()
    assert basis.lower[0].item() == pytest.approx(-10.4)
    assert basis.upper[1].item() == pytest.approx(0.702)


def test_update_grid_constant_input_gets_unit_range():
    basis = BSplineBasis(1)
    basis.update_grid(torch.full((10, 1), 3.0, dtype=torch.float64))
    assert basis.upper.item() - basis.lower.item() == pytest.approx(1.0)


def test_wrong_shape_raises():
    basis = BSplineBasis(2)
    with pytest.raises(S2KANDynError, match="expected"):
        basis(torch.zeros(5, 3, dtype=torch.float64))


def test_invalid_grid_size_raises():
    with pytest.raises(S2KANDynError, match="grid_size"):
        BSplineBasis(1, grid_size=0)


def test_matches_scipy_design_matrix():
    from scipy.interpolate import BSpline

    basis = BSplineBasis(2, grid_size=4, order=3)
    basis.set_range(torch.tensor([-1.0, 0.0]), torch.tensor([3.0, 0.5]))
    g = torch.Generator().manual_seed(0)
    x = torch.stack([-1 + 4 * torch.rand(60, generator=g), 0.5 * torch.rand(60, generator=g)], 1).double()
    values = basis(x)
    for i in range(2):
        knots = basis.knots[i].numpy()
        expected = BSpline.design_matrix(x[:, i].numpy(), knots, 3).toarray()
        assert torch.allclose(values[:, i, :], torch.from_numpy(expected), atol=1e-13)


@pytest.mark.parametrize("order", [0, 1, 2, 4])
def test_other_orders_match_scipy(order):
    from scipy.interpolate import BSpline

    basis = BSplineBasis(1, grid_size=3, order=order)
    x = torch.linspace(-1.99, 1.99, 41, dtype=torch.float64)[:, None]
    expected = BSpline.design_matrix(x[:, 0].numpy(), basis.knots[0].numpy(), order).toarray()
    assert torch.allclose(basis(x)[:, 0, :], torch.from_numpy(expected), atol=1e-13)


def test_gradcheck_inside_and_outside():
    basis = BSplineBasis(2)
    x = torch.tensor([[-3.1, 0.3], [1.7, 2.6], [0.05, -1.2]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(basis, (x,), eps=1e-6, atol=1e-7)
