"""Benchmark sweeps (systems x noise x sampling x seeds x methods) and their results.

``run_benchmark`` runs or resumes a sweep into a folder; ``evaluate`` fits
and scores one method on one case, which ``s2kan-dyn compare`` also uses.
"""

from .cases import Case, case_from_series, case_from_system
from .evaluate import Evaluation, evaluate
from .methods import METHODS, fit_method
from .runner import run_benchmark
from .suites import SUITES, SuiteOptions, build_case, system_names

__all__ = [
    "METHODS",
    "SUITES",
    "Case",
    "Evaluation",
    "SuiteOptions",
    "build_case",
    "case_from_series",
    "case_from_system",
    "evaluate",
    "fit_method",
    "run_benchmark",
    "system_names",
]
