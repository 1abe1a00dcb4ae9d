"""Sympy expressions as JSON trees that can be read back without ``eval``.

``sympy.sympify`` and ``parse_expr`` evaluate Python code, so a model file
that stored equations as strings could run code when loaded. Here an
expression becomes a tree of plain JSON objects, and only the node types in
:data:`FUNCTIONS` plus ``Add``, ``Mul``, ``Pow``, ``Symbol``, ``Integer``,
``Rational``, ``Float``, ``pi`` and ``E`` are accepted. Any other node
raises :class:`~s2kan_dyn.errors.ModelFileError` in both directions.

Node layout::

    {"type": "Add" | "Mul" | "Pow" | <function>, "args": [node, ...]}
    {"type": "Symbol", "name": "x", "real": true}
    {"type": "Integer", "value": "-3"}
    {"type": "Rational", "p": "1", "q": "3"}
    {"type": "Float", "value": "1.0999999999837073", "precision": 53}
    {"type": "pi"} | {"type": "E"}
    {"type": "dense", "name": "dense_l0_1_2", "args": [node]}

Integers and float digits are strings so that no JSON reader rounds them.
A float keeps every bit: its value is written with enough digits for its
binary precision to round-trip, and is read back at that precision.
"""

from __future__ import annotations

import re
from typing import Any

import mpmath.libmp as mlib
import sympy as sp
from sympy.core.function import AppliedUndef

from .errors import ModelFileError

# Elementary functions a model can emit, by the name written in the file.
FUNCTIONS: dict[str, Any] = {
    "sin": sp.sin,
    "cos": sp.cos,
    "exp": sp.exp,
    "log": sp.log,
    "tanh": sp.tanh,
    "sqrt": sp.sqrt,  # sympy writes sqrt(x) as Pow(x, 1/2); kept for files that name it
    "Abs": sp.Abs,
}
# Undefined functions standing for an open spline edge, named by the S2KAN
# layer as dense_l{layer}_{out}_{in}.
DENSE_NAME = re.compile(r"dense_l\d+_\d+_\d+")
# Deeper trees than this are rejected, so that a crafted file cannot exhaust
# the recursion limit; read-out equations are a few levels deep.
MAX_DEPTH = 64
# Caps on the digits of an integer or a float, against crafted files whose
# numbers would take minutes to parse.
MAX_DIGITS = 4000
# Largest numeric exponent of a power; fitted models use single digits.
MAX_EXPONENT = 64
MAX_PRECISION = 4096


def to_json(expr: sp.Basic) -> dict[str, Any]:
    """Convert a sympy expression into a JSON-serialisable tree.

    Raises:
        ModelFileError: the expression contains a node outside the whitelist
            (for example ``sinh``, a matrix or an imaginary unit).
    """
    return _encode(sp.sympify(expr), 0)


def from_json(tree: Any) -> sp.Expr:
    """Rebuild a sympy expression from a tree written by :func:`to_json`.

    Nothing is evaluated as code: every node is checked against the
    whitelist and built with sympy constructors.

    Raises:
        ModelFileError: a node is malformed, too deep, or of a type outside
            the whitelist.
    """
    return _decode(tree, 0)


def equations_to_json(equations: dict[str, sp.Expr]) -> dict[str, dict[str, Any]]:
    """Convert ``{state name: expression}`` into ``{state name: tree}``."""
    return {str(name): to_json(expr) for name, expr in equations.items()}


def equations_from_json(trees: Any) -> dict[str, sp.Expr]:
    """Rebuild ``{state name: expression}`` from :func:`equations_to_json` output."""
    if not isinstance(trees, dict):
        raise ModelFileError(f"equations must be a JSON object of state name to tree, got {type(trees).__name__}.")
    return {str(name): from_json(tree) for name, tree in trees.items()}


