"""SINDy baseline: pysindy 2.x with one fixed rule for the library and the threshold.

The estimator wraps ``pysindy.SINDy`` (sparse identification of nonlinear
dynamics: sequentially thresholded least squares, STLSQ, over a library of
candidate terms) and offers the methods of
:class:`s2kan_dyn.discovery.SymbolicODE`: ``fit``, ``equations``, ``print``,
``predict``, ``simulate``, ``score``.

Rule used for every system, fixed in code:

- Library: polynomials up to ``degree`` (3), plus sin and cos of each state
  (``n_frequencies`` multiples) when ``fourier=True``.
- Derivatives: fourth-order finite differences, or Savitzky-Golay smoothed
  finite differences (pysindy ``SmoothedFiniteDifference``, window 11,
  order 3) when ``smooth=True``. They are computed once on each whole
  trajectory, before the split.
- Threshold: every trajectory is cut into contiguous blocks of about
  :data:`VALIDATION_BLOCK` samples (at least 5 blocks), and every fifth
  block (``validation_fraction`` = 20 %) is held out. Blocks spread the
  held-out samples over the whole trajectory, so that a transient followed
  by a long rest is represented in both parts, and keep them apart from
  the training samples by more than the smoothing window. STLSQ is fitted
  on the rest for each
  threshold of :data:`THRESHOLDS`, and each fit is scored on the held-out
  rows by the normalised derivative error ``mean_i MSE_i / var_i`` (the
  mean over states of 1 - R^2). The chosen threshold is the largest one
  whose error is at most ``(1 + VALIDATION_TOLERANCE)`` times the lowest
  error plus ``VALIDATION_FLOOR``: the sparsest model that is about as good
  as the best. The model is then refitted on all samples at that threshold.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from typing import Sequence

import numpy as np
import sympy

from ..errors import DataError, FitError
from ..rollout import Rollout, equations_to_numpy, rollout
from ..trajectory import Trajectory, as_trajectories

log = logging.getLogger(__name__)

# STLSQ thresholds tried, in the units of the coefficients: 1e-3 to 10.
THRESHOLDS = tuple(float(v) for v in np.logspace(-3, 1, 13))
VALIDATION_FRACTION = 0.2
VALIDATION_BLOCK = 20
VALIDATION_TOLERANCE = 0.1
VALIDATION_FLOOR = 1e-6
SMOOTHER_WINDOW = 11
FD_ORDER = 4


def _pysindy():
    try:
        import pysindy
    except ImportError:
        raise FitError(
            "the SINDy baseline needs pysindy; install it with pip install 's2kan-dyn[sindy]'."
        ) from None
    return pysindy


@contextlib.contextmanager
def single_blas_thread():
    """Limit BLAS to one thread inside the block when threadpoolctl is installed.

    Small least-squares fits run far slower with two BLAS threads on a
    2-core machine that is shared with other processes.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        # NOTE: without threadpoolctl the BLAS thread count is inherited (set OMP_NUM_THREADS=1).
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


