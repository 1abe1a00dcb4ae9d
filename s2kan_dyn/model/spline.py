"""B-spline basis on a per-input uniform grid, with a linear extension.

Each input ``i`` has its own uniform grid of ``grid_size`` intervals on
``[lo_i, hi_i]``, extended by ``order`` knots on each side, which gives
``grid_size + order`` basis functions that sum to one on ``[lo_i, hi_i]``.
Outside that range each basis function continues along its tangent at the
nearest end, so a spline built on this basis extends linearly instead of
dropping to zero, and it stays linear in its coefficients everywhere.

The basis is evaluated for all inputs at once with the Cox-de Boor
recursion, vectorised over the batch and the inputs. Because the grid is
uniform, the recursion runs in cell coordinates on only the ``order + 1``
functions that are nonzero in each sample's cell, and a scatter places them
in the full basis.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import S2KANDynError

# Initial range of every input, in RMS-scaled units, until update_grid.
DEFAULT_RANGE = (-2.0, 2.0)
# update_grid widens the data range by this fraction on each side, so the
# extremes of the data are not exactly on the boundary.
GRID_MARGIN = 0.01


class BSplineBasis(nn.Module):
    """Basis functions of order ``order`` on ``n_in`` adaptive uniform grids.

    Args:
        n_in: number of inputs, each with its own grid.
        grid_size: number of intervals between ``lo`` and ``hi`` (default 5).
        order: polynomial degree (default 3, cubic).
        dtype, device: of the knot buffer.

    Buffers:
        knots: shape ``(n_in, grid_size + 2*order + 1)``.
    """

    def __init__(
        self,
        n_in: int,
        grid_size: int = 5,
        order: int = 3,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ):
        super().__init__()
        if grid_size < 1:
            raise S2KANDynError(f"grid_size={grid_size} is invalid; use at least 1 interval")
        if order < 0:
            raise S2KANDynError(f"spline order={order} is invalid; use 0 or more (3 is cubic)")
        self.n_in = n_in
        self.grid_size = grid_size
        self.order = order
        lo = torch.full((n_in,), DEFAULT_RANGE[0], dtype=dtype, device=device)
        hi = torch.full((n_in,), DEFAULT_RANGE[1], dtype=dtype, device=device)
        self.register_buffer("knots", self._uniform_knots(lo, hi))

    @property
    def n_basis(self) -> int:
        """Number of basis functions per input, ``grid_size + order``."""
        return self.grid_size + self.order

    @property
    def lower(self) -> Tensor:
        """Lower end of each input's range, shape ``(n_in,)``."""
        return self.knots[:, self.order]

    @property
    def upper(self) -> Tensor:
        """Upper end of each input's range, shape ``(n_in,)``."""
        return self.knots[:, self.order + self.grid_size]

    def _uniform_knots(self, lo: Tensor, hi: Tensor) -> Tensor:
        steps = torch.arange(
            -self.order, self.grid_size + self.order + 1, dtype=lo.dtype, device=lo.device
        )
        width = (hi - lo) / self.grid_size
        return lo[:, None] + steps[None, :] * width[:, None]

    def set_range(self, lo: Tensor, hi: Tensor) -> None:
        """Place each input's grid on ``[lo_i, hi_i]`` (shapes ``(n_in,)``)."""
        lo = lo.to(self.knots)
        hi = hi.to(self.knots)
        # A constant input would give a zero-width grid; give it a unit one.
        flat = (hi - lo) <= 1e-12 * (1.0 + lo.abs())
        lo = torch.where(flat, lo - 0.5, lo)
        hi = torch.where(flat, hi + 0.5, hi)
        self.knots.copy_(self._uniform_knots(lo, hi))

    @torch.no_grad()
    def update_grid(self, x: Tensor) -> None:
        """Fit each input's range to the data ``x`` of shape ``(B, n_in)``.

        The range is ``[min, max]`` of each column widened by 1% on each
        side. Coefficients built on the old grid are not refitted here; the
        layer that owns them does that.
        """
        lo = x.min(dim=0).values
        hi = x.max(dim=0).values
        margin = GRID_MARGIN * (hi - lo)
        self.set_range(lo - margin, hi + margin)

    def forward(self, x: Tensor) -> Tensor:
        """Evaluate the basis at ``x`` of shape ``(B, n_in)``.

        Returns shape ``(B, n_in, n_basis)``. Outside ``[lower, upper]``
        each function is its value at the nearest end plus its slope there
        times the distance, so the result is continuous with a continuous
        first derivative (for ``order >= 2``).
        """
        if x.dim() != 2 or x.shape[1] != self.n_in:
            raise S2KANDynError(
                f"spline input has shape {tuple(x.shape)}; expected (batch, {self.n_in})"
            )
        k = self.order
        width = (self.upper - self.lower) / self.grid_size

        # Position in grid cells, clamped to the range; the cell index has no gradient.
        position = (x - self.lower) / width
        inside = position.clamp(0.0, float(self.grid_size))
        cell = inside.detach().floor().clamp(max=self.grid_size - 1)
        t = inside - cell

        # Cox-de Boor recursion on the k + 1 functions that are nonzero in the
        # cell. On integer knots the denominators are the degree p, the left
        # factor t + p - r - 1 and the right factor r + 1 - t.
        local = [torch.ones_like(t)]
        lower_degree = local
        for p in range(1, k + 1):
            lower_degree = local
            saved = torch.zeros_like(t)
            local = []
            for r in range(p):
                share = lower_degree[r] / p
                local.append(saved + (r + 1 - t) * share)
                saved = (t + (p - r - 1)) * share
            local.append(saved)

        values = torch.stack(local, dim=-1)  # (B, n_in, k + 1)
        if k > 0:
            # d/dx B_{m,k} = (B_{m,k-1} - B_{m+1,k-1}) / width on a uniform grid,
            # so slope times distance is that difference times the cells outside.
            padded = torch.stack([torch.zeros_like(t), *lower_degree, torch.zeros_like(t)], dim=-1)
            slope = padded[..., :-1] - padded[..., 1:]
            values = values + slope * (position - inside).unsqueeze(-1)

        index = cell.long().unsqueeze(-1) + torch.arange(k + 1, device=x.device)
        basis = x.new_zeros(x.shape[0], self.n_in, self.n_basis)
        return basis.scatter(-1, index, values)
