"""The benchmark's ``results.csv``: one row per (suite, system, noise, sampling, seed, method).

The file is rewritten atomically after every finished run, so an
interrupted sweep leaves a complete file, and a rerun skips the rows it
already has (resume).
"""

from __future__ import annotations

import csv
import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from ..errors import DataError
from ..io import atomic_path

RESULTS_NAME = "results.csv"
KEY = ("suite", "system", "noise", "sampling", "seed", "method")
METRIC_COLUMNS = (
    "fit_seconds", "peak_memory_mb", "n_terms_found", "n_terms_true", "precision", "recall", "f1", "exact",
    "coef_error", "r2", "rmse", "smape", "vpt", "vpt_lyapunov", "covered", "rollout_status", "diverged_at",
    "n_test_starts", "equations", "dense_terms",
)
RUN_COLUMNS = ("status", "message", "timeout_s", "threads", "finished_at")
VERSION_COLUMNS = (
    "s2kan_dyn_version", "pysindy_version", "torch_version", "torchdiffeq_version", "numpy_version",
    "scipy_version", "sympy_version", "python_version",
)
COLUMNS = KEY + RUN_COLUMNS[:2] + METRIC_COLUMNS + RUN_COLUMNS[2:] + VERSION_COLUMNS
# Run status values: fitted and scored, past the time limit, raised an error, worker process died.
STATUSES = ("ok", "timed out", "failed", "crashed")


def row_key(row: dict) -> tuple[str, ...]:
    """Return the identity of a row as strings, as they are written in the file."""
    return tuple(_cell(row[k]) for k in KEY)


def make_key(suite: str, system: str, noise: float, sampling: str, seed: int, method: str) -> tuple[str, ...]:
    return row_key({"suite": suite, "system": system, "noise": noise, "sampling": sampling, "seed": seed,
                    "method": method})


def versions() -> dict[str, str]:
    """Return the version columns: this package, pysindy and the libraries behind a fit."""
    from ..persistence import library_versions

    found = library_versions()
    try:
        from importlib.metadata import PackageNotFoundError, version

        pysindy = version("pysindy")
    except PackageNotFoundError:
        pysindy = "not installed"
    return {
        "s2kan_dyn_version": found.get("s2kan_dyn", ""),
        "pysindy_version": pysindy,
        "torch_version": found.get("torch", ""),
        "torchdiffeq_version": found.get("torchdiffeq", ""),
        "numpy_version": found.get("numpy", ""),
        "scipy_version": found.get("scipy", ""),
        "sympy_version": found.get("sympy", ""),
        "python_version": found.get("python", ""),
    }


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if math.isfinite(value):
            return repr(value)
        return "inf" if value > 0 else "-inf"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def read_results(path: str | os.PathLike) -> list[dict[str, str]]:
    """Return the rows of a results file as dicts of strings (empty when the file is absent)."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [k for k in KEY if k not in (reader.fieldnames or [])]
        if missing:
            raise DataError(
                f"{path}: not a benchmark results file (columns {missing} missing); "
                "choose another --out folder or remove the file."
            )
        return list(reader)


def write_results(path: str | os.PathLike, rows: Iterable[dict]) -> Path:
    """Write ``rows`` (dicts of values or strings) to ``path`` atomically, in :data:`COLUMNS` order."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: _cell(row.get(k)) for k in COLUMNS})
    return Path(path)


def parse_float(text: str) -> float | None:
    """Read a numeric cell: ``''`` gives ``None``, ``'inf'`` gives ``inf``."""
    if text in ("", None):
        return None
    return float(text)
