"""Registry of catalog systems by name.

Each catalog entry is a factory function whose keyword arguments are the
system's parameters with their defaults; :func:`register` files it under a
name and :func:`get` calls it with the caller's overrides.
"""

from __future__ import annotations

import inspect
import logging
import math
import numbers
from dataclasses import replace
from typing import Callable

import sympy

from s2kan_dyn.errors import S2KANDynError, UnknownNameError

from .system import System

log = logging.getLogger(__name__)

_FACTORIES: dict[str, Callable[..., System]] = {}


def register(name: str) -> Callable[[Callable[..., System]], Callable[..., System]]:
    """Decorate a factory ``f(**parameters) -> System`` to file it under ``name``."""

    def decorate(factory: Callable[..., System]) -> Callable[..., System]:
        if name in _FACTORIES:
            raise ValueError(f"system {name!r} is registered twice.")
        _FACTORIES[name] = factory
        return factory

    return decorate


def names() -> list[str]:
    """Return the catalog's system names, sorted."""
    return sorted(_FACTORIES)


def default_parameters(name: str) -> dict[str, object]:
    """Return the default parameter values of system ``name``."""
    factory = _factory(name)
    return {p.name: p.default for p in inspect.signature(factory).parameters.values()}


def get(name: str, **params) -> System:
    """Build system ``name`` with its default parameters, overridden by ``params``.

    A literature Lyapunov exponent holds only at the published parameters, so
    it is dropped (set to ``None``) when any parameter differs from its default.

    Raises:
        UnknownNameError: ``name`` is not in the catalog (suggests the closest).
        S2KANDynError: unknown parameter name or a value that is not a finite number.
    """
    defaults = default_parameters(name)
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise S2KANDynError(
            f"system {name!r} has no parameter(s) {unknown}; its parameters are "
            f"{', '.join(f'{k}={v}' for k, v in defaults.items())}."
        )
    for key, value in params.items():
        _check_number(name, key, value)

    system = _factory(name)(**params)
    # Compare as floats, so that rho=28.0 or beta=8/3 count as the defaults 28 and Rational(8, 3).
    changed = [k for k, v in params.items() if float(v) != float(defaults[k])]
    if changed and system.lyapunov_exponent is not None:
        log.debug("%s: parameters %s changed, literature Lyapunov exponent dropped", name, changed)
        system = _without_lyapunov(system)
    return system


def _factory(name: str) -> Callable[..., System]:
    if name not in _FACTORIES:
        raise UnknownNameError("system", str(name), list(_FACTORIES))
    return _FACTORIES[name]


def _check_number(name: str, key: str, value) -> None:
    is_number = isinstance(value, (numbers.Real, sympy.Number)) and not isinstance(value, bool)
    if not is_number or not math.isfinite(float(value)):
        raise S2KANDynError(
            f"system {name!r}: parameter {key}={value!r} is invalid; give a finite real number."
        )


def _without_lyapunov(system: System) -> System:
    return replace(system, lyapunov_exponent=None, lyapunov_source=None)
