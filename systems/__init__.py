"""Catalog of dynamical systems, each defined once in sympy.

>>> import systems
>>> lorenz = systems.get("lorenz", rho=28)
>>> [traj] = lorenz.simulate(t_end=1.0)
>>> traj.x.shape
(101, 3)

``names()`` lists the catalog; ``get(name, **params)`` builds a
:class:`System` whose parameters may be overridden by keyword.
"""

from . import chaotic, kinetics, oscillators  # noqa: F401  (each registers its systems)
from .registry import default_parameters, get, names, register
from .system import KINDS, METHODS, SimulationError, System

__all__ = [
    "KINDS",
    "METHODS",
    "SimulationError",
    "System",
    "default_parameters",
    "get",
    "names",
    "register",
]
