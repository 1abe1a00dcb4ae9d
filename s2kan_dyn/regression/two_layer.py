"""Two symbolic layers, with the layer-2 gate patterns enumerated in MDL order.

Layer 1 has one or two hidden sum nodes over cheap non-affine terms of
the inputs, ``h_m = b_m + sum_{i,k} A_mik f_k(x_i)``, all open (snapping
closes the ones that are not needed). Layer 2 is one of a few patterns:

    sum       y = c_0 + sum_m c_m g_m(h_m)          (one or two nodes)
    product   y = c_0 + c_1 g_1(h_1) g_2(h_2)
    inner     y = c_0 + c_1 g(h_1 h_2)              (a multiplication node in layer 1)

with ``g`` a primitive applied to the hidden node directly (the node's
own scale and bias are the inner map). Layer-1 terms do not skip to the
output: with skips nearly every pattern fits and the exact ones are lost.

Each pattern is fitted by Levenberg-Marquardt on the layer-1 parameters
with the outer coefficients ``c`` solved by linear least squares at every
step (variable projection, Golub and Pereyra 1973, with Kaufman's 1975
Jacobian). Restarts run as one batch and are cut by successive halving
(Jamieson and Talwalkar 2016): all starts for a few steps, then the best
quarter for more, then the best two to convergence.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import sympy as sp
import torch

from ..model.primitives import get_primitive, is_power
from .candidate import Candidate, Edge, edges_from_expression, finalize
from .features import Factor

log = logging.getLogger(__name__)

# Scaled MSE under which a pattern's fit is snapped during the search.
SNAP_MSE = 1e-9
# Successive halving: (starts kept, LM steps) per rung.
RUNGS = ((24, 20), (6, 50), (2, 120))


@dataclass(frozen=True)
class Pattern:
    """A layer-2 structure.

    Attributes:
        kind: ``"sum"``, ``"product"`` or ``"inner"``.
        primitives: layer-2 primitive of each hidden node (``inner``: one).
        n_hidden: number of hidden sum nodes.
        bits: bits of the chosen primitives, plus one for a product.
    """

    kind: str
    primitives: tuple[str, ...]

    @property
    def n_hidden(self) -> int:
        return 2 if self.kind == "inner" else len(self.primitives)

    @property
    def bits(self) -> float:
        return sum(get_primitive(p).bits for p in self.primitives) + (0.0 if self.kind == "sum" else 1.0)

    def label(self) -> str:
        if self.kind == "inner":
            return f"{self.primitives[0]}(h1*h2)"
        joiner = " + " if self.kind == "sum" else " * "
        return joiner.join(f"{p}(h{m + 1})" for m, p in enumerate(self.primitives))


def enumerate_patterns(primitives: Sequence[str], n_features: int, n_samples: int) -> list[Pattern]:
    """List the patterns over the non-polynomial ``primitives``, shortest description first.

    Powers are left out of layer 2: a power of a polynomial hidden node is a
    polynomial, which the one-layer search with products already covers.
    """
    names = [p for p in primitives if not is_power(p)]
    patterns = [Pattern("sum", (g,)) for g in names]
    for g1, g2 in itertools.combinations_with_replacement(names, 2):
        patterns += [Pattern("sum", (g1, g2)), Pattern("product", (g1, g2))]
    patterns += [Pattern("inner", (g,)) for g in names]
    per_node = 0.5 * math.log2(n_samples) * (n_features + 1)
    return sorted(patterns, key=lambda p: (p.bits + per_node * p.n_hidden, p.kind != "sum"))


def _columns(pattern: Pattern, H: torch.Tensor) -> torch.Tensor:
    """Layer-2 columns of shape ``(S, n, 1 + n_terms)`` from hidden values ``(S, n, M)``."""
    fns = [get_primitive(p).torch_fn for p in pattern.primitives]
    if pattern.kind == "sum":
        terms = [fn(H[..., m]) for m, fn in enumerate(fns)]
    elif pattern.kind == "product":
        terms = [fns[0](H[..., 0]) * fns[1](H[..., 1])]
    else:
        terms = [fns[0](H[..., 0] * H[..., 1])]
    ones = torch.ones_like(H[..., 0])
    return torch.stack([ones, *terms], dim=-1)


class _Problem:
    """Variable-projection residual and Jacobian of one pattern, batched over starts."""

    def __init__(self, pattern: Pattern, F: torch.Tensor, y: torch.Tensor):
        self.pattern = pattern
        self.F = F  # (n, K) scaled layer-1 features
        self.y = y  # (n,) scaled target
        self.M = pattern.n_hidden
        self.K = F.shape[1]

    def hidden(self, theta: torch.Tensor) -> torch.Tensor:
        A = theta[:, : self.M * self.K].reshape(-1, self.M, self.K)
        b = theta[:, self.M * self.K :]
        return torch.einsum("nk,smk->snm", self.F, A) + b[:, None, :]

    def solve(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return outer coefficients ``(S, m)``, residuals ``(S, n)`` and hidden values."""
        H = self.hidden(theta)
        Phi = _columns(self.pattern, H)
        coef = torch.linalg.lstsq(Phi, self.y.expand(Phi.shape[0], -1)[..., None], driver="gelsd").solution[..., 0]
        resid = torch.einsum("snm,sm->sn", Phi, coef) - self.y
        resid = torch.where(torch.isfinite(resid), resid, torch.full_like(resid, 1e10))
        return coef, resid, H

    def jacobian(self, theta: torch.Tensor, coef: torch.Tensor) -> torch.Tensor:
        """Kaufman's projected Jacobian of the residual, shape ``(S, n, p)``."""
        H = self.hidden(theta).detach().requires_grad_(True)
        Phi = _columns(self.pattern, H)
        u = torch.einsum("snm,sm->sn", Phi, coef)
        (dH,) = torch.autograd.grad(u.sum(), H)
        dH = torch.nan_to_num(dH, nan=0.0, posinf=0.0, neginf=0.0)
        JA = dH[..., :, None] * self.F[None, :, None, :]  # (S, n, M, K)
        J = torch.cat([JA.reshape(*dH.shape[:2], -1), dH], dim=-1)
        Q, _ = torch.linalg.qr(torch.nan_to_num(Phi.detach()))
        return J - Q @ (Q.transpose(1, 2) @ J)


