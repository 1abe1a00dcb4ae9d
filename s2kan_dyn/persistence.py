"""Saving fitted models as plain data: a JSON manifest and safetensors.

A model file is a zip archive with two members:

- ``manifest.json``: format name and version, the model class, its
  settings, state names, equations as JSON trees, library versions, the
  name, dtype and shape of every tensor, and the SHA-256 digests of the
  tensors and of the manifest itself;
- ``tensors.safetensors``: the tensors, in the safetensors format.

Nothing in the file is ever executed: JSON and safetensors hold data only,
and no pickle is read. Loading checks the format, the version, both digests
and every shape, and raises :class:`~s2kan_dyn.errors.ModelFileError`
otherwise. The digests catch damage and hand edits (a changed coefficient);
they are not signatures, so a file from an untrusted source is still only
as safe as the checks that follow them: equations are whitelisted trees and
every tensor shape must match the model's settings.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import zipfile
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from .errors import ModelFileError
from .io import atomic_path

FORMAT_NAME = "s2kan-dyn-model"
# Version 2 added the manifest's own digest.
FORMAT_VERSION = 2
MANIFEST_DIGEST = "manifest_sha256"
MANIFEST = "manifest.json"
TENSORS = "tensors.safetensors"
# A model of this project is a few MB at most; refuse members far larger
# so that a crafted archive cannot exhaust memory.
MAX_MEMBER_BYTES = 512 * 1024 * 1024
# How to load each model class this package writes, for the message about a file of another class.
LOADERS = {
    "SymbolicODE": "SymbolicODE.load() or s2kan-dyn forecast",
    "S2KANRegressor": "S2KANRegressor.load()",
    "SymbolicODECheckpoint": "s2kan-dyn discover --resume with the arguments of the interrupted run",
}


def library_versions() -> dict[str, str]:
    """Return the versions of Python and the libraries that shape a fit."""
    import numpy
    import scipy
    import sympy
    import torchdiffeq

    from . import __version__

    return {
        "s2kan_dyn": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchdiffeq": getattr(torchdiffeq, "__version__", "unknown"),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "sympy": sympy.__version__,
    }


def manifest_digest(manifest: Mapping[str, Any]) -> str:
    """Return the SHA-256 of the manifest's canonical JSON, leaving out the digest entry itself."""
    body = {key: value for key, value in manifest.items() if key != MANIFEST_DIGEST}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def save_model_file(
    path: str | os.PathLike,
    model_class: str,
    manifest: Mapping[str, Any],
    tensors: Mapping[str, torch.Tensor],
) -> Path:
    """Write a model file atomically.

    Args:
        path: destination; written under a temporary name and renamed when complete.
        model_class: the class that can load it, e.g. ``"SymbolicODE"``.
        manifest: JSON-serialisable settings, state names, equations and so on.
        tensors: named tensors; moved to the CPU and made contiguous.
    """
    cpu = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
    blob = save_safetensors(cpu) if cpu else save_safetensors({})
    full = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "model_class": model_class,
        "versions": library_versions(),
        "tensors": {name: {"dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape)} for name, t in cpu.items()},
        "tensors_sha256": hashlib.sha256(blob).hexdigest(),
        **dict(manifest),
    }
    try:
        full[MANIFEST_DIGEST] = manifest_digest(full)
        text = json.dumps(full, indent=2, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"model settings are not plain JSON data ({exc}); cannot save.") from None

    path = Path(path)
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(MANIFEST, text)
            archive.writestr(TENSORS, blob)
    return path


def load_model_file(path: str | os.PathLike, model_class: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read and check a model file; return its manifest and tensors.

    Raises:
        ModelFileError: the file is missing, not a model file, of another
            version or class, truncated, tampered with, or its tensors do not
            have the shapes the manifest declares.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found; give the path written by save() or --out.")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if names != {MANIFEST, TENSORS}:
                raise ModelFileError(
                    f"{path}: not an s2kan-dyn model file (members {sorted(names)}, "
                    f"expected {MANIFEST} and {TENSORS})."
                )
            for info in archive.infolist():
                if info.file_size > MAX_MEMBER_BYTES:
                    raise ModelFileError(f"{path}: member {info.filename} is {info.file_size} bytes, too large for a model file.")
            manifest_bytes = archive.read(MANIFEST)
            blob = archive.read(TENSORS)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as exc:
        raise ModelFileError(f"{path}: not a readable s2kan-dyn model file ({exc}).") from None

    manifest = _parse_manifest(path, manifest_bytes, model_class)
    try:
        digest = manifest_digest(manifest)
    except (ValueError, RecursionError):
        # A NaN typed into the JSON or nesting too deep cannot be encoded, so no digest can match.
        digest = None
    if digest is None or digest != manifest.get(MANIFEST_DIGEST):
        raise ModelFileError(f"{path}: manifest does not match its recorded digest; the file is damaged or was edited.")
    if hashlib.sha256(blob).hexdigest() != manifest.get("tensors_sha256"):
        raise ModelFileError(f"{path}: tensor data does not match its recorded digest; the file is damaged or was edited.")
    try:
        tensors = load_safetensors(blob)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"{path}: tensor data is unreadable ({exc}).") from None
    _check_tensors(path, manifest, tensors)
    return manifest, tensors


@contextlib.contextmanager
def naming_file(path: str | os.PathLike) -> Iterator[None]:
    """Prefix the message of a :class:`ModelFileError` raised inside the block with ``path``.

    Readers of equation trees and settings do not know the file they read,
    so their messages lack it. A message that already starts with the path
    is left as it is.
    """
    try:
        yield
    except ModelFileError as exc:
        where = str(path)
        if not str(exc).startswith(where):
            exc.args = (f"{where}: {exc}",)
        raise


def _parse_manifest(path: Path, raw: bytes, model_class: str) -> dict[str, Any]:
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise ModelFileError(f"{path}: manifest is not valid JSON (nested too deeply); the file is damaged or crafted.") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path}: manifest is not valid JSON ({exc}).") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise ModelFileError(f"{path}: not an s2kan-dyn model file (format {manifest.get('format') if isinstance(manifest, dict) else None!r}).")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: model file format version {version!r}, but this s2kan-dyn reads version "
            f"{FORMAT_VERSION}; refit the model or use the s2kan-dyn release that wrote it."
        )
    found = manifest.get("model_class")
    if found != model_class:
        if found in LOADERS:
            raise ModelFileError(f"{path}: contains a {found} model, not the {model_class} asked for; load it with {LOADERS[found]}.")
        raise ModelFileError(
            f"{path}: model class {str(found)[:60]!r} is not one of s2kan-dyn's ({', '.join(LOADERS)}), so the file "
            f"is not a model of this package; give a file of class {model_class} written by s2kan-dyn."
        )
    if not isinstance(manifest.get("tensors"), dict):
        raise ModelFileError(f"{path}: manifest lacks its tensor list.")
    return manifest


def _check_tensors(path: Path, manifest: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> None:
    declared = manifest["tensors"]
    if set(declared) != set(tensors):
        raise ModelFileError(
            f"{path}: tensors {sorted(tensors)} do not match the manifest's {sorted(declared)}."
        )
    for name, spec in declared.items():
        shape = list(tensors[name].shape)
        if not isinstance(spec, dict) or spec.get("shape") != shape:
            raise ModelFileError(
                f"{path}: tensor {name!r} has shape {shape}, but the manifest declares {spec!r}."
            )
