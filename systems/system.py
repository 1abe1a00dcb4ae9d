"""One dynamical system, defined symbolically, and everything derived from it.

A :class:`System` stores the sympy right-hand side in symbols named like its
states and parameters, plus sampling defaults. From that one definition come
the numpy vector field (``rhs_numpy``), its Jacobian, the simulator
(``simulate``, scipy ``solve_ivp``), the ground-truth equations used for
scoring (``equations``) and the row of the catalog table (``table_row``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Mapping, Sequence

import numpy as np
import sympy
from scipy.integrate import solve_ivp

from s2kan_dyn.errors import DataError, S2KANDynError, UnknownNameError
from s2kan_dyn.trajectory import MIN_SAMPLES, Trajectory

log = logging.getLogger(__name__)

# Most samples one simulated trajectory may have: 10 million rows of a few
# float64 states are a few hundred MB, past which a typo in dt is likelier.
MAX_SAMPLES = 10_000_000
KINDS = ("polynomial", "trigonometric", "rational")
# scipy.integrate.solve_ivp methods; the implicit ones receive the exact Jacobian.
METHODS = ("DOP853", "RK45", "RK23", "LSODA", "Radau", "BDF")
IMPLICIT_METHODS = ("LSODA", "Radau", "BDF")
# A solution whose largest |state| passes this multiple of the largest |initial
# state| (at least 1) is treated as diverging, so a blow-up stops in bounded time.
DIVERGENCE_FACTOR = 1e6


class SimulationError(S2KANDynError):
    """A simulation that diverged or that the ODE solver could not finish."""


@dataclass(frozen=True, eq=False)
class System:
    """A dynamical system ``dx/dt = f(x)`` with its sampling defaults.

    Attributes:
        name: catalog name, also the ``source`` of simulated trajectories.
        state_names: ``d`` state names; the sympy symbols of ``rhs`` carry them.
        rhs: ``d`` sympy expressions in the state symbols and parameter symbols.
        parameter_values: parameter name to its value in use (sympy numbers,
            so that 8/3 stays exact in :meth:`equations`).
        x0: default initial state, length ``d``.
        dt: default sampling step.
        t_end: default duration; samples are at ``0, dt, ..., <= t_end``.
        source: literature reference of the equations and defaults.
        description: one line for the catalog table.
        initial_box: ``d`` pairs ``(low, high)``; extra initial conditions are
            drawn uniformly from this box. ``None`` draws them from the attractor.
        transient: time dropped from the start before drawing attractor points.
        lyapunov_exponent: largest Lyapunov exponent at these parameters, or
            ``None`` where the system is not chaotic or no value is known.
        lyapunov_source: where ``lyapunov_exponent`` comes from.
    """

    name: str
    state_names: tuple[str, ...]
    rhs: tuple[sympy.Expr, ...]
    parameter_values: Mapping[str, sympy.Number]
    x0: tuple[float, ...]
    dt: float
    t_end: float
    source: str
    description: str = ""
    initial_box: tuple[tuple[float, float], ...] | None = None
    transient: float = 0.0
    lyapunov_exponent: float | None = None
    lyapunov_source: str | None = field(default=None)

    def __post_init__(self):
        object.__setattr__(self, "state_names", tuple(self.state_names))
        object.__setattr__(self, "rhs", tuple(sympy.sympify(e) for e in self.rhs))
        object.__setattr__(self, "x0", tuple(float(v) for v in self.x0))
        values = {k: sympy.sympify(v) for k, v in self.parameter_values.items()}
        object.__setattr__(self, "parameter_values", values)

        d = len(self.state_names)
        if len(self.rhs) != d or len(self.x0) != d:
            raise ValueError(
                f"system {self.name!r}: {d} states, {len(self.rhs)} right-hand sides and "
                f"{len(self.x0)} initial values; give one of each per state."
            )
        if self.initial_box is not None and len(self.initial_box) != d:
            raise ValueError(f"system {self.name!r}: initial_box needs {d} (low, high) pairs.")
        allowed = set(self.state_names) | set(values)
        stray = {str(s) for e in self.rhs for s in e.free_symbols} - allowed
        if stray:
            raise ValueError(
                f"system {self.name!r}: symbols {sorted(stray)} are neither states nor parameters."
            )

    # --- derived from the definition -----------------------------------------

    @property
    def dimension(self) -> int:
        return len(self.state_names)

    @property
    def parameters(self) -> dict[str, float]:
        """Parameter values in use, as Python numbers (int where integral)."""
        return {k: int(v) if v.is_Integer else float(v) for k, v in self.parameter_values.items()}

    @property
    def state_symbols(self) -> tuple[sympy.Symbol, ...]:
        return tuple(sympy.Symbol(n) for n in self.state_names)

    @property
    def lyapunov_time(self) -> float | None:
        """``1 / lyapunov_exponent``, or ``None`` where no positive exponent is known."""
        if self.lyapunov_exponent is None or self.lyapunov_exponent <= 0:
            return None
        return 1.0 / self.lyapunov_exponent

    @cached_property
    def term_classes(self) -> frozenset[str]:
        """Classes of terms in the right-hand side, a subset of :data:`KINDS`."""
        states = set(self.state_symbols)
        classes = {"polynomial"}
        for expr in self.equations().values():
            for trig in expr.atoms(sympy.sin, sympy.cos, sympy.tan):
                if trig.free_symbols & states:
                    classes.add("trigonometric")
            _, denominator = sympy.fraction(sympy.together(expr))
            if denominator.free_symbols & states:
                classes.add("rational")
        return frozenset(classes)

    @property
    def kind(self) -> str:
        """``"rational"`` if any denominator has a state, else ``"trigonometric"`` if any
        trigonometric function of a state appears, else ``"polynomial"``."""
        for kind in ("rational", "trigonometric"):
            if kind in self.term_classes:
                return kind
        return "polynomial"

    def equations(self) -> dict[str, sympy.Expr]:
        """Return state name -> right-hand side with the parameter values substituted."""
        values = {sympy.Symbol(k): v for k, v in self.parameter_values.items()}
        return {n: e.xreplace(values) for n, e in zip(self.state_names, self.rhs)}

    @cached_property
    def _rhs_function(self):
        exprs = list(self.equations().values())
        return sympy.lambdify(self.state_symbols, exprs, modules="numpy", cse=True)

    @cached_property
    def _jacobian_function(self):
        matrix = sympy.Matrix(list(self.equations().values())).jacobian(self.state_symbols)
        return sympy.lambdify(self.state_symbols, matrix.tolist(), modules="numpy", cse=True)

    def rhs_numpy(self, x: np.ndarray) -> np.ndarray:
        """Evaluate the vector field ``f(x)``.

        Args:
            x: states, shape ``(n, d)`` or ``(d,)``.

        Returns:
            Derivatives of the same shape, float64.
        """
        x = self._check_states(x)
        columns = self._rhs_function(*np.moveaxis(x, -1, 0))
        # Constant right-hand sides come back as scalars, so broadcast them to the batch shape.
        return np.stack([np.broadcast_to(np.asarray(c, float), x.shape[:-1]) for c in columns], -1)

    def jacobian_numpy(self, x: np.ndarray) -> np.ndarray:
        """Evaluate ``df/dx``: shape ``(d, d)`` for ``x`` of shape ``(d,)``, ``(n, d, d)`` for ``(n, d)``."""
        x = self._check_states(x)
        rows = self._jacobian_function(*np.moveaxis(x, -1, 0))
        batch = x.shape[:-1]
        matrix = np.array(
            [[np.broadcast_to(np.asarray(v, float), batch) for v in row] for row in rows]
        )
        return np.moveaxis(matrix, (0, 1), (-2, -1))

    def _check_states(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        if x.ndim not in (1, 2) or x.shape[-1] != self.dimension:
            raise DataError(
                f"{self.name}: states of shape {x.shape} do not match the {self.dimension} states "
                f"{list(self.state_names)}; pass shape ({self.dimension},) or (n, {self.dimension})."
            )
        return x

    # --- initial conditions ---------------------------------------------------

    def sample_initial_conditions(self, n: int, seed: int = 0) -> np.ndarray:
        """Draw ``n`` initial states, shape ``(n, d)``, with ``numpy.random.default_rng(seed)``.

        Systems with an ``initial_box`` draw uniformly from it. The others draw
        points of the attractor: the default trajectory is integrated from
        ``x0`` over ``transient + t_end`` and sampled at uniform random times
        after the transient.
        """
        n = _check_count(n, "n", minimum=0)
        rng = np.random.default_rng(_check_count(seed, "seed", minimum=0))
        if n == 0:
            return np.empty((0, self.dimension))
        if self.initial_box is not None:
            low, high = np.array(self.initial_box, dtype=float).T
            return rng.uniform(low, high, size=(n, self.dimension))
        times = rng.uniform(self.transient, self.transient + self.t_end, size=n)
        return self._attractor_solution.sol(times).T

    @cached_property
    def _attractor_solution(self):
        span = (0.0, self.transient + self.t_end)
        solution = self._solve(np.array(self.x0), span, None, "DOP853", 1e-10, 1e-12, dense=True)
        return solution

    # --- simulation -----------------------------------------------------------

    def simulate(
        self,
        t_end: float | None = None,
        dt: float | None = None,
        x0: Sequence[float] | None = None,
        n_trajectories: int = 1,
        noise: float = 0.0,
        seed: int = 0,
        method: str = "DOP853",
        rtol: float = 1e-10,
        atol: float = 1e-12,
    ) -> list[Trajectory]:
        """Integrate the system and sample it on a uniform time grid.

        Args:
            t_end: duration; default ``self.t_end``. Samples are at ``k * dt <= t_end``.
            dt: sampling step; default ``self.dt``.
            x0: initial state of trajectory 0, length ``d``; default ``self.x0``.
            n_trajectories: number of trajectories; trajectories 1.. start from
                ``sample_initial_conditions(n_trajectories - 1, seed)``.
            noise: Gaussian noise level, default 0. Each state gets noise of
                standard deviation ``noise * std``. Here ``std`` is that state's
                standard deviation over the clean samples of all returned
                trajectories. The noise is drawn with ``numpy.random.default_rng(seed)``.
            seed: seed of the initial conditions and the noise.
            method: ``scipy.integrate.solve_ivp`` method, one of :data:`METHODS`.
            rtol, atol: solver tolerances (defaults 1e-10, 1e-12).

        Returns:
            ``n_trajectories`` trajectories with ``t`` of shape ``(n,)``, ``x`` of
            shape ``(n, d)`` and ``source`` equal to the system name.

        Raises:
            DataError: invalid argument (the message names it).
            UnknownNameError: unknown ``method``.
            SimulationError: the solution diverged or the solver failed.
        """
        t_end = self.t_end if t_end is None else _check_positive(t_end, "t_end")
        dt = self.dt if dt is None else _check_positive(dt, "dt")
        noise = _check_positive(noise, "noise", allow_zero=True)
        n_trajectories = _check_count(n_trajectories, "n_trajectories", minimum=1)
        seed = _check_count(seed, "seed", minimum=0)
        _check_positive(rtol, "rtol")
        _check_positive(atol, "atol")
        if method not in METHODS:
            raise UnknownNameError("method", str(method), list(METHODS))
        times = self.time_grid(t_end, dt)
        start = self._check_x0(x0)

        starts = np.vstack([start, self.sample_initial_conditions(n_trajectories - 1, seed)])
        clean = []
        for i, y0 in enumerate(starts):
            solution = self._solve(y0, (0.0, times[-1]), times, method, rtol, atol)
            log.debug("%s: trajectory %d solved with %d right-hand side calls", self.name, i, solution.nfev)
            clean.append(solution.y.T)

        noisy = self._add_noise(clean, noise, seed)
        return [Trajectory(times.copy(), x, self.state_names, self.name) for x in noisy]

    def time_grid(self, t_end: float, dt: float) -> np.ndarray:
        """Return the sample times ``k * dt`` for ``k * dt <= t_end``, shape ``(n,)``."""
        if t_end < dt:
            raise DataError(f"t_end={t_end:g} is shorter than dt={dt:g}; give t_end >= dt.")
        # The relative slack keeps t_end itself when t_end / dt is an integer up to rounding.
        n = int(math.floor(t_end / dt * (1 + 1e-12))) + 1
        if n < MIN_SAMPLES:
            raise DataError(
                f"t_end={t_end:g} with dt={dt:g} gives {n} samples, fewer than the minimum of "
                f"{MIN_SAMPLES}; increase t_end or decrease dt."
            )
        if n > MAX_SAMPLES:
            raise DataError(
                f"t_end={t_end:g} with dt={dt:g} gives {n} samples, more than the maximum of "
                f"{MAX_SAMPLES}; increase dt or decrease t_end."
            )
        return dt * np.arange(n)

    def _check_x0(self, x0) -> np.ndarray:
        if x0 is None:
            return np.array(self.x0)
        try:
            start = np.asarray(x0, dtype=float).reshape(-1)
        except (TypeError, ValueError):
            raise DataError(f"x0={x0!r} is not numeric; give {self.dimension} numbers.") from None
        if start.shape[0] != self.dimension:
            raise DataError(
                f"x0 has {start.shape[0]} values but {self.name} has {self.dimension} states "
                f"{list(self.state_names)}; give one value per state."
            )
        if not np.all(np.isfinite(start)):
            raise DataError(f"x0={start.tolist()} contains NaN or inf; give finite values.")
        return start

    def _solve(self, y0, span, times, method, rtol, atol, dense=False):
        bound = DIVERGENCE_FACTOR * max(1.0, float(np.max(np.abs(y0))))

        def escaped(t, y):
            return bound - np.max(np.abs(y))

        escaped.terminal = True
        options = {}
        if method in IMPLICIT_METHODS:
            options["jac"] = lambda t, y: self.jacobian_numpy(y)

        def vector_field(t, y):
            # One state of shape (d,): every lambdified entry is a scalar.
            return np.array(self._rhs_function(*y), dtype=float)

        # Overflow on the way to a failure is reported below, not as numpy warnings.
        with np.errstate(over="ignore", invalid="ignore"):
            solution = solve_ivp(
                vector_field, span, y0, method=method, t_eval=times, dense_output=dense,
                events=escaped, rtol=rtol, atol=atol, **options,
            )
        if solution.status == 1:
            t_stop = float(solution.t_events[0][0])
            raise SimulationError(
                f"{self.name}: the solution from x0={np.asarray(y0).tolist()} diverged "
                f"(|state| > {bound:.3g}) at t={t_stop:.6g}; use a smaller t_end, another x0 "
                "or other parameters."
            )
        if solution.status != 0:
            raise SimulationError(
                f"{self.name}: solver {method} failed from x0={np.asarray(y0).tolist()}: "
                f"{solution.message.rstrip('.')}; try method='LSODA' or looser rtol/atol."
            )
        if not np.all(np.isfinite(solution.y)):
            raise SimulationError(
                f"{self.name}: the solution from x0={np.asarray(y0).tolist()} has NaN or inf; "
                "use another x0 or other parameters."
            )
        return solution

    def _add_noise(self, clean: list[np.ndarray], noise: float, seed: int) -> list[np.ndarray]:
        if noise == 0:
            return clean
        scale = noise * np.concatenate(clean).std(axis=0)
        rng = np.random.default_rng(seed)
        return [x + rng.normal(size=x.shape) * scale for x in clean]

    # --- presentation ---------------------------------------------------------

    def table_row(self) -> dict[str, str]:
        """Return the catalog row: name, dimension, kind, parameters, equations,
        Lyapunov time and source, all as strings."""
        equations = "; ".join(f"{n}' = {sympy.sstr(e)}" for n, e in self.equations().items())
        parameters = ", ".join(f"{k}={sympy.sstr(v)}" for k, v in self.parameter_values.items())
        lyapunov = "" if self.lyapunov_time is None else f"{self.lyapunov_time:#.3g}"
        return {
            "name": self.name,
            "dimension": str(self.dimension),
            "kind": self.kind,
            "parameters": parameters,
            "equations": equations,
            "lyapunov_time": lyapunov,
            "source": self.source,
        }

    def __repr__(self) -> str:
        return f"System({self.name!r}, states={list(self.state_names)}, parameters={self.parameters})"


def _check_positive(value, name: str, allow_zero: bool = False) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{name}={value!r} is not a number.") from None
    valid = number >= 0 if allow_zero else number > 0
    if not (math.isfinite(number) and valid):
        bound = "non-negative" if allow_zero else "positive"
        raise DataError(f"{name}={value!r} is invalid; give a finite {bound} number.")
    return number


def _check_count(value, name: str, minimum: int) -> int:
    try:
        integral = not isinstance(value, bool) and float(value).is_integer()
    except (TypeError, ValueError):
        integral = False
    if not integral or value < minimum:
        raise DataError(f"{name}={value!r} is invalid; give an integer >= {minimum}.")
    return int(value)
