"""Rollouts of the fitted network, and the check that the equations reproduce it.

The read-out prunes, refits and snaps, and the trajectory stage refits the
coefficients through the solver, so the equations are not the network any
more. The self-check compares the two vector fields on the data, against
the network's own residual there, and reports how long rollouts of both
from the same observed states agree.
"""

from __future__ import annotations

import logging
from typing import Mapping, Sequence

import numpy as np
import sympy as sp
import torch
from torchdiffeq import odeint

from ..metrics.forecast import VPT_THRESHOLD, valid_prediction_time
from ..rollout import default_bound, equations_to_numpy, rollout
from ..trajectory import Trajectory
from .derivatives import smoothed_derivative

log = logging.getLogger(__name__)

# Fixed rk4 sub-steps per output interval of a network rollout: the grid is
# passed to odeint explicitly, because torchdiffeq's ``step_size`` option can
# add a stray short step from rounding.
SUBSTEPS = 2
# The self-check starts from this many observed states, spread evenly over
# the data, and follows each for at most MAX_CHECK_SAMPLES sampling steps.
N_STARTS = 8
MAX_CHECK_SAMPLES = 500
# A median rollout agreement under this fraction of the checked horizon is
# reported as short (information only: see rollout_agreement).
SHORT_AGREEMENT = 0.25
# The read-out is faithful while its field differs from the network's by at
# most this factor times the network's residual on the data (see field_comparison).
TOLERANCE_FACTOR = 2.0
# Relative difference below which two float64 evaluations of one field count
# as equal, whatever the residual.
ROUNDOFF = 1e-9
# States per network evaluation in field_comparison, to bound memory.
EVAL_BATCH = 65536


def network_rollout(model: torch.nn.Module, x0: np.ndarray, t: np.ndarray, bound: float | None = None) -> tuple[np.ndarray, float | None]:
    """Integrate ``dx/dt = model(x)`` with torchdiffeq's rk4 on ``t`` refined :data:`SUBSTEPS` times.

    Args:
        model: maps states ``(B, d)`` to derivatives ``(B, d)`` in original units.
        x0: initial states, shape ``(d,)`` or ``(B, d)``.
        t: output times, shape ``(n,)``, increasing.
        bound: the rollout counts as diverged where ``max |x|`` passes it
            (default ``s2kan_dyn.rollout.default_bound(x0)``).

    Returns:
        ``(x, diverged_at)``: states of shape ``(n, d)`` (or ``(n, B, d)``),
        NaN from the first non-finite or out-of-bound sample on, and the time
        of that sample (``None`` when the whole grid was reached).
    """
    x0 = np.asarray(x0, dtype=float)
    single = x0.ndim == 1
    bound = default_bound(x0) if bound is None else bound
    parameter = next(model.parameters())
    start = torch.as_tensor(np.atleast_2d(x0), dtype=parameter.dtype, device=parameter.device)
    fine = np.concatenate(
        [np.linspace(a, b, SUBSTEPS, endpoint=False) for a, b in zip(t[:-1], t[1:])] + [t[-1:]]
    )
    grid = torch.as_tensor(fine, dtype=parameter.dtype, device=parameter.device)

    def field(_time, x):
        # Clamp so that a diverging rollout stays finite inside rk4's stages.
        return model(torch.clamp(x, -10 * bound, 10 * bound))

    with torch.no_grad():
        states = odeint(field, start, grid, method="rk4").cpu().numpy()[::SUBSTEPS]
    size = np.max(np.abs(states), axis=-1).max(axis=-1)
    bad = ~(size <= bound)
    diverged_at = None
    if bad.any():
        first = int(np.argmax(bad))
        states[first:] = np.nan
        diverged_at = float(t[first])
    return (states[:, 0] if single else states), diverged_at


