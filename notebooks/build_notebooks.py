"""Write the example notebooks of this folder, without outputs.

Run from anywhere with ``python notebooks/build_notebooks.py``: it rewrites
every ``*.ipynb`` listed in ``NOTEBOOKS`` beside this script. The notebooks
are the files users open; this script is their source, so edit it and
rebuild instead of editing the ``.ipynb`` files by hand.

Each notebook fixes its seeds, writes no file, and keeps its budgets small
enough to run top to bottom on a 2-core laptop CPU in about a minute.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

FOLDER = Path(__file__).resolve().parent

# First code cell of every notebook. One torch thread is fastest for these
# small models, and OMP_NUM_THREADS must be set before torch is imported.
SETUP = """\
import os
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")
# Progress bars are off in these notebooks; without ipywidgets, tqdm warns on import anyway.
warnings.filterwarnings("ignore", message="IProgress not found")

import matplotlib.pyplot as plt
import numpy as np
import sympy as sp
import torch

torch.set_num_threads(1)
np.set_printoptions(precision=4, suppress=True)"""

# Helper shared by the notebooks that forecast: rollouts return NaN rows
# after they stop, and the forecast metrics take the rows before them.
LEADING_FINITE = """\
def leading_finite(x):
    \"\"\"Return the rows of x before its first non-finite row (a rollout that stopped early).\"\"\"
    finite = np.all(np.isfinite(x), axis=1)
    return x if finite.all() else x[: int(np.argmin(finite))]"""


def quickstart_lorenz() -> list:
    return [
        new_markdown_cell("""\
# Quick start: the Lorenz system

This notebook simulates the Lorenz system, lets `SymbolicODE` find its
equations from one trajectory, prints them beside the true ones, and
forecasts a trajectory that the fit never saw. It takes well under a minute
on a laptop CPU."""),
        new_code_cell(SETUP),
        new_markdown_cell("""\
## Simulate

The `systems` catalog defines each system once, in sympy; the simulator and
the true equations both come from that definition. We take one training
trajectory of 10 time units sampled every 0.01, and a test trajectory of 25
time units that starts from another point of the attractor."""),
        new_code_cell("""\
import systems

lorenz = systems.get("lorenz")
train = lorenz.simulate(t_end=10.0, seed=0)
test_start = lorenz.sample_initial_conditions(1, seed=1)[0]
[test] = lorenz.simulate(t_end=25.0, x0=test_start)

print(f"training samples: {train[0].x.shape}, test samples: {test.x.shape}")
print(f"Lyapunov time: {lorenz.lyapunov_time:.3g} time units")"""),
        new_markdown_cell("""\
## Discover

`SymbolicODE` fits an S2KAN vector field to smoothed derivatives of the
data. Every edge of the network is a gated sum of symbolic primitives; the
dictionary opens cheapest first, and the gates close under a
minimum-description-length penalty. The surviving terms are read out as
sympy equations. `random_state` fixes the seed."""),
        new_code_cell("""\
from s2kan_dyn.discovery import SymbolicODE

model = SymbolicODE(progress=False, random_state=0).fit(train)
model.print(precision=5)"""),
        new_markdown_cell("""\
The found equations beside the true ones. The metrics expand both into sums
of terms and match the terms: an F1 of 1 means the same terms, and the
coefficient error is the distance between the coefficient vectors relative
to the size of the true ones."""),
        new_code_cell("""\
from s2kan_dyn.metrics import equation_metrics

truth = lorenz.equations()
found = model.equations()
for name in lorenz.state_names:
    print(f"{name}'  found: {sp.N(found[name], 5)}")
    print(f"{name}'  true:  {sp.expand(truth[name])}")

scores = equation_metrics(found, truth, lorenz.state_names, x_test=test.x)
print()
print(f"term F1 {scores['f1']:.2f}, coefficient error {scores['coef_error']:.1e}, derivative R^2 {scores['r2']:.6f}")"""),
        new_markdown_cell("""\
