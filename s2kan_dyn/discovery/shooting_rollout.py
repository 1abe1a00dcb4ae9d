"""Multiple-shooting windows and their batched rk4 rollouts, with forward-mode tangents.

Used by the trajectory stage (:mod:`s2kan_dyn.discovery.shooting`): every
window of every trajectory is integrated in one torchdiffeq call, and the
derivatives of the rollout with respect to start states and coefficients
come from the variational equations integrated alongside.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp
import torch

from s2kan_dyn.readout.terms import TermLibrary


_MAX_SUB_STEPS = 64


@dataclass
class Windows:
    """Multiple-shooting windows of all trajectories, padded to ``K`` intervals.

    Attributes:
        length: window length asked for, in time units.
        observed: observed states, shape ``(W, K + 1, d)``, 0 in padding.
        mask: 1 where a sample is observed, 0 in padding, shape ``(W, K + 1)``.
        steps: time step of each sample interval, shape ``(W, K)``, 0 in padding.
        start: initial start states, shape ``(W, d)``.
        trajectory: index of each window's trajectory, shape ``(W,)``.
        samples: sample index of each window entry, shape ``(W, K + 1)``, -1 in padding.
    """

    length: float
    observed: torch.Tensor
    mask: torch.Tensor
    steps: torch.Tensor
    start: torch.Tensor
    trajectory: np.ndarray
    samples: np.ndarray


def make_windows(trajectories, length, states, dtype, device, min_intervals: int = 2) -> Windows:
    """Cut each trajectory into windows of about ``length`` time units that share end samples.

    A window spans at least ``min_intervals`` sample intervals; a shorter
    tail joins the last window. ``states[i]`` gives the start states.
    """
    bounds = []
    for index, tr in enumerate(trajectories):
        t, n, i = tr.t, tr.n_samples, 0
        while i < n - 1:
            reach = t[i] + length + 1e-9 * (abs(t[i]) + length)
            j = int(np.searchsorted(t, reach, side="right")) - 1
            j = min(max(j, i + min_intervals), n - 1)
            if 0 < n - 1 - j < min_intervals:
                j = n - 1
            bounds.append((index, i, j))
            i = j

    n_windows = len(bounds)
    intervals = max(j - i for _, i, j in bounds)
    d = trajectories[0].dimension
    observed = np.zeros((n_windows, intervals + 1, d))
    mask = np.zeros((n_windows, intervals + 1))
    steps = np.zeros((n_windows, intervals))
    start = np.zeros((n_windows, d))
    samples = np.full((n_windows, intervals + 1), -1)
    for w, (index, i, j) in enumerate(bounds):
        tr = trajectories[index]
        observed[w, : j - i + 1] = tr.x[i : j + 1]
        mask[w, : j - i + 1] = 1.0
        steps[w, : j - i] = np.diff(tr.t[i : j + 1])
        start[w] = states[index][i]
        samples[w, : j - i + 1] = np.arange(i, j + 1)

    def tensor(a):
        return torch.as_tensor(a, dtype=dtype, device=device)

    return Windows(
        length=float(length), observed=tensor(observed), mask=tensor(mask), steps=tensor(steps),
        start=tensor(start), trajectory=np.array([b[0] for b in bounds]), samples=samples,
    )


def rollout(terms: "TermEvaluator", coefficients, start, steps, sub_steps: int, tangents=None):
    """Integrate ``dx/dt = terms(x) @ coefficients`` over every window at once.

    Time is rescaled so that sample interval ``k`` of every window is
    ``s in [k, k + 1]`` and ``dx/ds = steps[w, k] * f(x)``. Windows with
    different (irregular) sample times then share one grid of ``sub_steps``
    rk4 steps per interval. torchdiffeq's ``perturb`` option evaluates the
    field just inside each step, so the interval lookup at the grid points
    is unambiguous. Padded intervals have step 0 and keep the state.

    Args:
        terms: the :class:`TermEvaluator` of the ``T`` terms.
        coefficients: shape ``(T, d)``.
        start: start states, shape ``(W, d)``.
        steps: time steps, shape ``(W, K)``.
        sub_steps: rk4 steps per sample interval; a power of two, so that
            the grid points ``i / sub_steps`` are exact in floating point.
        tangents: optional :class:`_Tangents` to propagate alongside the states.

    Returns:
        States at the samples, shape ``(W, K + 1, d)``; with ``tangents``,
        also their derivatives along each tangent direction, shape
        ``(P, W, K + 1, d)``.
    """
    from torchdiffeq import odeint

    intervals = steps.shape[1]
    grid = torch.arange(intervals * sub_steps + 1, dtype=steps.dtype, device=steps.device) / sub_steps

    def rate(s):
        k = torch.clamp(torch.floor(s).long(), 0, intervals - 1)
        return steps[:, k].unsqueeze(-1)

    if tangents is None:
        def field(s, x):
            return rate(s) * (terms.values(x) @ coefficients)

        path = odeint(field, start, grid, method="rk4", options={"perturb": True})
        return path[::sub_steps].movedim(0, -2)

    def augmented_field(s, y):
        return rate(s) * tangents.field(y, coefficients)

    y0 = torch.cat([start.unsqueeze(0), tangents.start], dim=0)
    path = odeint(augmented_field, y0, grid, method="rk4", options={"perturb": True})
    path = path[::sub_steps].movedim(0, -2)
    return path[0], path[1:]


class _Tangents:
    """Forward-mode tangents of a rollout, propagated by the variational equations.

    For a direction with start tangent ``v0`` and coefficient tangent ``dC``
    the tangent ``v = dx/dp`` obeys ``dv/dt = (d terms/dx · v) @ C + terms(x) @ dC``.
    Integrating it with the states in the same rk4 steps gives the exact
    derivative of the discrete rk4 solution, because explicit Runge-Kutta
    methods commute with linearisation. The state Jacobian of the terms is
    the sympy derivative of each term, lambdified once.

    NOTE: torch.autograd.forward_ad and torch.func.jvp give the same numbers
    (a test compares them) but are slow here. With torch 2.13 on CPU, each
    operation that mixes a dual tensor with a plain tensor or a Python
    number took 0.15-0.3 ms (measured on a shared 2-core machine), so a
    Lorenz fit took about 10 times longer through them.

    Args:
        terms: the :class:`TermEvaluator` of the library.
        start: start tangents, shape ``(P, W, d)``.
        coefficient_index: for each direction, the flat index ``k * d + j``
            of its unit coefficient tangent, or -1 for a start-state direction.
    """

    def __init__(self, terms, start, coefficient_index):
        self.terms = terms
        self.start = start
        index = torch.as_tensor(coefficient_index, dtype=torch.long, device=start.device)
        is_coefficient = index >= 0
        self.coefficient_directions = torch.nonzero(is_coefficient).flatten()
        d = start.shape[-1]
        self.term_of_direction = index[is_coefficient] // d
        self.state_of_direction = index[is_coefficient] % d

    def field(self, y, coefficients):
        x, v = y[0], y[1:]
        n_windows, d = x.shape
        terms, jacobian = self.terms.values_and_jacobian(x)
        tangent = torch.einsum("wtj,pwj->pwt", jacobian, v) @ coefficients
        tangent[self.coefficient_directions, :, self.state_of_direction] += terms[:, self.term_of_direction].T
        return torch.cat([(terms @ coefficients).unsqueeze(0), tangent], dim=0)


class TermEvaluator:
    """Evaluator of a library's terms and of their state Jacobian ``d term_k / d x_j``.

    Monomials ``prod_j x_j**e_kj`` are evaluated from their exponent matrix
    in a few tensor operations. Other terms go through the library's
    lambdified sympy expressions, and their Jacobian through lambdified
    sympy derivatives, of which only those that depend on the states are
    evaluated at each call.
    """

    def __init__(self, library: TermLibrary, device: str | torch.device = "cpu"):
        self.n_terms, self.n_states = len(library), len(library.symbols)
        device = torch.device(device)
        exponents = [_monomial_exponents(term, library.symbols) for term in library.terms]
        monomials = [k for k, e in enumerate(exponents) if e is not None]
        others = [k for k, e in enumerate(exponents) if e is None]
        self.monomial_index = torch.as_tensor(monomials, dtype=torch.long, device=device)
        self.exponents = torch.as_tensor([exponents[k] for k in monomials], dtype=torch.float64, device=device)
        self.other_index = torch.as_tensor(others, dtype=torch.long, device=device)
        self.others = None
        if others:
            terms = [library.terms[k] for k in others]
            self.others = TermLibrary(terms, library.state_names)
            partials = [term.diff(symbol) for term in terms for symbol in library.symbols]
            variable = [k for k, partial in enumerate(partials) if partial.free_symbols]
            self.variable_index = torch.as_tensor(variable, dtype=torch.long, device=device)
            self.variable = TermLibrary([partials[k] for k in variable], library.state_names) if variable else None
            constant = [0.0 if partial.free_symbols else float(partial) for partial in partials]
            self.constant = torch.as_tensor(constant, dtype=torch.float64, device=device)

    def values(self, x: torch.Tensor) -> torch.Tensor:
        """Evaluate every term at states ``x`` of shape ``(W, d)``; return ``(W, T)``."""
        return self._evaluate(x, jacobian=False)[0]

    def values_and_jacobian(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the terms ``(W, T)`` and their Jacobian ``(W, T, d)`` at states ``x`` of shape ``(W, d)``."""
        return self._evaluate(x, jacobian=True)

    def _evaluate(self, x, jacobian):
        n_windows = x.shape[0]
        values = x.new_empty(n_windows, self.n_terms)
        derivatives = x.new_empty(n_windows, self.n_terms, self.n_states) if jacobian else None

        if len(self.monomial_index):
            exponents = self.exponents.to(x.dtype)
            powers = x.unsqueeze(1) ** exponents  # (W, T_monomial, d)
            values[:, self.monomial_index] = powers.prod(dim=-1)
            if jacobian:
                # d/dx_j: e_kj x_j**(e_kj - 1) times the other factors.
                factor = exponents * x.unsqueeze(1) ** torch.clamp(exponents - 1.0, min=0.0)
                diagonal = torch.eye(self.n_states, dtype=torch.bool, device=x.device)
                stacked = torch.where(diagonal, factor.unsqueeze(-1), powers.unsqueeze(-2))
                derivatives[:, self.monomial_index] = stacked.prod(dim=-1)

        if self.others is not None:
            values[:, self.other_index] = self.others.evaluate_torch(x)
            if jacobian:
                partials = self.constant.to(x.dtype).expand(n_windows, -1).clone()
                if self.variable is not None:
                    partials[:, self.variable_index] = self.variable.evaluate_torch(x)
                derivatives[:, self.other_index] = partials.view(n_windows, -1, self.n_states)
        return values, derivatives


