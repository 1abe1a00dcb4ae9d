"""One benchmark case: training data, held-out data and what is known of the system.

A case is built from a :class:`systems.System` (simulated data, known
equations) or from a measured series (no known equations). Both give
training trajectories and held-out trajectories on which the forecasts are
scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import DataError
from ..trajectory import Trajectory

SAMPLINGS = ("default", "coarse")
# The coarse variant samples every COARSE_FACTOR-th default step.
COARSE_FACTOR = 5
# Chaotic systems are scored from this many held-out starts (VPT is averaged).
CHAOTIC_TEST_STARTS = 10


@dataclass
class Case:
    """Data and ground truth of one (system, noise, sampling, seed) combination.

    Attributes:
        suite, system, noise, sampling, seed: the case's identity, as in results rows.
        train: training trajectories.
        tests: held-out trajectories; each forecast starts at its first sample.
        first_scored: index of the first scored sample of each test trajectory
            (1 when a test trajectory starts at the last training sample).
        truth: state name -> true right-hand side, or ``None`` for measured data.
        kind: ``"polynomial"``, ``"trigonometric"`` or ``"rational"``; decides
            the SINDy library.
        lyapunov_time: ``1 / lambda_max`` for chaotic systems, else ``None``.
    """

    suite: str
    system: str
    noise: float
    sampling: str
    seed: int
    train: list[Trajectory]
    tests: list[Trajectory]
    first_scored: int
    truth: dict | None
    kind: str
    lyapunov_time: float | None

    @property
    def state_names(self) -> tuple[str, ...]:
        return self.train[0].state_names

    @property
    def label(self) -> str:
        return f"{self.suite}/{self.system} noise={self.noise:g} {self.sampling} seed={self.seed}"


def sampling_step(default_dt: float, sampling: str) -> float:
    """Return the sampling step of ``sampling`` (one of :data:`SAMPLINGS`)."""
    if sampling == "default":
        return default_dt
    if sampling == "coarse":
        return default_dt * COARSE_FACTOR
    raise DataError(f"sampling {sampling!r} is invalid; use one of {list(SAMPLINGS)}.")


def case_from_system(
    suite: str,
    system,
    noise: float,
    sampling: str,
    seed: int,
    train_x0: Sequence[float] | None = None,
    test_x0: Sequence[Sequence[float]] | None = None,
    t_end: float | None = None,
) -> Case:
    """Simulate a case from a :class:`systems.System`.

    The training trajectory starts at ``train_x0`` (default the system's
    ``x0``) and carries noise; the clean test trajectories start at
    ``test_x0`` (default: ``sample_initial_conditions(n, seed)``, with ``n``
    = :data:`CHAOTIC_TEST_STARTS` for chaotic systems and 1 otherwise).
    """
    dt = sampling_step(system.dt, sampling)
    train = system.simulate(t_end=t_end, dt=dt, x0=train_x0, noise=noise, seed=seed)
    if test_x0 is None:
        n_starts = CHAOTIC_TEST_STARTS if system.lyapunov_time else 1
        test_x0 = system.sample_initial_conditions(n_starts, seed=seed)
    tests = [system.simulate(t_end=t_end, dt=dt, x0=x0)[0] for x0 in np.atleast_2d(test_x0)]
    return Case(
        suite=suite, system=system.name, noise=float(noise), sampling=sampling, seed=int(seed),
        train=train, tests=tests, first_scored=0, truth=system.equations(), kind=system.kind,
        lyapunov_time=system.lyapunov_time,
    )


def case_from_series(
    suite: str, name: str, trajectories: Sequence[Trajectory], test_fraction: float = 0.25, seed: int = 0
) -> Case:
    """Hold out the last ``test_fraction`` of the last trajectory of a measured series.

    The test trajectory starts at the last training sample, so the forecast
    starts from observed data and is scored from the next sample on.
    """
    from ..cli.discover_cmd import split_series

    split = split_series(list(trajectories), test_fraction, name)
    return Case(
        suite=suite, system=name, noise=0.0, sampling="default", seed=int(seed), train=split["train"],
        tests=[split["test"]], first_scored=split["first_scored"], truth=None, kind="polynomial",
        lyapunov_time=None,
    )
