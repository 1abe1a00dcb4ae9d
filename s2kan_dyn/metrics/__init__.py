"""Metrics: forecast skill against held-out data, and equation quality against a known truth."""

from .equations import derivative_r2, equation_metrics, equation_terms, term_scores
from .forecast import forecast_metrics, normalised_error, rmse, smape, valid_prediction_time

__all__ = [
    "derivative_r2",
    "equation_metrics",
    "equation_terms",
    "forecast_metrics",
    "normalised_error",
    "rmse",
    "smape",
    "term_scores",
    "valid_prediction_time",
]
