"""Minimum-description-length objective of a gated S2KAN fit.

    loss = data_bits + lambda * model_bits / n_samples      (bits per sample)

``data_bits`` is the Gaussian code length of the residuals, one variance per
output dimension, so each dimension is fitted in its own units.
``model_bits`` is the expected code length of the open terms
(:meth:`S2KAN.model_bits`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import S2KANDynError

# Relative floor on each dimension's mean squared error: 1e-24 of the
# target's mean square, about float64 round-off squared, so a perfect fit
# has a finite code length.
MSE_FLOOR = 1e-24


def data_bits(pred: Tensor, target: Tensor, floor: float = MSE_FLOOR) -> Tensor:
    """Gaussian code length of the residuals, in bits per sample.

    ``sum_d 0.5 * log2(MSE_d + floor * mean(target_d^2) + tiny)``, the code
    length of i.i.d. Gaussian residuals at their maximum-likelihood variance
    less the constants that do not depend on the fit. It can be negative.

    Args:
        pred, target: shape ``(B, d)`` (or ``(B,)`` for one dimension).
        floor: relative floor on each MSE (default ``MSE_FLOOR``).

    Returns:
        A scalar tensor.
    """
    if pred.shape != target.shape:
        raise S2KANDynError(
            f"prediction shape {tuple(pred.shape)} differs from target shape {tuple(target.shape)}"
        )
    if pred.dim() == 1:
        pred, target = pred[:, None], target[:, None]
    mse = (pred - target).pow(2).mean(dim=0)
    scale = target.detach().pow(2).mean(dim=0)
    tiny = torch.finfo(pred.dtype).tiny
    return 0.5 * torch.log2(mse + floor * scale + tiny).sum()


def mdl_loss(
    model, pred: Tensor, target: Tensor, lam: float, n_samples: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Return ``(loss, data_bits, model_bits)``, all scalar tensors.

    ``loss = data_bits + lam * model_bits / n_samples``; ``data_bits`` is
    per sample and ``model_bits`` is the total for the model, so the loss is
    in bits per sample.

    Args:
        model: an :class:`S2KAN` (anything with ``model_bits(n_samples)``).
        pred, target: shape ``(B, d)``.
        lam: weight of the model bits, 0 for a pure fit, 1 for plain MDL.
        n_samples: number of samples the data bits stand for.
    """
    fit = data_bits(pred, target)
    complexity = model.model_bits(n_samples)
    return fit + lam * complexity / n_samples, fit, complexity
