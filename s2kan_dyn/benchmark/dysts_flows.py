"""Chaotic flows of the dysts collection as :class:`systems.System` objects.

The flows are read from a JSON export of dysts' right-hand sides (one entry
per flow: ``name``, ``state_names``, ``equations`` in ``x_0, x_1, ...`` with
parameter values substituted, ``initial_conditions``, ``period``,
``maximum_lyapunov_estimated``, ``rhs_class``, ``delay``, ``nonautonomous``,
``equations_verified_numerically``), given with ``--dysts-path``. dysts
itself (Gilpin 2021, williamgilpin/dysts, Apache-2.0) stores its flows as
Python functions, from which no sympy truth can be read.

Skipped, and named in the log: delay equations, piecewise right-hand sides,
flows with explicit time (non-autonomous), and flows whose equation strings
were not checked numerically against dysts.
"""

from __future__ import annotations

import json
import logging
import re
from functools import lru_cache
from pathlib import Path

import sympy

from ..errors import DataError, S2KANDynError, UnknownNameError

log = logging.getLogger(__name__)

SKIPPED_CLASSES = ("piecewise", "delay_differential_equation", "explicit_time")
# Sampling: SAMPLES_PER_PERIOD points per dominant period over PERIODS periods,
# with TRANSIENT_PERIODS dropped before test starts are drawn from the attractor.
SAMPLES_PER_PERIOD = 100
PERIODS = 10
TRANSIENT_PERIODS = 5


def require_path(path: str | None) -> str:
    """Return ``path``, or raise an error that explains how to get the flows' equations."""
    if path:
        return path
    try:
        import dysts  # noqa: F401
    except ImportError:
        raise S2KANDynError(
            "the dysts suite needs the flows' equations: pass --dysts-path FILE with a JSON export of "
            "dysts' right-hand sides. dysts itself is an optional extra (pip install 's2kan-dyn[dysts]')."
        ) from None
    # TODO: export the equations from an installed dysts; for now the JSON export is required.
    raise S2KANDynError(
        "dysts is installed, but its flows are Python functions without sympy equations; "
        "pass --dysts-path FILE with a JSON export of their right-hand sides."
    )


@lru_cache(maxsize=4)
def _entries(path: str) -> tuple[dict, ...]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"dysts file {path} not found; check --dysts-path.") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"dysts file {path} is not valid JSON ({exc}).") from None
    entries = data.get("systems") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise DataError(f"dysts file {path} has no 'systems' list of flows.")
    return tuple(entries)


def skip_reason(entry: dict) -> str | None:
    """Return why a flow is left out of the suite, or ``None`` when it is kept."""
    if entry.get("delay") or entry.get("rhs_class") == "delay_differential_equation":
        return "delay equation"
    if entry.get("rhs_class") == "piecewise":
        return "piecewise right-hand side"
    if entry.get("nonautonomous") or entry.get("rhs_class") == "explicit_time":
        return "explicit time dependence"
    if not entry.get("equations_verified_numerically", False):
        return "equations not verified against dysts"
    return None


def names(path: str) -> list[str]:
    """Return the kept flows' names; log the skipped ones with their reasons once."""
    kept, skipped = [], {}
    for entry in _entries(path):
        reason = skip_reason(entry)
        if reason is None:
            kept.append(entry["name"])
        else:
            skipped.setdefault(reason, []).append(entry["name"])
    for reason, flows in skipped.items():
        log.info("dysts suite skips %d flows (%s): %s", len(flows), reason, ", ".join(flows))
    return kept


def get(name: str, path: str):
    """Return dysts flow ``name`` as a :class:`systems.System` with its sampling."""
    from systems import System

    entry = next((e for e in _entries(path) if e["name"] == name), None)
    if entry is None:
        raise UnknownNameError("dysts flow", name, [e["name"] for e in _entries(path)])
    states = [_state_name(s) for s in entry["state_names"]]
    symbols = {f"x_{i}": sympy.Symbol(s) for i, s in enumerate(states)}
    rhs = [sympy.sympify(e, locals=symbols) for e in entry["equations"]]
    period = float(entry["period"])
    exponent = entry.get("maximum_lyapunov_estimated")
    return System(
        name=name,
        state_names=tuple(states),
        rhs=tuple(rhs),
        parameter_values={},
        x0=tuple(float(v) for v in entry["initial_conditions"]),
        dt=period / SAMPLES_PER_PERIOD,
        t_end=PERIODS * period,
        source=f"dysts (Gilpin 2021, Apache-2.0): {name}",
        description=entry.get("description", ""),
        transient=TRANSIENT_PERIODS * period,
        lyapunov_exponent=float(exponent) if exponent and exponent > 0 else None,
        lyapunov_source="dysts estimate" if exponent else None,
    )


def _state_name(name: str) -> str:
    # Names must be valid sympy symbols that do not clash with sympy's own (I, E, S, N, ...).
    clean = re.sub(r"\W", "_", str(name))
    return clean if clean not in ("I", "E", "S", "N", "O", "Q", "pi") else f"{clean}_"