def check_readout(
    model: torch.nn.Module,
    equations: Mapping[str, sp.Expr],
    trajectories: Sequence[Trajectory],
    derivatives: tuple[np.ndarray, np.ndarray] | None = None,
    compared: str | None = None,
) -> dict:
    """Check that the equations reproduce the network's vector field on the data, and log the result.

    The decision compares the vector fields themselves on the sampled
    states (:func:`field_comparison`), because rollouts of two nearly equal
    fields of a chaotic system part within a few Lyapunov times. How long
    rollouts of both agree (:func:`rollout_agreement`) is reported as
    information.

    Args:
        model: the network, mapping states ``(B, d)`` to derivatives ``(B, d)``.
        equations: state name -> right-hand side.
        trajectories: the training data.
        derivatives: ``(X, dX)``, smoothed states and derivative estimates,
            each ``(N, d)``, as the fit used them (default: smoothed here from
            ``trajectories`` with ``smoothed_derivative``).
        compared: which equations these are, for the log line, e.g.
            ``"derivative-stage read-out"`` or ``"trajectory-stage refit"``
            (default ``"read-out equations"``).

    Returns:
        JSON-serialisable dict: the keys of :func:`field_comparison` and of
        :func:`rollout_agreement`, and ``compared``.
    """
    names = list(trajectories[0].state_names)
    compared = compared or "read-out equations"
    if derivatives is None:
        smoothed = [smoothed_derivative(tr) for tr in trajectories]
        derivatives = (np.concatenate([s.x for s in smoothed]), np.concatenate([s.dxdt for s in smoothed]))
    fields = field_comparison(model, equations, names, *derivatives)
    agreement = rollout_agreement(model, equations, trajectories)

    rollouts = (
        f"rollouts of both from {agreement['n_starts']} observed states agree for {agreement['agreement_time']:.3g} "
        f"of {agreement['horizon']:.3g} time units (median)"
    )
    if fields["faithful"]:
        log.info(
            "self-check of the %s: the equations' vector field differs from the network's by %s of each "
            "derivative's RMS, within twice the network's residual on the data (%s); %s",
            compared, _per_state(names, fields["field_difference"]), _per_state(names, fields["network_residual"]),
            rollouts,
        )
    else:
        off = [k for k, (a, b) in enumerate(zip(fields["field_difference"], fields["tolerance"])) if not a <= b]
        log.warning(
            "self-check of the %s: the equations' vector field differs from the network's by %s of the "
            "derivative's RMS, more than twice the network's residual on the data (%s), so the equations fit "
            "the data worse than the network and are not a faithful read-out of it; %s",
            compared, _per_state([names[k] for k in off], [fields["field_difference"][k] for k in off]),
            _per_state([names[k] for k in off], [fields["network_residual"][k] for k in off]), rollouts,
        )
    return {**agreement, **fields, "compared": compared}


def field_comparison(
    model: torch.nn.Module, equations: Mapping[str, sp.Expr], names: Sequence[str], X: np.ndarray, dX: np.ndarray
) -> dict:
    """Compare the equations' vector field with the network's on the states ``X`` (N, d).

    Each figure is a relative RMS over the samples, per state, in units of
    the RMS of that state's derivative estimates ``dX`` (N, d):

    - ``field_difference``: equations minus network;
    - ``network_residual``: network minus ``dX``;
    - ``equation_residual``: equations minus ``dX``.

    The read-out counts as faithful when, in every state, the difference is
    at most ``tolerance`` = :data:`TOLERANCE_FACTOR` times the network's
    residual (at least :data:`ROUNDOFF`). By the triangle inequality the
    difference is at most the sum of the two residuals, so a larger one
    means the equations fit the data worse than the network does: the
    read-out lost part of what the network learned. A difference inside the
    tolerance is one the data cannot resolve.

    Returns:
        dict of per-state lists ``field_difference``, ``network_residual``,
        ``equation_residual``, ``tolerance``, and ``faithful`` (bool).
    """
    parameter = next(model.parameters())
    with torch.no_grad():
        network = torch.cat([
            model(torch.as_tensor(X[k:k + EVAL_BATCH], dtype=parameter.dtype, device=parameter.device))
            for k in range(0, X.shape[0], EVAL_BATCH)
        ]).cpu().numpy()
    with np.errstate(all="ignore"):
        found = equations_to_numpy(dict(equations), names)(X)
    scale = np.sqrt(np.mean(dX**2, axis=0))
    scale = np.where(scale > 0, scale, 1.0)

    def relative_rms(values):
        return np.sqrt(np.mean(values**2, axis=0)) / scale

    difference = relative_rms(found - network)
    residual = relative_rms(network - dX)
    tolerance = np.maximum(TOLERANCE_FACTOR * residual, ROUNDOFF)
    # A non-finite difference (the equations overflow on the data) fails the comparison.
    faithful = bool(np.all(difference <= tolerance))
    return {
        "field_difference": difference.tolist(), "network_residual": residual.tolist(),
        "equation_residual": relative_rms(found - dX).tolist(), "tolerance": tolerance.tolist(), "faithful": faithful,
    }


