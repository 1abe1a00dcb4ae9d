"""s2kan-dyn: equation discovery and forecasting with S2KAN neural ODEs."""

from .errors import DataError, FitError, ModelFileError, S2KANDynError, UnknownNameError
from .io import load_trajectories, save_trajectories
from .trajectory import Trajectory

__version__ = "0.1.0"

__all__ = [
    "DataError",
    "FitError",
    "ModelFileError",
    "S2KANDynError",
    "Trajectory",
    "UnknownNameError",
    "load_trajectories",
    "save_trajectories",
]
