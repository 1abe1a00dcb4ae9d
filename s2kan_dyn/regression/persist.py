"""Saving and loading a fitted :class:`S2KANRegressor` as plain data.

The file is a model file of :mod:`s2kan_dyn.persistence` with no tensors:
the manifest stores the constructor settings, the formula as a JSON tree
(:mod:`s2kan_dyn.expression_json`), the open edges and the fit figures.
A loaded regressor predicts from the formula alone.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path

import sympy as sp

from ..discovery.persist import settings_from_json, settings_to_json
from ..errors import ModelFileError
from ..expression_json import from_json, to_json
from ..persistence import load_model_file, save_model_file
from .candidate import Candidate, Edge

MODEL_CLASS = "S2KANRegressor"
# Fitted attributes stored as JSON numbers, strings or booleans.
SCALARS = ("search_", "structure_", "exact_", "rmse_", "description_length_", "n_candidates_",
           "fit_seconds_", "fit_cpu_seconds_", "n_features_in_")


def save_regressor(model, path: str | os.PathLike) -> Path:
    """Write a fitted regressor to ``path`` (atomically; an existing file is replaced).

    Raises:
        NotFittedError: the regressor is not fitted.
        ModelFileError: the formula has dense (spline) edges or a network
            read-out, which are not stored yet.
    """
    model._check_fitted()
    candidate = model.candidate_
    # NOTE: dense edges and relaxed networks predict through Python closures
    # over spline and network tensors, which this format does not store yet.
    if candidate.dense or candidate.predict_fn is not None:
        raise ModelFileError(
            f"this regressor's formula has dense (spline) edges {model.dense_edges_} or predicts through its "
            "network, which cannot be saved yet; refit with spline_grid=None to get a closed form."
        )
    fitted = {name: getattr(model, name) for name in SCALARS}
    manifest = {
        "settings": settings_to_json(model.get_params()),
        "expression": to_json(model.expr_),
        "edges": [dataclasses.asdict(edge) for edge in model.edges_],
        # A string, because description_length_ may be NaN, which strict JSON does not allow.
        "fitted": json.dumps(fitted, allow_nan=True),
    }
    return save_model_file(path, MODEL_CLASS, manifest, {})


def load_regressor(path: str | os.PathLike, cls):
    """Read a regressor written by :func:`save_regressor`; return a fitted ``cls`` instance.

    Raises:
        ModelFileError: the file is missing, damaged, of another version or
            class, or its contents are inconsistent.
    """
    where = str(path)
    manifest, _ = load_model_file(path, MODEL_CLASS)
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
    expr = from_json(manifest.get("expression"))
    strangers = sorted({s.name for s in expr.free_symbols} - {s.name for s in symbols})
    if strangers:
        raise ModelFileError(f"{where}: the formula uses symbols {strangers} beyond its {n_features} inputs.")
    expr = expr.xreplace({s: symbols[int(s.name[1:])] for s in expr.free_symbols})

    for name, value in fitted.items():
        setattr(model, name, value)
    model.symbols_ = symbols
    model.expr_ = expr
    model.edges_ = edges
    model.dense_edges_ = []
    model.candidate_ = Candidate(
        expr=expr, structure_bits=math.nan, edges=edges, search=fitted["structure_"], rmse=fitted["rmse_"],
        description_length=fitted["description_length_"], exact=fitted["exact_"],
    )
    return model
