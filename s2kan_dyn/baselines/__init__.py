"""Baselines for comparison with the S2KAN estimator."""

from .sindy import SINDyBaseline

__all__ = ["SINDyBaseline"]