def _encode(expr: sp.Basic, depth: int) -> dict[str, Any]:
    if depth > MAX_DEPTH:
        raise ModelFileError(f"expression is nested deeper than {MAX_DEPTH} levels; cannot store it.")
    if isinstance(expr, sp.Symbol):
        # Only the real assumption is kept: the term library builds real symbols,
        # and sympy equates two symbols only when their assumptions agree.
        return {"type": "Symbol", "name": expr.name, "real": True if expr.is_real else None}
    if isinstance(expr, sp.Integer):
        return {"type": "Integer", "value": str(int(expr))}
    if isinstance(expr, sp.Rational):
        return {"type": "Rational", "p": str(expr.p), "q": str(expr.q)}
    if isinstance(expr, sp.Float):
        precision = expr._prec
        digits = mlib.repr_dps(precision)
        return {"type": "Float", "value": mlib.to_str(expr._mpf_, digits), "precision": precision}
    if expr is sp.pi:
        return {"type": "pi"}
    if expr is sp.E:
        return {"type": "E"}
    if isinstance(expr, (sp.Add, sp.Mul, sp.Pow)):
        return {"type": type(expr).__name__, "args": [_encode(a, depth + 1) for a in expr.args]}
    if isinstance(expr, AppliedUndef) and DENSE_NAME.fullmatch(expr.func.__name__) and len(expr.args) == 1:
        return {"type": "dense", "name": expr.func.__name__, "args": [_encode(expr.args[0], depth + 1)]}
    name = getattr(expr.func, "__name__", type(expr).__name__)
    if name in FUNCTIONS and isinstance(expr, FUNCTIONS[name]):
        return {"type": name, "args": [_encode(a, depth + 1) for a in expr.args]}
    raise ModelFileError(
        f"expression node {name} in {expr} is not storable; a model file accepts only "
        f"Add, Mul, Pow, numbers, symbols, pi, E, {', '.join(FUNCTIONS)} and dense spline placeholders."
    )


def _decode(node: Any, depth: int) -> sp.Expr:
    if depth > MAX_DEPTH:
        raise ModelFileError(f"equation tree is nested deeper than {MAX_DEPTH} levels; the file is damaged or crafted.")
    if not isinstance(node, dict) or not isinstance(node.get("type"), str):
        raise ModelFileError(f"equation node {_preview(node)} is not an object with a 'type'; the file is damaged.")
    kind = node["type"]

    if kind == "Symbol":
        name = node.get("name")
        if not isinstance(name, str) or not name.isidentifier():
            raise ModelFileError(f"symbol name {_preview(name)} is invalid; the file is damaged.")
        real = node.get("real")
        return sp.Symbol(name, real=real) if isinstance(real, bool) else sp.Symbol(name)
    if kind == "Integer":
        return sp.Integer(_integer(node.get("value")))
    if kind == "Rational":
        q = _integer(node.get("q"))
        if q == 0:
            raise ModelFileError("rational node has denominator 0; the file is damaged.")
        return sp.Rational(_integer(node.get("p")), q)
    if kind == "Float":
        return _float(node)
    if kind == "pi":
        return sp.pi
    if kind == "E":
        return sp.E

    args = node.get("args")
    if not isinstance(args, list) or not args:
        raise ModelFileError(f"{kind} node has no argument list; the file is damaged.")
    children = [_decode(a, depth + 1) for a in args]
    if kind == "Add":
        return sp.Add(*children)
    if kind == "Mul":
        return sp.Mul(*children)
    if kind == "Pow":
        _arity(kind, children, 2)
        exponent = children[1]
        if exponent.is_Number and abs(exponent) > MAX_EXPONENT:
            # sympy evaluates a number to a numeric power at once, so a huge
            # exponent in a crafted file would hang the loader.
            raise ModelFileError(
                f"power with exponent {_preview(str(exponent))} exceeds {MAX_EXPONENT}; the file is damaged or crafted."
            )
        return sp.Pow(*children)
    if kind == "dense":
        name = node.get("name")
        if not isinstance(name, str) or not DENSE_NAME.fullmatch(name):
            raise ModelFileError(f"dense function name {_preview(name)} is invalid; expected dense_l<layer>_<out>_<in>.")
        _arity(name, children, 1)
        return sp.Function(name)(children[0])
    if kind in FUNCTIONS:
        _arity(kind, children, 1)
        return FUNCTIONS[kind](children[0])
    raise ModelFileError(
        f"equation node type {_preview(kind)} is not allowed; the file is damaged or was not written by s2kan-dyn."
    )


def _integer(value: Any) -> int:
    if not isinstance(value, str) or not re.fullmatch(r"-?\d{1,%d}" % MAX_DIGITS, value):
        raise ModelFileError(f"integer {_preview(value)} is not a decimal string; the file is damaged.")
    return int(value)


def _float(node: dict) -> sp.Float:
    value, precision = node.get("value"), node.get("precision")
    if not isinstance(precision, int) or isinstance(precision, bool) or not 1 <= precision <= MAX_PRECISION:
        raise ModelFileError(f"float precision {_preview(precision)} is invalid; use 1 to {MAX_PRECISION} bits.")
    if not isinstance(value, str) or len(value) > MAX_DIGITS or not re.fullmatch(r"-?\d+(\.\d*)?(e[-+]?\d+)?", value):
        raise ModelFileError(f"float {_preview(value)} is not a decimal number; the file is damaged.")
    return sp.Float(value, precision=precision)


def _arity(kind: str, children: list, expected: int) -> None:
    if len(children) != expected:
        raise ModelFileError(f"{kind} node has {len(children)} arguments; expected {expected}.")


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
