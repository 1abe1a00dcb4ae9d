"""Forecast skill of a rollout against a held-out trajectory.

All functions take ``pred`` and ``true`` of shape ``(n, d)`` sampled at the
same times ``t`` of shape ``(n,)``. A rollout that stopped early (diverged
or hit its step limit) gives a shorter ``pred`` of ``m < n`` rows, which
:func:`forecast_metrics` scores as described there.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import DataError

# Default threshold on the normalised error that ends the valid prediction time.
VPT_THRESHOLD = 0.4

# sMAPE of a point the forecast never reached: the metric's maximum, in percent.
SMAPE_MAX = 200.0


def _as_2d(values, name: str) -> np.ndarray:
    a = np.asarray(values, dtype=float)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise DataError(f"{name} must have shape (n, d), got {a.shape}.")
    return a


def _check_pair(pred, true) -> tuple[np.ndarray, np.ndarray]:
    pred, true = _as_2d(pred, "pred"), _as_2d(true, "true")
    if pred.shape != true.shape:
        raise DataError(f"pred has shape {pred.shape} but true has {true.shape}; sample both at the same times.")
    return pred, true


def rmse(pred, true) -> float:
    """Root mean squared error over all samples and states, in the states' units."""
    pred, true = _check_pair(pred, true)
    return float(np.sqrt(np.mean((pred - true) ** 2)))


def smape(pred, true) -> float:
    """Symmetric mean absolute percentage error, in percent (0 to 200).

    ``mean(2 |pred - true| / (|pred| + |true|)) * 100`` over all samples and
    states; a point where both are 0 counts as 0 error.
    """
    pred, true = _check_pair(pred, true)
    num = 2.0 * np.abs(pred - true)
    den = np.abs(pred) + np.abs(true)
    ratio = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    return float(100.0 * np.mean(ratio))


def normalised_error(pred, true, scale) -> np.ndarray:
    """Return ``e_k = sqrt(mean_i ((pred_ki - true_ki) / scale_i)^2)``, shape ``(n,)``.

    ``scale`` is a positive scalar or one value per state, usually the
    standard deviation of each state over the true trajectory or the data.
    """
    pred, true = _check_pair(pred, true)
    scale = np.broadcast_to(np.asarray(scale, dtype=float), (true.shape[1],))
    if np.any(~np.isfinite(scale)) or np.any(scale <= 0):
        raise DataError(
            f"scale {scale.tolist()} must be positive and finite for every state; "
            "a constant state has standard deviation 0, so pass a floor such as 1e-12 for it."
        )
    return np.sqrt(np.mean(((pred - true) / scale) ** 2, axis=1))


def valid_prediction_time(t, pred, true, scale, threshold: float = VPT_THRESHOLD) -> float:
    """Return the time from ``t[0]`` until the normalised error first exceeds ``threshold``.

    The error at sample ``k`` is :func:`normalised_error`: the RMS over states
    of ``(pred - true) / scale``. The valid prediction time is ``t[k] - t[0]``
    for the first ``k`` with ``e_k > threshold``, or the whole horizon
    ``t[-1] - t[0]`` when the error never exceeds it. A non-finite error
    counts as exceeding.

    Args:
        t: times, shape ``(n,)``.
        pred, true: forecast and truth, shape ``(n, d)``.
        scale: per-state standard deviation, scalar or shape ``(d,)``.
        threshold: default 0.4.
    """
    t = np.asarray(t, dtype=float)
    error = normalised_error(pred, true, scale)
    if t.shape != error.shape:
        raise DataError(f"{t.shape[0]} times but {error.shape[0]} samples; give one time per row.")
    return _time_to_threshold(t, error, threshold, float(t[-1]))


def _time_to_threshold(t: np.ndarray, error: np.ndarray, threshold: float, end: float) -> float:
    """Return ``t[k] - t[0]`` for the first ``e_k`` above ``threshold`` (NaN counts), else ``end - t[0]``."""
    beyond = ~(error <= threshold)
    if not beyond.any():
        return end - float(t[0])
    return float(t[int(np.argmax(beyond))] - t[0])


def forecast_metrics(
    t,
    pred,
    true,
    scale,
    lyapunov_time: float | None = None,
    diverged_at: float | None = None,
    threshold: float = VPT_THRESHOLD,
) -> dict:
    """Score a forecast: RMSE, sMAPE and valid prediction time.

    Args:
        t: times of the held-out trajectory, shape ``(n,)``.
        pred: the rollout, shape ``(m, d)`` with ``m <= n``; ``m < n`` when it
            stopped early, and then it covers ``t[:m]``.
        true: the held-out trajectory, shape ``(n, d)``.
        scale: per-state standard deviation for the normalised error.
        lyapunov_time: ``1 / lambda_max`` of a chaotic system, or ``None``.
        diverged_at: time at which the rollout diverged, or ``None``.

    Returns:
        dict with

        - ``rmse``, ``smape``: over the whole horizon. When the rollout stopped
          early, ``rmse`` is ``inf`` and the missing points count as the
          maximum sMAPE (200 %), so a short forecast never scores better than
          a complete one.
        - ``vpt``: :func:`valid_prediction_time` over the part reached, where
          a forecast that stays within the threshold until it stops is valid
          until the first sample it did not reach; then capped at
          ``diverged_at - t[0]``.
        - ``vpt_lyapunov``: ``vpt / lyapunov_time``, or ``None`` when the
          Lyapunov time is not given.
        - ``covered``: fraction of the horizon's samples the rollout reached.
    """
    t = np.asarray(t, dtype=float)
    true = _as_2d(true, "true")
    pred = _as_2d(pred, "pred") if np.size(pred) else np.empty((0, true.shape[1]))
    n, m = true.shape[0], pred.shape[0]
    if t.shape != (n,):
        raise DataError(f"{t.shape} times for {n} true samples; give one time per row.")
    if m > n or pred.shape[1] != true.shape[1]:
        raise DataError(f"pred has shape {pred.shape}, larger than or unlike true {true.shape}.")

    if m == n:
        out_rmse = rmse(pred, true)
        out_smape = smape(pred, true)
    else:
        out_rmse = math.inf
        reached = smape(pred, true[:m]) * m if m else 0.0
        out_smape = (reached + SMAPE_MAX * (n - m)) / n

    horizon = float(t[-1] - t[0])
    if m == 0:
        vpt = 0.0
    else:
        # A forecast within the threshold on all of t[:m] is valid until the
        # first sample it did not reach, t[m].
        end = float(t[m]) if m < n else float(t[-1])
        vpt = _time_to_threshold(t[:m], normalised_error(pred, true[:m], scale), threshold, end)
    if diverged_at is not None:
        vpt = min(vpt, max(0.0, float(diverged_at) - float(t[0])))

    return {
        "rmse": out_rmse,
        "smape": out_smape,
        "vpt": vpt,
        "vpt_lyapunov": vpt / lyapunov_time if lyapunov_time else None,
        "horizon": horizon,
        "covered": m / n,
    }

