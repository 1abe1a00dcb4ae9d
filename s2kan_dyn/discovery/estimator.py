"""``SymbolicODE``: find the governing equations of a dynamical system from trajectories.

A scikit-learn style estimator, close enough to pysindy's ``SINDy`` that one
can replace the other: ``fit(x, t)``, ``equations()``, ``print()``,
``predict(x)`` (the derivative), ``simulate(x0, t)`` and ``score(x, t)``.

>>> import systems
>>> from s2kan_dyn.discovery import SymbolicODE
>>> trajs = systems.get("lotka_volterra").simulate()
>>> model = SymbolicODE(progress=False).fit(trajs)
>>> model.print()  # doctest: +SKIP
(x)' = 1.1*x - 0.4*x*y
(y)' = 0.1*x*y - 0.4*y
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Sequence, TextIO

import numpy as np
import sympy as sp
import torch

from ..errors import DataError, FitError, S2KANDynError
from ..readout.terms import TermLibrary, polynomial_terms
from ..rollout import MAX_STEPS, equations_to_numpy, rollout
from ..trajectory import as_trajectories, warn_constant_states
from .derivative_stage import DICTIONARY_LEVELS, DEFAULT_SCHEDULE, fit_derivative_stage
from .derivatives import smoothed_derivative
from .readout import has_dense, least_squares, plain_symbols
from .selfcheck import check_readout, network_rollout, short_rollout_error

log = logging.getLogger(__name__)

STAGES = ("derivative", "trajectory")
# Solver steps allowed per requested output time in simulate (at least MAX_STEPS in all).
STEPS_PER_SAMPLE = 50


class SymbolicODE:
    """Equation discovery with an S2KAN vector field.

    Training runs the stages named in ``stages``:

    - ``"derivative"``: an S2KAN fitted to smoothed finite differences, with
      the dictionary opened in order of cost and gates under the MDL
      penalty. Its read-out (expand, refit arguments, prune, refit, snap) gives
      the first equations. Without this stage, the degree-2 polynomial terms
      fitted by least squares to the derivatives start the trajectory stage.
    - ``"trajectory"``: the read-out terms and their cheap neighbourhood
      refitted through the ODE solver by multiple shooting, with terms
      eliminated by significance (``s2kan_dyn.discovery.shooting``). It skips
      itself on clean, dense data where derivative matching is already final.

    Args:
        stages: stages to run, in order (default both).
        lam: weight of the model bits in the MDL objective (default 1, plain MDL).
        n_products: multiplication nodes in the hidden layer (default: the
            number of states).
        dictionary: hidden-layer primitive sets tried cheapest first (default
            ``DICTIONARY_LEVELS``).
        dense_fallback: when no set fits down to the noise floor, fit once
            more with the last set and the dense spline (default True).
        prune_tolerance: terms contributing less than this fraction of a
            derivative's RMS are dropped by the read-out (default 0.01).
        snap: snap read-out coefficients to simple values when the derivative
            fit holds (default True).
        schedule: ``GateSchedule`` of each S2KAN fit (default 200 warm-up,
            300 ramp, 200 freeze, 200 polish steps).
        time_budget: seconds allowed to the trajectory stage (default no limit).
        self_check: roll out equations and network and report where they part
            (default True).
        device: torch device of the network and the trajectory stage.
        random_state: seed of the network's initial values and gate noise
            (default 0). The global torch and numpy generators are not touched.
        progress: show progress bars when the output is a terminal (default True).

    Attributes:
        state_names_: the ``d`` state names.
        equations_: ``{state name: sympy expression}``.
        network_: the fitted ``S2KAN`` of the chosen dictionary level, or
            ``None`` without the derivative stage.
        report_: stages run and why, timings, figures (JSON-serialisable).
    """

    def __init__(
        self,
        stages: Sequence[str] = STAGES,
        lam: float = 1.0,
        n_products: int | None = None,
        dictionary: Sequence[Sequence[str]] = DICTIONARY_LEVELS,
        dense_fallback: bool = True,
        prune_tolerance: float = 1e-2,
        snap: bool = True,
        schedule=DEFAULT_SCHEDULE,
        time_budget: float | None = None,
        self_check: bool = True,
        device: str | torch.device = "cpu",
        random_state: int = 0,
        progress: bool = True,
    ):
        self.stages = stages
        self.lam = lam
        self.n_products = n_products
        self.dictionary = dictionary
        self.dense_fallback = dense_fallback
        self.prune_tolerance = prune_tolerance
        self.snap = snap
        self.schedule = schedule
        self.time_budget = time_budget
        self.self_check = self_check
        self.device = device
        self.random_state = random_state
        self.progress = progress

    def get_params(self, deep: bool = True) -> dict:
        """Return the constructor arguments, as scikit-learn's ``get_params`` does."""
        names = ("stages", "lam", "n_products", "dictionary", "dense_fallback", "prune_tolerance", "snap", "schedule",
                 "time_budget", "self_check", "device", "random_state", "progress")
        return {name: getattr(self, name) for name in names}

    def set_params(self, **params) -> "SymbolicODE":
        """Set constructor arguments by name; return ``self``."""
        valid = self.get_params()
        for name, value in params.items():
            if name not in valid:
                raise S2KANDynError(f"invalid parameter {name!r} for SymbolicODE; valid ones: {sorted(valid)}.")
            setattr(self, name, value)
        return self

    def _check_settings(self) -> tuple[str, ...]:
        stages = (self.stages,) if isinstance(self.stages, str) else tuple(self.stages)
        unknown = [s for s in stages if s not in STAGES]
        if unknown or not stages:
            raise S2KANDynError(f"stages={list(stages)} is invalid; choose one or both of {list(STAGES)}.")
        if not (self.lam >= 0 and np.isfinite(self.lam)):
            raise S2KANDynError(f"lam={self.lam} is invalid; use a finite value >= 0.")
        if not 0 <= self.prune_tolerance < 1:
            raise S2KANDynError(f"prune_tolerance={self.prune_tolerance} is invalid; use a fraction in [0, 1).")
        return stages

    def fit(self, x, t=None, state_names: Sequence[str] | None = None) -> "SymbolicODE":
        """Fit the vector field to trajectories.

        Args:
            x: states, shape ``(n, d)``; a list of such arrays (several
                trajectories, unequal ``n`` allowed); a ``Trajectory`` or a
                list of them.
            t: times, shape ``(n,)``; a list matching ``x``; or a scalar time
                step. Irregular steps are allowed. ``None`` with trajectories.
            state_names: ``d`` names (default ``x0, x1, ...`` or the
                trajectories' names).

        Returns:
            ``self``.

        Raises:
            DataError: invalid data (NaN, times not increasing, too few samples).
            FitError: a stage could not finish.
        """
        stages = self._check_settings()
        trajectories = as_trajectories(x, t, state_names)
        names = trajectories[0].state_names
        warn_constant_states(trajectories)
        timings: dict[str, float] = {}
        started = time.perf_counter()
        progress = bool(self.progress) and sys.stderr.isatty()

        smoothed = [smoothed_derivative(tr) for tr in trajectories]
        X, dX = _derivative_rows(smoothed)
        noise = np.sqrt(np.mean([s.derivative_noise**2 for s in smoothed], axis=0))
        # Smoothing correlates derivative errors over about a window of samples.
        effective_samples = sum(s.x[s.interior()].shape[0] / s.correlation_length for s in smoothed)
        timings["derivatives"] = time.perf_counter() - started
        report = {
            "states": list(names),
            "n_trajectories": len(trajectories),
            "n_samples": int(X.shape[0]),
            "derivatives": {
                "methods": sorted({s.method for s in smoothed}),
                "noise_estimate": np.sqrt(np.mean([s.noise**2 for s in smoothed], axis=0)).tolist(),
                "derivative_noise_estimate": noise.tolist(),
                "effective_samples": effective_samples,
            },
            "stages": {},
        }

        self.network_ = None
        if "derivative" in stages:
            library, coefficients, active, equations = self._derivative_stage(X, dX, names, noise, progress, report)
            timings["derivative"] = report["stages"]["derivative"]["seconds"]
        else:
            library = TermLibrary(polynomial_terms(names, 2), names)
            active = np.ones((len(library), len(names)), dtype=bool)
            coefficients = least_squares(library, X, dX, active)
            equations = library.to_equations(coefficients, active)
            report["stages"]["derivative"] = {"ran": False, "reason": "not requested; degree-2 polynomial start"}

        if "trajectory" in stages:
            stage_start = time.perf_counter()
            equations = self._trajectory_stage(library, coefficients, active, equations, trajectories, smoothed, progress, report)
            timings["trajectory"] = time.perf_counter() - stage_start
        else:
            report["stages"]["trajectory"] = {"ran": False, "reason": "not requested"}

        self.state_names_ = tuple(names)
        self.equations_ = {name: plain_symbols(equations[name]) for name in names}
        self.dense_terms_ = sorted({str(a) for e in self.equations_.values() for a in e.atoms(sp.Function) if has_dense(a)})
        report["dense_terms"] = self.dense_terms_

        if self.self_check and self.network_ is not None and not self.dense_terms_:
            check_start = time.perf_counter()
            accepted = report["stages"].get("trajectory", {}).get("accepted")
            compared = "trajectory-stage refit" if accepted else "derivative-stage read-out"
            report["self_check"] = check_readout(
                self.network_, self.equations_, trajectories, derivatives=(X, dX), compared=compared
            )
            timings["self_check"] = time.perf_counter() - check_start
        else:
            report["self_check"] = None
        timings["total"] = time.perf_counter() - started
        report["timings"] = timings
        report["equations"] = {name: str(expr) for name, expr in self.equations_.items()}
        self.report_ = report
        log.info("fit done in %.1f s: %s", timings["total"], "; ".join(f"{k}' = {v}" for k, v in report["equations"].items()))
        return self

    def _derivative_stage(self, X, dX, names, noise, progress, report):
        seed = int(self.random_state)
        result = fit_derivative_stage(
            X, dX, names, noise, lam=self.lam, n_products=self.n_products, levels=self.dictionary,
            schedule=self.schedule, prune_tolerance=self.prune_tolerance, device=self.device, seed=seed,
            progress=progress, snap=self.snap, dense_fallback=self.dense_fallback,
            effective_samples=report["derivatives"]["effective_samples"],
        )
        best = result.best
        self.network_ = best.model
        report["stages"]["derivative"] = {
            "ran": True,
            "reason": result.reason,
            "chosen": "+".join(best.primitives) + ("+spline" if best.spline else ""),
            "levels": [
                {
                    "dictionary": "+".join(level.primitives) + ("+spline" if level.spline else ""),
                    "open_gates": level.model.n_open_terms(),
                    "terms": int(level.readout.active.sum()),
                    "relative_rmse": level.relative_rmse.tolist(),
                    "description_bits": level.description_bits,
                    "at_noise_floor": level.at_noise_floor,
                    "seconds": level.seconds,
                    "fit": [
                        {"stage": s.name, "loss": s.loss, "data_bits": s.data_bits, "model_bits": s.model_bits,
                         "open_terms": s.open_terms, "seconds": s.seconds}
                        for s in level.record.stages
                    ],
                }
                for level in result.levels
            ],
            "dense_edges": [list(edge) for edge in best.model.dense_edges()],
            "prune_rounds": best.readout.rounds,
            "seconds": result.seconds,
        }
        readout = best.readout
        return readout.library, readout.coefficients, readout.active, readout.equations

    def _trajectory_stage(self, library, coefficients, active, equations, trajectories, smoothed, progress, report):
        try:
            from .candidates import candidate_library
            from .shooting import fit_trajectory_stage
        except ImportError as exc:
            raise FitError(
                f"the trajectory stage is not available ({exc}); pass stages=('derivative',) to fit without it."
            ) from None
        if any(has_dense(e) for e in equations.values()):
            reason = "the equations contain dense (spline) terms, which the trajectory stage cannot refit"
            report["stages"]["trajectory"] = {"ran": False, "reason": reason}
            log.info("trajectory stage skipped: %s", reason)
            return equations

        X, dX = _derivative_rows(smoothed)
        candidates, mask = candidate_library(library, active)
        start = least_squares(candidates, X, dX, mask)
        try:
            result = fit_trajectory_stage(
                candidates, start, mask, trajectories, smoothed_states=[s.x for s in smoothed],
                device=self.device, progress=progress, time_budget=self.time_budget,
            )
        except (torch.linalg.LinAlgError, FitError) as exc:
            reason = f"the trajectory stage failed ({exc}); the derivative stage's equations are kept"
            log.warning(reason)
            report["stages"]["trajectory"] = {"ran": False, "reason": reason, "candidates": len(candidates)}
            return equations
        entry = {
            "ran": result.skipped_reason is None,
            "reason": result.skipped_reason or "derivative estimates are not exact enough to be final",
            "candidates": len(candidates),
            "terms": int(result.active.sum()),
            "rounds": result.rounds,
            "loss": result.loss,
            "window": result.windows,
            "seconds": result.seconds,
        }
        if result.skipped_reason is not None:
            report["stages"]["trajectory"] = _jsonable(entry)
            return equations

        # The stage must earn its place: its equations replace the derivative
        # stage's only where they follow the data better over short rollouts.
        refitted = candidates.to_equations(result.coefficients, result.active)
        before = short_rollout_error(equations, trajectories)
        after = short_rollout_error(refitted, trajectories) if np.isfinite(result.loss) else np.inf
        entry.update(rollout_error_before=before, rollout_error_after=after, accepted=bool(after <= before))
        report["stages"]["trajectory"] = _jsonable(entry)
        if after <= before:
            log.info("trajectory stage accepted: short-rollout error %.3g -> %.3g", before, after)
            return refitted
        log.warning(
            "trajectory stage rejected: its equations follow the data worse over short rollouts (%.3g against %.3g); "
            "keeping the derivative stage's", after, before,
        )
        return equations

    def _check_fitted(self) -> None:
        if not hasattr(self, "equations_"):
            raise FitError("this SymbolicODE is not fitted yet; call fit(x, t) first.")

    def equations(self) -> dict[str, sp.Expr]:
        """Return ``{state name: sympy right-hand side}`` in symbols named like the states."""
        self._check_fitted()
        return dict(self.equations_)

    def print(self, precision: int = 6, file: TextIO | None = None) -> None:
        """Print one line ``(name)' = expression`` per state, numbers rounded to ``precision`` digits."""
        self._check_fitted()
        stream = sys.stdout if file is None else file
        for name, expr in self.equations_.items():
            rounded = expr.xreplace({f: sp.Float(f, precision) for f in expr.atoms(sp.Float)})
            print(f"({name})' = {rounded}", file=stream)

    def _vector_field(self):
        if self.dense_terms_:
            raise FitError(
                f"the equations contain dense terms {self.dense_terms_}, which have no closed form; "
                "use simulate(..., use_network=True) to roll out the network instead."
            )
        return equations_to_numpy(self.equations_, self.state_names_)

    def predict(self, x) -> np.ndarray:
        """Return the derivative ``f(x)`` of the read-out equations at states ``x`` of shape ``(n, d)``."""
        self._check_fitted()
        x = _states(x, len(self.state_names_))
        return self._vector_field()(x)

    def simulate(self, x0, t, use_network: bool = False) -> np.ndarray:
        """Roll out from ``x0`` (shape ``(d,)``) over times ``t`` (shape ``(n,)``); return ``(n, d)``.

        With ``use_network=False`` the read-out equations are integrated with
        scipy (``s2kan_dyn.rollout``, DOP853, rtol 1e-10). With ``True`` the
        network is integrated with torchdiffeq (rk4 on a refined grid). A
        rollout that diverges or fails is logged, and its rows from then on
        are NaN.
        """
        self._check_fitted()
        d = len(self.state_names_)
        x0 = _states(np.atleast_2d(np.asarray(x0, dtype=float)), d)[0]
        t = np.asarray(t, dtype=float)
        if t.ndim != 1 or t.size < 1 or np.any(np.diff(t) <= 0):
            raise DataError(f"times must be a 1-D strictly increasing array; got shape {t.shape}.")
        out = np.full((t.size, d), np.nan)
        if use_network:
            if self.network_ is None:
                raise FitError("no network was fitted (stages without 'derivative'); use use_network=False.")
            states, diverged_at = network_rollout(self.network_, x0, t)
            out[:] = states
            if diverged_at is not None:
                log.warning("network rollout diverged at t=%g; later rows are NaN", diverged_at)
            return out
        # The step limit guards against stiff fields, so it grows with the
        # requested horizon instead of cutting a long forecast short.
        result = rollout(self._vector_field(), x0, t, max_steps=max(MAX_STEPS, STEPS_PER_SAMPLE * t.size))
        out[: result.x.shape[0]] = result.x
        if not result.ok:
            log.warning("rollout stopped (%s) at t=%g: %s; later rows are NaN", result.status, result.stopped_at, result.message)
        return out

    def score(self, x, t=None) -> float:
        """Return the R^2 of the predicted derivatives against smoothed derivatives of ``x``.

        ``x`` and ``t`` are as in :meth:`fit`; R^2 is averaged uniformly over states.
        """
        self._check_fitted()
        trajectories = as_trajectories(x, t, self.state_names_)
        X, dX = _derivative_rows([smoothed_derivative(tr) for tr in trajectories])
        residual = np.sum((dX - self.predict(X)) ** 2, axis=0)
        total = np.sum((dX - dX.mean(axis=0)) ** 2, axis=0)
        total = np.where(total > 0, total, 1.0)
        return float(np.mean(1.0 - residual / total))

    def save(self, path):
        """Write the fitted model to ``path`` as plain data (JSON and safetensors, no pickle); return the path."""
        from .persist import save_symbolic_ode

        return save_symbolic_ode(self, path)

    @classmethod
    def load(cls, path, device: str | torch.device | None = None) -> "SymbolicODE":
        """Read a model written by :meth:`save`; the network goes to ``device`` (default the CPU).

        Raises:
            ModelFileError: the file is missing, damaged, tampered with or of another format.
        """
        from .persist import load_symbolic_ode

        return load_symbolic_ode(path, cls, device=device)


def _states(x, d: int) -> np.ndarray:
    try:
        x = np.asarray(x, dtype=float)
    except (TypeError, ValueError) as exc:
        raise DataError(f"states are not numeric ({exc}); pass an array of shape (n, {d}).") from None
    if x.ndim == 1 and x.size == d:
        x = x[None]
    if x.ndim != 2 or x.shape[1] != d:
        raise DataError(f"states have shape {x.shape}; expected (n, {d}).")
    if not np.all(np.isfinite(x)):
        raise DataError("states contain NaN or infinite values; remove them first.")
    return x


def _derivative_rows(smoothed) -> tuple[np.ndarray, np.ndarray]:
    """Stack the smoothed states and derivatives of every trajectory, without their one-sided edges."""
    X = np.concatenate([s.x[s.interior()] for s in smoothed])
    dX = np.concatenate([s.dxdt[s.interior()] for s in smoothed])
    return X, dX


def _jsonable(value):
    """Convert numpy scalars and arrays inside dicts and lists to plain Python values."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, sp.Basic):
        return str(value)
    return value
