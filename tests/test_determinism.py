"""Pinned threads and algorithms, and identical fits for the same seed."""

import numpy as np
import pytest
import torch

from s2kan_dyn.determinism import deterministic, pin_determinism

# Report keys that may differ between identical fits.
VOLATILE_KEYS = {"timings", "seconds", "versions", "settings", "files", "checkpoint"}


def comparable(report):
    """Return ``report`` without timings, versions, run settings and file lists, at any depth."""
    if isinstance(report, dict):
        return {k: comparable(v) for k, v in report.items() if k not in VOLATILE_KEYS}
    if isinstance(report, list):
        return [comparable(v) for v in report]
    return report


def test_deterministic_pins_and_restores():
    before_threads = torch.get_num_threads()
    before_algorithms = torch.are_deterministic_algorithms_enabled()
    with deterministic(threads=1) as settings:
        assert torch.get_num_threads() == 1
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        assert settings["torch_threads"] == 1
        assert settings["blas_threads"] == 1
    assert torch.get_num_threads() == before_threads
    assert torch.are_deterministic_algorithms_enabled() == before_algorithms


def test_deterministic_restores_after_error():
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError):
        with deterministic(threads=1):
            raise RuntimeError("inside")
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("threads", [0, -1, 1.5, True])
def test_deterministic_bad_threads(threads):
    with pytest.raises(ValueError, match="threads="):
        with deterministic(threads=threads):
            pass


def test_pin_determinism_settings():
    before = torch.get_num_threads()
    try:
        settings = pin_determinism(1)
        assert settings == {"torch_threads": 1, "blas_threads": 1, "deterministic_algorithms": True}
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)
        torch.set_num_threads(before)


def test_comparable_drops_volatile_keys():
    report = {"equations": {"x": "y"}, "timings": {"fit": 1.0}, "stages": [{"seconds": 2.0, "loss": 0.5}]}
    assert comparable(report) == {"equations": {"x": "y"}, "stages": [{"loss": 0.5}]}


@pytest.mark.slow
def test_same_seed_same_report():
    import systems
    from s2kan_dyn.discovery import SymbolicODE
    from s2kan_dyn.model.train import GateSchedule

    data = systems.get("lotka_volterra").simulate(t_end=5, noise=0.01, seed=3)
    reports = []
    for _ in range(2):
        with deterministic(threads=1):
            model = SymbolicODE(
                stages=("derivative",), schedule=GateSchedule(20, 20, 20, 20), dictionary=(("x",), ("x", "sin")),
                random_state=5, progress=False,
            ).fit(data)
        reports.append((model.report_, {k: str(v) for k, v in model.equations().items()}))
    assert reports[0][1] == reports[1][1]
    assert comparable(reports[0][0]) == comparable(reports[1][0])
    assert not np.isnan(reports[0][0]["n_samples"])
