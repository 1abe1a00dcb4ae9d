"""Exceptions raised for user errors.

Every error a user can cause derives from :class:`S2KANDynError`, which is a
``ValueError``, so library callers can catch ``ValueError`` and the command
line can print the message as one line without a traceback.
"""

from __future__ import annotations

import difflib


class S2KANDynError(ValueError):
    """Base class of user-facing errors: the message says what failed and what to do."""


class DataError(S2KANDynError):
    """Invalid trajectory data: NaN, bad time column, too few samples, unreadable file."""


class UnknownNameError(S2KANDynError):
    """A system, primitive, method or suite name that is not registered."""

    def __init__(self, kind: str, name: str, known: list[str]):
        self.kind = kind
        self.name = name
        self.known = sorted(known)
        close = difflib.get_close_matches(name, self.known, n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        super().__init__(
            f"unknown {kind} {name!r}.{hint} Known {kind}s: {', '.join(self.known)}."
        )


class ModelFileError(S2KANDynError):
    """A saved model that is missing, truncated, tampered with or of another format."""


class FitError(S2KANDynError):
    """A fit that could not finish; the message says which stage failed and why."""


class OutputExistsError(S2KANDynError):
    """An output folder or file exists and ``--force`` was not given."""
