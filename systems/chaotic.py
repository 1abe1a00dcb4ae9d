"""Chaotic flows: Lorenz, Rössler, Chen, Halvorsen, Thomas, Lorenz-96, double pendulum.

Extra initial conditions of these systems are drawn from the attractor
(``initial_box=None``). Lyapunov exponents are base e, in inverse time units.
"""

from __future__ import annotations

import math

import sympy
from sympy import Rational, cos, sin, symbols

from s2kan_dyn.errors import S2KANDynError

from .registry import register
from .system import System


@register("lorenz")
def lorenz(sigma=10, rho=28, beta=Rational(8, 3)) -> System:
    x, y, z, s, r, b = symbols("x y z sigma rho beta")
    return System(
        name="lorenz",
        state_names=("x", "y", "z"),
        rhs=(s * (y - x), x * (r - z) - y, x * y - b * z),
        parameter_values={"sigma": sigma, "rho": rho, "beta": beta},
        x0=(-8.0, 7.0, 27.0),
        dt=0.01,
        t_end=20.0,
        transient=5.0,
        source="E. N. Lorenz, Deterministic nonperiodic flow, J. Atmos. Sci. 20, 130 (1963)",
        description="convection rolls with the butterfly attractor",
        lyapunov_exponent=0.906,
        lyapunov_source="J. C. Sprott, Lyapunov exponent of the Lorenz attractor, "
        "sprott.physics.wisc.edu/chaos/lorenzle.htm: (0.906, 0, -14.572)",
    )


@register("rossler")
def rossler(a=Rational(1, 5), b=Rational(1, 5), c=Rational(57, 10)) -> System:
    x, y, z, a_, b_, c_ = symbols("x y z a b c")
    return System(
        name="rossler",
        state_names=("x", "y", "z"),
        rhs=(-y - z, x + a_ * y, b_ + z * (x - c_)),
        parameter_values={"a": a, "b": b, "c": c},
        x0=(1.0, 1.0, 0.0),
        dt=0.05,
        t_end=100.0,
        transient=50.0,
        source="O. E. Rössler, An equation for continuous chaos, Phys. Lett. A 57, 397 (1976)",
        description="spiral chaos with one quadratic term",
        lyapunov_exponent=0.0714,
        lyapunov_source="J. C. Sprott, Chaos and Time-Series Analysis (2003), "
        "exponents (0.0714, 0, -5.3943)",
    )


@register("chen")
def chen(a=35, b=3, c=28) -> System:
    x, y, z, a_, b_, c_ = symbols("x y z a b c")
    return System(
        name="chen",
        state_names=("x", "y", "z"),
        rhs=(a_ * (y - x), (c_ - a_) * x - x * z + c_ * y, x * y - b_ * z),
        parameter_values={"a": a, "b": b, "c": c},
        x0=(-10.0, 0.0, 37.0),
        dt=0.005,
        t_end=10.0,
        transient=5.0,
        source="G. Chen and T. Ueta, Yet another chaotic attractor, "
        "Int. J. Bifurcation Chaos 9, 1465 (1999)",
        description="double scroll related to, but not equivalent to, Lorenz",
        lyapunov_exponent=2.0232,
        lyapunov_source="sites.google.com/view/lyapunov-spectrum (Chen equations, RK4 with "
        "step 0.001): (2.0232, -0.0005, -12.0227)",
    )


@register("halvorsen")
def halvorsen(a=Rational(7, 5)) -> System:
    x, y, z, a_ = symbols("x y z a")
    return System(
        name="halvorsen",
        state_names=("x", "y", "z"),
        rhs=(
            -a_ * x - 4 * y - 4 * z - y**2,
            -a_ * y - 4 * z - 4 * x - z**2,
            -a_ * z - 4 * x - 4 * y - x**2,
        ),
        parameter_values={"a": a},
        x0=(-5.0, 0.0, 0.0),
        dt=0.01,
        t_end=20.0,
        transient=10.0,
        source="J. C. Sprott, Elegant Chaos: Algebraically Simple Chaotic Flows, "
        "World Scientific (2010), after A. D. Halvorsen",
        description="cyclically symmetric quadratic flow",
        lyapunov_exponent=0.696,
        lyapunov_source="dysts (W. Gilpin, 2021), chaotic_attractors.json, Halvorsen at a = 1.4: "
        "maximum_lyapunov_estimated 0.696",
    )


