"""Checkpoints of a :class:`SymbolicODE` fit at stage boundaries, and resuming from them.

:class:`CheckpointedSymbolicODE` is a ``SymbolicODE`` whose fit writes a
checkpoint file once the derivative stage is done: the stage's read-out
(term library, coefficients, active terms, equations), its network and its
report entry. An interrupted fit (``KeyboardInterrupt``, i.e. Ctrl-C) leaves
that file behind, or writes one with no stage done if it was interrupted
before. A fit with ``resume=True`` takes the derivative stage from the file
and reruns the trajectory stage from its start; a completed fit removes the
file.

The fit draws all its random numbers (network initial values, gate noise)
from generators seeded by ``random_state``, never from torch's or numpy's
global generators. The seed in the settings is therefore the whole
generator state, and rerunning the trajectory stage from the restored
read-out gives the same equations as an uninterrupted run.

The file is a model file of :mod:`s2kan_dyn.persistence` (JSON manifest and
safetensors, no pickle). It records the estimator's settings and a SHA-256
digest of the training data; a resume with other settings or other data is
rejected.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import ModelFileError, S2KANDynError
from ..expression_json import equations_from_json, equations_to_json, from_json, to_json
from ..persistence import load_model_file, naming_file, save_model_file
from ..readout.terms import TermLibrary
from ..trajectory import Trajectory, as_trajectories
from .estimator import SymbolicODE
from .persist import network_from_data, network_to_data, settings_to_json

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.s2kan"
CHECKPOINT_CLASS = "SymbolicODECheckpoint"
# Settings that do not change the result, so a resume may change them.
DISPLAY_SETTINGS = ("progress",)


class CheckpointError(S2KANDynError):
    """A checkpoint that is missing or does not match the fit being resumed."""


def data_digest(trajectories: Sequence[Trajectory]) -> str:
    """Return a SHA-256 hex digest of the trajectories' names, times and states (float64 bytes)."""
    digest = hashlib.sha256()
    for trajectory in trajectories:
        digest.update(json.dumps(list(trajectory.state_names)).encode())
        digest.update(np.ascontiguousarray(trajectory.t, dtype=np.float64).tobytes())
        digest.update(np.ascontiguousarray(trajectory.x, dtype=np.float64).tobytes())
    return digest.hexdigest()


def write_checkpoint(path: Path, settings: dict, digest: str, derivative: dict | None) -> None:
    """Write a checkpoint atomically.

    Args:
        path: the checkpoint file.
        settings: ``settings_to_json(model.get_params())``.
        digest: :func:`data_digest` of the training data.
        derivative: the derivative stage's result, or ``None`` when no stage
            is done. Its keys are ``library`` (``TermLibrary``),
            ``coefficients`` ``(T, d)``, ``active`` ``(T, d)`` bool,
            ``equations``, ``network`` (an ``S2KAN`` or ``None``) and
            ``report`` (the stage's report entry).
    """
    manifest: dict[str, Any] = {"settings": settings, "data_sha256": digest, "stages_done": [], "derivative": None}
    tensors: dict[str, torch.Tensor] = {}
    if derivative is not None:
        library = derivative["library"]
        entry = {
            "state_names": list(library.state_names),
            "terms": [to_json(term) for term in library.terms],
            "equations": equations_to_json(derivative["equations"]),
            # A string, because the report may contain NaN, which strict JSON does not allow.
            "report": json.dumps(derivative["report"], allow_nan=True, default=str),
            "network": None,
        }
        if derivative["network"] is not None:
            entry["network"], tensors = network_to_data(derivative["network"])
        tensors["derivative.coefficients"] = torch.as_tensor(np.asarray(derivative["coefficients"], dtype=np.float64))
        tensors["derivative.active"] = torch.as_tensor(np.asarray(derivative["active"], dtype=bool))
        manifest["derivative"] = entry
        manifest["stages_done"] = ["derivative"]
    save_model_file(path, CHECKPOINT_CLASS, manifest, tensors)


