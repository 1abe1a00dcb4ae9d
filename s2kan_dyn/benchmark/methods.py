"""Methods compared by the benchmark, by name: each fits a case and rolls out its equations.

- ``s2kan``: :class:`s2kan_dyn.discovery.SymbolicODE` with its defaults (no
  per-system settings), seeded with the case's seed; its trajectory stage
  gets the run's time budget.
- ``sindy``: :class:`s2kan_dyn.baselines.SINDyBaseline`, with the Fourier
  library for trigonometric systems and smoothed derivatives when the
  case has noise.

Forecasts roll out the found equations with :func:`s2kan_dyn.rollout.rollout`
for both methods. An S2KAN fit that kept dense (spline) terms has no closed
form, so its network is rolled out instead.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..errors import UnknownNameError
from ..rollout import Rollout, equations_to_numpy, rollout
from .cases import Case

log = logging.getLogger(__name__)


@dataclass
class FittedMethod:
    """A method fitted to a case.

    Attributes:
        method: the method name.
        model: the fitted estimator.
        equations: state name -> sympy right-hand side.
        fit_seconds: wall time of ``fit``.
        dense_terms: dense (spline) terms that have no closed form; empty for SINDy.
        details: the estimator's own report (JSON-serialisable).
    """

    method: str
    model: object
    equations: dict
    fit_seconds: float
    dense_terms: list = field(default_factory=list)
    details: dict = field(default_factory=dict)
    _vector_field: Callable | None = field(default=None, repr=False)

    def forecast(self, x0: np.ndarray, t: np.ndarray, scale: np.ndarray) -> Rollout:
        """Roll out from ``x0`` over times ``t``; ``scale`` (the data) sets the divergence bound."""
        if self.dense_terms:
            return _network_forecast(self.model, x0, t)
        if self._vector_field is None:
            self._vector_field = equations_to_numpy(self.equations, self.model.state_names_)
        return rollout(self._vector_field, x0, t, scale=scale)


def _fit_s2kan(case: Case, time_budget: float | None) -> FittedMethod:
    from ..discovery import SymbolicODE

    model = SymbolicODE(random_state=case.seed, progress=False, time_budget=time_budget)
    start = time.perf_counter()
    model.fit(case.train)
    seconds = time.perf_counter() - start
    return FittedMethod("s2kan", model, model.equations(), seconds, list(model.dense_terms_), dict(model.report_))


def _fit_sindy(case: Case, time_budget: float | None) -> FittedMethod:
    from ..baselines import SINDyBaseline

    model = SINDyBaseline(fourier=case.kind == "trigonometric", smooth=case.noise > 0)
    start = time.perf_counter()
    model.fit(case.train)
    seconds = time.perf_counter() - start
    return FittedMethod("sindy", model, model.equations(), seconds, [], dict(model.report_))


# name -> fit(case, time_budget) -> FittedMethod
METHODS: dict[str, Callable[[Case, float | None], FittedMethod]] = {
    "s2kan": _fit_s2kan,
    "sindy": _fit_sindy,
}


def check_methods(names) -> list[str]:
    """Return the method names, raising :class:`UnknownNameError` on an unknown one."""
    names = [n.strip() for n in names if n.strip()]
    for name in names:
        if name not in METHODS:
            raise UnknownNameError("method", name, list(METHODS))
    return names


def fit_method(method: str, case: Case, time_budget: float | None = None) -> FittedMethod:
    """Fit ``method`` to ``case.train``; ``time_budget`` (seconds) goes to SymbolicODE."""
    check_methods([method])
    return METHODS[method](case, time_budget)


def _network_forecast(model, x0, t) -> Rollout:
    """Roll out an S2KAN network (equations with dense terms) as a :class:`Rollout`."""
    states = model.simulate(x0, t, use_network=True)
    finite = np.all(np.isfinite(states), axis=1)
    reached = int(np.argmin(finite)) if not finite.all() else len(t)
    status = "ok" if reached == len(t) else "diverged"
    diverged_at = None if status == "ok" else float(t[reached])
    return Rollout(t[:reached], states[:reached], status, diverged_at, f"network rollout ({status})")