def rollout_agreement(
    model: torch.nn.Module,
    equations: Mapping[str, sp.Expr],
    trajectories: Sequence[Trajectory],
    threshold: float = VPT_THRESHOLD,
) -> dict:
    """Roll out the equations and the network from the same observed states; report where they part.

    Up to :data:`N_STARTS` observed states, spread evenly over the samples
    that have a full horizon after them, are rolled out over
    :data:`MAX_CHECK_SAMPLES` median sampling steps (or the longest span the
    data allow): the network in one batch with torchdiffeq, the equations
    with scipy. The agreement time of a start is the valid prediction time of
    the equations against the network (RMS over states of the difference over
    each state's standard deviation, threshold 0.4). On a chaotic system two
    fields that differ by a fraction of a percent part within a few Lyapunov
    times, so a short agreement alone does not show a wrong read-out.

    Returns:
        dict with ``agreement_time`` (median over starts, time units),
        ``agreement_min``, ``horizon`` (time units), ``n_starts`` and ``short``
        (median under :data:`SHORT_AGREEMENT` of the horizon).
    """
    names = trajectories[0].state_names
    rhs = equations_to_numpy(dict(equations), names)
    data = np.concatenate([tr.x for tr in trajectories])
    scale = np.std(data, axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    step = float(np.median(np.concatenate([np.diff(tr.t) for tr in trajectories])))
    longest = max(float(tr.t[-1] - tr.t[0]) for tr in trajectories)
    horizon = min(MAX_CHECK_SAMPLES * step, 0.5 * longest)
    t = np.arange(int(round(horizon / step)) + 1) * step

    candidates = [
        tr.x[k] for tr in trajectories for k in range(tr.n_samples) if tr.t[-1] - tr.t[k] >= horizon
    ]
    picks = np.linspace(0, len(candidates) - 1, min(N_STARTS, len(candidates))).round().astype(int)
    starts = np.stack([candidates[k] for k in picks])
    bound = default_bound(data)
    network, _ = network_rollout(model, starts, t, bound=bound)

    times = []
    for b, x0 in enumerate(starts):
        symbolic = rollout(rhs, x0, t, bound=bound)
        reached = symbolic.x.shape[0]
        agree = valid_prediction_time(t[:reached], network[:reached, b], symbolic.x, scale, threshold)
        if reached < t.shape[0] and agree >= t[reached - 1]:
            agree = float(symbolic.stopped_at)
        times.append(agree)

    median = float(np.median(times))
    return {"agreement_time": median, "agreement_min": float(min(times)), "horizon": float(t[-1]),
            "n_starts": len(times), "short": bool(median < SHORT_AGREEMENT * t[-1])}


def _per_state(names: Sequence[str], values: Sequence[float]) -> str:
    return ", ".join(f"{value:.2g} ({name})" for name, value in zip(names, values))


def short_rollout_error(
    equations: Mapping[str, sp.Expr], trajectories: Sequence[Trajectory], steps: int = 8, n_starts: int = 64
) -> float:
    """Return the RMS error of short rollouts of ``equations`` against the observed samples.

    From up to ``n_starts`` observed samples spread over the data, the
    equations are rolled out over the next ``steps`` samples (fewer where a
    trajectory is short). The error is the RMS, over starts, samples and
    states, of the difference divided by each state's standard deviation. A rollout that
    stops early counts its missing samples at an error of 1 each. This scores
    equations on the data themselves, without derivatives, so it can choose
    between the derivative and the trajectory stage's results.
    """
    names = trajectories[0].state_names
    rhs = equations_to_numpy(dict(equations), names)
    data = np.concatenate([tr.x for tr in trajectories])
    scale = np.std(data, axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    bound = default_bound(data)
    length = max(2, min(steps, min(tr.n_samples for tr in trajectories) - 1))
    starts = [(tr, k) for tr in trajectories for k in range(tr.n_samples - length)]
    picks = np.linspace(0, len(starts) - 1, min(n_starts, len(starts))).round().astype(int)

    squared = []
    for index in picks:
        tr, k = starts[index]
        window = slice(k, k + length + 1)
        result = rollout(rhs, tr.x[k], tr.t[window], bound=bound, max_steps=2000)
        error = np.ones((length + 1, len(names)))
        error[: result.x.shape[0]] = (result.x - tr.x[window][: result.x.shape[0]]) / scale
        squared.append(np.mean(error[1:] ** 2))
    return float(np.sqrt(np.mean(squared)))
