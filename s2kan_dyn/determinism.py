"""Thread and algorithm pinning for reproducible fits.

A fit of this project is reproducible when the same seed, data, library
versions, thread counts and hardware are used: every random draw comes from
a generator seeded by ``random_state`` (see ``SymbolicODE``), and
:func:`deterministic` pins what torch and BLAS would otherwise choose:

- torch intra-op threads (default 1). The number of threads changes the
  order of floating-point reductions, so results differ in the last bits
  between thread counts;
- BLAS threads of numpy and scipy through ``threadpoolctl`` when it is
  installed (it comes with scikit-learn), for the same reason;
- ``torch.use_deterministic_algorithms(True, warn_only=True)``: an op with
  a deterministic implementation uses it, and an op without one warns
  instead of raising, so CPU fits never stop on it;
- on CUDA, cuDNN's deterministic mode and no autotuning.

What torch cannot guarantee (PyTorch's "Reproducibility" notes, torch 2.x):
identical results across torch releases, across platforms, or between CPU
and GPU. Some torch releases also need ``CUBLAS_WORKSPACE_CONFIG=:4096:8``
set before CUDA starts for deterministic cuBLAS, so :func:`deterministic`
sets it unless CUDA is already in use. Ops that only warn under
``warn_only`` stay non-deterministic.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Iterator

import torch

log = logging.getLogger(__name__)

DEFAULT_THREADS = 1
# cuBLAS workspace setting that makes its reductions deterministic (CUDA 10.2 and later).
CUBLAS_WORKSPACE = ":4096:8"


def pin_determinism(threads: int = DEFAULT_THREADS) -> dict:
    """Pin threads and deterministic algorithms for the rest of the process.

    For command-line runs, which end with the fit. Library code should use
    :func:`deterministic`, which restores the previous settings.

    Args:
        threads: torch intra-op and BLAS threads (default 1).

    Returns:
        The settings now in force, as plain data for a report:
        ``torch_threads``, ``blas_threads`` (``None`` without threadpoolctl)
        and ``deterministic_algorithms``.
    """
    settings, _ = _apply(threads)
    return settings


@contextlib.contextmanager
def deterministic(threads: int = DEFAULT_THREADS) -> Iterator[dict]:
    """Pin threads and deterministic algorithms inside the block; restore the previous settings after.

    Yields the settings of :func:`pin_determinism`.
    """
    previous_threads = torch.get_num_threads()
    previous_algorithms = torch.are_deterministic_algorithms_enabled()
    previous_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    previous_cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    settings, blas_limits = _apply(threads)
    try:
        yield settings
    finally:
        if blas_limits is not None:
            blas_limits.restore_original_limits()
        torch.set_num_threads(previous_threads)
        torch.use_deterministic_algorithms(previous_algorithms, warn_only=previous_warn_only)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = previous_cudnn


def _apply(threads: int):
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads={threads!r} is invalid; use an int >= 1.")
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        # NOTE: without threadpoolctl the BLAS thread count is inherited (set OMP_NUM_THREADS).
        log.debug("threadpoolctl not installed; BLAS threads follow OMP_NUM_THREADS")
        blas_limits, blas_threads = None, None
    else:
        blas_limits, blas_threads = threadpool_limits(limits=threads), threads

    # After threadpoolctl, which also limits OpenMP and would otherwise record
    # torch's new thread count as the one to restore.
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    if not torch.cuda.is_initialized():
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)

    settings = {"torch_threads": threads, "blas_threads": blas_threads, "deterministic_algorithms": True}
    log.debug("deterministic settings: %s", settings)
    return settings, blas_limits
