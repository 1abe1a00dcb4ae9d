"""Population and chemical kinetics: Lotka-Volterra, Rosenzweig-MacArthur, SIR,
Sel'kov glycolysis, Brusselator, Michaelis-Menten.

States are concentrations or population sizes, so the boxes of extra
initial conditions stay positive.
"""

from __future__ import annotations

from sympy import Rational, symbols

from .registry import register
from .system import System


@register("lotka_volterra")
def lotka_volterra(alpha=Rational(11, 10), beta=Rational(2, 5), delta=Rational(1, 10), gamma=Rational(2, 5)) -> System:
    """Predator-prey model: prey ``x`` grows at ``alpha``, predator ``y`` dies at ``gamma``."""
    x, y, a_, b_, d_, g_ = symbols("x y alpha beta delta gamma")
    return System(
        name="lotka_volterra",
        state_names=("x", "y"),
        rhs=(a_ * x - b_ * x * y, d_ * x * y - g_ * y),
        parameter_values={"alpha": alpha, "beta": beta, "delta": delta, "gamma": gamma},
        x0=(10.0, 10.0),
        dt=0.02,
        t_end=30.0,
        source="A. J. Lotka, Elements of Physical Biology (1925); V. Volterra (1926)",
        description="predator-prey cycles around a centre",
        initial_box=((2.0, 12.0), (1.0, 6.0)),
    )


@register("rosenzweig_macarthur")
def rosenzweig_macarthur(r=1, K=10, a=1, h=Rational(1, 2), e=Rational(1, 2), m=Rational(1, 5)) -> System:
    """Predator-prey model with logistic prey and a Holling type II (saturating) response."""
    x, y, r_, k_, a_, h_, e_, m_ = symbols("x y r K a h e m")
    uptake = a_ * x * y / (1 + a_ * h_ * x)
    return System(
        name="rosenzweig_macarthur",
        state_names=("x", "y"),
        rhs=(r_ * x * (1 - x / k_) - uptake, e_ * uptake - m_ * y),
        parameter_values={"r": r, "K": K, "a": a, "h": h, "e": e, "m": m},
        x0=(5.0, 2.0),
        dt=0.05,
        t_end=60.0,
        source="M. L. Rosenzweig and R. H. MacArthur, Graphical representation and stability "
        "conditions of predator-prey interactions, Am. Nat. 97, 209 (1963)",
        description="predator-prey limit cycle with a saturating functional response",
        initial_box=((1.0, 9.0), (0.5, 4.0)),
    )


@register("sir")
def sir(beta=Rational(1, 2), gamma=Rational(1, 10)) -> System:
    """SIR epidemic in population fractions: infection rate ``beta``, recovery rate ``gamma``."""
    s, i, r, b_, g_ = symbols("S I R beta gamma")
    return System(
        name="sir",
        state_names=("S", "I", "R"),
        rhs=(-b_ * s * i, b_ * s * i - g_ * i, g_ * i),
        parameter_values={"beta": beta, "gamma": gamma},
        x0=(0.99, 0.01, 0.0),
        dt=0.1,
        t_end=100.0,
        source="W. O. Kermack and A. G. McKendrick, A contribution to the mathematical theory "
        "of epidemics, Proc. R. Soc. A 115, 700 (1927)",
        description="epidemic outbreak in fractions of a population",
        initial_box=((0.5, 0.99), (0.001, 0.1), (0.0, 0.2)),
    )


@register("selkov")
def selkov(a=Rational(2, 25), b=Rational(3, 5)) -> System:
    """Sel'kov model of glycolysis: ADP ``x`` and F6P ``y`` (dimensionless)."""
    x, y, a_, b_ = symbols("x y a b")
    return System(
        name="selkov",
        state_names=("x", "y"),
        rhs=(-x + a_ * y + x**2 * y, b_ - a_ * y - x**2 * y),
        parameter_values={"a": a, "b": b},
        x0=(0.5, 1.5),
        dt=0.05,
        t_end=50.0,
        source="E. E. Sel'kov, Self-oscillations in glycolysis, Eur. J. Biochem. 4, 79 (1968); "
        "form of S. H. Strogatz, Nonlinear Dynamics and Chaos, example 7.3.2",
        description="glycolytic oscillator with a limit cycle",
        initial_box=((0.1, 2.0), (0.1, 2.0)),
    )


@register("brusselator")
def brusselator(a=1, b=3) -> System:
    x, y, a_, b_ = symbols("x y a b")
    return System(
        name="brusselator",
        state_names=("x", "y"),
        rhs=(a_ - (b_ + 1) * x + x**2 * y, b_ * x - x**2 * y),
        parameter_values={"a": a, "b": b},
        x0=(1.0, 1.0),
        dt=0.05,
        t_end=50.0,
        source="I. Prigogine and R. Lefever, Symmetry breaking instabilities in dissipative "
        "systems II, J. Chem. Phys. 48, 1695 (1968)",
        description="autocatalytic reaction with a limit cycle for b > 1 + a^2",
        initial_box=((0.2, 4.0), (0.2, 4.0)),
    )


@register("michaelis_menten")
def michaelis_menten(v_max=1, K_m=Rational(1, 2)) -> System:
    """Substrate ``s`` consumed at the Michaelis-Menten rate ``v_max s / (K_m + s)``."""
    s, v_, k_ = symbols("s v_max K_m")
    return System(
        name="michaelis_menten",
        state_names=("s",),
        rhs=(-v_ * s / (k_ + s),),
        parameter_values={"v_max": v_max, "K_m": K_m},
        x0=(5.0,),
        dt=0.02,
        t_end=10.0,
        source="L. Michaelis and M. L. Menten, Die Kinetik der Invertinwirkung, "
        "Biochem. Z. 49, 333 (1913)",
        description="enzyme-limited substrate decay",
        initial_box=((1.0, 8.0),),
    )
