"""Symbolic regression of tabular data with an S2KAN: :class:`S2KANRegressor`."""

from .estimator import NotFittedError, S2KANRegressor

__all__ = ["NotFittedError", "S2KANRegressor"]
