"""Rollback of parameters after a non-finite loss, with a smaller step.

An optimiser step that overshoots into a region where a primitive
overflows (``exp`` of a large argument, a pole of ``1/x``) gives a NaN or
infinite loss at the next evaluation. :class:`ParameterRollback` keeps a
copy of the parameters at the last finite loss. On a non-finite loss it
restores them and halves the learning rate of every parameter group.
After ``max_rollbacks`` such events it raises :class:`FitError`. L-BFGS
runs use :func:`snapshot` and :func:`restore` directly: a non-finite loss
inside a run restores the parameters at its start and ends the stage.
"""

from __future__ import annotations

import logging
from typing import Sequence

import torch

from ..errors import FitError

log = logging.getLogger(__name__)

# Each rollback halves the learning rates, so 8 rollbacks lower them 256-fold.
# A fit that still diverges then has a problem that a smaller step does not fix.
MAX_ROLLBACKS = 8
STEP_FACTOR = 0.5


def snapshot(parameters: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Return detached copies of ``parameters``."""
    return [p.detach().clone() for p in parameters]


@torch.no_grad()
def restore(parameters: Sequence[torch.Tensor], saved: Sequence[torch.Tensor]) -> None:
    """Copy ``saved`` (from :func:`snapshot`) back into ``parameters`` in place."""
    for parameter, value in zip(parameters, saved):
        parameter.copy_(value)


class ParameterRollback:
    """Copies of ``parameters`` at the last finite loss, for one optimiser.

    Args:
        parameters: the tensors the optimiser updates.
        optimizer: its param groups' ``lr`` are scaled by ``STEP_FACTOR`` on each rollback.
        stage: stage name, used in log lines and errors.
        max_rollbacks: rollbacks allowed before :class:`FitError` (default 8).
    """

    def __init__(self, parameters: Sequence[torch.Tensor], optimizer: torch.optim.Optimizer, stage: str,
                 max_rollbacks: int = MAX_ROLLBACKS):
        self.parameters = list(parameters)
        self.optimizer = optimizer
        self.stage = stage
        self.max_rollbacks = max_rollbacks
        self.rollbacks = 0
        self.saved = snapshot(self.parameters)

    def check(self, loss: torch.Tensor, step: int) -> bool:
        """Return True when ``loss`` is finite (and remember the parameters); else roll back and return False.

        Raises:
            FitError: the loss was non-finite more than ``max_rollbacks`` times.
        """
        if bool(torch.isfinite(loss)):
            self.saved = snapshot(self.parameters)
            return True
        self.rollbacks += 1
        if self.rollbacks > self.max_rollbacks:
            raise FitError(
                f"{self.stage} stage: loss became {loss.item()} at step {step} after {self.max_rollbacks} "
                "rollbacks with halved learning rates; lower lr or gate_lr, or check the data for extreme values"
            )
        restore(self.parameters, self.saved)
        for group in self.optimizer.param_groups:
            group["lr"] *= STEP_FACTOR
        log.warning(
            "%s stage: loss became %s at step %d; parameters rolled back to the last finite loss and "
            "learning rates lowered to %s (rollback %d of %d)",
            self.stage, loss.item(), step, [f"{g['lr']:.3g}" for g in self.optimizer.param_groups],
            self.rollbacks, self.max_rollbacks,
        )
        return False