class SINDyBaseline:
    """SINDy with a fixed library and a threshold chosen by validation.

    Args:
        degree: maximum polynomial degree, default 3.
        fourier: add ``sin`` and ``cos`` of each state, default False.
        n_frequencies: frequencies of the Fourier terms, default 1.
        smooth: smoothed finite differences (use for noisy data), default False.
        thresholds: STLSQ thresholds to choose from, default :data:`THRESHOLDS`.
        validation_fraction: held-out share of each trajectory's samples, default 0.2
            (every ``round(1 / validation_fraction)``-th block).
        alpha: STLSQ ridge weight, default 0.05 (pysindy's). STLSQ refits the
            kept terms without it (``unbias=True``).

    Attributes (after ``fit``):
        state_names_: the ``d`` state names.
        threshold_: the chosen threshold.
        validation_errors_: threshold -> normalised validation error.
        model_: the fitted ``pysindy.SINDy``.
        coefficients_: shape ``(d, n_features)``.
        feature_names_: the ``n_features`` library terms, as pysindy writes them.
        report_: the rule, the chosen threshold and the fit time in seconds.

    Example:
        >>> import systems
        >>> data = systems.get("lorenz").simulate(t_end=10)
        >>> equations = SINDyBaseline().fit(data).equations()
        >>> sorted(str(s) for s in equations["x"].free_symbols)
        ['x', 'y']
    """

    def __init__(
        self,
        degree: int = 3,
        fourier: bool = False,
        n_frequencies: int = 1,
        smooth: bool = False,
        thresholds: Sequence[float] = THRESHOLDS,
        validation_fraction: float = VALIDATION_FRACTION,
        alpha: float = 0.05,
    ):
        self.degree = degree
        self.fourier = fourier
        self.n_frequencies = n_frequencies
        self.smooth = smooth
        self.thresholds = thresholds
        self.validation_fraction = validation_fraction
        self.alpha = alpha

    # --- fitting --------------------------------------------------------------

    def fit(self, x, t=None, state_names: Sequence[str] | None = None) -> "SINDyBaseline":
        """Fit on trajectories: ``x`` as in :func:`s2kan_dyn.trajectory.as_trajectories`.

        ``x`` is ``(n, d)``, a list of such arrays (unequal ``n`` allowed), a
        :class:`Trajectory` or a list of them; ``t`` is ``(n,)``, a list or a
        scalar time step. Returns ``self``.
        """
        start = time.perf_counter()
        trajs = as_trajectories(x, t, state_names)
        self._check_params()
        self.state_names_ = trajs[0].state_names
        ps = _pysindy()

        # pysindy and scikit-learn warn on every thresholded fit that keeps no
        # term or is ill-conditioned; those are counted and logged once below.
        with single_blas_thread(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            derivatives = [self._differentiation(ps)(tr.x, tr.t) for tr in trajs]
            train, valid = self._split(trajs, derivatives)
            self.validation_errors_ = {
                th: self._validation_error(ps, th, train, valid) for th in self.thresholds
            }
            self.threshold_ = self._choose_threshold(self.validation_errors_)
            self.model_ = self._fit_once(
                ps, self.threshold_, [tr.x for tr in trajs], [tr.t for tr in trajs], derivatives
            )

        if caught:
            kinds = sorted({f"{w.category.__name__}: {str(w.message)[:80]}" for w in caught})
            log.debug("SINDy fits raised %d warning(s): %s", len(caught), "; ".join(kinds[:3]))

        self.coefficients_ = np.asarray(self.model_.coefficients(), dtype=float)
        self.feature_names_ = list(self.model_.get_feature_names())
        self._equations = self._to_sympy()
        self._vector_field = equations_to_numpy(self._equations, self.state_names_)
        seconds = time.perf_counter() - start
        self.report_ = {
            "method": "sindy",
            "library": self._library_name(),
            "differentiation": "smoothed finite differences" if self.smooth else "finite differences",
            "threshold": self.threshold_,
            "rule": (
                f"largest threshold with validation error <= (1 + {VALIDATION_TOLERANCE}) * lowest "
                f"+ {VALIDATION_FLOOR}, on every {self._period()}th block of about {VALIDATION_BLOCK} samples"
            ),
            "validation_errors": {f"{k:.4g}": v for k, v in self.validation_errors_.items()},
            "fit_seconds": seconds,
        }
        log.info(
            "SINDy: %s library, threshold %.4g chosen, %d terms, %.2f s",
            self._library_name(), self.threshold_, int(np.count_nonzero(self.coefficients_)), seconds,
        )
        return self

    def _check_params(self) -> None:
        if not (isinstance(self.degree, int) and self.degree >= 1):
            raise DataError(f"degree={self.degree!r} is invalid; give an integer >= 1.")
        if not 0 < self.validation_fraction < 1:
            raise DataError(
                f"validation_fraction={self.validation_fraction!r} is invalid; give a number in (0, 1)."
            )
        if len(self.thresholds) == 0 or min(self.thresholds) < 0:
            raise DataError(f"thresholds={self.thresholds!r} is invalid; give non-negative numbers.")

    def _library_name(self) -> str:
        name = f"polynomial degree {self.degree}"
        return name + f" + Fourier ({self.n_frequencies} frequencies)" if self.fourier else name

    def _library(self, ps):
        library = ps.PolynomialLibrary(degree=self.degree)
        if self.fourier:
            library = library + ps.FourierLibrary(n_frequencies=self.n_frequencies)
        return library

    def _differentiation(self, ps):
        if self.smooth:
            return ps.SmoothedFiniteDifference(
                smoother_kws={"window_length": SMOOTHER_WINDOW, "polyorder": 3}
            )
        return ps.FiniteDifference(order=FD_ORDER)

    def _period(self) -> int:
        return max(2, int(round(1 / self.validation_fraction)))

    def _split(self, trajs: list[Trajectory], derivatives: list[np.ndarray]):
        period = self._period()
        train = ([], [], [])
        valid = ([], [])
        for tr, dx in zip(trajs, derivatives):
            n = tr.n_samples
            n_blocks = max(period, n // VALIDATION_BLOCK)
            held = (np.arange(n) * n_blocks // n) % period == period - 1
            if np.count_nonzero(~held) < 5:
                raise DataError(
                    f"{tr.source}: {n} samples leave {np.count_nonzero(~held)} for training after holding "
                    f"out {self.validation_fraction:g} for validation; give a longer series."
                )
            train[0].append(tr.x[~held])
            train[1].append(tr.t[~held])
            train[2].append(dx[~held])
            valid[0].append(tr.x[held])
            valid[1].append(dx[held])
        return train, (np.concatenate(valid[0]), np.concatenate(valid[1]))

    def _fit_once(self, ps, threshold: float, xs, ts, derivatives):
        model = ps.SINDy(
            optimizer=ps.STLSQ(threshold=threshold, alpha=self.alpha),
            feature_library=self._library(ps),
        )
        try:
            model.fit(xs, t=ts, x_dot=derivatives)
        except (ValueError, np.linalg.LinAlgError) as exc:
            raise FitError(f"pysindy failed at threshold {threshold:g}: {exc}") from None
        return model

    def _validation_error(self, ps, threshold: float, train, valid) -> float:
        model = self._fit_once(ps, threshold, *train)
        x_valid, dx_valid = valid
        with np.errstate(all="ignore"):
            predicted = np.asarray(model.predict(x_valid), dtype=float)
        variance = np.var(dx_valid, axis=0)
        variance = np.where(variance > 0, variance, 1.0)
        error = float(np.mean(np.mean((predicted - dx_valid) ** 2, axis=0) / variance))
        log.debug("SINDy threshold %.4g: validation error %.3g", threshold, error)
        return error if np.isfinite(error) else np.inf

    @staticmethod
    def _choose_threshold(errors: dict[float, float]) -> float:
        lowest = min(errors.values())
        if not np.isfinite(lowest):
            raise FitError("SINDy gave a non-finite validation error at every threshold; check the data.")
        limit = (1 + VALIDATION_TOLERANCE) * lowest + VALIDATION_FLOOR
        return max(th for th, err in errors.items() if err <= limit)

    def _to_sympy(self) -> dict[str, sympy.Expr]:
        symbols = {f"x{i}": sympy.Symbol(n) for i, n in enumerate(self.state_names_)}
        features = [_feature_to_sympy(name, symbols) for name in self.feature_names_]
        equations = {}
        for name, row in zip(self.state_names_, self.coefficients_):
            terms = [sympy.Float(c) * f for c, f in zip(row, features) if c != 0.0]
            equations[name] = sympy.Add(*terms)
        return equations

    # --- the estimator interface ----------------------------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise FitError("this SINDyBaseline is not fitted yet; call fit(x, t) first.")

    def equations(self) -> dict[str, sympy.Expr]:
        """Return state name -> right-hand side, sympy in symbols named like the states."""
        self._check_fitted()
        return dict(self._equations)

    def print(self, precision: int = 4) -> None:
        """Print the equations, one line per state."""
        for name, expr in self.equations().items():
            print(f"{name}' = {sympy.sstr(expr.evalf(precision))}")

    def predict(self, x) -> np.ndarray:
        """Return the derivative at states ``x`` of shape ``(n, d)``, same shape."""
        self._check_fitted()
        return self._vector_field(x)

    def rollout(self, x0, t, **options) -> Rollout:
        """Roll out the equations from ``x0`` at times ``t`` with :func:`s2kan_dyn.rollout.rollout`."""
        return rollout(self.predict, x0, t, **options)

    def simulate(self, x0, t) -> np.ndarray:
        """Roll out the equations and return shape ``(n, d)``, NaN after a divergence or solver stop."""
        out = self.rollout(x0, t)
        states = np.full((len(t), len(self.state_names_)), np.nan)
        states[: out.x.shape[0]] = out.x
        if not out.ok:
            log.warning("SINDy rollout stopped early (%s): %s", out.status, out.message)
        return states

    def score(self, x, t) -> float:
        """Return R^2 of the predicted derivatives against finite differences of ``x``."""
        self._check_fitted()
        trajs = as_trajectories(x, t, self.state_names_)
        ps = _pysindy()
        true = np.concatenate([self._differentiation(ps)(tr.x, tr.t) for tr in trajs])
        pred = np.concatenate([self.predict(tr.x) for tr in trajs])
        ss_res = np.sum((true - pred) ** 2, axis=0)
        ss_tot = np.sum((true - true.mean(axis=0)) ** 2, axis=0)
        ratio = np.divide(ss_res, ss_tot, out=np.zeros_like(ss_res), where=ss_tot > 0)
        return float(np.mean(1.0 - ratio))


def _feature_to_sympy(name: str, symbols: dict[str, sympy.Symbol]) -> sympy.Expr:
    """Parse a pysindy feature name such as ``'x0 x1^2'`` or ``'sin(1 x0)'``."""
    text = name.replace("^", "**").replace(" ", "*")
    try:
        return sympy.sympify(text, locals=dict(symbols))
    except (sympy.SympifyError, SyntaxError, TypeError) as exc:
        raise FitError(f"cannot read pysindy feature {name!r} as a formula: {exc}") from None