The fit also records which training stages ran and why. On clean, densely
sampled data the trajectory stage (fitting through the ODE solver) usually
skips itself, because derivative matching is already exact."""),
        new_code_cell("""\
for stage, entry in model.report_["stages"].items():
    print(f"{stage} stage: {entry['reason']}")"""),
        new_markdown_cell("""\
## Forecast

We integrate the found equations from the first test state and compare them
with the true test trajectory. The normalised error divides the error of
each state by that state's standard deviation; the valid prediction time is
the time until it first passes 0.4. Lorenz is chaotic, so every forecast
parts from the truth at some point. What matters is how many Lyapunov times
it stays close."""),
        new_code_cell(LEADING_FINITE + """


from s2kan_dyn.metrics import forecast_metrics, normalised_error

forecast = leading_finite(model.simulate(test.x[0], test.t))
scale = train[0].x.std(axis=0)
skill = forecast_metrics(test.t, forecast, test.x, scale, lyapunov_time=lorenz.lyapunov_time)
print(f"valid prediction time: {skill['vpt']:.2f} time units, {skill['vpt_lyapunov']:.1f} Lyapunov times")"""),
        new_code_cell("""\
in_lyapunov_times = test.t / lorenz.lyapunov_time
m = len(forecast)
error = normalised_error(forecast, test.x[:m], scale)

fig, axes = plt.subplots(4, 1, figsize=(8, 7), sharex=True)
for j, name in enumerate(lorenz.state_names):
    axes[j].plot(in_lyapunov_times, test.x[:, j], "k", lw=1, label="true")
    axes[j].plot(in_lyapunov_times[:m], forecast[:, j], "r--", lw=1, label="forecast")
    axes[j].set_ylabel(name)
axes[3].semilogy(in_lyapunov_times[1:m], error[1:], "b", lw=1)
axes[3].axhline(0.4, color="0.5", ls=":")
axes[3].set_ylabel("normalised error")
axes[3].set_xlabel("time in Lyapunov times")
for ax in axes:
    ax.axvline(skill["vpt_lyapunov"], color="0.5", ls="--", lw=0.8)
axes[0].legend(loc="upper right")
plt.show()"""),
        new_markdown_cell("""\
What to look at: the red dashed forecast lies on the black truth for several
Lyapunov times (the grey dashed line marks the valid prediction time). The
bottom panel shows why it then fails: the error grows roughly exponentially
from the tiny coefficient error, at the rate set by the largest Lyapunov
exponent."""),
    ]


def symbolic_or_dense() -> list:
    return [
        new_markdown_cell("""\
# Symbolic where it suffices, dense where it does not

Every edge of an S2KAN is a gated sum of symbolic primitives (x, x^2, x^3,
sin, tanh, ...) and one B-spline. Hard-concrete (L0) gates decide which
terms stay, and the minimum-description-length (MDL) objective prices each
term in bits: a primitive costs a few bits, a spline many more, because it
has many parameters. So an edge keeps its spline only where no primitive
fits.

This notebook shows both cases:

1. the damped pendulum, whose `sin` is in the dictionary;
2. a soft spring whose restoring force `-3 x / (1 + x^2)` is not, so one
   edge has to fall back to a spline;
3. the accuracy-parsimony trade-off as the MDL weight `lambda` varies.

It runs in about a minute on a laptop CPU."""),
        new_code_cell(SETUP),
        new_markdown_cell("""\
## 1. The pendulum: sin is in the dictionary

`SymbolicODE` opens the dictionary cheapest first: first only `x` (with
multiplication nodes, so products are reachable), then powers, then each
costlier primitive. It stops at the first level whose equations fit the
derivatives down to the noise floor."""),
        new_code_cell("""\
import systems
from s2kan_dyn.discovery import SymbolicODE

