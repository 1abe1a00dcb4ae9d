"""Two-state oscillators: pendulum, van der Pol, Duffing, Hopf, cubic, linear, FitzHugh-Nagumo.

None is chaotic, so extra initial conditions are drawn uniformly from a
box around the default one.
"""

from __future__ import annotations

from sympy import Rational, sin, symbols

from .registry import register
from .system import System


@register("pendulum")
def pendulum(g=9.81, L=1, c=Rational(1, 10)) -> System:
    """Damped nonlinear pendulum: length ``L``, gravity ``g``, damping rate ``c``."""
    theta, omega, g_, l_, c_ = symbols("theta omega g L c")
    return System(
        name="pendulum",
        state_names=("theta", "omega"),
        rhs=(omega, -g_ / l_ * sin(theta) - c_ * omega),
        parameter_values={"g": g, "L": L, "c": c},
        x0=(2.5, 0.0),
        dt=0.01,
        t_end=20.0,
        source="S. H. Strogatz, Nonlinear Dynamics and Chaos, 2nd ed. (2015), section 6.7",
        description="damped pendulum swinging at large amplitude",
        initial_box=((-3.0, 3.0), (-3.0, 3.0)),
    )


@register("van_der_pol")
def van_der_pol(mu=1) -> System:
    x, y, mu_ = symbols("x y mu")
    return System(
        name="van_der_pol",
        state_names=("x", "y"),
        rhs=(y, mu_ * (1 - x**2) * y - x),
        parameter_values={"mu": mu},
        x0=(2.0, 0.0),
        dt=0.01,
        t_end=20.0,
        source="B. van der Pol, On relaxation-oscillations, Phil. Mag. 2, 978 (1926)",
        description="relaxation oscillator with a stable limit cycle",
        initial_box=((-3.0, 3.0), (-3.0, 3.0)),
    )


@register("duffing")
def duffing(delta=Rational(1, 10), alpha=-1, beta=1) -> System:
    """Unforced damped Duffing oscillator. The defaults give a double well."""
    x, v, d_, a_, b_ = symbols("x v delta alpha beta")
    return System(
        name="duffing",
        state_names=("x", "v"),
        rhs=(v, -d_ * v - a_ * x - b_ * x**3),
        parameter_values={"delta": delta, "alpha": alpha, "beta": beta},
        x0=(2.0, 0.0),
        dt=0.01,
        t_end=20.0,
        source="G. Duffing, Erzwungene Schwingungen bei veränderlicher Eigenfrequenz, "
        "Vieweg (1918)",
        description="damped double-well oscillator without forcing",
        initial_box=((-2.0, 2.0), (-2.0, 2.0)),
    )


@register("hopf")
def hopf(mu=1, omega=1) -> System:
    """Normal form of the supercritical Hopf bifurcation; limit cycle of radius sqrt(mu)."""
    x, y, mu_, w_ = symbols("x y mu omega")
    radius2 = x**2 + y**2
    return System(
        name="hopf",
        state_names=("x", "y"),
        rhs=(mu_ * x - w_ * y - x * radius2, w_ * x + mu_ * y - y * radius2),
        parameter_values={"mu": mu, "omega": omega},
        x0=(2.0, 0.0),
        dt=0.01,
        t_end=10.0,
        source="S. H. Strogatz, Nonlinear Dynamics and Chaos, 2nd ed. (2015), section 8.2",
        description="supercritical Hopf normal form",
        initial_box=((-2.0, 2.0), (-2.0, 2.0)),
    )


@register("cubic_oscillator")
def cubic_oscillator(a=Rational(1, 10), b=2) -> System:
    x, y, a_, b_ = symbols("x y a b")
    return System(
        name="cubic_oscillator",
        state_names=("x", "y"),
        rhs=(-a_ * x**3 + b_ * y**3, -b_ * x**3 - a_ * y**3),
        parameter_values={"a": a, "b": b},
        x0=(2.0, 0.0),
        dt=0.01,
        t_end=25.0,
        source="S. L. Brunton, J. L. Proctor, J. N. Kutz, Discovering governing equations "
        "from data by sparse identification of nonlinear dynamical systems, PNAS 113, "
        "3932 (2016)",
        description="damped oscillator with cubic terms only",
        initial_box=((-2.0, 2.0), (-2.0, 2.0)),
    )


@register("linear_oscillator")
def linear_oscillator(a=Rational(1, 10), b=2) -> System:
    x, y, a_, b_ = symbols("x y a b")
    return System(
        name="linear_oscillator",
        state_names=("x", "y"),
        rhs=(-a_ * x + b_ * y, -b_ * x - a_ * y),
        parameter_values={"a": a, "b": b},
        x0=(2.0, 0.0),
        dt=0.01,
        t_end=25.0,
        source="S. L. Brunton, J. L. Proctor, J. N. Kutz, PNAS 113, 3932 (2016), "
        "damped linear oscillator",
        description="damped linear oscillator",
        initial_box=((-2.0, 2.0), (-2.0, 2.0)),
    )


@register("fitzhugh_nagumo")
def fitzhugh_nagumo(a=Rational(7, 10), b=Rational(4, 5), tau=Rational(25, 2), I_ext=Rational(1, 2)) -> System:
    """FitzHugh-Nagumo neuron: membrane potential ``v``, recovery ``w``, input current ``I_ext``."""
    v, w, a_, b_, tau_, i_ = symbols("v w a b tau I_ext")
    return System(
        name="fitzhugh_nagumo",
        state_names=("v", "w"),
        rhs=(v - v**3 / 3 - w + i_, (v + a_ - b_ * w) / tau_),
        parameter_values={"a": a, "b": b, "tau": tau, "I_ext": I_ext},
        x0=(-1.0, 1.0),
        dt=0.1,
        t_end=100.0,
        source="R. FitzHugh, Impulses and physiological states in theoretical models of "
        "nerve membrane, Biophys. J. 1, 445 (1961)",
        description="excitable neuron model with a spiking limit cycle",
        initial_box=((-2.0, 2.0), (-1.0, 2.0)),
    )
