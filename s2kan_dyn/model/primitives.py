"""Registry of symbolic primitives that an S2KAN edge can choose from.

Each :class:`Primitive` pairs a torch function with its sympy twin and a
description length in bits. The bits are the code length of choosing the
primitive from the dictionary: ``-log2`` of a prior that favours the
functions most common in physical laws. The default bits satisfy Kraft's
inequality with room left for the spline term and for user primitives.

Functions with a pole or a fast growth are kept finite the way pykan does
it: near the pole they are replaced by a bounded continuation, and large
arguments are clamped. The sympy twin is the exact function, so the two
agree wherever the torch function is not clamped (the thresholds are given
in each description).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import sympy
import torch
from torch import Tensor

from ..errors import S2KANDynError, UnknownNameError

logger = logging.getLogger(__name__)

# Below this magnitude 1/x continues linearly (x / eps^2), so |1/x| <= 100.
RECIPROCAL_EPS = 1e-2
# log|x| and sqrt|x| take max(|x|, eps): log >= -9.2, d sqrt/dx <= 50.
LOG_EPS = 1e-4
SQRT_EPS = 1e-4
# exp(u) takes min(u, 30) so that exp stays below 1.1e13 in float64.
EXP_MAX = 30.0


@dataclass(frozen=True)
class Primitive:
    """One symbolic function an edge can use.

    Attributes:
        name: registry key, for example ``"x^2"``.
        torch_fn: elementwise function on a tensor of any shape, kept finite.
        sympy_fn: the same function on a sympy expression.
        bits: description length of choosing this primitive, in bits.
        affine: True when the edge learns an inner map ``a*x + b`` before the
            function (needed by ``sin``, ``exp``, ``tanh``, ``gaussian``);
            False for functions used on the RMS-scaled input directly.
        description: the function and how it is kept finite.
    """

    name: str
    torch_fn: Callable[[Tensor], Tensor]
    sympy_fn: Callable[[sympy.Expr], sympy.Expr]
    bits: float
    affine: bool
    description: str


def _reciprocal(x: Tensor) -> Tensor:
    small = x.abs() < RECIPROCAL_EPS
    # The safe denominator keeps the unused branch of torch.where finite, so
    # its gradient is not NaN.
    safe = torch.where(small, torch.ones_like(x), x)
    return torch.where(small, x / RECIPROCAL_EPS**2, 1.0 / safe)


def _log_abs(x: Tensor) -> Tensor:
    return torch.log(x.abs().clamp(min=LOG_EPS))


def _sqrt_abs(x: Tensor) -> Tensor:
    return torch.sqrt(x.abs().clamp(min=SQRT_EPS))


def _exp(x: Tensor) -> Tensor:
    return torch.exp(x.clamp(max=EXP_MAX))


def _gaussian(x: Tensor) -> Tensor:
    return torch.exp(-x * x)


PRIMITIVES: dict[str, Primitive] = {}


def register_primitive(primitive: Primitive, *, replace: bool = False) -> Primitive:
    """Add ``primitive`` to :data:`PRIMITIVES` under its name and return it.

    Raises:
        S2KANDynError: the name is taken (pass ``replace=True`` to overwrite
            it) or ``bits`` is not a positive finite number.
    """
    if primitive.name in PRIMITIVES and not replace:
        raise S2KANDynError(
            f"primitive {primitive.name!r} is already registered; "
            "choose another name or pass replace=True"
        )
    if not (primitive.bits > 0 and primitive.bits < float("inf")):
        raise S2KANDynError(
            f"primitive {primitive.name!r} has bits={primitive.bits}; "
            "give a positive finite description length"
        )
    PRIMITIVES[primitive.name] = primitive
    logger.debug("registered primitive %r (%.1f bits)", primitive.name, primitive.bits)
    return primitive


def is_power(name: str) -> bool:
    """Return whether the primitive ``name`` is ``x`` or a power ``x^k``."""
    return name == "x" or name.startswith("x^")


def get_primitive(name: str) -> Primitive:
    """Return the registered primitive called ``name``.

    Raises:
        UnknownNameError: no primitive has that name; the message lists the
            registered ones and the closest match.
    """
    try:
        return PRIMITIVES[name]
    except KeyError:
        raise UnknownNameError("primitive", name, list(PRIMITIVES)) from None


for _primitive in (
    Primitive("x", lambda x: x, lambda x: x, 2.0, False, "identity x"),
    Primitive("x^2", lambda x: x * x, lambda x: x**2, 3.0, False, "square x^2"),
    Primitive("x^3", lambda x: x**3, lambda x: x**3, 4.0, False, "cube x^3"),
    Primitive("sin", torch.sin, sympy.sin, 4.0, True, "sine sin(a*x + b)"),
    Primitive("x^4", lambda x: x**4, lambda x: x**4, 5.0, False, "fourth power x^4"),
    Primitive("tanh", torch.tanh, sympy.tanh, 5.0, True, "hyperbolic tangent tanh(a*x + b)"),
    Primitive(
        "exp", _exp, sympy.exp, 5.0, True,
        f"exponential exp(a*x + b), argument clamped at {EXP_MAX:g}",
    ),
    Primitive(
        "1/x", _reciprocal, lambda x: 1 / x, 5.0, False,
        f"reciprocal 1/x, continued linearly as x/eps^2 for |x| < eps = {RECIPROCAL_EPS:g}",
    ),
    Primitive(
        "gaussian", _gaussian, lambda x: sympy.exp(-(x**2)), 6.0, True,
        "gaussian bump exp(-(a*x + b)^2)",
    ),
    Primitive(
        "log", _log_abs, lambda x: sympy.log(sympy.Abs(x)), 6.0, False,
        f"log|x|, with |x| raised to at least {LOG_EPS:g}",
    ),
    Primitive(
        "sqrt", _sqrt_abs, lambda x: sympy.sqrt(sympy.Abs(x)), 6.0, False,
        f"sqrt|x|, with |x| raised to at least {SQRT_EPS:g}",
    ),
):
    register_primitive(_primitive)
del _primitive

# Ordered cheapest first, so that a dictionary opened in order of cost is a
# prefix of this tuple.
DEFAULT_PRIMITIVES: tuple[str, ...] = tuple(
    sorted(PRIMITIVES, key=lambda name: PRIMITIVES[name].bits)
)
