"""Removal estimates of readout.elimination against exact refits."""

import numpy as np

from s2kan_dyn.readout.elimination import removal_increases


def _rss(A, y):
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    return float(np.sum((A @ coef - y) ** 2))


def test_increases_match_refits():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(80, 6)) * np.array([1.0, 10.0, 0.1, 1.0, 5.0, 2.0])
    y = A[:, 0] - 0.3 * A[:, 1] + 4.0 * A[:, 2] + rng.normal(scale=0.1, size=80)
    groups = [slice(0, 1), slice(1, 3), slice(3, 4), slice(4, 6)]
    rss, increases = removal_increases(A, y, groups)
    assert np.isclose(rss, _rss(A, y), rtol=1e-10)
    for group, increase in zip(groups, increases):
        without_group = np.delete(A, np.arange(A.shape[1])[group], axis=1)
        assert np.isclose(rss + increase, _rss(without_group, y), rtol=1e-8)


def test_duplicate_column_counts_as_removable():
    rng = np.random.default_rng(1)
    x = rng.normal(size=50)
    A = np.column_stack([x, x, x**2])
    _, increases = removal_increases(A, 2 * x + x**2, [slice(0, 1), slice(1, 2), slice(2, 3)])
    assert increases[0] < 1e-6
    assert increases[2] > 1.0