pendulum = systems.get("pendulum")
pendulum_data = pendulum.simulate(t_end=10.0, seed=0)
pendulum_model = SymbolicODE(progress=False, random_state=0).fit(pendulum_data)
pendulum_model.print(precision=5)
print("true:")
for name, rhs in pendulum.equations().items():
    print(f"({name})' = {sp.N(rhs, 5)}")"""),
        new_markdown_cell("""\
Each dictionary level that was tried, with its open gates, the number of
terms read out, the derivative error of each state relative to its RMS, and
whether it reached the noise floor. The polynomial levels approximate
`sin(theta)` only roughly; the level with `sin` fits to round-off."""),
        new_code_cell("""\
stage = pendulum_model.report_["stages"]["derivative"]
print(f"{'dictionary':28s} {'open gates':>10s} {'terms':>6s}   relative RMSE per state   at floor")
for level in stage["levels"]:
    errors = "  ".join(f"{e:.1e}" for e in level["relative_rmse"])
    print(f"{level['dictionary']:28s} {level['open_gates']:10d} {level['terms']:6d}   {errors:24s}  {level['at_noise_floor']}")
print(f"chosen: {stage['chosen']}; edges with an open spline: {stage['dense_edges']}")"""),
        new_markdown_cell("""\
## 2. A term outside the dictionary

The soft spring `x' = y`, `y' = -3 x / (1 + x^2) - y / 5` has a restoring
force that no primitive of the dictionary expresses. We build the system
from its sympy definition, simulate three trajectories with 1 % noise, and
estimate derivatives the way `SymbolicODE` does.

To see the gates of every edge, we fit the S2KAN network directly with
`fit_gated`, the gated MDL fit that `SymbolicODE` runs inside. One layer
maps the two states to the two derivatives, so there are four edges
`derivative <- state`. As `SymbolicODE` does, we start from the cheapest
dictionary: each edge is `c * x + spline(x)`, each term under its own gate,
and the spline costs many more bits than `x`."""),
        new_code_cell("""\
from s2kan_dyn.discovery.derivatives import smoothed_derivative
from systems import System

x, y, c = sp.symbols("x y c")
soft_spring = System(
    name="soft_spring",
    state_names=("x", "y"),
    rhs=(y, -3 * x / (1 + x**2) - c * y),
    parameter_values={"c": sp.Rational(1, 5)},
    x0=(2.0, 0.0),
    dt=0.02,
    t_end=10.0,
    source="a toy example for this notebook",
    initial_box=((-2.0, 2.0), (-1.0, 1.0)),
)
spring_data = soft_spring.simulate(n_trajectories=3, noise=0.01, seed=0)
smoothed = [smoothed_derivative(trajectory) for trajectory in spring_data]
X = torch.tensor(np.concatenate([s.x for s in smoothed]))
dX = torch.tensor(np.concatenate([s.dxdt for s in smoothed]))
print(f"{X.shape[0]} samples; x from {X[:, 0].min():.2f} to {X[:, 0].max():.2f}")"""),
        new_code_cell("""\
from s2kan_dyn.model import S2KAN, fit_gated

DICTIONARY = ("x",)
STATES = ("x", "y")


def fit_spring(lam):
    \"\"\"Fit a one-layer S2KAN (2 states -> 2 derivatives) with MDL weight lam; its gates end frozen.\"\"\"
    network = S2KAN([2, 2], output_primitives=DICTIONARY, output_spline=True, seed=0)
    fit_gated(network, X, dX, lam=lam, seed=0)
    return network


def edge_name(o, i):
    return f"{STATES[o]}' <- {STATES[i]}"


def open_terms_by_edge(network):
    \"\"\"Return {edge name: [names of its open terms]} of a one-layer network.\"\"\"
    layer = network.layers[0]
    names = list(layer.primitive_names) + ["spline"]
    is_open = layer.open_terms().cpu().numpy()
    return {
        edge_name(o, i): [n for n, keep in zip(names, is_open[o, i]) if keep]
        for o in range(len(STATES))
        for i in range(len(STATES))
    }


