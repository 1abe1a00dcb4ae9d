"""Hard-concrete (L0) gates, one per (edge, term).

A hard-concrete gate (Louizos, Welling and Kingma, "Learning Sparse Neural
Networks through L0 Regularization", ICLR 2018) is a stretched and clipped
binary concrete variable: with ``u ~ U(0, 1)``,

    s = sigmoid((log u - log(1 - u) + log_alpha) / beta)
    z = min(1, max(0, s * (zeta - gamma) + gamma))

so samples are exactly 0 or exactly 1 with positive probability, and
``P(z > 0) = sigmoid(log_alpha - beta * log(-gamma / zeta))`` is
differentiable in ``log_alpha``. At evaluation the gate is the deterministic
``min(1, max(0, sigmoid(log_alpha) * (zeta - gamma) + gamma))`` of the
paper.

The noise ``u`` is drawn by :meth:`HardConcreteGate.resample` and kept.
Every forward pass between two draws (every solver stage of one batch)
therefore uses the same gate values, and the gradient still reaches
``log_alpha``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..errors import S2KANDynError

# Constants of the paper: temperature beta and the stretch interval (gamma, zeta).
BETA = 2.0 / 3.0
GAMMA = -0.1
ZETA = 1.1
# Uniform noise is kept away from 0 and 1 so that its logit is finite.
NOISE_EPS = 1e-6


class HardConcreteGate(nn.Module):
    """A tensor of hard-concrete gates of shape ``shape``.

    Args:
        shape: shape of the gate tensor, for example ``(n_out, n_in, K + 1)``.
        init_log_alpha: initial ``log_alpha`` of every gate (default 3.0,
            which gives P(open) = 0.99, P(exactly 1) = 0.80 and a
            deterministic value of exactly 1, so that a model fitted with
            gates held open computes the same function in eval mode).
        beta, gamma, zeta: the temperature and stretch interval of the paper.
        dtype, device: of the parameter.

    Parameters:
        log_alpha: shape ``shape``, the location of each gate.

    Buffers:
        noise: shape ``shape``, the uniform noise of the current draw.
        fixed: shape ``shape``, NaN where the gate is free, else the 0/1 value
            it is fixed to (see :meth:`fix`).
        fixed_before_freeze: the ``fixed`` mask saved by :meth:`freeze`.
    """

    def __init__(
        self,
        shape: tuple[int, ...],
        init_log_alpha: float = 3.0,
        beta: float = BETA,
        gamma: float = GAMMA,
        zeta: float = ZETA,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ):
        super().__init__()
        if not (gamma < 0.0 and zeta > 1.0 and beta > 0.0):
            raise S2KANDynError(
                f"hard-concrete constants beta={beta}, gamma={gamma}, zeta={zeta} are invalid; "
                "use beta > 0, gamma < 0 and zeta > 1 (the paper uses 2/3, -0.1, 1.1)"
            )
        self.beta = beta
        self.gamma = gamma
        self.zeta = zeta
        self.log_alpha = nn.Parameter(
            torch.full(shape, float(init_log_alpha), dtype=dtype, device=device)
        )
        self.register_buffer("noise", torch.full(shape, 0.5, dtype=dtype, device=device))
        self.register_buffer("fixed", torch.full(shape, float("nan"), dtype=dtype, device=device))
        self.register_buffer("fixed_before_freeze", self.fixed.clone())
        self._has_noise = False

    def resample(self, generator: torch.Generator | None = None) -> None:
        """Draw new uniform noise; gates keep it until the next call."""
        with torch.no_grad():
            self.noise.uniform_(NOISE_EPS, 1.0 - NOISE_EPS, generator=generator)
        self._has_noise = True

    def _stochastic(self) -> Tensor:
        logit = torch.log(self.noise) - torch.log1p(-self.noise)
        s = torch.sigmoid((logit + self.log_alpha) / self.beta)
        return (s * (self.zeta - self.gamma) + self.gamma).clamp(0.0, 1.0)

    def deterministic(self) -> Tensor:
        """Gate values at evaluation, in [0, 1], ignoring any fixed mask."""
        s = torch.sigmoid(self.log_alpha)
        return (s * (self.zeta - self.gamma) + self.gamma).clamp(0.0, 1.0)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """Draw new noise and return the gate values it gives.

        In training mode the values are stochastic, exactly 0 or 1 with
        positive probability; in eval mode they are :meth:`deterministic`.
        Fixed gates take their fixed value in both modes.
        """
        self.resample(generator)
        return self.forward()

    def forward(self) -> Tensor:
        """Return the current gate values without drawing new noise.

        Training mode uses the noise of the last :meth:`resample` (drawing
        one first if there is none), eval mode the deterministic values.
        """
        if self.training:
            if not self._has_noise:
                self.resample()
            z = self._stochastic()
        else:
            z = self.deterministic()
        return self._apply_fixed(z)

    def _apply_fixed(self, z: Tensor) -> Tensor:
        # torch.where also blocks the gradient to log_alpha of fixed gates.
        return torch.where(torch.isnan(self.fixed), z, torch.nan_to_num(self.fixed))

    def prob_open(self) -> Tensor:
        """P(gate > 0), differentiable in ``log_alpha``; 0 or 1 where fixed."""
        shift = self.beta * math.log(-self.gamma / self.zeta)
        return self._apply_fixed(torch.sigmoid(self.log_alpha - shift))

    def eval_values(self) -> Tensor:
        """Gate values as in eval mode (fixed value, else deterministic), in any mode."""
        return self._apply_fixed(self.deterministic())

    def is_open(self) -> Tensor:
        """Boolean tensor: True where the eval-mode value is above 0."""
        with torch.no_grad():
            return self.eval_values() > 0.0

    def fix(self, mask: Tensor) -> None:
        """Fix gates to 0 or 1; NaN entries of ``mask`` leave those gates free.

        A fixed gate ignores ``log_alpha`` and noise in every mode, so a gate
        fixed to 0 gives its term exactly zero output and zero gradient.

        Raises:
            S2KANDynError: the mask has the wrong shape or values other than
                0, 1 and NaN.
        """
        mask = torch.as_tensor(mask).to(self.fixed)
        if mask.shape != self.fixed.shape:
            raise S2KANDynError(
                f"gate mask has shape {tuple(mask.shape)}; expected {tuple(self.fixed.shape)}"
            )
        fixed_values = mask[~torch.isnan(mask)]
        if not bool(((fixed_values == 0.0) | (fixed_values == 1.0)).all()):
            raise S2KANDynError("gate mask values must be 0, 1 or NaN (free); round the mask first")
        self.fixed.copy_(mask)

    def unfix(self) -> None:
        """Free every gate again."""
        self.fixed.fill_(float("nan"))

    def freeze(self) -> None:
        """Fix every free gate to its deterministic state: 1 where log_alpha > 0, else 0.

        ``log_alpha > 0`` is where the deterministic value is above 0.5;
        gates already fixed keep their value.
        """
        with torch.no_grad():
            self.fixed_before_freeze.copy_(self.fixed)
            hard = (self.log_alpha > 0.0).to(self.fixed)
            self.fixed.copy_(torch.where(torch.isnan(self.fixed), hard, self.fixed))

    def unfreeze(self) -> None:
        """Undo the last :meth:`freeze`: restore the fixed mask it started from."""
        self.fixed.copy_(self.fixed_before_freeze)