def read_checkpoint(path: Path, settings: dict, digest: str, device=None) -> dict | None:
    """Read a checkpoint and check that it belongs to this fit; return the derivative stage or ``None``.

    Raises:
        CheckpointError: no checkpoint at ``path``, or it was written with
            other settings or other training data.
        ModelFileError: the file is damaged or not a checkpoint.
    """
    if not path.is_file():
        raise CheckpointError(f"no checkpoint {path} to resume from; start the fit again without resuming.")
    manifest, tensors = load_model_file(path, CHECKPOINT_CLASS)
    saved = manifest.get("settings")
    if saved != settings:
        changed = sorted(k for k in set(saved or {}) | set(settings) if (saved or {}).get(k) != settings.get(k))
        raise CheckpointError(
            f"checkpoint {path} was written with other settings (changed: {', '.join(changed)}); "
            "resume with the settings of the interrupted run, or start the fit again without resuming."
        )
    if manifest.get("data_sha256") != digest:
        raise CheckpointError(
            f"checkpoint {path} was written for other training data; resume with the data (system, seed, "
            "noise or data file) of the interrupted run, or start the fit again without resuming."
        )
    entry = manifest.get("derivative")
    if entry is None:
        return None

    where = str(path)
    try:
        library = TermLibrary([from_json(term) for term in entry["terms"]], entry["state_names"])
        report = json.loads(entry["report"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{where}: derivative stage entry is damaged ({exc}).") from None
    coefficients = tensors.get("derivative.coefficients")
    active = tensors.get("derivative.active")
    shape = (len(library), len(library.state_names))
    if coefficients is None or active is None or tuple(coefficients.shape) != shape or tuple(active.shape) != shape:
        raise ModelFileError(f"{where}: derivative coefficients do not match its {shape[0]} terms and {shape[1]} states.")
    network = None
    if entry.get("network") is not None:
        network = network_from_data(entry["network"], tensors, device, where)
    with naming_file(path):
        equations = equations_from_json(entry.get("equations"))
    return {
        "library": library,
        "coefficients": coefficients.numpy().astype(np.float64),
        "active": active.numpy().astype(bool),
        "equations": equations,
        "network": network,
        "report": report,
    }


class CheckpointedSymbolicODE(SymbolicODE):
    """A :class:`SymbolicODE` that checkpoints its fit and can resume it.

    Build one with :func:`with_checkpoint`; the constructor takes the same
    hyperparameters as ``SymbolicODE``, so ``get_params``, ``save`` and
    ``load`` behave the same.

    Attributes:
        checkpoint_path: the checkpoint file (``None``: no checkpoints).
        resume: take the completed stages from ``checkpoint_path`` in ``fit``.
    """

    checkpoint_path: Path | None = None
    resume: bool = False

    def fit(self, x, t=None, state_names=None) -> "CheckpointedSymbolicODE":
        """Fit as :meth:`SymbolicODE.fit`, writing a checkpoint after the derivative stage.

        Raises:
            CheckpointError: ``resume`` is set but the checkpoint is missing or
                belongs to other settings or data.
            KeyboardInterrupt: re-raised after the checkpoint is on disk.
        """
        if self.checkpoint_path is None:
            return super().fit(x, t, state_names)
        path = Path(self.checkpoint_path)
        params = {k: v for k, v in self.get_params().items() if k not in DISPLAY_SETTINGS}
        self._settings = settings_to_json(params)
        self._digest = data_digest(as_trajectories(x, t, state_names))
        self._restored = None
        if self.resume:
            self._restored = read_checkpoint(path, self._settings, self._digest, device=self.device)
            done = "the derivative stage" if self._restored is not None else "no completed stage"
            log.info("resuming from %s: %s restored", path, done)
        else:
            path.unlink(missing_ok=True)

        try:
            super().fit(x, t, state_names)
        except KeyboardInterrupt:
            if not path.exists():
                write_checkpoint(path, self._settings, self._digest, None)
            raise
        self.report_["checkpoint"] = {"resumed": bool(self.resume), "restored_stages": ["derivative"] if self._restored else []}
        path.unlink(missing_ok=True)
        return self

    def _derivative_stage(self, X, dX, names, noise, progress, report):
        restored = getattr(self, "_restored", None)
        if restored is not None:
            self.network_ = restored["network"]
            report["stages"]["derivative"] = restored["report"]
            return restored["library"], restored["coefficients"], restored["active"], restored["equations"]

        library, coefficients, active, equations = super()._derivative_stage(X, dX, names, noise, progress, report)
        if self.checkpoint_path is not None:
            stage = {
                "library": library, "coefficients": coefficients, "active": active, "equations": equations,
                "network": self.network_, "report": report["stages"]["derivative"],
            }
            write_checkpoint(Path(self.checkpoint_path), self._settings, self._digest, stage)
            log.info("derivative stage done; checkpoint written to %s", self.checkpoint_path)
        return library, coefficients, active, equations


def with_checkpoint(model: SymbolicODE, path, resume: bool = False) -> CheckpointedSymbolicODE:
    """Return a :class:`CheckpointedSymbolicODE` with ``model``'s hyperparameters and checkpoint file ``path``."""
    checkpointed = CheckpointedSymbolicODE(**model.get_params())
    checkpointed.checkpoint_path = Path(path)
    checkpointed.resume = resume
    return checkpointed