def edge_contributions(network):
    \"\"\"Return {edge name: RMS of phi(x_i) - phi(0) over the data, over the RMS of its derivative}.\"\"\"
    result = {}
    with torch.no_grad():
        at_zero = network(torch.zeros(1, len(STATES), dtype=X.dtype))[0]
        derivative_rms = dX.pow(2).mean(dim=0).sqrt()
        for i in range(len(STATES)):
            only_i = torch.zeros_like(X)
            only_i[:, i] = X[:, i]
            # In a one-layer network, output o of this input is the bias plus edge (o, i) alone.
            edge_values = network(only_i) - at_zero
            for o in range(len(STATES)):
                rms = edge_values[:, o].pow(2).mean().sqrt() / derivative_rms[o]
                result[edge_name(o, i)] = float(rms)
    return result


def print_edges(network):
    contributions = edge_contributions(network)
    for edge, terms in open_terms_by_edge(network).items():
        if not terms:
            kind = "closed"
        elif contributions[edge] < 0.01:
            kind = "negligible: its open terms cancel"
        elif "spline" in terms:
            kind = "dense (spline open)"
        else:
            kind = "symbolic"
        print(f"{edge}:  open {', '.join(terms) or 'nothing':12s} contributes {contributions[edge]:7.1%}  -> {kind}")


spring_network = fit_spring(lam=1.0)
print_edges(spring_network)"""),
        new_markdown_cell("""\
The gate map: rows are edges, columns the dictionary and the spline; a dark
cell is an open term. Only the force edge `y' <- x` needs its spline: the
edges `x' <- y` and `y' <- y` are linear, so `x` would suffice there. At
plain MDL (`lambda = 1`) and with about 1500 samples, a spline costs fewer
bits than the noise it fits away, so splines can stay open on linear edges
too; section 3 raises `lambda`. Gates price the terms of an edge, not their
sum. A pair of terms that cancel each other (an edge that contributes next
to nothing) can therefore stay open. The read-out of `SymbolicODE` removes
such terms by their contribution, which is why the table reports it."""),
        new_code_cell("""\
def plot_gates(network, ax, title):
    layer = network.layers[0]
    is_open = layer.open_terms().cpu().numpy().astype(float)
    edges = list(open_terms_by_edge(network))
    ax.imshow(is_open.reshape(len(edges), -1), cmap="Greys", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(is_open.shape[-1]))
    ax.set_xticklabels(list(layer.primitive_names) + ["spline"])
    ax.set_yticks(range(len(edges)))
    ax.set_yticklabels(edges)
    ax.set_title(title)


fig, ax = plt.subplots(figsize=(4, 3))
plot_gates(spring_network, ax, "open terms at lambda = 1")
plt.show()"""),
        new_markdown_cell("""\
The network's formula names an open spline as an undefined function such as
`dense_l0_1_0` (layer 0, output 1, input 0), so a dense edge is never
hidden. Plotting the whole edge `y' <- x` (its `x` term and its spline)
against the true force shows what the dense edge learned."""),
        new_code_cell("""\
print(f"y' = {spring_network.to_sympy(list(STATES))[1]}")

grid = torch.linspace(float(X[:, 0].min()), float(X[:, 0].max()), 200, dtype=torch.float64)
with torch.no_grad():
    on_x_axis = torch.stack([grid, torch.zeros_like(grid)], dim=1)
    at_zero = spring_network(torch.zeros(1, 2, dtype=torch.float64))[0, 1]
    learned = spring_network(on_x_axis)[:, 1] - at_zero
true_force = -3 * grid / (1 + grid**2)

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(grid, true_force, "k", label="true force -3x/(1+x^2)")
ax.plot(grid, learned, "r--", label="edge y' <- x, learned")
ax.set_xlabel("x")
ax.legend()
plt.show()"""),
        new_markdown_cell("""\
## 3. Accuracy against parsimony

