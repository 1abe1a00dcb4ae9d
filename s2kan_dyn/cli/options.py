"""Checks of command-line values, with messages that name the option as the user typed it.

The Python API names its own arguments in its errors (``noise=-0.1 is
invalid``). The subcommands pass API errors through :func:`as_options`, which
rewrites those argument names into the options that set them (``--noise
-0.1 is invalid``), so each rule lives once, in the API. Values that only
the command line uses (``--time-budget``, ``--device``, ``--stages``, ...)
are checked here, before any slow work starts.
"""

from __future__ import annotations

import contextlib
import math
import re
from pathlib import Path
from typing import Iterator, Mapping, Sequence

from ..errors import DataError, S2KANDynError, UnknownNameError
from ..io import check_output_file, check_output_folder  # noqa: F401 (the commands import them from here)


@contextlib.contextmanager
def as_options(options: Mapping[str, str]) -> Iterator[None]:
    """Re-raise an :class:`S2KANDynError` with API argument names replaced by options.

    Args:
        options: API argument name -> command-line option, e.g.
            ``{"t_end": "--t-end"}``. ``t_end=2`` in a message becomes
            ``--t-end 2``, and a bare ``t_end`` becomes ``--t-end``.

    The exception keeps its class; only its message changes.
    """
    try:
        yield
    except S2KANDynError as exc:
        exc.args = (rename_arguments(str(exc), options),)
        raise


def rename_arguments(message: str, options: Mapping[str, str]) -> str:
    """Return ``message`` with each ``name=`` and bare ``name`` of ``options`` replaced by its option."""
    for name, option in options.items():
        # A name counts only as a whole word: "dt" must not match inside "dt_max" or "--dt".
        message = re.sub(rf"(?<![\w-]){re.escape(name)}=", f"{option} ", message)
        message = re.sub(rf"(?<![\w-]){re.escape(name)}(?![\w=])", option, message)
    return message


def check_number(
    option: str,
    value: float | int | None,
    minimum: float,
    *,
    inclusive: bool = True,
    maximum: float | None = None,
    kind: str = "a finite number",
    hint: str = "",
) -> None:
    """Raise :class:`S2KANDynError` unless ``value`` is finite and within the bounds; ``None`` passes.

    Args:
        option: the option as typed, e.g. ``"--time-budget"``.
        minimum: lowest valid value, itself valid when ``inclusive``.
        maximum: values must lie below it (exclusive), when given.
        kind: the expected kind of value, e.g. ``"an integer"``.
        hint: what the value means, appended to the message, e.g. ``"seconds"``.
    """
    if value is None:
        return
    above_minimum = value >= minimum if inclusive else value > minimum
    below_maximum = maximum is None or value < maximum
    if math.isfinite(value) and above_minimum and below_maximum:
        return
    bounds = []
    if math.isfinite(minimum):
        bounds.append(f">= {minimum:g}" if inclusive else f"> {minimum:g}")
    if maximum is not None:
        bounds.append(f"< {maximum:g}")
    expected = " ".join([kind, " and ".join(bounds)]).strip()
    text = f"{value:g}" if isinstance(value, float) else str(value)
    extra = f" ({hint})" if hint else ""
    raise S2KANDynError(f"{option} {text} is invalid; give {expected}{extra}.")


def parse_names(option: str, text: str, kind: str, known: Sequence[str] | None = None) -> list[str]:
    """Split a comma-separated list such as ``--stages derivative,trajectory``.

    Rejects an empty list, a repeated name and, when ``known`` is given, a
    name not in it. ``kind`` names one item in messages, e.g. ``"stage"``.
    """
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        expected = ", ".join(known) if known is not None else f"{kind} names"
        raise S2KANDynError(f"{option} {text!r} names no {kind}; give one or more of {expected}, comma-separated.")
    for name in names:
        if known is not None and name not in known:
            error = UnknownNameError(kind, name, list(known))
            error.args = (f"{option} {text}: {error}",)
            raise error
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise S2KANDynError(f"{option} {text} names {', '.join(repeated)} twice; give each {kind} once.")
    return names


def parse_x0(text: str) -> list[float]:
    """Parse ``--x0``, a comma-separated initial state such as ``-8,7,27``, into finite numbers."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise S2KANDynError(
            f"--x0 {text!r} is invalid; give comma-separated numbers such as -8,7,27."
        ) from None
    if not all(math.isfinite(v) for v in values):
        raise DataError(f"--x0 {text!r} contains NaN or infinite values; give finite numbers.")
    return values


def check_x0_length(text: str, values: Sequence[float], state_names: Sequence[str], owner: str) -> None:
    """Raise :class:`DataError` unless ``--x0`` has one value per state of ``owner`` (a system or model)."""
    if len(values) != len(state_names):
        raise DataError(
            f"--x0 {text!r} has {len(values)} values but {owner} has {len(state_names)} states "
            f"({', '.join(state_names)}); give one value per state."
        )


def check_device(text: str) -> str:
    """Raise :class:`S2KANDynError` unless ``--device`` names a torch device that this machine has."""
    import torch

    try:
        device = torch.device(text)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps"):
        raise S2KANDynError(f"--device {text!r} is invalid; give cpu, cuda, cuda:N or mps.")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise S2KANDynError(f"--device {text} is not available on this machine; use --device cpu.")
    # NOTE: only the CPU-only branches were run; the CUDA ones are untested on a machine with a GPU.
    if device.type == "cuda" and not torch.cuda.is_available():
        reason = (
            f"this torch ({torch.__version__}) was built without CUDA" if torch.version.cuda is None
            else "no CUDA device was found"
        )
        raise S2KANDynError(f"--device {text} is not available: {reason}; use --device cpu.")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise S2KANDynError(
            f"--device {text}: this machine has {torch.cuda.device_count()} CUDA device(s), "
            f"numbered from 0; give a smaller index."
        )
    return text


def reject_unused(args, options: Mapping[str, str], reason: str) -> None:
    """Raise when options that do not apply to this run were given, instead of ignoring them.

    Args:
        options: attribute of ``args`` -> option, e.g. ``{"noise": "--noise"}``;
            an attribute counts as given when it is neither ``None`` nor ``False``.
        reason: where the options do not apply, e.g. ``"to --data FILE"``.
    """
    present = [option for attribute, option in options.items() if getattr(args, attribute) not in (None, False)]
    if len(present) == 1:
        raise S2KANDynError(f"{present[0]} does not apply {reason}; drop it.")
    if present:
        raise S2KANDynError(f"{', '.join(present)} do not apply {reason}; drop them.")
