"""Saving and loading a fitted :class:`SymbolicODE` as plain data.

The file is a model file of :mod:`s2kan_dyn.persistence` (a zip of a JSON
manifest and safetensors). The manifest stores the constructor settings,
the state names, the dense terms, the fit report and the network's
constructor arguments. Equations are JSON trees
(:mod:`s2kan_dyn.expression_json`), never strings that a loader would have
to parse. The tensors are the network's parameters and buffers, named
``network.<name>``. Loading builds the network from its arguments and
copies the tensors in, so nothing in the file is executed.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
from pathlib import Path
from typing import Any, Mapping

import torch

from ..errors import ModelFileError, S2KANDynError
from ..expression_json import equations_from_json, equations_to_json
from ..persistence import load_model_file, naming_file, save_model_file

MODEL_CLASS = "SymbolicODE"
NETWORK_PREFIX = "network."
# S2KAN constructor arguments that a file may not set: they are chosen at load time.
NETWORK_LOAD_ARGUMENTS = ("self", "dtype", "device", "seed")
DTYPES = {"float64": torch.float64, "float32": torch.float32}


def settings_to_json(params: Mapping[str, Any]) -> dict[str, Any]:
    """Turn ``get_params()`` into JSON data: tuples become lists, the gate schedule a dict."""
    out = {}
    for name, value in params.items():
        if dataclasses.is_dataclass(value):
            value = {"GateSchedule": dataclasses.asdict(value)}
        elif isinstance(value, torch.device):
            value = str(value)
        elif isinstance(value, (tuple, list)):
            value = [list(v) if isinstance(v, (tuple, list)) else v for v in value]
        out[name] = value
    return out


def settings_from_json(settings: Any, known: Mapping[str, Any]) -> dict[str, Any]:
    """Rebuild constructor arguments from :func:`settings_to_json` output.

    ``known`` is the default ``get_params()`` of the class; a setting it
    lacks is rejected, so a file cannot set arbitrary attributes.
    """
    from ..model.train import GateSchedule

    if not isinstance(settings, dict):
        raise ModelFileError("model settings are not a JSON object; the file is damaged.")
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise ModelFileError(f"model settings {unknown} are unknown to this estimator; refit the model.")
    params = {}
    for name, value in settings.items():
        if isinstance(value, dict) and set(value) == {"GateSchedule"}:
            try:
                value = GateSchedule(**value["GateSchedule"])
            except (TypeError, S2KANDynError) as exc:
                raise ModelFileError(f"gate schedule {value!r} is invalid ({exc}).") from None
        elif isinstance(value, list):
            value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        params[name] = value
    return params


def network_to_data(network) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Return an S2KAN's constructor arguments (JSON) and its state tensors, keyed ``network.<name>``."""
    dtype = next(network.parameters()).dtype
    config = {**network.config, "dtype": str(dtype).removeprefix("torch.")}
    tensors = {NETWORK_PREFIX + name: value for name, value in network.state_dict().items()}
    return config, tensors


def network_from_data(config: Any, tensors: Mapping[str, torch.Tensor], device: str | torch.device | None, where: str):
    """Rebuild an S2KAN from :func:`network_to_data` output, in eval mode.

    Raises:
        ModelFileError: the arguments are invalid or the tensors do not fit them.
    """
    from ..model.network import S2KAN

    accepted = set(inspect.signature(S2KAN.__init__).parameters) - set(NETWORK_LOAD_ARGUMENTS)
    if not isinstance(config, dict) or "widths" not in config or not set(config) - {"dtype"} <= accepted:
        raise ModelFileError(f"{where}: network settings {config!r} are invalid; the file is damaged.")
    if config.get("dtype") not in DTYPES:
        raise ModelFileError(f"{where}: network dtype {config.get('dtype')!r} is not one of {sorted(DTYPES)}.")
    arguments = {key: value for key, value in config.items() if key != "dtype"}
    try:
        network = S2KAN(**arguments, dtype=DTYPES[config["dtype"]], device=device)
    except (S2KANDynError, TypeError, KeyError) as exc:
        raise ModelFileError(f"{where}: network settings are invalid ({exc}).") from None

    state = {name[len(NETWORK_PREFIX):]: value for name, value in tensors.items() if name.startswith(NETWORK_PREFIX)}
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise ModelFileError(f"{where}: network tensors do not fit its settings ({first}).") from None
    network.eval()
    return network


def save_symbolic_ode(model, path: str | os.PathLike) -> Path:
    """Write a fitted :class:`SymbolicODE` to ``path`` (atomically; an existing file is replaced).

    Raises:
        FitError: the model is not fitted.
        ModelFileError: an equation contains a node that cannot be stored.
    """
    model._check_fitted()
    manifest = {
        "settings": settings_to_json(model.get_params()),
        "state_names": list(model.state_names_),
        "equations": equations_to_json(model.equations_),
        "dense_terms": list(model.dense_terms_),
        # A string, because the report may contain NaN, which strict JSON does not allow.
        "report": json.dumps(getattr(model, "report_", {}), allow_nan=True, default=str),
        "network": None,
    }
    tensors: dict[str, torch.Tensor] = {}
    if model.network_ is not None:
        manifest["network"], tensors = network_to_data(model.network_)
    return save_model_file(path, MODEL_CLASS, manifest, tensors)


def load_symbolic_ode(path: str | os.PathLike, cls, device: str | torch.device | None = None):
    """Read a model written by :func:`save_symbolic_ode`; return a fitted ``cls`` instance.

    Args:
        path: the model file.
        cls: ``SymbolicODE`` or a subclass.
        device: where the network goes (default: the CPU, whatever the saved setting).

    Raises:
        ModelFileError: the file is missing, damaged, of another version or
            class, or its contents are inconsistent.
    """
    where = str(path)
    manifest, tensors = load_model_file(path, MODEL_CLASS)
    known = cls().get_params()
    with naming_file(path):
        params = settings_from_json(manifest.get("settings"), known)
    if device is not None:
        params["device"] = device
    model = cls(**params)

    names = manifest.get("state_names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ModelFileError(f"{where}: state names {names!r} are invalid; the file is damaged.")
    with naming_file(path):
        equations = equations_from_json(manifest.get("equations"))
    if sorted(equations) != sorted(names):
        raise ModelFileError(f"{where}: equations are given for {list(equations)}, but the states are {names}.")
    # The manifest is written with sorted keys, so the equations come back in name order, not state order.
    equations = {name: equations[name] for name in names}
    strangers = sorted({s.name for e in equations.values() for s in e.free_symbols} - set(names))
    if strangers:
        raise ModelFileError(f"{where}: equations use symbols {strangers} that are not states {names}.")
    dense = manifest.get("dense_terms")
    if not isinstance(dense, list) or not all(isinstance(d, str) for d in dense):
        raise ModelFileError(f"{where}: dense term list {dense!r} is invalid; the file is damaged.")
    try:
        report = json.loads(manifest.get("report") or "{}")
    except (TypeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{where}: fit report is not valid JSON ({exc}).") from None

    network = None
    if manifest.get("network") is not None:
        network = network_from_data(manifest["network"], tensors, device, where)
    elif tensors:
        raise ModelFileError(f"{where}: the file has tensors but no network settings; the file is damaged.")

    model.state_names_ = tuple(names)
    model.equations_ = equations
    model.dense_terms_ = dense
    model.report_ = report
    model.network_ = network
    return model