`lambda` weighs the model's description length against the fit:
`loss = data bits + lambda * model bits`, and `lambda = 1` is plain MDL. We
refit with several values and plot the model's description length (bits of
the open terms) against the relative error of `y'`. The row at
`lambda = 0` shows how many gates close with no penalty at all."""),
        new_code_cell("""\
lambdas = [0.0, 1.0, 10.0, 100.0, 1000.0]
pareto = []
networks = {}
for lam in lambdas:
    network = fit_spring(lam)
    networks[lam] = network
    with torch.no_grad():
        prediction = network(X)
        bits = float(network.model_bits(X.shape[0]))
    error = (prediction[:, 1] - dX[:, 1]).pow(2).mean().sqrt() / dX[:, 1].pow(2).mean().sqrt()
    pareto.append((lam, bits, float(error), network.n_open_terms(), len(network.dense_edges())))

total_terms = len(STATES) ** 2 * (len(DICTIONARY) + 1)
print(f"{'lambda':>7s} {'model bits':>11s} {'rel. error of y':>16s} {'open terms':>11s} {'dense edges':>12s}")
for lam, bits, error, n_open, n_dense in pareto:
    print(f"{lam:7g} {bits:11.1f} {error:16.4f} {n_open:5d} of {total_terms:3d} {n_dense:12d}")"""),
        new_markdown_cell("""\
The gate maps side by side, one per `lambda`, and the edges at the largest
`lambda`. Look for the spline column emptying on the linear edges first."""),
        new_code_cell("""\
fig, axes = plt.subplots(1, len(lambdas), figsize=(3 * len(lambdas), 2.8), sharey=True)
for ax, lam in zip(axes, lambdas):
    plot_gates(networks[lam], ax, f"lambda = {lam:g}")
fig.tight_layout()
plt.show()
print(f"edges at lambda = {lambdas[-1]:g}:")
print_edges(networks[lambdas[-1]])"""),
        new_code_cell("""\
fig, ax = plt.subplots(figsize=(6, 4))
ax.plot([row[1] for row in pareto], [row[2] for row in pareto], "o-")
for lam, bits, error, *_ in pareto:
    ax.annotate(f"lambda={lam:g}", (bits, error), textcoords="offset points", xytext=(5, 5), fontsize=8)
ax.set_xlabel("model description length (bits)")
ax.set_ylabel("relative RMS error of y'")
ax.set_title("accuracy against parsimony")
plt.show()"""),
        new_markdown_cell("""\
What to look at: how many bits each step of `lambda` saves, and what it
costs in error. The error cannot fall much below the noise in the
derivative estimates (1-2 % here), so bits spent beyond that fit noise.
Past the knee, a larger `lambda` closes terms that the data need and the
error rises. Watch the dense-edge column too: the spline of `y' <- x` is
the one term here that nothing cheaper can replace."""),
    ]


def versus_sindy() -> list:
    return [
        new_markdown_cell("""\
# s2kan-dyn against SINDy as the data get worse

Both methods get the same Lorenz data: first with growing measurement noise,
then with coarser sampling. We score the found equations against the true
ones (term F1 and coefficient error) and the forecasts against a clean test
trajectory (valid prediction time in Lyapunov times).

To keep this notebook under two minutes on a laptop, the data are short
(5 time units, about 4.5 Lyapunov times), there are only two settings per
sweep, and both methods get the same polynomial dictionary:
`SymbolicODE` opens only its polynomial levels, and the SINDy baseline uses
its default degree-3 polynomial library. The comparison is then about how
each method fits, not about which library it has."""),
        new_code_cell(SETUP),
        new_code_cell(LEADING_FINITE + """


import systems
from s2kan_dyn.baselines.sindy import SINDyBaseline
from s2kan_dyn.discovery import SymbolicODE
from s2kan_dyn.metrics import equation_metrics, forecast_metrics

