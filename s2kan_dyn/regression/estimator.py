"""``S2KANRegressor``: symbolic regression of tabular data with an S2KAN.

A scikit-learn style estimator (scikit-learn is not needed to use it):
``__init__`` only stores hyperparameters, ``fit`` validates, learns and
returns ``self``, learned state ends in ``_``, and use before ``fit``
raises :class:`NotFittedError`.
"""

from __future__ import annotations

import logging
import math
import numbers
import time
from typing import Sequence

import numpy as np
import sympy as sp

from ..errors import DataError, S2KANDynError
from ..model.primitives import DEFAULT_PRIMITIVES, get_primitive
from .candidate import Candidate, evaluate, finalize, readout

log = logging.getLogger(__name__)

SEARCHES = ("auto", "enumerate", "relax")
# The chosen formula is snapped at the end when it has at most this many
# float constants. A larger one is an approximation, so snapping it would
# cost minutes for no gain in readability.
MAX_FINAL_SNAP = 24


class NotFittedError(S2KANDynError):
    """An estimator used before ``fit``."""


class S2KANRegressor:
    """Find a closed-form ``y = f(x)`` by minimising description length over S2KAN gates.

    Two ways to minimise the MDL objective over the gates (``search``):

    - ``"enumerate"``: one symbolic layer solved in closed form first, by
      least squares over the cost-ordered dictionary, backward elimination,
      then products of pairs. Only if nothing fits to round-off after
      snapping, two layers follow: the layer-2 gate patterns are enumerated
      in MDL order and each is fitted by Levenberg-Marquardt with variable
      projection. The pattern space grows with the number of inputs.
    - ``"relax"``: the hard-concrete relaxation of the gates on an S2KAN
      with one hidden layer (model.train.fit_gated), for inputs too many to
      enumerate.
    - ``"auto"`` (default): enumerate when there are at most
      ``max_enumerate_inputs`` inputs, else relax.

    Every candidate's constants are snapped to simple values (readout.snap)
    and candidates compare by description length, so on noise-free data the
    structure that drops to round-off once snapped wins.

    Args:
        primitives: dictionary of the symbolic layer, names from the
            primitive registry (default: all, cheapest first).
        hidden_primitives: layer-1 terms of the two-layer search
            (default ``("x", "x^2", "x^3", "log")``). ``log|x|`` in layer 1
            lets layer 2 write powers and products as ``exp`` of a sum
            (``x^y = exp(y log|x|)``) and ratios through ``tanh`` of a log.
        spline_grid: intervals of the B-spline fallback of each input
            (default 5); None removes the spline.
        search: ``"auto"``, ``"enumerate"`` or ``"relax"``.
        tolerance: allowed relative RMSE increase of snapping (default 1e-3).
        max_terms: cap on terms chosen by matching pursuit (default 16).
        max_patterns: cap on two-layer patterns tried (default None: all).
        time_limit: CPU seconds of this process after which the enumeration
            stops trying new structures and keeps the best so far (default 55;
            None: no limit). The structure found then depends on the speed
            of the machine.
        max_enumerate_inputs: largest input count for which ``"auto"``
            enumerates (default 4).
        relax_hidden: hidden sum nodes of the relaxed network (default 3).
        lam: weight of the model bits in the relaxation (default 1, plain MDL).
        relax_schedule: ``model.train.GateSchedule`` of the relaxation
            (default None: ``GateSchedule()``).
        random_state: seed of every random start (default 0).
        device: torch device of the relaxed network (default CPU).

    Attributes:
        expr_: the fitted formula (sympy) in symbols ``x0, x1, ...``.
        search_: ``"enumerate"`` or ``"relax"``, the search that ran.
        structure_: ``"one-layer"``, ``"two-layer"`` or ``"relax"``.
        exact_: True when the snapped formula fits the training data to round-off.
        rmse_: training RMSE of the fitted model.
        description_length_: bits of the chosen candidate (NaN for a relaxed
            network with dense edges).
        dense_edges_: names of the sympy functions that stand for open
            splines; empty when the formula is fully symbolic.
        edges_: the network's open edges (:class:`candidate.Edge`).
        n_candidates_: number of structures tried.
        fit_seconds_: wall time of ``fit``.
        fit_cpu_seconds_: CPU time of ``fit`` in this process.
        n_features_in_: number of input columns.

    Example:
        >>> import numpy as np
        >>> X = np.random.default_rng(0).uniform(-1, 1, (200, 2))
        >>> model = S2KANRegressor().fit(X, 2.5 * X[:, 0] ** 2 - X[:, 1])
        >>> model.sympy()
        5*x0**2/2 - x1
    """

    def __init__(
        self,
        primitives: Sequence[str] = DEFAULT_PRIMITIVES,
        hidden_primitives: Sequence[str] = ("x", "x^2", "x^3", "log"),
        spline_grid: int | None = 5,
        search: str = "auto",
        tolerance: float = 1e-3,
        max_terms: int = 16,
        max_patterns: int | None = None,
        time_limit: float | None = 55.0,
        max_enumerate_inputs: int = 4,
        relax_hidden: int = 3,
        lam: float = 1.0,
        relax_schedule=None,
        random_state: int = 0,
        device: str | None = None,
    ):
        self.primitives = primitives
        self.hidden_primitives = hidden_primitives
        self.spline_grid = spline_grid
        self.search = search
        self.tolerance = tolerance
        self.max_terms = max_terms
        self.max_patterns = max_patterns
        self.time_limit = time_limit
        self.max_enumerate_inputs = max_enumerate_inputs
        self.relax_hidden = relax_hidden
        self.lam = lam
        self.relax_schedule = relax_schedule
        self.random_state = random_state
        self.device = device

    # scikit-learn's clone and grid search read the hyperparameters here.
    def get_params(self, deep: bool = True) -> dict:
        """Return the constructor arguments as a dict."""
        names = self.__init__.__code__.co_varnames[1 : self.__init__.__code__.co_argcount]
        return {name: getattr(self, name) for name in names}

    def set_params(self, **params) -> "S2KANRegressor":
        """Set constructor arguments by name; returns ``self``."""
        valid = self.get_params()
        for name, value in params.items():
            if name not in valid:
                raise S2KANDynError(f"S2KANRegressor has no parameter {name!r}; valid ones: {', '.join(valid)}.")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        return f"S2KANRegressor(search={self.search!r}, random_state={self.random_state})"

    def _check_params(self) -> None:
        if self.search not in SEARCHES:
            raise S2KANDynError(f"search={self.search!r} is invalid; use one of {', '.join(SEARCHES)}.")
        for option in ("primitives", "hidden_primitives"):
            names = getattr(self, option)
            if isinstance(names, str) or not names:
                raise S2KANDynError(
                    f"{option}={names!r} is invalid; pass a non-empty sequence of primitive names, e.g. ('x', 'log')."
                )
            for name in names:
                get_primitive(name)
        if self.spline_grid is not None:
            _check_int("spline_grid", self.spline_grid, 1, "or None")
        _check_int("max_terms", self.max_terms, 1)
        if self.max_patterns is not None:
            _check_int("max_patterns", self.max_patterns, 1, "or None")
        _check_int("max_enumerate_inputs", self.max_enumerate_inputs, 0)
        _check_int("relax_hidden", self.relax_hidden, 1)
        _check_int("random_state", self.random_state, 0)
        if not (_is_number(self.tolerance) and self.tolerance >= 0):
            raise S2KANDynError(f"tolerance={self.tolerance!r} is invalid; use a relative RMSE increase >= 0.")
        if self.time_limit is not None and not (_is_number(self.time_limit) and self.time_limit > 0):
            raise S2KANDynError(f"time_limit={self.time_limit!r} is invalid; use seconds > 0 or None.")
        if not (_is_number(self.lam) and 0 <= self.lam < math.inf):
            raise S2KANDynError(f"lam={self.lam!r} is invalid; use a finite weight >= 0 (1 is plain MDL).")

    def fit(self, X, y) -> "S2KANRegressor":
        """Fit the formula to inputs ``X`` ``(n, d)`` and targets ``y`` ``(n,)``; returns ``self``.

        Raises:
            DataError: shapes do not match, values are not finite, or there
                are fewer than ``max(8, d + 2)`` samples.
            S2KANDynError: a hyperparameter is invalid.
        """
        from .one_layer import search_one_layer
        from .two_layer import search_two_layer

        self._check_params()
        X, y = _check_Xy(X, y)
        start = time.monotonic()
        # CPU seconds, so that a machine shared with other jobs does not cut the search short.
        cpu_start = time.process_time()
        deadline = cpu_start + self.time_limit if self.time_limit is not None else math.inf
        symbols = sp.symbols(f"x0:{X.shape[1]}", real=True)
        search = self.search
        if search == "auto":
            search = "enumerate" if X.shape[1] <= self.max_enumerate_inputs else "relax"

        candidates: list[Candidate] = []
        if search == "enumerate":
            candidates += search_one_layer(X, y, symbols, self.primitives, self.spline_grid, self.tolerance, self.max_terms, deadline)
            if not any(c.exact for c in candidates):
                candidates += search_two_layer(
                    X, y, symbols, self.primitives, self.hidden_primitives, self.tolerance,
                    self.random_state, deadline, self.max_patterns,
                )
        else:
            candidates.append(self._relax(X, y, symbols))
        best = _choose(candidates)
        if best.predict_fn is None and best.n_snapped == 0 and 0 < best.n_free <= MAX_FINAL_SNAP:
            finalize(best, symbols, X, y, self.tolerance, snap=True, quick=not best.exact)

        self.search_ = search
        self.structure_ = best.search
        self.candidate_ = best
        self.symbols_ = symbols
        self.expr_ = readout(best)
        self.exact_ = bool(best.exact)
        self.rmse_ = float(best.rmse)
        self.description_length_ = float(best.description_length)
        self.dense_edges_ = sorted(str(f.func) for f in self.expr_.atoms(sp.core.function.AppliedUndef))
        self.edges_ = list(best.edges)
        self.n_candidates_ = len(candidates)
        self.n_features_in_ = X.shape[1]
        self.fit_seconds_ = time.monotonic() - start
        self.fit_cpu_seconds_ = time.process_time() - cpu_start
        log.info(
            "fit %s in %.1f s (%s, %d candidates): %s", "exactly" if self.exact_ else "approximately",
            self.fit_seconds_, self.structure_, self.n_candidates_, self.expr_,
        )
        return self

    def _relax(self, X: np.ndarray, y: np.ndarray, symbols) -> Candidate:
        from ..model.train import GateSchedule
        from .relax import search_relax

        return search_relax(
            X, y, symbols, self.primitives, self.relax_hidden, self.spline_grid, self.lam,
            self.relax_schedule or GateSchedule(), self.tolerance, self.random_state, self.device,
        )

    def _check_fitted(self) -> None:
        if not hasattr(self, "expr_"):
            raise NotFittedError("this S2KANRegressor is not fitted yet; call fit(X, y) first.")

    def predict(self, X) -> np.ndarray:
        """Predict ``y`` ``(n,)`` at inputs ``X`` ``(n, d)``."""
        self._check_fitted()
        X = _check_X(X, self.n_features_in_)
        return evaluate(self.candidate_, self.symbols_, X)

    def score(self, X, y) -> float:
        """Coefficient of determination R^2 of the predictions at ``X`` against ``y``."""
        X, y = _check_Xy(X, y, min_samples=2)
        pred = self.predict(X)
        total = float(np.sum((y - y.mean()) ** 2))
        residual = float(np.sum((y - pred) ** 2))
        if total == 0.0:
            return 1.0 if residual == 0.0 else 0.0
        return 1.0 - residual / total

    def sympy(self, feature_names: Sequence[str] | None = None) -> sp.Expr:
        """Return the formula in ``x0, x1, ...`` or in symbols named by ``feature_names``.

        Open splines appear as undefined functions ``dense_l{layer}_{out}_{in}``.
        """
        self._check_fitted()
        if feature_names is None:
            return self.expr_
        names = list(feature_names)
        if len(names) != self.n_features_in_:
            raise S2KANDynError(f"got {len(names)} feature names for {self.n_features_in_} inputs; pass one name per column of X.")
        return self.expr_.xreplace({s: sp.Symbol(n, real=True) for s, n in zip(self.symbols_, names)})

    def latex(self, feature_names: Sequence[str] | None = None) -> str:
        """Return the formula as LaTeX (see :meth:`sympy`)."""
        return sp.latex(self.sympy(feature_names))

    def save(self, path):
        """Write the fitted regressor to ``path`` as plain data (JSON and safetensors, no pickle); return the path.

        Open splines and relaxed networks are stored as tensors, so a loaded
        regressor predicts exactly as this one.
        """
        from .persist import save_regressor

        return save_regressor(self, path)

    @classmethod
    def load(cls, path) -> "S2KANRegressor":
        """Read a regressor written by :meth:`save`.

        Raises:
            ModelFileError: the file is missing, damaged, tampered with or of another format.
        """
        from .persist import load_regressor

        return load_regressor(path, cls)

    def plot_edges(self, path=None):
        """Draw the network's open edges with their terms; save to ``path`` if given.

        Returns the matplotlib figure.
        """
        from .plot import plot_edges

        self._check_fitted()
        return plot_edges(self.edges_, str(self.sympy()), path)


