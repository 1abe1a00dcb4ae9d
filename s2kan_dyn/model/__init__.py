"""The S2KAN model: primitives, gates, layers, network, MDL objective and gated fit."""

from .gates import HardConcreteGate
from .layer import S2KANLayer
from .network import S2KAN
from .objective import data_bits, mdl_loss
from .primitives import (
    DEFAULT_PRIMITIVES,
    PRIMITIVES,
    Primitive,
    get_primitive,
    register_primitive,
)
from .spline import BSplineBasis
from .train import FitRecord, GateSchedule, StageRecord, fit_gated

__all__ = [
    "BSplineBasis",
    "DEFAULT_PRIMITIVES",
    "FitRecord",
    "GateSchedule",
    "HardConcreteGate",
    "PRIMITIVES",
    "Primitive",
    "S2KAN",
    "S2KANLayer",
    "StageRecord",
    "data_bits",
    "fit_gated",
    "get_primitive",
    "mdl_loss",
    "register_primitive",
]
