"""One S2KAN layer: every edge a gated sum of symbolic primitives and a spline.

Output node ``j`` of a layer is

    y_j = bias_j + sum_i [ sum_k z_jik * c_jik * f_k(a_jik * x_i + b_jik)
                           + z_ji,spline * spline_ji(x_i) ]

where the inner map ``a*x + b`` is used only by affine primitives (plain
ones take ``x_i`` directly) and ``z`` are hard-concrete gates. All edges and
terms are evaluated as a few batched tensor operations. Each plain
primitive is applied once to the whole input, and one matrix product
contracts the plain and spline terms over inputs. Each affine primitive is
applied once to the inner maps of all edges at once.
"""

from __future__ import annotations

import logging
import math
from typing import Sequence

import sympy
import torch
from torch import Tensor, nn

from ..errors import S2KANDynError
from .gates import HardConcreteGate
from .primitives import DEFAULT_PRIMITIVES, get_primitive
from .spline import BSplineBasis

logger = logging.getLogger(__name__)

# Code length of choosing the spline term, like Primitive.bits (a prior of
# 1/8, between the cheap polynomials and the costly primitives). Its real
# cost is its n_basis coefficients, priced by term_bits.
SPLINE_BITS = 3.0
# Inner maps start at a ~ N(1, 0.3^2), b ~ N(0, 0.3^2): near the identity,
# but different on every edge so that edges do not move in lockstep.
INNER_INIT_STD = 0.3
# Spline coefficients start this many times smaller than primitive ones.
SPLINE_INIT_SCALE = 0.1
# Relative ridge of the least-squares refit in update_grid; it keeps the
# solve well posed when some basis function has no data under it.
GRID_REFIT_RIDGE = 1e-12


