"""Cheap estimates of what removing a term costs, for backward elimination.

Removing column group ``g`` from a least-squares fit raises the residual
sum of squares by ``beta_g^T (G_gg)^-1 beta_g`` with ``G = (A^T A)^-1``,
the identity behind the partial F-test. One QR factorisation of ``A``
therefore prices every removal, where refitting each removal costs one
least-squares solve per term. The estimates lose accuracy near round-off,
so callers refit the few best-ranked removals exactly.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import scipy.linalg

# Backward elimination refits every possible removal while a set has at most
# this many terms. Full trials cost O(n k^4) over an elimination, so a larger
# set refits only the RANKED_TRIALS removals ranked first by the estimates.
EXACT_TRIAL_TERMS = 24
RANKED_TRIALS = 4


def removal_increases(A: np.ndarray, y: np.ndarray, groups: Sequence[slice]) -> tuple[float, np.ndarray]:
    """Return the residual sum of squares of ``y ~ A`` and its increase without each column group.

    Args:
        A: design matrix, shape ``(n, m)``; columns are scaled to unit norm here.
        y: target, shape ``(n,)``.
        groups: column slices of ``A``, one per term.

    Returns:
        ``(rss, increases)`` with ``increases`` of shape ``(len(groups),)``. An
        increase that cannot be computed (a singular block) is 0, so that
        term is ranked as removable and then refitted exactly.
    """
    norms = np.linalg.norm(A, axis=0)
    norms[norms == 0] = 1.0
    scaled = A / norms
    Q, R = np.linalg.qr(scaled)
    with np.errstate(all="ignore"):
        R_inv = scipy.linalg.solve_triangular(R, np.eye(R.shape[0]), check_finite=False)
        beta = R_inv @ (Q.T @ y)
        gram_inv = R_inv @ R_inv.T
    rss = float(np.sum((y - scaled @ beta) ** 2)) if np.all(np.isfinite(beta)) else math.inf
    increases = np.zeros(len(groups))
    for k, block in enumerate(groups):
        try:
            with np.errstate(all="ignore"):
                increase = float(beta[block] @ np.linalg.solve(gram_inv[block, block], beta[block]))
        except np.linalg.LinAlgError:
            continue
        if math.isfinite(increase) and increase > 0:
            increases[k] = increase
    return rss, increases
