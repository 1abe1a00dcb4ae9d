"""Small real data sets shipped with the package.

>>> from s2kan_dyn import datasets
>>> traj = datasets.load("lynx_hare")
>>> traj.state_names, traj.x.shape
(('hare', 'lynx'), (21, 2))

``SOURCE.md`` beside this module names the origin of each file.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UnknownNameError
from ..io import load_trajectories
from ..trajectory import Trajectory

_FOLDER = Path(__file__).resolve().parent

# name -> (file, time column)
_DATASETS = {
    "lynx_hare": ("lynx_hare_1900_1920.csv", "year"),
}


def names() -> list[str]:
    """Return the names of the shipped data sets, sorted."""
    return sorted(_DATASETS)


def path(name: str) -> Path:
    """Return the path of data set ``name``'s file inside the installed package."""
    if name not in _DATASETS:
        raise UnknownNameError("data set", str(name), list(_DATASETS))
    return _FOLDER / _DATASETS[name][0]


def load(name: str) -> Trajectory:
    """Load data set ``name`` as one trajectory whose ``source`` is ``name``.

    ``lynx_hare``: ``t`` is the year (1900-1920), states ``hare`` and ``lynx``
    in thousands of pelts, shape ``(21, 2)``.
    """
    file = path(name)
    [traj] = load_trajectories(file, time_column=_DATASETS[name][1])
    return Trajectory(traj.t, traj.x, traj.state_names, name)