def _monomial_exponents(term, symbols) -> list[int] | None:
    """Return the exponents of ``term`` if it is a monomial with coefficient 1, else ``None``."""
    if not term.is_polynomial(*symbols):
        return None
    monomials = sp.Poly(term, *symbols).terms()
    if len(monomials) != 1 or monomials[0][1] != 1:
        return None
    return list(monomials[0][0])


def choose_sub_steps(terms, coefficients, windows: Windows, scale, tolerance, start=None) -> int:
    """Return the fewest rk4 sub-steps (2, 4, ... 64) per sample interval that meet ``tolerance``.

    The error is estimated by step doubling: the largest difference, in
    units of each state's standard deviation, between rollouts with ``n``
    and ``2 n`` sub-steps. Windows that are non-finite at either resolution,
    or whose two rollouts differ by more than one standard deviation (they
    are diverging, and more sub-steps would not save them), are left out of
    the estimate.
    """
    start = windows.start if start is None else start
    sub_steps = 2
    with torch.no_grad():
        coarse = rollout(terms, coefficients, start, windows.steps, sub_steps)
        while sub_steps < _MAX_SUB_STEPS:
            fine = rollout(terms, coefficients, start, windows.steps, 2 * sub_steps)
            difference = ((coarse - fine) / scale * windows.mask.unsqueeze(-1)).abs().flatten(1)
            largest = difference.max(dim=1).values
            converging = torch.isfinite(largest) & (largest < 1.0)
            if not converging.any() or float(largest[converging].max()) < tolerance:
                break
            sub_steps, coarse = 2 * sub_steps, fine
    return sub_steps


def fitted_sample_states(windows: Windows, predicted, start, previous) -> list[np.ndarray]:
    """Return, per trajectory, the fitted states at its samples (window starts take the start state).

    Samples covered only by non-finite predictions keep their ``previous`` states.
    """
    predicted = predicted.detach().cpu().numpy()
    start = start.detach().cpu().numpy()
    states = [np.array(p, dtype=float, copy=True) for p in previous]
    for w in range(len(windows.trajectory)):
        index, samples = windows.trajectory[w], windows.samples[w]
        valid = samples >= 0
        rows = predicted[w, valid]
        if np.all(np.isfinite(rows)):
            states[index][samples[valid]] = rows
    for w in range(len(windows.trajectory)):
        if np.all(np.isfinite(start[w])):
            states[windows.trajectory[w]][windows.samples[w, 0]] = start[w]
    return states