def _levenberg_marquardt(problem: _Problem, theta: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``steps`` batched LM iterations from ``theta`` ``(S, p)``; return ``(theta, loss)``."""
    coef, resid, _ = problem.solve(theta)
    loss = (resid**2).mean(dim=1)
    damping = torch.full_like(loss, 1e-3)
    eye = torch.eye(theta.shape[1], dtype=theta.dtype)
    for _ in range(steps):
        J = problem.jacobian(theta, coef)
        JtJ = J.transpose(1, 2) @ J
        g = (J.transpose(1, 2) @ resid[..., None])[..., 0]
        diag = torch.diagonal(JtJ, dim1=1, dim2=2).clamp(min=1e-12)
        system = JtJ + damping[:, None, None] * torch.diag_embed(diag) + 1e-14 * eye
        step = torch.linalg.solve(system, -g[..., None])[..., 0]
        step = torch.nan_to_num(step)
        trial = theta + step
        trial_coef, trial_resid, _ = problem.solve(trial)
        trial_loss = (trial_resid**2).mean(dim=1)
        better = trial_loss < loss
        theta = torch.where(better[:, None], trial, theta)
        coef = torch.where(better[:, None], trial_coef, coef)
        resid = torch.where(better[:, None], trial_resid, resid)
        loss = torch.where(better, trial_loss, loss)
        damping = torch.where(better, damping / 3.0, damping * 2.0).clamp(1e-12, 1e8)
    return theta, loss


def _starts(M: int, K: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """Random starts ``(count, M*(K+1))``: half dense, half with one term per hidden node.

    The sparse half starts each node on a single term of scale 0.5 to 2 with a
    random sign, the simplest layer 1, which the dense half may miss.
    """
    dtype = torch.float64
    theta = torch.randn(count, M * (K + 1), generator=generator, dtype=dtype)
    theta[:, : M * K] /= math.sqrt(K)
    sparse = theta[count // 2 :]
    weights = torch.zeros(sparse.shape[0], M, K, dtype=dtype)
    index = torch.randint(0, K, (sparse.shape[0], M, 1), generator=generator)
    size = torch.rand(sparse.shape[0], M, 1, generator=generator, dtype=dtype) * 1.5 + 0.5
    sign = torch.where(torch.rand(sparse.shape[0], M, 1, generator=generator) < 0.5, -1.0, 1.0).to(dtype)
    weights.scatter_(2, index, size * sign)
    sparse[:, : M * K] = weights.reshape(sparse.shape[0], M * K)
    return theta


def fit_pattern(pattern: Pattern, F: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, float]:
    """Fit one pattern from random starts, cut by successive halving; return ``(theta, mse)``.

    ``F`` (n, K) and ``y`` (n,) are scaled to unit RMS. ``theta`` contains the
    layer-1 weights ``(M*K,)`` then the biases ``(M,)``, in those units.
    """
    problem = _Problem(pattern, F, y)
    theta = _starts(problem.M, problem.K, RUNGS[0][0], generator)
    for keep, steps in RUNGS:
        theta, loss = _levenberg_marquardt(problem, theta[:keep], steps)
        order = torch.argsort(torch.nan_to_num(loss, nan=math.inf))
        theta = theta[order]
    _, loss = _levenberg_marquardt(problem, theta[:1], 0)
    return theta[0], float(loss[0])


def _normalize_homogeneous(pattern: Pattern, A: np.ndarray, b: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Remove the scale that a sum pattern's outer constants can absorb, for snapping.

    ``log|s*h| = log|s| + log|h|``, ``sqrt|s*h| = sqrt|s| sqrt|h|``,
    ``1/(s*h) = (1/s)(1/h)`` and ``exp(h + b) = e^b exp(h)``: the same
    function is written with the hidden node's largest constant scaled to
    one (or the bias of an ``exp`` node moved out), so that the free
    direction does not stop the constants from snapping.
    """
    A, b, c = A.copy(), b.copy(), c.copy()
    for m, name in enumerate(pattern.primitives):
        row = np.append(A[m], b[m])
        s = row[np.argmax(np.abs(row))]
        if name == "log" and s != 0:
            c[0] += c[m + 1] * math.log(abs(s))
        elif name == "sqrt" and s != 0:
            c[m + 1] *= math.sqrt(abs(s))
        elif name == "1/x" and s != 0:
            c[m + 1] /= s
        elif name == "exp":
            c[m + 1] *= math.exp(min(b[m], 700.0))
            b[m] = 0.0
            continue
        else:
            continue
        A[m] /= s
        b[m] /= s
    return A, b, c


def _to_candidate(pattern: Pattern, theta: np.ndarray, coef: np.ndarray, factors: list[Factor], scales: np.ndarray, y_scale: float, symbols: Sequence[sp.Symbol]) -> Candidate:
    M, K = pattern.n_hidden, len(factors)
    A = theta[: M * K].reshape(M, K) / scales  # back to original units
    b = theta[M * K :].copy()
    c = coef * y_scale
    if pattern.kind == "sum":
        A, b, c = _normalize_homogeneous(pattern, A, b, c)
    hidden = []
    edges = []
    for m in range(M):
        h = sp.Float(b[m])
        per_input: dict[int, list[str]] = {}
        for k, f in enumerate(factors):
            h = h + sp.Float(A[m, k]) * f.sympy(symbols[f.input])
            per_input.setdefault(f.input, []).append(f.label())
        hidden.append(h)
        edges += [Edge(0, str(symbols[i]), f"h{m + 1}", tuple(labels)) for i, labels in per_input.items()]
    fns = [get_primitive(g).sympy_fn for g in pattern.primitives]
    if pattern.kind == "sum":
        expr = sp.Float(c[0]) + sum(sp.Float(c[m + 1]) * fn(hidden[m]) for m, fn in enumerate(fns))
        edges += [Edge(1, f"h{m + 1}", "y", (g,)) for m, g in enumerate(pattern.primitives)]
    elif pattern.kind == "product":
        expr = sp.Float(c[0]) + sp.Float(c[1]) * fns[0](hidden[0]) * fns[1](hidden[1])
        edges += [Edge(1, f"h{m + 1}", "y*", (g,)) for m, g in enumerate(pattern.primitives)]
    else:
        expr = sp.Float(c[0]) + sp.Float(c[1]) * fns[0](hidden[0] * hidden[1])
        edges += [Edge(1, "h1*h2", "y", (pattern.primitives[0],))]
    bits = pattern.bits + sum(f.bits for f in factors) * M
    return Candidate(expr, bits, edges, "two-layer")


def search_two_layer(
    X: np.ndarray,
    y: np.ndarray,
    symbols: Sequence[sp.Symbol],
    primitives: Sequence[str],
    hidden_primitives: Sequence[str],
    tolerance: float,
    seed: int,
    deadline: float,
    max_patterns: int | None = None,
) -> list[Candidate]:
    """Fit the layer-2 patterns in MDL order; return the finalized candidates.

    Stops after the first exact candidate, after ``max_patterns`` patterns,
    or at ``deadline`` (``time.process_time``, CPU seconds of this process).
    """
    factors = [Factor(name, i) for name in hidden_primitives for i in range(X.shape[1])]
    Xt = torch.as_tensor(X, dtype=torch.float64)
    F = torch.stack([f.evaluate(Xt[:, f.input]) for f in factors], dim=1)
    scales = F.pow(2).mean(dim=0).sqrt().clamp(min=1e-12)
    F = F / scales
    y_scale = float(np.sqrt(np.mean(y**2))) or 1.0
    yt = torch.as_tensor(y / y_scale, dtype=torch.float64)
    generator = torch.Generator().manual_seed(seed)
    found: list[Candidate] = []
    patterns = enumerate_patterns(primitives, len(factors), y.size)
    for index, pattern in enumerate(patterns[:max_patterns]):
        if time.process_time() > deadline:
            log.info("two-layer search stopped at its time limit after %d of %d patterns", index, len(patterns))
            break
        theta, mse = fit_pattern(pattern, F, yt, generator)
        coef, _, _ = _Problem(pattern, F, yt).solve(theta[None])
        candidate = _to_candidate(pattern, theta.numpy(), coef[0].numpy(), factors, scales.numpy(), y_scale, symbols)
        # LM stalls near exact structures at a scaled MSE of about 1e-11, so
        # snapping, not the loss, decides; it is tried on every close fit.
        finalize(candidate, symbols, X, y, tolerance, snap=mse <= SNAP_MSE, quick=True)
        if candidate.exact:
            candidate.edges = edges_from_expression(candidate.expr, symbols)
        log.debug("pattern %s: scaled MSE %.3g, RMSE %.3g after read-out", pattern.label(), mse, candidate.rmse)
        found.append(candidate)
        if candidate.exact:
            break
    return found