lorenz = systems.get("lorenz")
truth = lorenz.equations()
test_start = lorenz.sample_initial_conditions(1, seed=1)[0]
[test] = lorenz.simulate(t_end=15.0, x0=test_start)
POLYNOMIAL_LEVELS = (("x",), ("x", "x^2", "x^3"))


def fit_s2kan(data):
    model = SymbolicODE(dictionary=POLYNOMIAL_LEVELS, dense_fallback=False, progress=False, random_state=0)
    return model.fit(data)


def fit_sindy(data, noisy):
    # The baseline's rule: smoothed finite differences when the data are noisy.
    return SINDyBaseline(smooth=noisy).fit(data)


def evaluate(model, data):
    \"\"\"Score equations against the truth and the forecast against the clean test trajectory.\"\"\"
    scores = equation_metrics(model.equations(), truth, lorenz.state_names)
    forecast = leading_finite(model.simulate(test.x[0], test.t))
    scale = data[0].x.std(axis=0)
    skill = forecast_metrics(test.t, forecast, test.x, scale, lyapunov_time=lorenz.lyapunov_time)
    return {"f1": scores["f1"], "coef_error": scores["coef_error"], "vpt": skill["vpt_lyapunov"]}


def compare(noise, dt):
    data = lorenz.simulate(t_end=5.0, dt=dt, noise=noise, seed=0)
    row = {"noise": noise, "dt": dt}
    fitted = {"s2kan-dyn": fit_s2kan(data), "SINDy": fit_sindy(data, noisy=noise > 0)}
    for method, model in fitted.items():
        row[method] = evaluate(model, data)
        row[method]["equations"] = {name: str(sp.N(rhs, 4)) for name, rhs in model.equations().items()}
    return row"""),
        new_markdown_cell("""\
## Growing noise

Noise is Gaussian with a standard deviation that is the given fraction of
each state's standard deviation. Sampling stays at dt = 0.01."""),
        new_code_cell("""\
noise_levels = [0.0, 0.05]
noise_rows = [compare(noise, 0.01) for noise in noise_levels]
for row in noise_rows:
    for method in ("s2kan-dyn", "SINDy"):
        r = row[method]
        print(f"noise {row['noise']:4.2f}  {method:9s}  F1 {r['f1']:.2f}  coef. error {r['coef_error']:.1e}  VPT {r['vpt']:.1f} Lyapunov times")"""),
        new_markdown_cell("""\
## Coarser sampling

Clean data again, sampled five times more sparsely. Finite differences get
worse as the step grows, but fitting through the ODE solver (the trajectory
stage of `SymbolicODE`) needs no derivatives."""),
        new_code_cell("""\
steps = [0.05]
step_rows = [noise_rows[0]] + [compare(0.0, dt) for dt in steps]
for row in step_rows:
    for method in ("s2kan-dyn", "SINDy"):
        r = row[method]
        print(f"dt {row['dt']:4.2f}  {method:9s}  F1 {r['f1']:.2f}  coef. error {r['coef_error']:.1e}  VPT {r['vpt']:.1f} Lyapunov times")"""),
        new_code_cell("""\
fig, axes = plt.subplots(2, 3, figsize=(12, 6.5))
for r, (rows, key, label) in enumerate(((noise_rows, "noise", "noise (fraction of the state's std)"),
                                        (step_rows, "dt", "sampling step dt"))):
    xs = [row[key] for row in rows]
    for method, style in (("s2kan-dyn", "o-"), ("SINDy", "s--")):
        axes[r, 0].plot(xs, [row[method]["f1"] for row in rows], style, label=method)
        axes[r, 1].semilogy(xs, [max(row[method]["coef_error"], 1e-12) for row in rows], style, label=method)
        axes[r, 2].plot(xs, [row[method]["vpt"] for row in rows], style, label=method)
    axes[r, 0].set_ylabel("structure F1")
    axes[r, 0].set_ylim(-0.05, 1.05)
    axes[r, 1].set_ylabel("coefficient error")
    axes[r, 2].set_ylabel("valid prediction time (Lyapunov times)")
    for ax in axes[r]:
        ax.set_xlabel(label)
axes[0, 0].legend()
fig.tight_layout()
plt.show()"""),
        new_markdown_cell("""\
The equations each method found at the highest noise level and at the
coarsest step, to see what went wrong where a score dropped: a missing weak
term (such as `-y` in `y'`), extra compensating terms, or drifted
coefficients."""),
        new_code_cell("""\
for row in (noise_rows[-1], step_rows[-1]):
    print(f"noise {row['noise']}, dt {row['dt']}")
    for method in ("s2kan-dyn", "SINDy"):
        for name, rhs in row[method]["equations"].items():
            print(f"  {method:9s} {name}' = {rhs}")
    print()"""),
        new_markdown_cell("""\
What to look at: on clean, dense data both methods should recover the exact
structure. As noise grows or sampling coarsens, derivative estimates
degrade, so the F1 curves show which method keeps the true terms, and the
coefficient error and the valid prediction time show how much that costs a
forecast. The test trajectory lasts 15 time units (about 13.6 Lyapunov
times); a valid prediction time equal to that means the forecast never
passed the threshold. These are single runs with one seed on short data. The benchmark
(`s2kan-dyn benchmark`) repeats such comparisons over seeds and systems."""),
    ]


