"""The S2KAN network: stacked S2KAN layers with optional multiplication nodes.

Widths follow pykan's MultKAN: ``[3, [3, 3], 3]`` is 3 inputs, a hidden
layer of 3 sum nodes and 3 multiplication nodes, and 3 outputs. The layer
that feeds a level with ``n_sum`` sum nodes and ``n_mult`` multiplication
nodes has ``n_sum + 2 * n_mult`` outputs (sub-nodes). Each multiplication
node is the product of two consecutive sub-nodes after the sums.

Inputs are divided by a per-input scale and outputs multiplied by a
per-output scale (RMS values, no mean shift, so monomials stay monomials);
:meth:`S2KAN.to_sympy` undoes both, so its formulas are in original units.
"""

from __future__ import annotations

import logging
from typing import Sequence

import sympy
import torch
from torch import Tensor, nn

from ..errors import S2KANDynError
from .layer import S2KANLayer
from .primitives import DEFAULT_PRIMITIVES

logger = logging.getLogger(__name__)

# expand() hints of to_sympy: distribute products and powers, but keep
# exp(a + b) and log(a*b) whole, so every function argument stays one piece.
# Expansion is shallow because the arguments are sums already: sympy
# distributes a number over a sum, and each product node is expanded before
# it becomes an argument. A deep expansion of Lorenz-sized networks took
# seconds longer for the same result.
EXPAND_HINTS = {"deep": False, "power_exp": False, "power_base": False, "log": False}
# Default cap of S2KAN.to_sympy's work estimate. A [3, [3, 3], 3] network
# with every gate open estimates about 17,000 and took 7 to 12 s on one core
# of a shared 2-core machine. The cap stops a far larger expansion before it
# starts.
MAX_SYMPY_TERMS = 50_000


def parse_widths(widths: Sequence[int | Sequence[int]]) -> list[tuple[int, int]]:
    """Turn MultKAN-style widths into ``(n_sum, n_mult)`` pairs, one per level.

    Raises:
        S2KANDynError: fewer than two levels, a negative or empty level, or
            multiplication nodes on the input level.
    """
    if len(widths) < 2:
        raise S2KANDynError(f"widths={list(widths)} is invalid; give at least [n_in, n_out]")
    levels = []
    for position, width in enumerate(widths):
        if isinstance(width, int):
            pair = (width, 0)
        elif len(width) == 2 and all(isinstance(w, int) for w in width):
            pair = (width[0], width[1])
        else:
            raise S2KANDynError(
                f"width {width!r} at position {position} is invalid; use an int or [n_sum, n_mult]"
            )
        if pair[0] < 0 or pair[1] < 0 or sum(pair) == 0:
            raise S2KANDynError(
                f"width {width!r} at position {position} is invalid; use non-negative counts "
                "with at least one node"
            )
        levels.append(pair)
    if levels[0][1] != 0:
        raise S2KANDynError(
            f"input width {widths[0]!r} has multiplication nodes; give the input width as an int"
        )
    return levels


