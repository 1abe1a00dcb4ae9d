"""Score one method on one case: structure, coefficients, derivative fit and forecast.

The figures follow the benchmark protocol: equation metrics against the
known right-hand side (:func:`s2kan_dyn.metrics.equation_metrics`, R^2 on
the clean held-out states) and forecast metrics of the found equations
rolled out from each held-out start (:func:`s2kan_dyn.metrics.forecast_metrics`),
averaged over the starts.
"""

from __future__ import annotations

import logging
import resource
import sys
from dataclasses import dataclass

import numpy as np

import sympy

from ..metrics import equation_metrics, forecast_metrics
from .cases import Case
from .methods import FittedMethod, fit_method

log = logging.getLogger(__name__)

FORECAST_KEYS = ("rmse", "smape", "vpt", "vpt_lyapunov", "covered")


@dataclass
class Evaluation:
    """Result of :func:`evaluate`.

    Attributes:
        fitted: the fitted method.
        metrics: flat dict of every figure (see :func:`evaluate`).
        predictions: one rollout per held-out trajectory, each ``(m, d)`` with
            ``m`` at most that trajectory's length.
    """

    fitted: FittedMethod
    metrics: dict
    predictions: list


def peak_memory_mb() -> float:
    """Return the peak resident memory of this process in MiB (``ru_maxrss``)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def evaluate(case: Case, method: str, time_budget: float | None = None) -> Evaluation:
    """Fit ``method`` on ``case`` and score it.

    Returns an :class:`Evaluation`. Its ``metrics`` always has
    ``fit_seconds``, ``peak_memory_mb``, ``equations`` (state -> string),
    ``dense_terms`` and ``n_terms_found``. With a known truth it also has
    ``precision``, ``recall``, ``f1``, ``exact``, ``coef_error``, ``r2`` and
    ``n_terms_true``. The forecast figures are the means over the held-out
    starts of ``rmse``, ``smape``, ``vpt``, ``vpt_lyapunov`` and
    ``covered``, plus ``vpt_first_start``, ``rollout_status`` and
    ``diverged_at`` of the first start and ``n_test_starts``.
    """
    fitted = fit_method(method, case, time_budget)
    metrics = {
        "fit_seconds": fitted.fit_seconds,
        "peak_memory_mb": peak_memory_mb(),
        # The same strings as s2kan_dyn.report writes; that module is not imported
        # here because it loads torch, which a SINDy-only worker does not need.
        "equations": {name: sympy.sstr(expr, full_prec=False) for name, expr in fitted.equations.items()},
        "dense_terms": list(fitted.dense_terms),
    }
    metrics.update(_equation_figures(case, fitted))
    predictions, forecast = _forecast_figures(case, fitted)
    metrics.update(forecast)
    log.info(
        "%s %s: fit %.2f s, F1 %s, VPT %.3g (%s)",
        case.label, method, fitted.fit_seconds, _fmt(metrics.get("f1")), metrics["vpt"], metrics["rollout_status"],
    )
    return Evaluation(fitted, metrics, predictions)


def _equation_figures(case: Case, fitted: FittedMethod) -> dict:
    if case.truth is None:
        return {"n_terms_found": _count_terms(fitted.equations)}
    states = np.concatenate([tr.x for tr in case.tests])
    x_test = None if fitted.dense_terms else states
    figures = equation_metrics(fitted.equations, case.truth, case.state_names, x_test=x_test)
    figures.pop("per_state")
    return figures


def _count_terms(equations: dict) -> int:
    return sum(len(sympy.Add.make_args(sympy.expand(e))) for e in equations.values() if e != 0)


def _forecast_figures(case: Case, fitted: FittedMethod) -> tuple[list, dict]:
    data = np.concatenate([tr.x for tr in case.train])
    scale = np.std(data, axis=0)
    scale = np.where(scale > 0, scale, 1e-12)
    first = case.first_scored

    predictions, rows, runs = [], [], []
    for test in case.tests:
        run = fitted.forecast(test.x[0], test.t, np.abs(data).max(axis=0))
        runs.append(run)
        predictions.append(run.x)
        reached = run.x[first:]
        rows.append(
            forecast_metrics(
                test.t[first:], reached, test.x[first:], scale,
                lyapunov_time=case.lyapunov_time, diverged_at=run.diverged_at,
            )
        )

    figures = {}
    for key in FORECAST_KEYS:
        values = [r[key] for r in rows if r[key] is not None]
        figures[key] = float(np.mean(values)) if values else None
    figures["vpt_first_start"] = rows[0]["vpt"]
    figures["rollout_status"] = runs[0].status
    figures["diverged_at"] = runs[0].diverged_at
    figures["n_test_starts"] = len(case.tests)
    return predictions, figures


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.2f}"
