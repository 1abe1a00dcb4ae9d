"""Rollouts of the fitted network, and the check that the equations reproduce it.

The read-out prunes, refits and snaps, so its equations are not the network
any more. The self-check rolls out both from the same observed states and
reports how long they agree: the valid prediction time of the equations
against the network (normalised error over the data's standard deviation
under 0.4).
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

log = logging.getLogger(__name__)

# Fixed rk4 sub-steps per output interval of a network rollout: the grid is
# passed to odeint explicitly, because torchdiffeq's ``step_size`` option can
# add a stray short step from rounding.
SUBSTEPS = 2
# The self-check starts from this many observed states, spread evenly over
# the data, and follows each for at most MAX_CHECK_SAMPLES sampling steps.
N_STARTS = 8
MAX_CHECK_SAMPLES = 500
# A median agreement under this fraction of the checked horizon is warned about.
SHORT_AGREEMENT = 0.25


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


def agreement_time(
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
    each state's standard deviation, threshold 0.4).

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
    short = median < SHORT_AGREEMENT * t[-1]
    if short:
        log.warning(
            "self-check: the read-out equations and the network agree for only %.3g of %.3g time units "
            "(median over %d starts); the equations are not a faithful read-out of the network",
            median, t[-1], len(times),
        )
    else:
        log.info("self-check: equations and network agree for %.3g of %.3g time units (median over %d starts)",
                 median, t[-1], len(times))
    return {"agreement_time": median, "agreement_min": float(min(times)), "horizon": float(t[-1]),
            "n_starts": len(times), "short": bool(short)}


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