class S2KAN(nn.Module):
    """Softly symbolified Kolmogorov-Arnold network.

    Args:
        widths: MultKAN-style widths, for example ``[3, [3, 3], 3]``.
        primitives: primitive names of the hidden layers (default
            :data:`DEFAULT_PRIMITIVES`).
        output_primitives: primitive names of the last layer (default
            ``("x",)``, a linear read-out that keeps the sympy expansion cheap).
        spline: whether hidden-layer edges have a spline term (default True).
        grid_size: spline grid intervals (default 5).
        dtype: float64 by default.
        device: where parameters live; None is torch's default device.
        seed: seed of the initial values (default: torch's global generator).
        output_spline: whether last-layer edges have a spline term (default
            False, for the same reason as ``output_primitives``).

    Buffers:
        x_scale: ``(n_in,)``, inputs are divided by it (default ones).
        y_scale: ``(n_out,)``, outputs are multiplied by it (default ones).

    Attributes:
        levels: ``(n_sum, n_mult)`` per level, input level first.
        layers: ``nn.ModuleList`` of :class:`S2KANLayer`.
        config: the constructor arguments as plain data, to rebuild the model.
    """

    def __init__(
        self,
        widths: Sequence[int | Sequence[int]],
        primitives: Sequence[str] = DEFAULT_PRIMITIVES,
        output_primitives: Sequence[str] = ("x",),
        spline: bool = True,
        grid_size: int = 5,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
        seed: int | None = None,
        output_spline: bool = False,
    ):
        super().__init__()
        self.levels = parse_widths(widths)
        self.config = {
            "widths": [list(w) if not isinstance(w, int) else w for w in widths],
            "primitives": list(primitives),
            "output_primitives": list(output_primitives),
            "spline": spline,
            "grid_size": grid_size,
            "output_spline": output_spline,
        }
        generator = None
        if seed is not None:
            generator = torch.Generator().manual_seed(seed)

        layers = []
        n_layers = len(self.levels) - 1
        for index in range(n_layers):
            n_in = sum(self.levels[index])
            n_sum, n_mult = self.levels[index + 1]
            last = index == n_layers - 1
            layer = S2KANLayer(
                n_in,
                n_sum + 2 * n_mult,
                primitives=output_primitives if last else primitives,
                spline=output_spline if last else spline,
                grid_size=grid_size,
                dtype=dtype,
                device=device,
                generator=generator,
            )
            layer.index = index
            layers.append(layer)
        self.layers = nn.ModuleList(layers)

        self.register_buffer("x_scale", torch.ones(self.n_in, dtype=dtype, device=device))
        self.register_buffer("y_scale", torch.ones(self.n_out, dtype=dtype, device=device))

    @property
    def n_in(self) -> int:
        """Number of inputs."""
        return self.levels[0][0]

    @property
    def n_out(self) -> int:
        """Number of outputs (sum plus multiplication nodes of the last level)."""
        return sum(self.levels[-1])

    def _combine(self, index: int, sub_nodes: Tensor) -> Tensor:
        """Turn layer ``index``'s sub-nodes ``(B, n_sum + 2 n_mult)`` into nodes ``(B, n_sum + n_mult)``."""
        n_sum, n_mult = self.levels[index + 1]
        if n_mult == 0:
            return sub_nodes
        products = sub_nodes[:, n_sum::2] * sub_nodes[:, n_sum + 1 :: 2]
        return torch.cat([sub_nodes[:, :n_sum], products], dim=1)

    def _hidden(self, x: Tensor) -> list[Tensor]:
        """Node values of every level in scaled units, input level first."""
        values = [x / self.x_scale]
        for index, layer in enumerate(self.layers):
            values.append(self._combine(index, layer(values[-1])))
        return values

    def forward(self, x: Tensor) -> Tensor:
        """Evaluate the network on ``x`` of shape ``(B, n_in)``; returns ``(B, n_out)``."""
        if x.dim() != 2 or x.shape[1] != self.n_in:
            raise S2KANDynError(
                f"S2KAN input has shape {tuple(x.shape)}; expected (batch, {self.n_in})"
            )
        return self._hidden(x)[-1] * self.y_scale

    def set_scaling(self, x_scale: Tensor, y_scale: Tensor) -> None:
        """Set the input scales ``(n_in,)`` and output scales ``(n_out,)``.

        Raises:
            S2KANDynError: a scale has the wrong shape or is not positive and finite.
        """
        for name, value, buffer in (
            ("x_scale", x_scale, self.x_scale),
            ("y_scale", y_scale, self.y_scale),
        ):
            value = torch.as_tensor(value).to(buffer)
            if value.shape != buffer.shape:
                raise S2KANDynError(
                    f"{name} has shape {tuple(value.shape)}; expected {tuple(buffer.shape)}"
                )
            if not bool(torch.isfinite(value).all() and (value > 0).all()):
                raise S2KANDynError(
                    f"{name}={value.tolist()} is invalid; scales must be positive and finite "
                    "(a constant zero column has no RMS; drop it or give the scale yourself)"
                )
            buffer.copy_(value)

    def set_scaling_from_data(self, x: Tensor, y: Tensor) -> None:
        """Set the scales to the RMS of each column of ``x`` ``(B, n_in)`` and ``y`` ``(B, n_out)``.

        A column that is zero throughout gets scale 1, with a warning.
        """
        scales = []
        for name, data, buffer in (("input", x, self.x_scale), ("output", y, self.y_scale)):
            rms = data.to(buffer).pow(2).mean(dim=0).sqrt()
            zero = rms == 0
            if bool(zero.any()):
                logger.warning(
                    "%s columns %s are zero throughout; their scale is set to 1",
                    name, zero.nonzero().flatten().tolist(),
                )
            scales.append(torch.where(zero, torch.ones_like(rms), rms))
        self.set_scaling(*scales)

    @torch.no_grad()
    def update_grids(self, x: Tensor) -> None:
        """Fit every spline grid to the node values that ``x`` ``(B, n_in)`` produces."""
        value = x.to(self.x_scale) / self.x_scale
        for index, layer in enumerate(self.layers):
            layer.update_grid(value)
            value = self._combine(index, layer(value))

    def resample_gates(self, generator: torch.Generator | None = None) -> None:
        """Draw new gate noise in every layer; it is held until the next call."""
        for layer in self.layers:
            layer.gates.resample(generator)

    def prob_open(self) -> list[Tensor]:
        """P(open) per layer, each ``(n_out, n_in, K + 1)``, differentiable."""
        return [layer.prob_open() for layer in self.layers]

    def model_bits(self, n_samples: int) -> Tensor:
        """Expected description length of the model: sum of P(open) * bits over terms."""
        total = self.x_scale.new_zeros(())
        for layer in self.layers:
            total = total + (layer.prob_open() * layer.term_bits(n_samples)).sum()
        return total

    def freeze_gates(self) -> None:
        """Fix every free gate to its deterministic state (open where log_alpha > 0)."""
        for layer in self.layers:
            layer.gates.freeze()

    def unfreeze_gates(self) -> None:
        """Undo :meth:`freeze_gates`, restoring the fixed masks it started from."""
        for layer in self.layers:
            layer.gates.unfreeze()

    def n_open_terms(self) -> int:
        """Number of allowed terms whose eval-mode gate is open, over all layers."""
        return int(sum(int(layer.open_terms().sum()) for layer in self.layers))

    def dense_edges(self) -> list[tuple[int, int, int]]:
        """``(layer, out, in)`` of every edge whose spline gate is open."""
        edges = []
        for index, layer in enumerate(self.layers):
            spline_open = layer.open_terms()[..., layer.n_terms]
            edges.extend((index, o, i) for o, i in spline_open.nonzero().tolist())
        return edges

    def to_sympy(
        self, input_names: Sequence[str | sympy.Symbol], max_terms: int = MAX_SYMPY_TERMS
    ) -> list[sympy.Expr]:
        """Compose the open terms layer by layer into one expression per output.

        The expressions are in original units (input and output scaling
        undone) and expanded, with function arguments kept whole. Gates take
        their eval-mode values. Nothing is snapped or pruned. Open splines
        appear as undefined functions ``dense_l{layer}_{out}_{in}``.

        Args:
            input_names: ``n_in`` names (or sympy symbols) of the inputs.
            max_terms: cap on a rough estimate of the work, in terms
                (default ``MAX_SYMPY_TERMS``). An open ``x`` term on a node of
                n terms counts n. Any other open term counts n^2, because a
                function of a long sum costs far more to build and expand.
                Each expanded product counts the product of its factors'
                term counts.

        Raises:
            S2KANDynError: wrong number of names, or the estimate exceeds
                ``max_terms``; close more gates or raise the cap.
        """
        if len(input_names) != self.n_in:
            raise S2KANDynError(
                f"to_sympy got {len(input_names)} input names; expected {self.n_in}"
            )
        symbols = [sympy.Symbol(n) if isinstance(n, str) else n for n in input_names]
        x_scale = self.x_scale.cpu().tolist()
        y_scale = self.y_scale.cpu().tolist()

        nodes = [s / sympy.Float(scale) for s, scale in zip(symbols, x_scale)]
        estimate = 0
        for index, layer in enumerate(self.layers):
            sizes = torch.tensor([_n_terms(node) for node in nodes], dtype=torch.float64)
            open_terms = layer.open_terms().to(torch.float64).cpu()
            linear = torch.tensor([name == "x" for name in layer.primitive_names] + [False])
            estimate += int((open_terms[..., linear].sum(-1) * sizes).sum())
            estimate += int((open_terms[..., ~linear].sum(-1) * sizes**2).sum())
            self._check_estimate(estimate, max_terms, index)
            sub_nodes = layer.edge_sympy(nodes, layer_index=index)

            n_sum, n_mult = self.levels[index + 1]
            products = []
            for j in range(n_mult):
                left, right = sub_nodes[n_sum + 2 * j], sub_nodes[n_sum + 2 * j + 1]
                estimate += _n_terms(left) * _n_terms(right)
                self._check_estimate(estimate, max_terms, index)
                products.append(sympy.expand(left * right, **EXPAND_HINTS))
            nodes = sub_nodes[:n_sum] + products

        return [
            sympy.expand(sympy.Float(scale) * node, **EXPAND_HINTS)
            for node, scale in zip(nodes, y_scale)
        ]

    @staticmethod
    def _check_estimate(estimate: int, max_terms: int, index: int) -> None:
        if estimate > max_terms:
            raise S2KANDynError(
                f"to_sympy would build about {estimate} terms by layer {index}, over "
                f"max_terms={max_terms}; close more gates (fit with a larger lambda, or "
                "freeze_gates) or pass a larger max_terms"
            )


def _n_terms(expression: sympy.Expr) -> int:
    """Number of terms of a sum, 1 for anything else."""
    return len(expression.args) if isinstance(expression, sympy.Add) else 1
