"""Tests of the primitive registry and of each primitive's torch and sympy twins."""

import math

import pytest
import sympy
import torch

from s2kan_dyn.errors import S2KANDynError, UnknownNameError
from s2kan_dyn.model import primitives as prim
from s2kan_dyn.model.primitives import (
    DEFAULT_PRIMITIVES,
    PRIMITIVES,
    Primitive,
    get_primitive,
    register_primitive,
)

REQUIRED = ("x", "x^2", "x^3", "x^4", "sin", "exp", "tanh", "1/x", "log", "sqrt", "gaussian")


def test_defaults_contain_required_names():
    for name in REQUIRED:
        assert name in DEFAULT_PRIMITIVES


def test_defaults_ordered_cheapest_first():
    bits = [PRIMITIVES[name].bits for name in DEFAULT_PRIMITIVES]
    assert bits == sorted(bits)
    assert DEFAULT_PRIMITIVES[0] == "x"


def test_affine_flags():
    for name in ("sin", "exp", "tanh", "gaussian"):
        assert PRIMITIVES[name].affine
    for name in ("x", "x^2", "x^3", "x^4", "1/x", "log", "sqrt"):
        assert not PRIMITIVES[name].affine


def test_bits_satisfy_kraft_inequality():
    assert sum(2.0 ** -PRIMITIVES[name].bits for name in DEFAULT_PRIMITIVES) < 1.0


def test_get_unknown_name_suggests_closest():
    with pytest.raises(UnknownNameError) as caught:
        get_primitive("sinn")
    assert "'sin'" in str(caught.value)


@pytest.mark.parametrize("name", REQUIRED)
def test_torch_matches_sympy_away_from_clamps(name):
    primitive = get_primitive(name)
    values = torch.tensor([-2.5, -1.3, -0.4, 0.3, 0.9, 2.2], dtype=torch.float64)
    symbol = sympy.Symbol("u")
    function = sympy.lambdify(symbol, primitive.sympy_fn(symbol), "math")
    for value in values.tolist():
        expected = function(value)
        got = primitive.torch_fn(torch.tensor(value, dtype=torch.float64)).item()
        assert got == pytest.approx(expected, rel=1e-13, abs=1e-13)


@pytest.mark.parametrize("name", REQUIRED)
def test_values_and_gradients_finite_at_extremes(name):
    primitive = get_primitive(name)
    x = torch.tensor([0.0, 1e-12, -1e-12, 50.0, -50.0, 1e3], dtype=torch.float64)
    x.requires_grad_(True)
    y = primitive.torch_fn(x)
    y.sum().backward()
    assert torch.isfinite(y).all()
    assert torch.isfinite(x.grad).all()


def test_reciprocal_continuous_at_threshold():
    eps = prim.RECIPROCAL_EPS
    below = prim._reciprocal(torch.tensor(eps * (1 - 1e-12), dtype=torch.float64)).item()
    above = prim._reciprocal(torch.tensor(eps * (1 + 1e-12), dtype=torch.float64)).item()
    assert below == pytest.approx(1 / eps, rel=1e-9)
    assert above == pytest.approx(1 / eps, rel=1e-9)


def test_register_custom_primitive():
    custom = Primitive(
        "test_cosh_unit", torch.cosh, sympy.cosh, 7.0, True, "hyperbolic cosine for a test"
    )
    try:
        register_primitive(custom)
        assert get_primitive("test_cosh_unit") is custom
        assert "test_cosh_unit" not in DEFAULT_PRIMITIVES
    finally:
        PRIMITIVES.pop("test_cosh_unit", None)


def test_register_duplicate_raises():
    with pytest.raises(S2KANDynError, match="already registered"):
        register_primitive(PRIMITIVES["sin"])


def test_register_replace_allowed():
    original = PRIMITIVES["sin"]
    try:
        assert register_primitive(original, replace=True) is original
    finally:
        PRIMITIVES["sin"] = original


@pytest.mark.parametrize("bits", [0.0, -1.0, math.inf, math.nan])
def test_register_invalid_bits_raises(bits):
    bad = Primitive("test_bad_bits", torch.sin, sympy.sin, bits, True, "invalid")
    with pytest.raises(S2KANDynError, match="bits"):
        register_primitive(bad)
    assert "test_bad_bits" not in PRIMITIVES
