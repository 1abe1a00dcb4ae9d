"""Pinned threads and algorithms, and identical fits for the same seed."""

import math

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


def differences(first, second, path=""):
    """Return ``"path: a != b"`` for every leaf where the comparable parts of two reports differ."""
    first, second = comparable(first), comparable(second)
    if isinstance(first, dict) and isinstance(second, dict):
        return [line for k in sorted(set(first) | set(second), key=str)
                for line in differences(first.get(k), second.get(k), f"{path}/{k}")]
    if isinstance(first, list) and isinstance(second, list) and len(first) == len(second):
        return [line for i, (a, b) in enumerate(zip(first, second)) for line in differences(a, b, f"{path}[{i}]")]
    both_nan = isinstance(first, float) and isinstance(second, float) and math.isnan(first) and math.isnan(second)
    return [] if first == second or both_nan else [f"{path}: {first!r} != {second!r}"]


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
    # NOTE: an earlier build gave different snapped equations for this data
    # with the x, sin level in two calls in one process. It no longer does,
    # but the cause was not found, so this test keeps the sin level in.
    reports = []
    for _ in range(2):
        with deterministic(threads=1):
            model = SymbolicODE(
                stages=("derivative",), schedule=GateSchedule(20, 20, 20, 20), dictionary=(("x",), ("x", "sin")),
                random_state=5, progress=False,
            ).fit(data)
        reports.append((model.report_, {k: str(v) for k, v in model.equations().items()}))
    assert reports[0][1] == reports[1][1]
    assert differences(reports[0][0], reports[1][0]) == []
    assert not np.isnan(reports[0][0]["n_samples"])


def test_differences_lists_paths():
    first = {"stages": [{"loss": 1.0, "seconds": 3.0}], "noise": float("nan")}
    second = {"stages": [{"loss": 2.0, "seconds": 4.0}], "noise": float("nan")}
    assert differences(first, second) == ["/stages[0]/loss: 1.0 != 2.0"]
