"""Saving and loading a fitted :class:`S2KANRegressor` as plain data.

The file is a model file of :mod:`s2kan_dyn.persistence`: the manifest
stores the constructor settings, the formula as a JSON tree
(:mod:`s2kan_dyn.expression_json`), the open edges and the fit figures.
A closed-form regressor has no tensors and predicts from the formula alone.
Open splines are stored as tensors:

- a one-layer formula with dense edges ``dense_l0_0_<i>(x_i)`` stores the
  spline's knots (``spline.knots``) and one coefficient vector per dense
  input (``dense.<i>.coef``); the formula multiplies each edge by its
  coefficient as fitted;
- a relaxed network with an open spline predicts through the network, so
  its constructor arguments and tensors (``network.<name>``) are stored as
  for :class:`~s2kan_dyn.discovery.SymbolicODE`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path

import numpy as np
import sympy as sp
import torch

from ..discovery.persist import network_from_data, network_to_data, settings_from_json, settings_to_json
from ..errors import ModelFileError, S2KANDynError
from ..expression_json import from_json, to_json
from ..model.spline import BSplineBasis
from ..persistence import load_model_file, naming_file, save_model_file
from .candidate import Candidate, Edge
from .features import dense_function
from .one_layer import SplineColumn
from .relax import NetworkPredictor

MODEL_CLASS = "S2KANRegressor"
# Fitted attributes stored as JSON numbers, strings or booleans.
SCALARS = ("search_", "structure_", "exact_", "rmse_", "description_length_", "n_candidates_",
           "fit_seconds_", "fit_cpu_seconds_", "n_features_in_")


def save_regressor(model, path: str | os.PathLike) -> Path:
    """Write a fitted regressor to ``path`` (atomically; an existing file is replaced).

    Raises:
        NotFittedError: the regressor is not fitted.
        ModelFileError: the formula contains a function this format does not store.
    """
    model._check_fitted()
    candidate = model.candidate_
    fitted = {name: getattr(model, name) for name in SCALARS}
    manifest = {
        "settings": settings_to_json(model.get_params()),
        "expression": to_json(model.expr_),
        "edges": [dataclasses.asdict(edge) for edge in model.edges_],
        # A string, because description_length_ may be NaN, which strict JSON does not allow.
        "fitted": json.dumps(fitted, allow_nan=True),
        "spline": None,
        "dense_inputs": [],
        "network": None,
    }
    tensors: dict[str, torch.Tensor] = {}
    if isinstance(candidate.predict_fn, NetworkPredictor):
        manifest["network"], tensors = network_to_data(candidate.predict_fn.network)
    elif candidate.predict_fn is not None:
        raise ModelFileError(f"this regressor predicts through {candidate.predict_fn!r}, which cannot be saved.")
    elif candidate.dense:
        columns = [column for column, _ in candidate.dense.values()]
        if not all(isinstance(c, SplineColumn) for c in columns) or len({id(c.spline) for c in columns}) != 1:
            raise ModelFileError("this regressor's dense edges are not one-layer spline columns; they cannot be saved.")
        spline = columns[0].spline
        manifest["spline"] = {"n_in": spline.n_in, "grid_size": spline.grid_size, "order": spline.order}
        manifest["dense_inputs"] = [c.input for c in columns]
        tensors["spline.knots"] = spline.knots
        tensors.update({f"dense.{c.input}.coef": torch.as_tensor(c.coef, dtype=torch.float64) for c in columns})
    return save_model_file(path, MODEL_CLASS, manifest, tensors)


def load_regressor(path: str | os.PathLike, cls):
    """Read a regressor written by :func:`save_regressor`; return a fitted ``cls`` instance.

    Raises:
        ModelFileError: the file is missing, damaged, of another version or
            class, or its contents are inconsistent.
    """
    where = str(path)
    manifest, tensors = load_model_file(path, MODEL_CLASS)
    with naming_file(path):
        params = settings_from_json(manifest.get("settings"), cls().get_params())
    model = cls(**params)
    try:
        fitted = json.loads(manifest["fitted"])
        edges = [Edge(**{**edge, "terms": tuple(edge["terms"])}) for edge in manifest["edges"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{where}: fitted attributes are damaged ({exc}).") from None
    if not isinstance(fitted, dict) or set(fitted) != set(SCALARS):
        raise ModelFileError(f"{where}: fitted attributes {sorted(fitted) if isinstance(fitted, dict) else fitted!r} are invalid.")
    n_features = fitted["n_features_in_"]
    if not isinstance(n_features, int) or n_features < 1:
        raise ModelFileError(f"{where}: n_features_in_={n_features!r} is invalid; the file is damaged.")

    symbols = sp.symbols(f"x0:{n_features}", real=True)
    with naming_file(path):
        expr = from_json(manifest.get("expression"))
    strangers = sorted({s.name for s in expr.free_symbols} - {s.name for s in symbols})
    if strangers:
        raise ModelFileError(f"{where}: the formula uses symbols {strangers} beyond its {n_features} inputs.")
    expr = expr.xreplace({s: symbols[int(s.name[1:])] for s in expr.free_symbols})

    candidate = Candidate(
        expr=expr, structure_bits=math.nan, edges=edges, search=fitted["structure_"], rmse=fitted["rmse_"],
        description_length=fitted["description_length_"], exact=fitted["exact_"],
    )
    calls = sorted(expr.atoms(sp.core.function.AppliedUndef), key=str)
    if manifest.get("network") is not None:
        candidate.predict_fn = NetworkPredictor(network_from_data(manifest["network"], tensors, model.device, where))
    elif manifest.get("spline") is not None:
        candidate.dense = _dense_columns(manifest, tensors, symbols, where)
        candidate.expr = expr.xreplace({call: symbol for symbol, (_, call) in candidate.dense.items()})
        left = sorted(str(c) for c in candidate.expr.atoms(sp.core.function.AppliedUndef))
        if left:
            raise ModelFileError(f"{where}: the formula names dense edges {left} that the file has no spline for.")
    elif calls or tensors:
        raise ModelFileError(f"{where}: the formula names dense edges {[str(c) for c in calls]} but the file stores no spline or network.")

    for name, value in fitted.items():
        setattr(model, name, value)
    model.symbols_ = symbols
    model.expr_ = expr
    model.edges_ = edges
    model.dense_edges_ = sorted(str(f.func) for f in calls)
    model.candidate_ = candidate
    return model


def _dense_columns(manifest, tensors, symbols, where: str) -> dict:
    """Rebuild the one-layer spline columns: dense symbol -> (column, the call that names it)."""
    spec = manifest["spline"]
    inputs = manifest.get("dense_inputs")
    if (
        not isinstance(spec, dict)
        or set(spec) != {"n_in", "grid_size", "order"}
        or spec["n_in"] != len(symbols)
        or not isinstance(inputs, list)
        or not inputs
        or not all(isinstance(i, int) and 0 <= i < len(symbols) for i in inputs)
        or set(tensors) != {"spline.knots", *(f"dense.{i}.coef" for i in inputs)}
    ):
        raise ModelFileError(f"{where}: spline settings {spec!r} with dense inputs {inputs!r} are invalid; the file is damaged.")
    try:
        spline = BSplineBasis(spec["n_in"], grid_size=spec["grid_size"], order=spec["order"])
        spline.knots.copy_(tensors["spline.knots"])
    except (S2KANDynError, TypeError, RuntimeError) as exc:
        raise ModelFileError(f"{where}: spline tensors do not fit its settings ({exc}).") from None
    dense = {}
    for i in inputs:
        coef = tensors[f"dense.{i}.coef"].numpy().astype(float)
        if coef.shape != (spline.n_basis,) or not np.isfinite(coef).all():
            raise ModelFileError(f"{where}: coefficients of dense input {i} have shape {coef.shape}, expected ({spline.n_basis},) finite values.")
        dense[sp.Symbol(f"_dense_{i}")] = (SplineColumn(spline, i, coef), dense_function(0, 0, i)(symbols[i]))
    return dense