class S2KANLayer(nn.Module):
    """A layer of ``n_out x n_in`` gated edges.

    Args:
        n_in, n_out: number of input and output nodes.
        primitives: names of registered primitives, ``K`` of them (default
            :data:`DEFAULT_PRIMITIVES`).
        spline: whether each edge also has a B-spline term (default True).
            Without it the spline gate is held closed and costs nothing.
        grid_size: intervals of the spline grid (default 5).
        spline_order: degree of the spline (default 3).
        dtype: float64 by default.
        device: where parameters live; None is torch's default device.
        generator: random generator of the initial values (default: torch's).

    Parameters:
        coef: ``(n_out, n_in, K)`` outer coefficients ``c``.
        inner_a, inner_b: ``(n_out, n_in, K)`` inner maps, used only where the
            primitive is affine.
        spline_coef: ``(n_out, n_in, n_basis)`` spline coefficients.
        bias: ``(n_out,)``.
        gates.log_alpha: ``(n_out, n_in, K + 1)``, the last entry the spline.

    Buffers:
        allowed: ``(n_out, n_in, K + 1)``, 1 where a term may be used, 0 where
            it is held closed (the spline column when ``spline=False``).
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        primitives: Sequence[str] = DEFAULT_PRIMITIVES,
        spline: bool = True,
        grid_size: int = 5,
        spline_order: int = 3,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if n_in < 1 or n_out < 1:
            raise S2KANDynError(f"layer size {n_in} -> {n_out} is invalid; use at least 1 node each")
        if len(primitives) == 0:
            raise S2KANDynError("a layer needs at least one primitive; pass for example ('x',)")
        if len(set(primitives)) != len(primitives):
            raise S2KANDynError(f"primitives {list(primitives)} contain duplicates; list each once")
        self.n_in = n_in
        self.n_out = n_out
        self.primitives = tuple(get_primitive(name) for name in primitives)
        self.primitive_names = tuple(primitives)
        self.has_spline = spline
        self.index = 0  # position in the network, used to name dense edges
        n_terms = len(self.primitives)

        affine = [k for k, p in enumerate(self.primitives) if p.affine]
        plain = [k for k, p in enumerate(self.primitives) if not p.affine]
        # Python copies of the index buffers, so forward never reads a device tensor back.
        self._affine = tuple(affine)
        self._plain = tuple(plain)
        self.register_buffer("affine_index", torch.tensor(affine, dtype=torch.long, device=device))
        self.register_buffer("plain_index", torch.tensor(plain, dtype=torch.long, device=device))

        self.basis = BSplineBasis(n_in, grid_size, spline_order, dtype=dtype, device=device)
        shape = (n_out, n_in, n_terms)
        std = 1.0 / math.sqrt(n_in * (n_terms + 1))
        self.coef = nn.Parameter(_normal(shape, 0.0, std, generator, dtype, device))
        self.inner_a = nn.Parameter(_normal(shape, 1.0, INNER_INIT_STD, generator, dtype, device))
        self.inner_b = nn.Parameter(_normal(shape, 0.0, INNER_INIT_STD, generator, dtype, device))
        self.spline_coef = nn.Parameter(
            _normal(
                (n_out, n_in, self.basis.n_basis), 0.0, SPLINE_INIT_SCALE * std, generator, dtype, device
            )
        )
        self.bias = nn.Parameter(torch.zeros(n_out, dtype=dtype, device=device))
        self.gates = HardConcreteGate((n_out, n_in, n_terms + 1), dtype=dtype, device=device)

        allowed = torch.ones((n_out, n_in, n_terms + 1), dtype=dtype, device=device)
        if not spline:
            allowed[..., -1] = 0.0
        self.register_buffer("allowed", allowed)

    @property
    def n_terms(self) -> int:
        """Number of primitives ``K`` per edge (the spline is entry ``K``)."""
        return len(self.primitives)

    def gate_values(self) -> Tensor:
        """Current gate values times ``allowed``, shape ``(n_out, n_in, K + 1)``."""
        return self.gates() * self.allowed

    def forward(self, x: Tensor) -> Tensor:
        """Map ``x`` of shape ``(B, n_in)`` to ``(B, n_out)``.

        Gates take their current values: the held noise sample in training
        mode, deterministic in eval mode, fixed values where fixed.
        """
        if x.dim() != 2 or x.shape[1] != self.n_in:
            raise S2KANDynError(
                f"layer input has shape {tuple(x.shape)}; expected (batch, {self.n_in})"
            )
        z = self.gate_values()
        weight = self.coef * z[..., : self.n_terms]
        out = self.bias.expand(x.shape[0], self.n_out)

        # Plain primitives and the spline basis depend on the input only, so
        # they form one design matrix (B, n_in * (K_plain + n_basis)) and one
        # matrix product with the gated coefficients.
        columns = [self.primitives[k].torch_fn(x).unsqueeze(-1) for k in self._plain]
        coefficients = [weight[..., self.plain_index]] if self._plain else []
        if self.has_spline:
            columns.append(self.basis(x))
            coefficients.append(self.spline_coef * z[..., self.n_terms :])
        if columns:
            design = torch.cat(columns, dim=-1).reshape(x.shape[0], -1)
            out = out + design @ torch.cat(coefficients, dim=-1).reshape(self.n_out, -1).T

        # Affine primitives act on a per-edge inner map (B, n_out, n_in). One
        # pass per primitive over all edges: stacking them into one tensor
        # measured twice as slow, because slicing the stack back costs a
        # full-size zero fill per primitive in the backward pass.
        for k in self._affine:
            inner = torch.addcmul(self.inner_b[..., k], x[:, None, :], self.inner_a[..., k])
            out = out + (self.primitives[k].torch_fn(inner) * weight[..., k]).sum(-1)
        return out

    def term_bits(self, n_samples: int) -> Tensor:
        """Description length of each term, shape ``(n_out, n_in, K + 1)``.

        Bits of choosing the term (``Primitive.bits``, or ``SPLINE_BITS``) plus
        ``0.5 * log2(n_samples)`` per real parameter (Rissanen's asymptotic
        cost of a parameter estimated from ``n_samples`` samples): 1 for a
        plain primitive, 3 for an affine one (c, a, b), ``n_basis`` for the
        spline.
        """
        if n_samples < 1:
            raise S2KANDynError(f"n_samples={n_samples} is invalid; pass the number of samples fitted")
        per_parameter = 0.5 * math.log2(n_samples)
        bits = [p.bits + per_parameter * (3 if p.affine else 1) for p in self.primitives]
        bits.append(SPLINE_BITS + per_parameter * self.basis.n_basis)
        row = torch.tensor(bits, dtype=self.coef.dtype, device=self.coef.device)
        return row.expand(self.n_out, self.n_in, self.n_terms + 1)

    def prob_open(self) -> Tensor:
        """P(open) of each term, shape ``(n_out, n_in, K + 1)``, differentiable."""
        return self.gates.prob_open() * self.allowed

    def open_terms(self) -> Tensor:
        """Boolean ``(n_out, n_in, K + 1)``: open at evaluation and allowed."""
        return self.gates.is_open() & (self.allowed > 0)

    @torch.no_grad()
    def update_grid(self, x: Tensor) -> None:
        """Fit the spline grids to ``x`` of shape ``(B, n_in)`` and keep each spline.

        The spline coefficients are refitted by ridge-regularised least
        squares on the new grid so that every edge's spline takes the same
        values at ``x`` as before (exactly where the new basis can represent
        them).
        """
        if not self.has_spline:
            return
        old = torch.einsum("bin,oin->bio", self.basis(x), self.spline_coef)
        self.basis.update_grid(x)
        design = self.basis(x).permute(1, 0, 2)  # (n_in, B, n_basis)
        gram = design.transpose(1, 2) @ design
        ridge = GRID_REFIT_RIDGE * gram.diagonal(dim1=1, dim2=2).mean(-1).clamp(min=1.0)
        eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
        rhs = design.transpose(1, 2) @ old.permute(1, 0, 2)  # (n_in, n_basis, n_out)
        solution = torch.linalg.solve(gram + ridge[:, None, None] * eye, rhs)
        self.spline_coef.copy_(solution.permute(2, 0, 1))

    def edge_sympy(
        self, input_symbols: Sequence[sympy.Expr], layer_index: int | None = None
    ) -> list[sympy.Expr]:
        """Return one sympy expression per output node: bias plus open terms.

        Gates take their eval-mode values (fixed, else deterministic), so the
        expressions compute what :meth:`forward` computes in eval mode. Every
        number is the float64 value as a sympy Float. An open spline appears
        as the undefined function ``dense_l{layer}_{out}_{in}(input)`` times
        its gate value, so a dense edge is never dropped silently.

        Args:
            input_symbols: ``n_in`` sympy expressions, one per input node.
            layer_index: used in dense-function names (default ``self.index``).
        """
        if len(input_symbols) != self.n_in:
            raise S2KANDynError(
                f"edge_sympy got {len(input_symbols)} input symbols; expected {self.n_in}"
            )
        layer = self.index if layer_index is None else layer_index
        with torch.no_grad():
            z = (self.gates.eval_values() * self.allowed).cpu().tolist()
            weight = (self.coef * (self.gates.eval_values() * self.allowed)[..., : self.n_terms])
            weight = weight.cpu().tolist()
            inner_a = self.inner_a.cpu().tolist()
            inner_b = self.inner_b.cpu().tolist()
            bias = self.bias.cpu().tolist()

        expressions = []
        for o in range(self.n_out):
            terms = [sympy.Float(bias[o])]
            for i, x in enumerate(input_symbols):
                for k, primitive in enumerate(self.primitives):
                    if z[o][i][k] <= 0.0:
                        continue
                    argument = x
                    if primitive.affine:
                        argument = sympy.Float(inner_a[o][i][k]) * x + sympy.Float(inner_b[o][i][k])
                    terms.append(sympy.Float(weight[o][i][k]) * primitive.sympy_fn(argument))
                if z[o][i][self.n_terms] > 0.0:
                    dense = sympy.Function(f"dense_l{layer}_{o}_{i}")(x)
                    gate = z[o][i][self.n_terms]
                    terms.append(dense if gate == 1.0 else sympy.Float(gate) * dense)
            expressions.append(sympy.Add(*terms))
        return expressions


def _normal(
    shape: tuple[int, ...],
    mean: float,
    std: float,
    generator: torch.Generator | None,
    dtype: torch.dtype,
    device: torch.device | str | None,
) -> Tensor:
    """Draw on the CPU (so a seed gives the same values on every device), then move."""
    values = torch.randn(shape, generator=generator, dtype=dtype) * std + mean
    return values.to(device)
