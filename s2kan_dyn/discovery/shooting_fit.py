"""Levenberg-Marquardt fit, elimination and swaps of terms for the trajectory stage.

:class:`ShootingFit` stores the start states of the windows, the
coefficients and the noise estimates of one run of
:func:`s2kan_dyn.discovery.shooting.fit_trajectory_stage`.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from s2kan_dyn.discovery.shooting_rollout import (
    _MAX_SUB_STEPS,
    TermEvaluator,
    Windows,
    _Tangents,
    choose_sub_steps,
    rollout,
)

log = logging.getLogger(__name__)

# Largest number of tangent directions x windows x grid points x states held
# at once (about 270 MB of float64). More tangent directions are processed in chunks.
_TANGENT_ELEMENTS = 2**25

# Levenberg-Marquardt stops when an accepted step lowers the loss by less
# than this fraction. At a loss of about N noise variances that moves the
# coefficients by about sqrt(1e-6 N) standard errors, 0.03 for N = 1000.
_RELATIVE_IMPROVEMENT = 1e-6

# Stop reasons of a round.
DIVERGED = "the rollout of every window is non-finite"
OUT_OF_TIME = "time budget reached"

# An equation with n active terms loses at most max(1, n // _ELIMINATION_BATCH) per round.
_ELIMINATION_BATCH = 8


@dataclass
class _Linearisation:
    predicted: torch.Tensor  # (W, K + 1, d)
    residual: torch.Tensor  # (W, M), M = (K + 1) d, in units of each state's std
    start_jacobian: torch.Tensor  # (W, M, d)
    coefficient_jacobian: torch.Tensor  # (W, M, n_active)


class ShootingFit:
    """Start states, coefficients and noise estimates of one trajectory-stage fit."""

    def __init__(self, library, coefficients, active, scale, noise_floor, max_iterations):
        self.library = library
        self.terms = TermEvaluator(library, coefficients.device)
        self.coefficients = coefficients  # (T, d) tensor, 0 where inactive
        self.active = active  # (T, d) numpy bool
        self.candidates = active.copy()
        self.scale = scale  # (d,) state standard deviations
        self.noise_floor = noise_floor
        self.max_iterations = max_iterations
        # Residual standard deviation per state, in units of the state's std.
        self.noise = torch.ones_like(scale)
        self.errors = torch.zeros_like(coefficients)
        self.loss = math.nan

    def start_window_set(self, windows: Windows) -> None:
        """Switch to new windows: take their start states and choose their rk4 sub-steps."""
        self.windows = windows
        self.start = windows.start.clone()
        self.dropped = torch.zeros(windows.start.shape[0], dtype=torch.bool, device=windows.start.device)
        # Keep the integration error a tenth of the smallest residual the fit resolves.
        tolerance = 0.1 * self.noise_floor
        self.sub_steps = choose_sub_steps(self.terms, self.coefficients, windows, self.scale, tolerance)
        self.predicted = windows.observed.clone()

    def coefficients_numpy(self) -> np.ndarray:
        return self.coefficients.detach().cpu().numpy() * self.active

    def standard_errors_numpy(self) -> np.ndarray:
        return self.errors.detach().cpu().numpy() * self.active

    def _active_index(self, mask=None) -> torch.Tensor:
        flat = np.flatnonzero((self.active if mask is None else mask).ravel())
        return torch.as_tensor(flat, dtype=torch.long, device=self.coefficients.device)

    def _residual(self, predicted) -> torch.Tensor:
        w = self.windows
        residual = (predicted - w.observed) / self.scale * w.mask.unsqueeze(-1)
        return residual.flatten(1)

    def _cost(self, residual) -> float:
        weighted = (residual.unflatten(1, (-1, len(self.scale))) / self.noise)[~self.dropped]
        if not torch.isfinite(weighted).all():
            return math.inf
        return float(torch.sum(weighted**2))

    def _linearise(self, index=None) -> _Linearisation:
        """Roll out all windows with the tangents of every start state and of the coefficients at ``index``.

        ``index`` contains flat ``k * d + j`` coefficient indices (default: the active ones).
        A window whose rollout is not finite is retried once with twice the
        rk4 sub-steps (a finer fixed step); if it still fails, it is left out
        of the window set.
        """
        predicted, residual, jacobian = self._rollout_with_tangents(index)
        failing = self._non_finite(residual, jacobian) & ~self.dropped
        if failing.any() and self.sub_steps < _MAX_SUB_STEPS:
            log.warning(
                "trajectory stage: %d windows are not finite with %d rk4 sub-steps; retrying with %d",
                int(failing.sum()), self.sub_steps, 2 * self.sub_steps,
            )
            self.sub_steps *= 2
            predicted, residual, jacobian = self._rollout_with_tangents(index)
        self._drop_non_finite(residual, jacobian)
        d = self.windows.observed.shape[2]
        keep = (~self.dropped).to(residual.dtype)
        residual = torch.nan_to_num(residual) * keep.unsqueeze(-1)
        jacobian = torch.nan_to_num(jacobian) * keep.view(-1, 1, 1)
        return _Linearisation(predicted, residual, jacobian[..., :d], jacobian[..., d:])

    def _rollout_with_tangents(self, index):
        """Return the predicted states, the residual and its Jacobian (start states first), unmasked."""
        w = self.windows
        n_windows, samples, d = w.observed.shape
        index = self._active_index() if index is None else index
        directions = d + len(index)
        per_direction = n_windows * ((samples - 1) * self.sub_steps + 1) * d
        chunk = max(1, _TANGENT_ELEMENTS // per_direction)
        # -1 marks a start-state direction; otherwise the flat coefficient index.
        direction_index = torch.cat([torch.full((d,), -1, dtype=torch.long, device=index.device), index])

        parts = []
        for low in range(0, directions, chunk):
            high = min(directions, low + chunk)
            start_tangent = torch.zeros(high - low, n_windows, d, dtype=w.start.dtype, device=w.start.device)
            state_directions = torch.arange(low, min(high, d), device=w.start.device)
            start_tangent[state_directions - low, :, state_directions] = 1.0
            tangents = _Tangents(self.terms, start_tangent, direction_index[low:high])
            with torch.no_grad():
                predicted, part = rollout(self.terms, self.coefficients, self.start, w.steps,
                                          self.sub_steps, tangents)
            parts.append(part)

        # (directions, W, K + 1, d) -> (W, M, directions), in units of each state's std.
        jacobian = torch.cat(parts) / self.scale * w.mask.unsqueeze(-1)
        jacobian = jacobian.permute(1, 2, 3, 0).flatten(1, 2)
        return predicted, self._residual(predicted), jacobian

    @staticmethod
    def _non_finite(residual, jacobian) -> torch.Tensor:
        """Return a mask of the windows whose residual or Jacobian has a NaN or infinity."""
        return ~(torch.isfinite(residual).all(dim=1) & torch.isfinite(jacobian).all(dim=(1, 2)))

    def _drop_non_finite(self, residual, jacobian) -> None:
        bad = self._non_finite(residual, jacobian)
        new = bad & ~self.dropped
        if not new.any():
            return
        w = self.windows
        for number, window in enumerate(torch.nonzero(new).flatten().tolist()):
            if number == 5:
                log.warning("... and %d more windows", int(new.sum()) - 5)
                break
            first = w.samples[window, 0]
            log.warning(
                "trajectory stage: rollout of window %d (trajectory %d, from sample %d) is not finite "
                "with %d sub-steps; the window is left out of this round",
                window, w.trajectory[window], first, self.sub_steps,
            )
        self.dropped |= bad

    def _normal_equations(self, lin: _Linearisation):
        """Return the blocks of J^T J and J^T r with rows weighted by 1 / noise."""
        samples = self.windows.observed.shape[1]
        weight = (1.0 / self.noise).repeat(samples)
        residual = lin.residual * weight
        start_jacobian = lin.start_jacobian * weight.unsqueeze(-1)
        coefficient_jacobian = lin.coefficient_jacobian * weight.unsqueeze(-1)
        u = torch.einsum("wmi,wmj->wij", start_jacobian, start_jacobian)
        # A dropped window has no rows; an identity block keeps its start state fixed.
        eye = torch.eye(u.shape[-1], dtype=u.dtype, device=u.device)
        u[self.dropped] = eye
        y = torch.einsum("wmi,wmk->wik", start_jacobian, coefficient_jacobian)
        v = torch.einsum("wmk,wml->kl", coefficient_jacobian, coefficient_jacobian)
        g_start = torch.einsum("wmi,wm->wi", start_jacobian, residual)
        g_coefficients = torch.einsum("wmk,wm->k", coefficient_jacobian, residual)
        return u, y, v, g_start, g_coefficients

    @staticmethod
    def _solve(u, y, v, g_start, g_coefficients, damping):
        """Solve the damped normal equations by eliminating the block-diagonal start states (Schur complement)."""
        u = u + damping * torch.diag_embed(torch.diagonal(u, dim1=-2, dim2=-1))
        diagonal = torch.diagonal(v)
        floor = 1e-12 * float(diagonal.max()) if diagonal.numel() else 0.0
        v = v + damping * torch.diag(torch.clamp(diagonal, min=floor))
        u_inverse = torch.linalg.inv(u)
        reduced, gradient = _reduced_normal_equations(u, y, v, g_start, g_coefficients, u_inverse)
        rhs = -gradient
        if rhs.numel():
            try:
                delta_coefficients = torch.linalg.solve(reduced, rhs)
            except torch.linalg.LinAlgError:
                delta_coefficients = torch.linalg.lstsq(reduced, rhs.unsqueeze(-1)).solution.squeeze(-1)
        else:
            delta_coefficients = rhs
        delta_start = -torch.einsum("wij,wj->wi", u_inverse, g_start + y @ delta_coefficients)
        return delta_start, delta_coefficients

    def _trial_cost(self, start, coefficients) -> float:
        with torch.no_grad():
            predicted = rollout(self.terms, coefficients, start, self.windows.steps, self.sub_steps)
        return self._cost(self._residual(predicted))

    def run_round(self, deadline: float | None) -> dict:
        """Fit start states and active coefficients by Levenberg-Marquardt; return the round's figures."""
        lin = self._linearise()
        cost = self._cost(lin.residual)
        index = self._active_index()
        damping, iterations, stopped = 1e-3, 0, None
        record = {"n_windows": int(self.start.shape[0]), "sub_steps": self.sub_steps, "terms": int(self.active.sum())}
        if self.dropped.all():
            return {**record, "dropped_windows": record["n_windows"], "loss": math.nan, "iterations": 0,
                    "noise": self.noise.tolist(), "stopped": DIVERGED}

        for _ in range(self.max_iterations):
            if deadline is not None and time.perf_counter() > deadline:
                stopped = OUT_OF_TIME
                break
            normal = self._normal_equations(lin)
            accepted = False
            for _ in range(12):
                delta_start, delta_coefficients = self._solve(*normal, damping)
                start = self.start + delta_start
                coefficients = self.coefficients.clone()
                coefficients.view(-1)[index] += delta_coefficients
                trial = self._trial_cost(start, coefficients)
                if trial < cost:
                    accepted = True
                    break
                damping *= 4.0
            if not accepted:
                break
            iterations += 1
            improvement = (cost - trial) / cost
            self.start, self.coefficients = start, coefficients
            damping = max(damping / 3.0, 1e-12)
            lin = self._linearise()
            cost = self._cost(lin.residual)
            if improvement < _RELATIVE_IMPROVEMENT:
                break

        self.predicted = lin.predicted
        self._update_noise_and_errors(lin, index)
        return {**record, "dropped_windows": int(self.dropped.sum()), "loss": self.loss, "iterations": iterations,
                "noise": self.noise.tolist(), "stopped": stopped}

    def _update_noise_and_errors(self, lin: _Linearisation, index) -> None:
        """Estimate each state's residual std (with the floor) and the coefficients' standard errors."""
        d = len(self.scale)
        residual = lin.residual.unflatten(1, (-1, d))
        kept = ~self.dropped
        observed = (self.windows.mask[kept].sum() * torch.ones(d, dtype=residual.dtype, device=residual.device))
        squares = torch.sum(residual[kept] ** 2, dim=(0, 1))
        parameters = float(kept.sum()) + torch.as_tensor(self.active.sum(axis=0), dtype=residual.dtype,
                                                         device=residual.device)
        self.loss = float(squares.sum() / observed.sum()) if observed.sum() > 0 else math.nan
        variance = squares / torch.clamp(observed - parameters, min=1.0)
        self.noise = torch.sqrt(torch.clamp(variance, min=self.noise_floor**2))

        u, y, v, g_start, g_coefficients = self._normal_equations(lin)
        self._gauss_newton = (u, y, v, g_start, g_coefficients, index)
        self.errors = torch.zeros_like(self.coefficients)
        if len(index) == 0:
            return
        reduced, _ = _reduced_normal_equations(u, y, v, None, None)
        try:
            covariance = torch.linalg.inv(reduced)
            errors = torch.sqrt(torch.diagonal(covariance))
        except torch.linalg.LinAlgError:
            log.warning("trajectory stage: singular Gauss-Newton matrix; standard errors set to inf")
            errors = torch.full((len(index),), math.inf, dtype=v.dtype, device=v.device)
        # A negative variance from round-off means the coefficient is not identifiable.
        self.errors.view(-1)[index] = torch.nan_to_num(errors, nan=math.inf)

    def eliminate(self, t_threshold: float) -> list[str]:
        """Deactivate, in each equation, the least significant terms whose |t| is below ``t_threshold``.

        An equation with ``n`` active terms loses at most ``max(1, n // 8)``
        terms per round: one at a time below 16 terms, as backward
        elimination does, and a geometric shrink for large libraries, which
        would otherwise need one solver fit per term.
        """
        removed = []
        coefficients = self.coefficients.detach().cpu().numpy()
        errors = self.errors.detach().cpu().numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            t_values = np.abs(coefficients / errors)
        t_values = np.where(np.isfinite(t_values), t_values, 0.0)
        for j, name in enumerate(self.library.state_names):
            rows = np.flatnonzero(self.active[:, j])
            order = rows[np.argsort(t_values[rows, j], kind="stable")]
            for k in order[: max(1, rows.size // _ELIMINATION_BATCH)]:
                if t_values[k, j] >= t_threshold:
                    break
                self.active[k, j] = False
                self.errors[k, j] = 0.0
                removed.append(f"{self.library.terms[k]} from d{name}/dt (|t| = {t_values[k, j]:.2g})")
        if removed:
            self._refit_linearised()
        return removed

    def _refit_linearised(self) -> None:
        """Move the kept coefficients and the start states to the Gauss-Newton optimum without the removed terms.

        Zeroing a term whose effect other terms balanced can make the next
        rollout diverge. So the step of the last linearisation is taken, or,
        if its rollout is worse than plain zeroing, the terms are only zeroed.
        """
        u, y, v, g_start, g_coefficients, index = self._gauss_newton
        current = self.coefficients.view(-1)[index]
        position = {int(flat): p for p, flat in enumerate(index.tolist())}
        free = [position[int(flat)] for flat in self._active_index().tolist()]
        zeroed = self.coefficients * torch.as_tensor(self.active, device=self.coefficients.device)

        reduced, gradient = _reduced_normal_equations(u, y, v, g_start, g_coefficients)
        _, step = _linearised_loss(reduced, gradient, current, free)
        if step is None:
            self.coefficients = zeroed
            return
        delta = -current
        delta[free] = step
        moved = self.coefficients.clone()
        moved.view(-1)[index] = current + delta
        start = self.start - torch.einsum("wij,wj->wi", torch.linalg.inv(u), g_start + y @ delta)
        if self._trial_cost(start, moved) < self._trial_cost(self.start, zeroed):
            self.coefficients, self.start = moved, start
        else:
            self.coefficients = zeroed

    def swap_terms(self) -> list[str]:
        """Swap one kept term for an eliminated one where that lowers the loss; return the swaps made.

        Backward elimination keeps whichever of two nearly collinear terms
        (``y`` and ``y*z`` on the Lorenz attractor) happens to have the
        larger ``|t|``. Here every swap of a kept term for an eliminated
        candidate of the same equation is scored on the Gauss-Newton model
        of the loss at the current fit, with the start states and the other
        kept terms refitted. The best swap of each equation is made if it
        lowers the loss, and the next round refits it through the solver.
        """
        d = len(self.scale)
        index = self._active_index(self.candidates)
        lin = self._linearise(index)
        u, y, v, g_start, g_coefficients = self._normal_equations(lin)
        reduced, gradient = _reduced_normal_equations(u, y, v, g_start, g_coefficients)
        current = self.coefficients.view(-1)[index]
        position = {int(flat): p for p, flat in enumerate(index.tolist())}
        kept = [position[int(flat)] for flat in self._active_index().tolist()]

        swaps = []
        best_loss = _linearised_loss(reduced, gradient, current, kept)[0]
        for j, name in enumerate(self.library.state_names):
            options = []
            for k in np.flatnonzero(self.active[:, j]):
                for m in np.flatnonzero(self.candidates[:, j] & ~self.active[:, j]):
                    trial = [p for p in kept if p != position[k * d + j]] + [position[m * d + j]]
                    loss, delta = _linearised_loss(reduced, gradient, current, trial)
                    options.append((loss, k, m, trial, delta))
            if not options:
                continue
            loss, k, m, trial, delta = min(options, key=lambda option: option[0])
            if loss < best_loss:
                best_loss, kept = loss, trial
                self.active[k, j], self.active[m, j] = False, True
                swaps.append(f"{self.library.terms[k]} -> {self.library.terms[m]} in d{name}/dt")
                new = torch.zeros_like(current)
                new[trial] = current[trial] + delta
                self.coefficients.view(-1)[index] = new
        return swaps


def _reduced_normal_equations(u, y, v, g_start, g_coefficients, u_inverse=None):
    """Eliminate the block-diagonal start states: return ``(V - sum Y^T U^-1 Y, g_c - sum Y^T U^-1 g_s)``."""
    u_inverse = torch.linalg.inv(u) if u_inverse is None else u_inverse
    reduced = v - torch.einsum("wik,wij,wjl->kl", y, u_inverse, y)
    if g_start is None:
        return reduced, None
    gradient = g_coefficients - torch.einsum("wik,wij,wj->k", y, u_inverse, g_start)
    return reduced, gradient


def _linearised_loss(reduced, gradient, current, free):
    """Return the Gauss-Newton change of the loss when only coefficients ``free`` stay, refitted.

    The others are set to zero. ``reduced`` and ``gradient`` are the normal
    equations with the start states eliminated, ``current`` the coefficients
    at which they were formed. Also returns the change of the free coefficients.
    """
    free = torch.as_tensor(free, dtype=torch.long, device=current.device)
    fixed = torch.ones_like(current, dtype=torch.bool)
    fixed[free] = False
    delta = torch.zeros_like(current)
    delta[fixed] = -current[fixed]
    rhs = -(gradient + reduced @ delta)[free]
    try:
        step = torch.linalg.solve(reduced[free][:, free], rhs)
    except torch.linalg.LinAlgError:
        return math.inf, None
    delta[free] = step
    loss = float(2.0 * gradient @ delta + delta @ reduced @ delta)
    return loss, step
