"""Shared test setup: one torch thread, a working folder for output, the reference data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# One thread per process is fastest for the small models here, and CI has 2 cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402  (after OMP_NUM_THREADS so that it takes effect)

torch.set_num_threads(1)

# Reference data beside the repository; a user's clone does not have it.
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def out_dir(tmp_path, monkeypatch) -> Path:
    """An empty folder that is also the working directory, so relative output paths land in it."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def shared_data() -> Path:
    """The reference data folder; skips the test where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data folder {SHARED_DATA} not found")
    return SHARED_DATA
