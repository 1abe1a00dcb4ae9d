"""The trajectory type used everywhere, and its validation.

A :class:`Trajectory` is one sampled solution of an ODE: times of shape
``(n,)``, states of shape ``(n, d)`` and ``d`` state names. Several
trajectories of unequal length are passed around as a plain list.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .errors import DataError

log = logging.getLogger(__name__)

# A fit needs enough samples to estimate derivatives and leave a test part.
MIN_SAMPLES = 5


@dataclass(frozen=True, eq=False)
class Trajectory:
    """One sampled trajectory.

    Attributes:
        t: times, shape ``(n,)``, float64, strictly increasing.
        x: states, shape ``(n, d)``, float64, finite.
        state_names: ``d`` names, one per state column.
        source: where the data came from (file path or system name), used in messages.
    """

    t: np.ndarray
    x: np.ndarray
    state_names: tuple[str, ...]
    source: str = field(default="<array>", compare=False)

    def __post_init__(self):
        t = np.asarray(self.t, dtype=float)
        x = np.asarray(self.x, dtype=float)
        if x.ndim == 1:
            x = x[:, None]
        object.__setattr__(self, "t", t)
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "state_names", tuple(str(s) for s in self.state_names))
        validate(self)

    def __eq__(self, other) -> bool:
        # The generated __eq__ would compare arrays element-wise and fail on truth value.
        if not isinstance(other, Trajectory):
            return NotImplemented
        return (
            self.state_names == other.state_names
            and np.array_equal(self.t, other.t)
            and np.array_equal(self.x, other.x)
        )

    @property
    def n_samples(self) -> int:
        return self.t.shape[0]

    @property
    def dimension(self) -> int:
        return self.x.shape[1]

    def slice(self, start: int | None = None, stop: int | None = None) -> "Trajectory":
        """Return the samples ``start:stop`` as a new trajectory."""
        return Trajectory(self.t[start:stop], self.x[start:stop], self.state_names, self.source)

    def with_states(self, x: np.ndarray) -> "Trajectory":
        """Return a trajectory with the same times and names but other states."""
        return Trajectory(self.t, x, self.state_names, self.source)


def validate(traj: Trajectory, min_samples: int = MIN_SAMPLES) -> None:
    """Raise :class:`DataError` naming the first problem found in ``traj``."""
    t, x, where = traj.t, traj.x, traj.source
    if t.ndim != 1:
        raise DataError(f"{where}: times must be one-dimensional, got shape {t.shape}.")
    if x.ndim != 2:
        raise DataError(f"{where}: states must have shape (n_samples, n_states), got {x.shape}.")
    if x.shape[0] != t.shape[0]:
        raise DataError(
            f"{where}: {t.shape[0]} times but {x.shape[0]} state rows; "
            "give one row of states per time."
        )
    if len(traj.state_names) != x.shape[1]:
        raise DataError(
            f"{where}: {x.shape[1]} state columns but {len(traj.state_names)} state names "
            f"{list(traj.state_names)}; give one name per column."
        )
    if len(set(traj.state_names)) != len(traj.state_names):
        raise DataError(f"{where}: repeated state names {list(traj.state_names)}; names must be unique.")
    if t.shape[0] < min_samples:
        raise DataError(
            f"{where}: {t.shape[0]} samples, fewer than the minimum of {min_samples}; "
            "give a longer series."
        )
    _check_finite(t[:, None], ("time",), where)
    _check_finite(x, traj.state_names, where)
    steps = np.diff(t)
    if np.any(steps == 0):
        row = int(np.flatnonzero(steps == 0)[0]) + 1
        raise DataError(
            f"{where}: repeated time {t[row]:g} at rows {row} and {row + 1}; "
            "remove the duplicate sample."
        )
    if np.any(steps < 0):
        row = int(np.flatnonzero(steps < 0)[0]) + 1
        raise DataError(
            f"{where}: time decreases from {t[row - 1]:g} to {t[row]:g} at row {row + 1}; "
            "times must be strictly increasing (sort the rows)."
        )


def _check_finite(values: np.ndarray, names: Sequence[str], where: str) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise DataError(
            f"{where}: non-finite value {values[row, col]} in column {names[col]!r} at row "
            f"{row + 1} (first data row is 1); remove or interpolate NaN and inf values."
        )


def warn_constant_states(trajs: Sequence[Trajectory]) -> list[str]:
    """Warn about states that never change; return their names."""
    x = np.concatenate([tr.x for tr in trajs])
    constant = [n for n, s in zip(trajs[0].state_names, np.ptp(x, axis=0)) if s == 0.0]
    if constant:
        log.warning(
            "state(s) %s are constant over the data, so their equations cannot be identified: "
            "they come out as 0 or as terms with tiny coefficients",
            constant,
        )
    return constant


def as_trajectories(
    x, t, state_names: Sequence[str] | None = None, source: str = "<array>"
) -> list[Trajectory]:
    """Turn arrays, lists of arrays or trajectories into a list of trajectories.

    ``x`` is ``(n, d)`` or a list of such arrays (unequal ``n`` allowed); ``t`` is
    ``(n,)``, a list matching ``x``, or a scalar time step. With a list of
    :class:`Trajectory` objects ``t`` may be ``None``.
    """
    if isinstance(x, Trajectory):
        return [x]
    if isinstance(x, (list, tuple)) and x and all(isinstance(v, Trajectory) for v in x):
        _check_same_states(list(x))
        return list(x)

    xs = list(x) if isinstance(x, (list, tuple)) else [x]
    if not xs:
        raise DataError("no trajectories given; pass at least one array of states.")
    if t is None:
        raise DataError("times are missing; pass t as an array of times or a time step.")
    if np.isscalar(t):
        if not float(t) > 0:
            raise DataError(f"time step t={t} must be positive.")
        ts = [np.arange(np.asarray(xi).shape[0]) * float(t) for xi in xs]
    else:
        ts = list(t) if isinstance(t, (list, tuple)) else [t]
    if len(ts) != len(xs):
        raise DataError(
            f"{len(xs)} state arrays but {len(ts)} time arrays; give one time array per trajectory."
        )

    trajs = []
    for i, (xi, ti) in enumerate(zip(xs, ts)):
        xi = _numeric_array(xi, f"{source} trajectory {i}: states")
        ti = _numeric_array(ti, f"{source} trajectory {i}: times")
        if xi.ndim == 1:
            xi = xi[:, None]
        names = tuple(state_names) if state_names is not None else tuple(
            f"x{j}" for j in range(xi.shape[1])
        )
        label = source if len(xs) == 1 else f"{source} trajectory {i}"
        trajs.append(Trajectory(ti, xi, names, label))
    _check_same_states(trajs)
    return trajs


def _numeric_array(values, what: str) -> np.ndarray:
    try:
        return np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what} are not numeric ({exc}); pass numbers only.") from None


def _check_same_states(trajs: list[Trajectory]) -> None:
    names = trajs[0].state_names
    for tr in trajs[1:]:
        if tr.state_names != names:
            raise DataError(
                f"{tr.source}: states {list(tr.state_names)} differ from {list(names)} of the "
                "first trajectory; all trajectories must have the same states."
            )
