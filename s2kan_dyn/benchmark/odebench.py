"""ODEBench systems as :class:`systems.System` objects, from the project's copy of the equations.

The copy, ``s2kan_dyn/datasets/odebench.json``, contains the 63 ODEs of
ODEBench (d'Ascoli et al. 2023, "ODEFormer: symbolic regression of
dynamical systems with transformers", repository sdascoli/odeformer, MIT
licence): equations with named constants, the constants' values, two
initial conditions and the sampling (512 points on [0, 10]). It was
written by ``benchmarks/make_odebench_copy.py``.

Protocol: fit on the first initial condition, score on the second.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

import sympy

from ..errors import DataError, UnknownNameError

COPY = Path(__file__).resolve().parents[1] / "datasets" / "odebench.json"
SOURCE = "ODEBench (d'Ascoli et al. 2023, ODEFormer; MIT licence)"


def convert_equation(text: str) -> str:
    """Rename ``x_i`` to ``xi`` and ``c_i`` to ``ci`` and write powers as ``**``; check that sympy parses it."""
    text = re.sub(r"\bx_(\d+)\b", r"x\1", text)
    text = re.sub(r"\bc_(\d+)\b", r"c\1", text)
    text = re.sub(r"\s+", " ", text.replace("^", "**")).strip()
    sympy.sympify(text, locals={f"x{i}": sympy.Symbol(f"x{i}") for i in range(10)})
    return text


def convert_entry(system: dict) -> dict:
    """Return an entry of the reformatted ODEBench JSON (``x_0``, ``c_0``, ``init_conditions``) in this module's layout."""
    dim = int(system["dim"])
    return {
        "id": int(system["id"]),
        "name": system["name"],
        "states": [f"x{i}" for i in range(dim)],
        "equations": [convert_equation(e) for e in system["equations"]],
        "constants": {k.replace("_", ""): float(v) for k, v in system["constants"].items()},
        "initial_conditions": [[float(v) for v in ic] for ic in system["init_conditions"]],
        "t_span": [float(v) for v in system["t_span"]],
        "n_points": int(system["n_points"]),
        "rhs_class": system["rhs_class"],
        "chaotic": bool(system["chaotic"]),
        "reference": system.get("source", ""),
    }


@lru_cache(maxsize=4)
def load_entries(path: str | None = None) -> tuple[dict, ...]:
    """Return the system entries of the ODEBench file at ``path`` (default the shipped copy).

    The file is the project's copy or the reformatted ODEBench JSON, whose
    entries are converted with :func:`convert_entry`.
    """
    file = Path(path) if path else COPY
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"ODEBench copy {file} not found; pass --odebench-path with the project's odebench.json.") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"ODEBench copy {file} is not valid JSON ({exc}).") from None
    if not isinstance(data, dict) or not isinstance(data.get("systems"), list):
        raise DataError(f"{file} has no 'systems' list; give the project's odebench.json or the ODEBench JSON.")
    try:
        return tuple(e if "states" in e else convert_entry(e) for e in data["systems"])
    except (KeyError, TypeError, ValueError, sympy.SympifyError) as exc:
        raise DataError(f"{file}: an ODEBench entry is invalid ({type(exc).__name__}: {exc}).") from None


def system_name(entry: dict) -> str:
    """Return the benchmark name of an entry: ``odebench_<id>``, e.g. ``odebench_07``."""
    return f"odebench_{int(entry['id']):02d}"


def names(path: str | None = None) -> list[str]:
    return [system_name(e) for e in load_entries(path)]


def get(name: str, path: str | None = None):
    """Return ODEBench system ``name`` as a :class:`systems.System`, sampled as in ODEBench.

    Its ``x0`` is the first initial condition; :func:`held_out_initial_condition`
    returns the second.
    """
    from systems import System

    entry = _entry(name, path)
    states = entry["states"]
    symbols = {s: sympy.Symbol(s) for s in states}
    symbols.update({c: sympy.Symbol(c) for c in entry["constants"]})
    rhs = [sympy.sympify(e, locals=symbols) for e in entry["equations"]]
    t0, t1 = entry["t_span"]
    if t0 != 0:
        raise DataError(f"{name}: time span starts at {t0}; the benchmark expects 0.")
    return System(
        name=name,
        state_names=tuple(states),
        rhs=tuple(rhs),
        parameter_values={c: sympy.Float(v) for c, v in entry["constants"].items()},
        x0=tuple(entry["initial_conditions"][0]),
        dt=(t1 - t0) / (entry["n_points"] - 1),
        t_end=t1,
        source=f"{SOURCE}, system {entry['id']}: {entry['name']} ({entry.get('reference', '')})",
        description=entry["name"],
    )


def held_out_initial_condition(name: str, path: str | None = None) -> list[float]:
    """Return the second initial condition of ``name``, on which fits are scored."""
    return list(_entry(name, path)["initial_conditions"][1])


def _entry(name: str, path: str | None) -> dict:
    for entry in load_entries(path):
        if system_name(entry) == name:
            return entry
    raise UnknownNameError("ODEBench system", name, names(path))
