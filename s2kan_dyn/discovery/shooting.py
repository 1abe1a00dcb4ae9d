"""Trajectory stage: fit and eliminate terms through the ODE solver by multiple shooting.

Derivatives of noisy or coarsely sampled data are poor, so the terms that
derivative matching chose can be wrong. This stage needs no derivative. It
fits a vector field that is linear in its coefficients,
``dx/dt = terms(x) @ coefficients``, to the observed states themselves:

1. Each trajectory is cut into windows of a few samples. Each window is
   integrated from its own start state, a free parameter (multiple
   shooting; Bock and Plitt 1984), with torchdiffeq's fixed-grid ``rk4``
   on an explicit sub-step grid, all windows in one batch.
2. Start states and coefficients are fitted by Levenberg-Marquardt on the
   residuals (predicted minus observed states, each state divided by its
   standard deviation) over every sample of every window. The Jacobian
   comes from forward-mode differentiation through ``odeint``, with the
   tangents of the start states and coefficients stacked in the batch.
3. Terms are eliminated backwards, at most one per equation per round: the
   term whose coefficient has the smallest ``|t| = |c| / se(c)`` goes if
   ``|t| < t_threshold``, with ``se`` from the Gauss-Newton covariance.
   Dropping a term raises the residual sum of squares by about ``t**2``
   noise variances, which is ``t**2 / (2 ln 2)`` bits of residual code, so
   ``|t| < 4`` (about 11.5 bits) is a description-length test: the term
   saves fewer bits than its coefficient and choice cost.
4. When no term goes, each kept term is checked against swapping it for
   an eliminated candidate of its equation (nearly collinear terms, such as
   ``y`` and ``y*z`` on the Lorenz attractor, otherwise survive by chance).
5. When nothing changes, the windows grow (x2, then x2 again) and the fit
   restarts from the fitted states.

Windows of a whole time unit started cold fall into local minima, which is
why they start short and grow.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from s2kan_dyn.errors import DataError, S2KANDynError
from s2kan_dyn.readout.terms import TermLibrary
from s2kan_dyn.trajectory import Trajectory

log = logging.getLogger(__name__)


@dataclass
class TrajectoryStageResult:
    """What the trajectory stage returns.

    Attributes:
        coefficients: fitted coefficients, shape ``(T, d)``, 0 where inactive.
        active: terms still active, boolean, shape ``(T, d)``.
        standard_errors: Gauss-Newton standard errors, shape ``(T, d)``, 0 where inactive.
        loss: mean squared residual over all fitted samples, each state in
            units of its standard deviation; ``nan`` when skipped.
        rounds: one dict per elimination round, with its figures.
        windows: final window length, in time units (0 when skipped).
        seconds: wall time of the stage.
        skipped_reason: why the stage did not fit, or ``None`` when it did.
        fitted_states: per trajectory, the fitted states at its sample
            times, shape ``(n_i, d)``; ``None`` when skipped.
    """

    coefficients: np.ndarray
    active: np.ndarray
    standard_errors: np.ndarray
    loss: float
    rounds: list[dict] = field(default_factory=list)
    windows: float = 0.0
    seconds: float = 0.0
    skipped_reason: str | None = None
    fitted_states: list[np.ndarray] | None = None


def fit_trajectory_stage(
    library: TermLibrary,
    coefficients: np.ndarray,
    active: np.ndarray,
    trajectories: Sequence[Trajectory],
    smoothed_states: Sequence[np.ndarray] | None = None,
    device: str | torch.device = "cpu",
    progress: bool = False,
    time_budget: float | None = None,
    *,
    initial_window_steps: int = 4,
    window_growth: Sequence[int] = (2, 2),
    t_threshold: float = 4.0,
    noise_floor: float = 1e-4,
    skip_tolerance: float = 1e-6,
    max_iterations: int = 20,
) -> TrajectoryStageResult:
    """Fit and eliminate terms of a linear-in-coefficients vector field by multiple shooting.

    Args:
        library: the ``T`` candidate terms over ``d`` states.
        coefficients: starting coefficients, shape ``(T, d)``; inactive entries are ignored.
        active: boolean mask of shape ``(T, d)``: the candidates of each equation.
        trajectories: the observed data (unequal lengths and irregular times allowed).
        smoothed_states: optional smoothed states, one ``(n_i, d)`` array per
            trajectory, used only for the initial window start states
            (default: the observed states).
        device: torch device of the fit.
        progress: show a tqdm bar, one tick per round.
        time_budget: seconds after which the stage stops and returns its
            current fit (default: no limit).
        initial_window_steps: first window length as a multiple of the
            median sampling step (default 4, so 5 samples). Chosen from the
            sampling step because the system's time scale is unknown.
        window_growth: factors by which the windows grow once no term is
            eliminated (default ``(2, 2)``).
        t_threshold: a term whose ``|coefficient / standard error|`` is
            below this is eliminated (default 4).
        noise_floor: lower bound on each state's residual standard
            deviation, as a fraction of the state's standard deviation
            (default 1e-4). On clean data the residuals are near zero and
            every term would look significant without it.
        skip_tolerance: the stage is skipped when one-step rollouts of the
            given equations from each observed sample reproduce the next one
            to this root-mean-square fraction of each state's standard
            deviation (default 1e-6): the data are then clean and dense
            enough that derivative matching is already final.
        max_iterations: Levenberg-Marquardt iterations per round (default 20).

    Returns:
        A :class:`TrajectoryStageResult`. Where ``skipped_reason`` is set,
        ``coefficients`` and ``active`` are the inputs unchanged.

    Raises:
        S2KANDynError: shapes of ``coefficients``, ``active`` or
            ``smoothed_states`` do not match the library and trajectories.
    """
    started = time.perf_counter()
    trajectories = list(trajectories)
    coefficients, active = _check_inputs(library, coefficients, active, trajectories)
    initial = _initial_states(trajectories, smoothed_states)
    dtype = torch.float64
    device = torch.device(device)

    all_states = np.concatenate([tr.x for tr in trajectories])
    scale_np = np.std(all_states, axis=0)
    scale_np = np.where(scale_np > 0, scale_np, 1.0)
    scale = torch.as_tensor(scale_np, dtype=dtype, device=device)

    reason = _skip_reason(library, coefficients, active, trajectories, scale, skip_tolerance, device)
    if reason is not None:
        log.info("trajectory stage skipped: %s", reason)
        return TrajectoryStageResult(
            coefficients=coefficients * active,
            active=active.copy(),
            standard_errors=np.zeros_like(coefficients),
            loss=math.nan,
            seconds=time.perf_counter() - started,
            skipped_reason=reason,
        )

    step = float(np.median(np.concatenate([np.diff(tr.t) for tr in trajectories])))
    lengths = [initial_window_steps * step]
    for factor in window_growth:
        lengths.append(lengths[-1] * factor)

    fit = _Fit(library, torch.as_tensor(coefficients * active, dtype=dtype, device=device),
               active.copy(), scale, noise_floor, max_iterations)
    states = initial
    rounds: list[dict] = []
    out_of_time = False
    bar = tqdm(desc="trajectory stage", unit="round", disable=not progress)
    windows: Windows | None = None

    for length in lengths:
        windows = make_windows(trajectories, length, states, dtype, device)
        fit.start_window_set(windows)
        while True:
            deadline = None if time_budget is None else started + time_budget
            record = fit.run_round(deadline)
            removed = fit.eliminate(t_threshold) if not record["stopped"] else []
            swapped = fit.swap_terms() if not (record["stopped"] or removed) else []
            record.update(window=length, eliminated=removed, swapped=swapped, seconds=time.perf_counter() - started)
            rounds.append(record)
            _log_round(len(rounds), record)
            bar.update(1)
            bar.set_postfix(loss=f"{record['loss']:.3g}", terms=record["terms"])
            if record["stopped"]:
                out_of_time = True
                break
            if not removed and not swapped:
                break
        states = fitted_sample_states(windows, fit.predicted, fit.start, states)
        if out_of_time:
            log.warning("trajectory stage: time budget of %.1f s reached; returning the current fit",
                        time_budget)
            break
    bar.close()

    seconds = time.perf_counter() - started
    result = TrajectoryStageResult(
        coefficients=fit.coefficients_numpy(),
        active=fit.active.copy(),
        standard_errors=fit.standard_errors_numpy(),
        loss=fit.loss,
        rounds=rounds,
        windows=windows.length,
        seconds=seconds,
        fitted_states=states,
    )
    log.info(
        "trajectory stage done: %d terms in %d rounds, loss %.4g, final window %.3g, %.1f s",
        int(result.active.sum()), len(rounds), result.loss, result.windows, seconds,
    )
    return result


def _log_round(number: int, record: dict) -> None:
    log.info(
        "trajectory stage round %d: window %.3g (%d windows, %d sub-steps, %d dropped), "
        "%d terms, loss %.4g, %d LM iterations, eliminated %s, swapped %s",
        number, record["window"], record["n_windows"], record["sub_steps"],
        record["dropped_windows"], record["terms"], record["loss"], record["iterations"],
        record["eliminated"] or "nothing", record["swapped"] or "nothing",
    )


def _check_inputs(library, coefficients, active, trajectories):
    if not trajectories:
        raise DataError("no trajectories given; pass at least one.")
    shape = (len(library), len(library.state_names))
    coefficients = np.asarray(coefficients, dtype=float)
    active = np.asarray(active, dtype=bool)
    if coefficients.shape != shape:
        raise S2KANDynError(f"coefficients have shape {coefficients.shape}, expected {shape} (terms, states).")
    if active.shape != shape:
        raise S2KANDynError(f"active mask has shape {active.shape}, expected {shape} (terms, states).")
    if not np.all(np.isfinite(coefficients[active])):
        raise S2KANDynError("active coefficients contain NaN or inf; pass finite starting values.")
    for tr in trajectories:
        if tr.state_names != library.state_names:
            raise DataError(
                f"{tr.source}: states {list(tr.state_names)} differ from the library's "
                f"{list(library.state_names)}."
            )
    return coefficients, active


def _initial_states(trajectories, smoothed_states) -> list[np.ndarray]:
    if smoothed_states is None:
        return [tr.x for tr in trajectories]
    smoothed = [np.asarray(s, dtype=float) for s in smoothed_states]
    if len(smoothed) != len(trajectories):
        raise DataError(
            f"{len(smoothed)} smoothed state arrays for {len(trajectories)} trajectories; "
            "pass one per trajectory or None."
        )
    for i, (s, tr) in enumerate(zip(smoothed, trajectories)):
        if s.shape != tr.x.shape:
            raise DataError(
                f"smoothed states {i} have shape {s.shape}, expected {tr.x.shape} like its trajectory."
            )
        if not np.all(np.isfinite(s)):
            raise DataError(f"smoothed states {i} contain NaN or inf; pass finite values or None.")
    return smoothed


def _skip_reason(library, coefficients, active, trajectories, scale, tolerance, device) -> str | None:
    """Return why the stage can be skipped, or ``None`` when it should run."""
    if not active.any():
        return "no active terms to fit"

    dtype = torch.float64
    coef = torch.as_tensor(coefficients * active, dtype=dtype, device=device)
    one_step = make_windows(trajectories, 0.0, [tr.x for tr in trajectories], dtype, device,
                            min_intervals=1)
    sub_steps = choose_sub_steps(library, coef, one_step, scale, tolerance=0.1 * tolerance)
    with torch.no_grad():
        predicted = rollout(library, coef, one_step.start, one_step.steps, sub_steps)
    residual = ((predicted - one_step.observed) / scale)[:, 1:]
    if not torch.isfinite(residual).all():
        return None
    rms = float(torch.sqrt(torch.mean(residual**2)))
    if rms < tolerance:
        return (
            f"one-step rollouts of the given equations reproduce every sample to {rms:.1e} of "
            f"each state's standard deviation (below skip_tolerance={tolerance:g}); "
            "the data are clean and dense enough for derivative matching"
        )
    return None



# ---------------------------------------------------------------------------
# Windows and batched rollouts
# ---------------------------------------------------------------------------

# Largest number of tangent directions x windows x grid points x states held
# at once in one forward-mode pass (about 270 MB of float64); more tangent
# directions are processed in chunks.
_TANGENT_ELEMENTS = 2**25
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


def rollout(library: TermLibrary, coefficients, start, steps, sub_steps: int, tangents=None):
    """Integrate ``dx/dt = library(x) @ coefficients`` over every window at once.

    Time is rescaled so that sample interval ``k`` of every window is
    ``s in [k, k + 1]`` and ``dx/ds = steps[w, k] * f(x)``; windows with
    different (irregular) sample times then share one grid of ``sub_steps``
    rk4 steps per interval. torchdiffeq's ``perturb`` option evaluates the
    field just inside each step, so the interval lookup at the grid points
    is unambiguous. Padded intervals have step 0 and keep the state.

    Args:
        library: the terms, ``T`` of them.
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
            return rate(s) * (library.evaluate_torch(x) @ coefficients)

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
    (a test compares them), but with torch 2.13 on CPU every operation that
    mixes a dual tensor with a plain tensor or a Python number takes about
    0.15-0.3 ms, which made each Lorenz round about 8 s instead of well under one.

    Args:
        derivatives: a TermLibrary of the ``T * d`` partial derivatives
            ``d term_k / d x_j``, row-major in ``(k, j)``.
        start: start tangents, shape ``(P, W, d)``.
        coefficient_index: for each direction, the flat index ``k * d + j``
            of its unit coefficient tangent, or -1 for a start-state direction.
    """

    def __init__(self, library, derivatives, start, coefficient_index):
        self.library = library
        self.derivatives = derivatives
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
        terms = self.library.evaluate_torch(x)
        jacobian = self.derivatives.evaluate_torch(x).view(n_windows, -1, d)
        tangent = torch.einsum("wtj,pwj->pwt", jacobian, v) @ coefficients
        tangent[self.coefficient_directions, :, self.state_of_direction] += terms[:, self.term_of_direction].T
        return torch.cat([(terms @ coefficients).unsqueeze(0), tangent], dim=0)


def derivative_library(library: TermLibrary) -> TermLibrary:
    """Return the library of the partial derivatives ``d term_k / d x_j``, row-major in ``(k, j)``."""
    partials = [term.diff(symbol) for term in library.terms for symbol in library.symbols]
    return TermLibrary(partials, library.state_names)


def choose_sub_steps(library, coefficients, windows: Windows, scale, tolerance, start=None) -> int:
    """Return the fewest rk4 sub-steps (2, 4, ... 64) per sample interval that meet ``tolerance``.

    The error is estimated by step doubling: the largest difference, in
    units of each state's standard deviation, between rollouts with ``n``
    and ``2 n`` sub-steps. Windows that are non-finite at either resolution
    are left out of the estimate.
    """
    start = windows.start if start is None else start
    sub_steps = 2
    with torch.no_grad():
        coarse = rollout(library, coefficients, start, windows.steps, sub_steps)
        while sub_steps < _MAX_SUB_STEPS:
            fine = rollout(library, coefficients, start, windows.steps, 2 * sub_steps)
            difference = ((coarse - fine) / scale * windows.mask.unsqueeze(-1)).abs().flatten(1)
            finite = torch.isfinite(difference).all(dim=1)
            if not finite.any() or float(difference[finite].max()) < tolerance:
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


# ---------------------------------------------------------------------------
# Levenberg-Marquardt over start states and coefficients
# ---------------------------------------------------------------------------


@dataclass
class _Linearisation:
    predicted: torch.Tensor  # (W, K + 1, d)
    residual: torch.Tensor  # (W, M), M = (K + 1) d, in units of each state's std
    start_jacobian: torch.Tensor  # (W, M, d)
    coefficient_jacobian: torch.Tensor  # (W, M, n_active)


class _Fit:
    """Start states, coefficients and noise estimates of one trajectory-stage fit."""

    def __init__(self, library, coefficients, active, scale, noise_floor, max_iterations):
        self.library = library
        self.derivatives = derivative_library(library)
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
        self.windows = windows
        self.start = windows.start.clone()
        self.dropped = torch.zeros(windows.start.shape[0], dtype=torch.bool, device=windows.start.device)
        tolerance = 0.1 * self.noise_floor
        self.sub_steps = choose_sub_steps(self.library, self.coefficients, windows, self.scale, tolerance)
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

        ``index`` holds flat ``k * d + j`` coefficient indices (default: the active ones).
        """
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
            state_directions = torch.arange(low, min(high, d))
            start_tangent[state_directions - low, :, state_directions] = 1.0
            tangents = _Tangents(self.library, self.derivatives, start_tangent, direction_index[low:high])
            with torch.no_grad():
                predicted, part = rollout(self.library, self.coefficients, self.start, w.steps,
                                          self.sub_steps, tangents)
            parts.append(part)

        # (directions, W, K + 1, d) -> (W, M, directions), in units of each state's std.
        jacobian = torch.cat(parts) / self.scale * w.mask.unsqueeze(-1)
        jacobian = jacobian.permute(1, 2, 3, 0).flatten(1, 2)
        residual = self._residual(predicted)
        self._drop_non_finite(residual, jacobian)
        keep = (~self.dropped).to(residual.dtype)
        residual = torch.nan_to_num(residual) * keep.unsqueeze(-1)
        jacobian = torch.nan_to_num(jacobian) * keep.view(-1, 1, 1)
        return _Linearisation(predicted, residual, jacobian[..., :d], jacobian[..., d:])

    def _drop_non_finite(self, residual, jacobian) -> None:
        bad = ~(torch.isfinite(residual).all(dim=1) & torch.isfinite(jacobian).all(dim=(1, 2)))
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
            predicted = rollout(self.library, coefficients, start, self.windows.steps, self.sub_steps)
        return self._cost(self._residual(predicted))

    def run_round(self, deadline: float | None) -> dict:
        """Fit start states and active coefficients by Levenberg-Marquardt; return the round's figures."""
        lin = self._linearise()
        cost = self._cost(lin.residual)
        index = self._active_index()
        damping, iterations, stopped = 1e-3, 0, False

        for _ in range(self.max_iterations):
            if deadline is not None and time.perf_counter() > deadline:
                stopped = True
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
            if improvement < 1e-9:
                break

        self.predicted = lin.predicted
        self._update_noise_and_errors(lin, index)
        return {
            "n_windows": int(self.start.shape[0]),
            "dropped_windows": int(self.dropped.sum()),
            "sub_steps": self.sub_steps,
            "terms": int(self.active.sum()),
            "loss": self.loss,
            "iterations": iterations,
            "noise": self.noise.tolist(),
            "stopped": stopped,
        }

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

        u, y, v, _, _ = self._normal_equations(lin)
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
        """Deactivate, in each equation, the least significant term if its |t| is below ``t_threshold``."""
        removed = []
        coefficients = self.coefficients.detach().cpu().numpy()
        errors = self.errors.detach().cpu().numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            t_values = np.abs(coefficients / errors)
        t_values = np.where(np.isfinite(t_values), t_values, 0.0)
        for j, name in enumerate(self.library.state_names):
            rows = np.flatnonzero(self.active[:, j])
            if rows.size == 0:
                continue
            k = rows[np.argmin(t_values[rows, j])]
            if t_values[k, j] < t_threshold:
                self.active[k, j] = False
                self.coefficients[k, j] = 0.0
                self.errors[k, j] = 0.0
                removed.append(f"{self.library.terms[k]} from d{name}/dt (|t| = {t_values[k, j]:.2g})")
        return removed

    def swap_terms(self) -> list[str]:
        """Swap one kept term for an eliminated one where that lowers the loss; return the swaps made.

        Backward elimination keeps whichever of two nearly collinear terms
        (``y`` and ``y*z`` on the Lorenz attractor) happens to have the
        larger ``|t|``. Here every swap of a kept term for an eliminated
        candidate of the same equation is scored on the Gauss-Newton model
        of the loss at the current fit (start states eliminated, the other
        kept terms refitted); the best swap of each equation is made if it
        lowers the loss. The next round refits it through the solver.
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
