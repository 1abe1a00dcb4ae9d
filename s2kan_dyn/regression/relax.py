"""The hard-concrete relaxation: fit a gated S2KAN, then read it out.

For dictionaries too large to enumerate (many inputs), the gate pattern is
chosen by the L0 relaxation of Louizos, Welling and Kingma (2018) with the
MDL penalty ramped in (model.train.fit_gated), instead of by enumeration.
The network's open terms are composed into one sympy expression. When no
spline stayed open, that expression is the model, and its constants are
snapped like any other candidate. When a spline stayed open, the network
itself makes the predictions and the read-out names the dense edge.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import sympy as sp
import torch

from ..model.network import S2KAN
from ..model.train import GateSchedule, fit_gated
from .candidate import Candidate, Edge, finalize

log = logging.getLogger(__name__)


@dataclass
class NetworkPredictor:
    """Predictions of a fitted single-output S2KAN, as a function of ``X`` ``(n, d)``."""

    network: S2KAN

    def __call__(self, X: np.ndarray) -> np.ndarray:
        reference = next(self.network.parameters())
        with torch.no_grad():
            out = self.network(torch.as_tensor(X, dtype=reference.dtype, device=reference.device))
        return out[:, 0].cpu().numpy().astype(float)


def _network_edges(model: S2KAN, input_names: Sequence[str]) -> list[Edge]:
    edges = []
    names = list(input_names)
    for index, layer in enumerate(model.layers):
        open_terms = layer.open_terms().cpu()
        targets = ["y"] if index == len(model.layers) - 1 else [f"h{o + 1}" for o in range(layer.n_out)]
        for o in range(layer.n_out):
            for i in range(layer.n_in):
                labels = [layer.primitive_names[k] for k in range(layer.n_terms) if open_terms[o, i, k]]
                dense = bool(open_terms[o, i, layer.n_terms])
                if dense:
                    labels.append("spline (dense)")
                if labels:
                    target = targets[o] if o < len(targets) else f"y{o}"
                    edges.append(Edge(index, names[i], target, tuple(labels), dense=dense))
        names = [f"h{o + 1}" for o in range(layer.n_out)]
    return edges


def search_relax(
    X: np.ndarray,
    y: np.ndarray,
    symbols: Sequence[sp.Symbol],
    primitives: Sequence[str],
    hidden_width: int,
    spline_grid: int | None,
    lam: float,
    schedule: GateSchedule,
    tolerance: float,
    seed: int,
    device: str | torch.device | None,
) -> Candidate:
    """Fit ``S2KAN([d, [hidden_width, 1], 1])`` with :func:`fit_gated`; return the finalized candidate.

    The hidden layer has ``hidden_width`` sum nodes and one multiplication
    node; the output layer is linear, which keeps the sympy expansion cheap.
    """
    d = X.shape[1]
    model = S2KAN(
        [d, [hidden_width, 1], 1],
        primitives=primitives,
        spline=spline_grid is not None,
        grid_size=spline_grid or 5,
        seed=seed,
        device=device,
    )
    Xt = torch.as_tensor(X, dtype=torch.float64, device=device)
    Yt = torch.as_tensor(y[:, None], dtype=torch.float64, device=device)
    record = fit_gated(model, Xt, Yt, lam=lam, schedule=schedule, seed=seed)
    log.info("relaxation: %d open terms after the polish stage", record.stage("polish").open_terms)

    expr = model.to_sympy(list(symbols))[0]
    edges = _network_edges(model, [str(s) for s in symbols])
    bits = float(model.model_bits(y.size).detach())
    dense_calls = sorted(expr.atoms(sp.core.function.AppliedUndef), key=str)
    if not dense_calls:
        return finalize(Candidate(expr, bits, edges, "relax"), symbols, X, y, tolerance)

    # A dense edge stays a spline: the network predicts, the read-out names it.
    predict = NetworkPredictor(model)
    candidate = Candidate(expr, bits, edges, "relax", predict_fn=predict)
    rmse = float(np.sqrt(np.mean((predict(X) - y) ** 2)))
    candidate.rmse = rmse
    candidate.description_length = float("nan")
    return candidate