def _choose(candidates: list[Candidate]) -> Candidate:
    """Exact candidates first, then the shortest description, then the lowest RMSE."""
    if not candidates:
        raise S2KANDynError("no candidate structure was fitted; raise time_limit or check the primitives.")
    priced = [c for c in candidates if not math.isnan(c.description_length)]
    if not priced:
        return min(candidates, key=lambda c: c.rmse)
    return min(priced, key=lambda c: (not c.exact, c.description_length))


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_int(name: str, value, minimum: int, alternative: str = "") -> None:
    """Raise :class:`S2KANDynError` unless ``value`` is an int of at least ``minimum``."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        extra = f" {alternative}" if alternative else ""
        raise S2KANDynError(f"{name}={value!r} is invalid; use an int >= {minimum}{extra}.")


def _check_X(X, n_features: int | None = None) -> np.ndarray:
    try:
        X = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise DataError(f"X could not be read as a float array ({error}); pass a 2-D numeric array.") from None
    if X.ndim == 1 and n_features not in (None, 1):
        raise DataError(
            f"X is 1-D with {X.shape[0]} values but the model takes {n_features} features; "
            "pass a 2-D array (n_samples, n_features), e.g. X.reshape(1, -1) for one sample."
        )
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise DataError(f"X has shape {X.shape}; pass a 2-D array (n_samples, n_features).")
    if X.shape[1] == 0:
        raise DataError("X has no columns; pass at least one input feature.")
    if n_features is not None and X.shape[1] != n_features:
        raise DataError(f"X has {X.shape[1]} columns but the model was fitted on {n_features}; pass the same features.")
    if not np.isfinite(X).all():
        rows = np.flatnonzero(~np.isfinite(X).all(axis=1))
        raise DataError(f"X contains NaN or infinite values in {rows.size} rows (first: row {rows[0]}); remove or impute them.")
    return X


def _check_Xy(X, y, min_samples: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    X = _check_X(X)
    try:
        y = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise DataError(f"y could not be read as a float array ({error}); pass a 1-D numeric array.") from None
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"y has shape {y.shape}; pass one target column (n_samples,).")
    if y.shape[0] != X.shape[0]:
        raise DataError(f"X has {X.shape[0]} rows but y has {y.shape[0]}; pass one target per row.")
    if not np.isfinite(y).all():
        raise DataError(f"y contains {int(np.sum(~np.isfinite(y)))} NaN or infinite values; remove those samples.")
    needed = max(8, X.shape[1] + 2) if min_samples is None else min_samples
    if X.shape[0] < needed:
        raise DataError(f"X has {X.shape[0]} rows; at least {needed} samples are needed for {X.shape[1]} inputs.")
    return X, y
