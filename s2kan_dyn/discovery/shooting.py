"""Trajectory stage: fit and eliminate terms through the ODE solver by multiple shooting.

Derivatives of noisy or coarsely sampled data are poor, so the terms that
derivative matching chose can be wrong. This stage needs no derivative. It
fits a vector field that is linear in its coefficients,
``dx/dt = terms(x) @ coefficients``, to the observed states themselves:

1. Each trajectory is cut into windows of a few samples. Each window is
   integrated from its own start state, a free parameter (multiple
   shooting), with torchdiffeq's fixed-grid ``rk4``
   on an explicit sub-step grid, all windows in one batch. A window whose
   rollout is not finite is retried with twice the sub-steps, then left
   out of the round (logged with its trajectory and first sample).
2. Start states and coefficients are fitted by Levenberg-Marquardt on the
   residuals (predicted minus observed states, each state divided by its
   standard deviation) over every sample of every window. The Jacobian
   comes from one forward-mode pass through ``odeint``: the tangents of
   the start states and coefficients, stacked in the batch, are integrated
   with the states by their variational equations.
3. Terms are eliminated backwards, one per equation per round (a few more
   in equations with 16 or more terms): the term whose coefficient has the
   smallest ``|t| = |c| / se(c)`` goes if ``|t| < t_threshold``, with
   ``se`` from the Gauss-Newton covariance.
   Dropping a term raises the residual sum of squares by about ``t**2``
   noise variances, which is ``t**2 / (2 ln 2)`` bits of residual code.
   So ``|t| < 4`` (about 11.5 bits) is a description-length test: the
   term saves fewer bits than its coefficient and its choice cost.
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

from s2kan_dyn.discovery.shooting_fit import DIVERGED, ShootingFit
from s2kan_dyn.discovery.shooting_rollout import (
    TermEvaluator,
    Windows,
    choose_sub_steps,
    fitted_sample_states,
    make_windows,
    rollout,
)

log = logging.getLogger(__name__)


@dataclass
class TrajectoryStageResult:
    """Result of the trajectory stage.

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
        ``coefficients`` and ``active`` are the inputs, with inactive
        coefficients set to 0.

    NOTE: each round integrates one tangent per active coefficient, and
    a large collinear library needs many rounds. On noisy Lorenz, 30
    candidate coefficients took about 8 s of CPU time, and a read-out with
    84 (monomials up to degree 5) took minutes. Keep the candidate library
    to the kept terms and their cheap neighbourhood.

    Raises:
        S2KANDynError: shapes of ``coefficients``, ``active`` or
            ``smoothed_states`` do not match the library and trajectories
            (:class:`DataError` for the trajectories and smoothed states).
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

    fit = ShootingFit(library, torch.as_tensor(coefficients * active, dtype=dtype, device=device),
                      active.copy(), scale, noise_floor, max_iterations)
    states = initial
    rounds: list[dict] = []
    stop_reason = None
    bar = tqdm(desc="trajectory stage", unit="round", disable=not progress)
    windows: Windows | None = None

    for length in lengths:
        windows = make_windows(trajectories, length, states, dtype, device)
        fit.start_window_set(windows)
        while True:
            deadline = None if time_budget is None else started + time_budget
            record = fit.run_round(deadline)
            stop_reason = record["stopped"]
            removed = fit.eliminate(t_threshold) if stop_reason is None else []
            swapped = fit.swap_terms() if stop_reason is None and not removed else []
            record.update(window=length, eliminated=removed, swapped=swapped, seconds=time.perf_counter() - started)
            rounds.append(record)
            _log_round(len(rounds), record)
            bar.update(1)
            bar.set_postfix(loss=f"{record['loss']:.3g}", terms=record["terms"])
            if stop_reason is not None or (not removed and not swapped):
                break
        states = fitted_sample_states(windows, fit.predicted, fit.start, states)
        if stop_reason is not None:
            log.warning("trajectory stage stopped: %s; returning the last fit", stop_reason)
            break
    bar.close()

    if stop_reason == DIVERGED and len(rounds) == 1:
        return TrajectoryStageResult(
            coefficients=coefficients * active,
            active=active.copy(),
            standard_errors=np.zeros_like(coefficients),
            loss=math.nan,
            rounds=rounds,
            seconds=time.perf_counter() - started,
            skipped_reason=f"{DIVERGED} with the starting coefficients",
        )

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
    terms = TermEvaluator(library, device)
    sub_steps = choose_sub_steps(terms, coef, one_step, scale, tolerance=0.1 * tolerance)
    with torch.no_grad():
        predicted = rollout(terms, coef, one_step.start, one_step.steps, sub_steps)
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
