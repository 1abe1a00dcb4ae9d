"""Benchmark suites by name: which systems each contains and how a case is built.

- ``core``: the project's catalog (:mod:`systems`); trained from the
  system's default start, tested from new starts.
- ``odebench``: the 63 ODEBench systems (:mod:`.odebench`); trained on
  the first initial condition, tested on the second.
- ``dysts``: chaotic flows of dysts (:mod:`.dysts_flows`), from a JSON
  export of their equations given with ``--dysts-path``.
- ``real``: the measured series shipped in :mod:`s2kan_dyn.datasets`, with
  no known equations: forecast skill on the held-out last quarter only,
  at noise 0 and the series' own sampling.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UnknownNameError
from . import dysts_flows, odebench
from .cases import Case, case_from_series, case_from_system

SUITES = ("core", "odebench", "dysts", "real")
# Share of a measured series held out for the forecast in the real suite.
REAL_TEST_FRACTION = 0.25


@dataclass(frozen=True)
class SuiteOptions:
    """Paths some suites read: the ODEBench copy (default: shipped) and the dysts export."""

    odebench_path: str | None = None
    dysts_path: str | None = None


def check_suite(suite: str) -> str:
    if suite not in SUITES:
        raise UnknownNameError("suite", suite, list(SUITES))
    return suite


def system_names(suite: str, options: SuiteOptions = SuiteOptions()) -> list[str]:
    """Return the names of the systems (or series) in ``suite``."""
    check_suite(suite)
    if suite == "core":
        import systems

        return systems.names()
    if suite == "odebench":
        return odebench.names(options.odebench_path)
    if suite == "dysts":
        return dysts_flows.names(dysts_flows.require_path(options.dysts_path))
    from .. import datasets

    return datasets.names()


def has_truth(suite: str) -> bool:
    """Return whether the suite's systems have known equations (all but ``real``)."""
    return check_suite(suite) != "real"


def build_case(
    suite: str, name: str, noise: float, sampling: str, seed: int, options: SuiteOptions = SuiteOptions()
) -> Case:
    """Build the case of system ``name`` of ``suite`` at this noise, sampling and seed."""
    check_suite(suite)
    if suite == "core":
        import systems

        return case_from_system(suite, systems.get(name), noise, sampling, seed)
    if suite == "odebench":
        system = odebench.get(name, options.odebench_path)
        test_x0 = [odebench.held_out_initial_condition(name, options.odebench_path)]
        return case_from_system(suite, system, noise, sampling, seed, test_x0=test_x0)
    if suite == "dysts":
        system = dysts_flows.get(name, dysts_flows.require_path(options.dysts_path))
        return case_from_system(suite, system, noise, sampling, seed)
    from .. import datasets

    return case_from_series(suite, name, [datasets.load(name)], REAL_TEST_FRACTION, seed)
