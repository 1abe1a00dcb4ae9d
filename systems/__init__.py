"""Catalog of dynamical systems with sympy ground truth."""