@register("thomas")
def thomas(b=0.208186) -> System:
    x, y, z, b_ = symbols("x y z b")
    return System(
        name="thomas",
        state_names=("x", "y", "z"),
        rhs=(sin(y) - b_ * x, sin(z) - b_ * y, sin(x) - b_ * z),
        parameter_values={"b": b},
        x0=(0.1, 0.0, 0.0),
        dt=0.1,
        t_end=200.0,
        transient=100.0,
        source="R. Thomas, Deterministic chaos seen in terms of feedback circuits, "
        "Int. J. Bifurcation Chaos 9, 1889 (1999)",
        description="cyclically symmetric flow with sine coupling",
        # NOTE: no published largest Lyapunov exponent at b = 0.208186 was found,
        # so lyapunov_time is None and horizons are reported in time units.
    )


@register("lorenz96")
def lorenz96(n=5, F=8) -> System:
    """Lorenz-96 with ``n`` sites (an integer >= 4, default 5) and forcing ``F``."""
    if isinstance(n, bool) or not float(n).is_integer() or n < 4:
        raise S2KANDynError(f"lorenz96: parameter n={n!r} is invalid; give an integer >= 4.")
    n = int(n)
    states = symbols(f"x1:{n + 1}")
    forcing = sympy.Symbol("F")
    rhs = tuple(
        (states[(i + 1) % n] - states[i - 2]) * states[i - 1] - states[i] + forcing
        for i in range(n)
    )
    # Start off the unstable equilibrium x_i = F with an uneven pattern.
    x0 = tuple(float(F) * (1.0 + 0.5 * math.sin(2.0 * math.pi * i / n + 1.0)) for i in range(n))
    return System(
        name="lorenz96",
        state_names=tuple(str(s) for s in states),
        rhs=rhs,
        parameter_values={"n": n, "F": F},
        x0=x0,
        dt=0.01,
        t_end=10.0,
        transient=10.0,
        source="E. N. Lorenz, Predictability: a problem partly solved, "
        "ECMWF Seminar on Predictability (1996)",
        description="ring of n sites with advection, damping and forcing",
        # NOTE: the largest Lyapunov exponent depends on n and no published value
        # for the default n = 5, F = 8 was found, so lyapunov_time is None.
    )


@register("double_pendulum")
def double_pendulum(m1=1, m2=1, L1=1, L2=1, g=9.81) -> System:
    """Planar double pendulum of point masses on massless rods (angles from the vertical)."""
    th1, th2, w1, w2 = symbols("theta1 theta2 omega1 omega2")
    m1_, m2_, l1, l2, g_ = symbols("m1 m2 L1 L2 g")
    delta = th1 - th2
    denominator = 2 * m1_ + m2_ - m2_ * cos(2 * delta)
    alpha1 = (
        -g_ * (2 * m1_ + m2_) * sin(th1)
        - m2_ * g_ * sin(th1 - 2 * th2)
        - 2 * sin(delta) * m2_ * (w2**2 * l2 + w1**2 * l1 * cos(delta))
    ) / (l1 * denominator)
    alpha2 = (
        2 * sin(delta)
        * (w1**2 * l1 * (m1_ + m2_) + g_ * (m1_ + m2_) * cos(th1) + w2**2 * l2 * m2_ * cos(delta))
    ) / (l2 * denominator)
    return System(
        name="double_pendulum",
        state_names=("theta1", "theta2", "omega1", "omega2"),
        rhs=(w1, w2, alpha1, alpha2),
        parameter_values={"m1": m1, "m2": m2, "L1": L1, "L2": L2, "g": g},
        x0=(math.pi / 2, math.pi / 2, 0.0, 0.0),
        dt=0.01,
        t_end=10.0,
        source="Euler-Lagrange equations of two point masses on massless rods "
        "(textbook mechanics)",
        description="two point masses on rigid rods, conservative",
        # Without damping the energy is conserved, so the attractor sample is
        # the energy surface of x0; a box gives a wider spread of energies.
        initial_box=((-2.0, 2.0), (-2.0, 2.0), (-1.0, 1.0), (-1.0, 1.0)),
        # NOTE: chaos here depends on the energy of each start, so no single
        # Lyapunov exponent applies and lyapunov_time is None.
    )
