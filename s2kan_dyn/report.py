"""The report of a discovery run: a JSON-serialisable dict, its file, and its text table.

A report contains at least ``states``, ``equations`` (state -> sympy-parsable
string), ``truth`` (the same, or ``None``), ``metrics``, ``timings``,
``stages`` (which ran and why), ``settings``, ``versions`` and ``seed``.
It is written atomically, and as the last file of a run, so that a run
that failed leaves no report that looks complete.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import sympy as sp

from .io import atomic_path
from .persistence import library_versions

FORMAT = "s2kan-dyn-discover-report"
FORMAT_VERSION = 1


def equation_strings(equations: Mapping[str, sp.Expr] | None) -> dict[str, str] | None:
    """Return ``{state: str(expression)}``; ``sympy.sympify`` parses each string back."""
    if equations is None:
        return None
    return {name: sp.sstr(expr, full_prec=False) for name, expr in equations.items()}


def to_json_value(value: Any) -> Any:
    """Convert numpy values, sympy expressions and non-finite floats into JSON values.

    NaN and infinities become ``None``, since JSON has no such numbers.
    """
    if isinstance(value, Mapping):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_value(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_json_value(value.tolist())
    if isinstance(value, np.generic):
        return to_json_value(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, sp.Basic):
        return str(value)
    if isinstance(value, Path):
        return str(value)
    return value


def build_report(
    *,
    source: str,
    states: Sequence[str],
    equations: Mapping[str, sp.Expr],
    truth: Mapping[str, sp.Expr] | None,
    metrics: Mapping[str, Any],
    fit_report: Mapping[str, Any],
    settings: Mapping[str, Any],
    seed: int,
    timings: Mapping[str, float],
    files: Sequence[str] = (),
    notes: Sequence[str] = (),
) -> dict:
    """Assemble the report of one ``discover`` run.

    Args:
        source: the system name or the data file.
        states: the state names.
        equations: the found right-hand sides.
        truth: the true right-hand sides, or ``None`` when unknown.
        metrics: ``{"equations": ..., "forecast": ...}`` figures.
        fit_report: ``SymbolicODE.report_`` (stages, derivative estimates, self-check).
        settings: the run's options.
        seed: the seed of data, split and fit.
        timings: seconds per step of the run.
        files: names of the other files written beside the report.
        notes: remarks such as a file that could not be written.
    """
    report = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "source": source,
        "states": list(states),
        "equations": equation_strings(equations),
        "truth": equation_strings(truth),
        "metrics": dict(metrics),
        "stages": fit_report.get("stages", {}),
        "derivatives": fit_report.get("derivatives"),
        "self_check": fit_report.get("self_check"),
        "dense_terms": fit_report.get("dense_terms", []),
        "timings": {**fit_report.get("timings", {}), **timings},
        "settings": dict(settings),
        "seed": seed,
        "versions": library_versions(),
        "files": list(files),
        "notes": list(notes),
    }
    return to_json_value(report)


def write_report(path: str | os.PathLike, report: Mapping[str, Any]) -> Path:
    """Write ``report`` as indented JSON to ``path``, atomically; return the path."""
    path = Path(path)
    text = json.dumps(to_json_value(report), indent=2, allow_nan=False)
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
    return path


def equation_table(
    states: Sequence[str], found: Mapping[str, sp.Expr], truth: Mapping[str, sp.Expr] | None, digits: int = 6
) -> str:
    """Return the found equations as text lines, each followed by the true one when known."""
    lines = []
    for name in states:
        expr = found[name]
        expr = expr.xreplace({f: sp.Float(f, digits) for f in expr.atoms(sp.Float)})
        lines.append(f"{name}' = {expr}")
        if truth is not None:
            lines.append(f"{' ' * len(name)}  (true: {truth[name]})")
    return "\n".join(lines)