def real_data() -> list:
    return [
        new_markdown_cell("""\
# Real data: lynx and hare pelts, 1900-1920

The Hudson's Bay Company traded snowshoe hare and Canadian lynx pelts; the
yearly counts swing in a predator-prey cycle. There are only 21 samples, one
a year, so this is a hard case for equation discovery: derivative estimates
from yearly data are rough.

We fit on the first 16 years (1900-1915), forecast the last 5 (1916-1920)
from the 1915 state, and compare with a sparse fit published for the same
data (state-standardised): `hare' = 0.55 u - 0.455 u v`,
`lynx' = -0.84 v + 0.5433 u v`, with `u` the hare and `v` the lynx series."""),
        new_code_cell(SETUP),
        new_markdown_cell("""\
Each series is divided by its standard deviation over 1900-1920, with no
mean shift, so that products such as `u v` stay products. These are the
units of the published fit. Time is in years since 1900. Only the two
scale factors use the last five years; the fits see only 1900-1915."""),
        new_code_cell("""\
from s2kan_dyn import Trajectory, datasets

pelts = datasets.load("lynx_hare")
scale = pelts.x.std(axis=0)
states = pelts.x / scale
years = pelts.t - pelts.t[0]
N_TRAIN = 16
train = Trajectory(years[:N_TRAIN], states[:N_TRAIN], ("u", "v"), "lynx_hare")
print(f"states {pelts.state_names} -> u, v; scale factors (thousands of pelts): {scale}")
print(f"training years {pelts.t[0]:.0f}-{pelts.t[N_TRAIN - 1]:.0f}, forecast years {pelts.t[N_TRAIN]:.0f}-{pelts.t[-1]:.0f}")"""),
        new_markdown_cell("""\
## Discover

With 16 samples, we open only the cheapest level of the dictionary: `x` on
every edge plus multiplication nodes, which reaches polynomials of degree 2
in `u` and `v`. That is the library a population model is usually fitted
with, and the full search over costlier primitives takes minutes here. The
SINDy baseline gets the same degree-2 polynomial library."""),
        new_code_cell("""\
from s2kan_dyn.baselines.sindy import SINDyBaseline
from s2kan_dyn.discovery import SymbolicODE

model = SymbolicODE(dictionary=(("x",),), dense_fallback=False, progress=False, random_state=0).fit(train)
sindy = SINDyBaseline(degree=2).fit(train)

u, v = sp.symbols("u v")
published = {"u": 0.55 * u - 0.455 * u * v, "v": -0.84 * v + 0.5433 * u * v}
for label, equations in (("s2kan-dyn", model.equations()), ("SINDy", sindy.equations()), ("published", published)):
    for name in ("u", "v"):
        print(f"{label:10s} {name}' = {sp.N(equations[name], 4)}")"""),
        new_markdown_cell("""\
## Forecast the held-out years

Each model is integrated from the 1915 state over 1915-1920. A rollout that
diverges stops and leaves the later years empty. The RMSE is over the five
held-out years, in standardised units."""),
        new_code_cell(LEADING_FINITE + """


from s2kan_dyn.metrics import rmse
from s2kan_dyn.rollout import equations_to_numpy, rollout

start = N_TRAIN - 1
STEPS_PER_YEAR = 10
# A fine grid for the plot; every STEPS_PER_YEAR-th sample is a data year.
horizon = np.linspace(years[start], years[-1], STEPS_PER_YEAR * (len(years) - 1 - start) + 1)
published_run = rollout(equations_to_numpy(published, ("u", "v")), states[start], horizon)
forecasts = {
    "s2kan-dyn": leading_finite(model.simulate(states[start], horizon)),
    "SINDy": leading_finite(sindy.simulate(states[start], horizon)),
    "published": published_run.x,
}
held_out = states[start + 1:]
for label, forecast in forecasts.items():
    yearly = forecast[STEPS_PER_YEAR::STEPS_PER_YEAR]
    if len(yearly) == len(held_out):
        print(f"{label:10s} RMSE over 1916-1920: {rmse(yearly, held_out):.3f}")
    else:
        print(f"{label:10s} rollout stopped after {len(yearly)} of {len(held_out)} held-out years")"""),
        new_code_cell("""\
fig, axes = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
styles = {"s2kan-dyn": "r-", "SINDy": "b--", "published": "g:"}
in_years = pelts.t[0] + horizon
for j, (name, label) in enumerate(zip(("u", "v"), pelts.state_names)):
    ax = axes[j]
    ax.plot(pelts.t[:N_TRAIN], states[:N_TRAIN, j], "ko", ms=4, label="training years")
    ax.plot(pelts.t[N_TRAIN:], states[N_TRAIN:, j], "kx", ms=6, label="held-out years")
    for method, forecast in forecasts.items():
        ax.plot(in_years[: len(forecast)], forecast[:, j], styles[method], lw=1.5, label=method)
    ax.axvline(pelts.t[start], color="0.6", lw=0.8)
    ax.set_ylabel(f"{label} ({name}, standardised)")
axes[1].set_xlabel("year")
axes[1].xaxis.set_major_locator(plt.MaxNLocator(integer=True))
axes[0].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
fig.tight_layout()
plt.show()"""),
        new_markdown_cell("""\
What to look at: whether each forecast follows the 1916-1920 fall and
recovery of the hares and the fall of the lynx, and how the found equations
compare term by term with the published Lotka-Volterra form (growth of `u`,
decay of `v`, and the `u v` interaction with opposite signs). With yearly
data and 16 samples, treat any fit as a hypothesis: the RMSE over five
points is a small test."""),
    ]


NOTEBOOKS = {
    "01_quickstart_lorenz.ipynb": quickstart_lorenz,
    "02_symbolic_or_dense.ipynb": symbolic_or_dense,
    "03_versus_sindy.ipynb": versus_sindy,
    "04_real_data.ipynb": real_data,
}


def build(name: str) -> nbformat.NotebookNode:
    """Return notebook ``name`` with no outputs and no execution counts."""
    notebook = new_notebook(cells=NOTEBOOKS[name]())
    # Fixed cell ids, so that rebuilding an unchanged notebook changes no byte.
    for index, cell in enumerate(notebook.cells):
        cell.id = f"cell-{index:02d}"
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    nbformat.validate(notebook)
    return notebook


def main() -> None:
    for name in NOTEBOOKS:
        nbformat.write(build(name), FOLDER / name)


if __name__ == "__main__":
    main()
