"""Equation discovery: an S2KAN vector field fitted to trajectories, read out as sympy equations.

``SymbolicODE`` runs the pipeline; the modules hold its stages:
``derivatives`` (smoothed finite differences), ``derivative_stage`` (S2KAN
fits with the dictionary opened in order of cost), ``readout`` (terms,
pruning, refits, snapping), ``shooting`` and ``candidates`` (the trajectory
stage), ``selfcheck`` (equations against network rollouts).
"""

from .estimator import SymbolicODE

__all__ = ["SymbolicODE"]
