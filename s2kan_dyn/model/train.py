"""Fit an S2KAN to input-output pairs under the MDL objective, with gates.

:func:`fit_gated` runs four stages:

1. warm-up: L-BFGS on the data bits with every free gate held open, so the
   dictionary starts from a good fit with no pressure to close anything.
   By default it opens the dictionary in order of cost: first only the
   cheapest primitive of each layer, then every term, the costlier ones
   starting from zero coefficients. With everything open from a random
   start, correlated primitives share the load and L-BFGS converges slowly
   (on y = x0*x1 + 2 sin(x0), 200 iterations reached 0.4 data bits per
   sample from a random start against -7.4 to -8.1 in 100 iterations from
   the cheap fit, 4 data seeds). Each phase gets the full warm-up budget
   because the cheap fit of a network with products needs it: on Lorenz
   derivatives, x-only L-BFGS reached 8 data bits in 100 iterations and
   -16 to -19 at convergence (260 to 300 iterations, 3 seeds);
2. ramp: Adam on parameters and gate locations with stochastic gates,
   lambda rising linearly from 0 to its final value;
3. freeze: Adam at the final lambda, then every gate fixed to its
   deterministic state (open where log_alpha > 0);
4. polish: L-BFGS on the data bits with the gates fixed.

L-BFGS is used where the objective is deterministic because Adam stalls far
above the optimum on these small, badly conditioned fits. Adam is used for
the stochastic gate stages because L-BFGS's line search assumes the same
function at every evaluation, and resampled gates break that. Gates are
resampled once per optimisation step and held for every forward pass of
that step.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..errors import FitError, S2KANDynError
from .network import S2KAN
from .objective import data_bits, mdl_loss
from .rollback import ParameterRollback, restore, snapshot

logger = logging.getLogger(__name__)

# L-BFGS settings for the deterministic stages: a long history and a strong
# Wolfe line search. The tolerances are near float64 round-off, so the step
# budget, not an early stop, ends a fit that still improves.
LBFGS_HISTORY = 50
LBFGS_TOLERANCE_GRAD = 1e-12
LBFGS_TOLERANCE_CHANGE = 1e-15
# L-BFGS restarts with a fresh history after this many iterations, and
# goes on while a run gains at least LBFGS_RESTART_GAIN data bits per sample.
# On Lorenz derivatives (x-only dictionary, products, 400 iterations) one
# run reached -0.4 data bits per sample, and runs of 100 reached -14.
LBFGS_RESTART_EVERY = 100
LBFGS_RESTART_GAIN = 1e-6


@dataclass(frozen=True)
class GateSchedule:
    """Steps of each stage of :func:`fit_gated`.

    Attributes:
        warmup: L-BFGS iterations with gates held open and no penalty, for
            each of the two warm-up phases when the dictionary opens
            cheapest first (default 200).
        ramp: Adam steps while lambda rises from 0 to its final value (default 300).
        freeze: Adam steps at the final lambda before gates are fixed (default 200).
        polish: L-BFGS iterations with fixed gates and no penalty (default 200).
    """

    warmup: int = 200
    ramp: int = 300
    freeze: int = 200
    polish: int = 200

    def __post_init__(self):
        for name in ("warmup", "ramp", "freeze", "polish"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise S2KANDynError(f"GateSchedule.{name}={value!r} is invalid; use an int >= 0")


@dataclass(frozen=True)
class StageRecord:
    """Figures at the end of one stage, measured with eval-mode gates.

    Attributes:
        name: "warmup", "ramp", "freeze" or "polish".
        steps: optimiser steps (Adam) or iterations (L-BFGS) run.
        loss: data_bits + lam * model_bits / n_samples, bits per sample, with
            the stage's final lambda (0 in warm-up and polish).
        data_bits: bits per sample.
        model_bits: total bits of the model (P(open) weighted).
        open_terms: number of open terms.
        seconds: wall time of the stage.
    """

    name: str
    steps: int
    loss: float
    data_bits: float
    model_bits: float
    open_terms: int
    seconds: float


@dataclass
class FitRecord:
    """Record of a :func:`fit_gated` run, stage by stage.

    Attributes:
        stages: one :class:`StageRecord` per stage, in order.
        lam: the final lambda.
        n_samples: number of samples fitted.
    """

    lam: float
    n_samples: int
    stages: list[StageRecord] = field(default_factory=list)

    def stage(self, name: str) -> StageRecord:
        """Return the record of the stage called ``name``."""
        for record in self.stages:
            if record.name == name:
                return record
        raise S2KANDynError(
            f"no stage {name!r} in this fit; stages: {[r.name for r in self.stages]}"
        )


def fit_gated(
    model: S2KAN,
    X: Tensor,
    Y: Tensor,
    lam: float = 1.0,
    schedule: GateSchedule = GateSchedule(),
    lr: float = 1e-3,
    progress: bool = False,
    gate_lr: float = 1e-1,
    scale: bool = True,
    update_grid: bool = True,
    seed: int | None = None,
    cheapest_first: bool = True,
) -> FitRecord:
    """Fit ``model`` to ``Y = f(X)`` with gates under the MDL objective.

    Runs warm-up, ramp, freeze and polish (see the module docstring). On
    return the gates are fixed (call ``model.unfreeze_gates()`` to free
    them) and the model is in eval mode. Gates fixed by the caller before
    the call stay fixed throughout.

    Args:
        model: the network, changed in place.
        X: inputs ``(n_samples, n_in)``; converted to the model's dtype and device.
        Y: targets ``(n_samples, n_out)``.
        lam: final weight of the model bits (default 1, plain MDL; 0 fits
            without any pressure to close gates).
        schedule: steps per stage.
        lr: Adam learning rate of the coefficients in the stochastic stages
            (default 1e-3).
        progress: show tqdm progress bars.
        gate_lr: Adam learning rate of the gate locations ``log_alpha``
            (default 0.1). On y = x0*x1 + 2 sin(x0) with a [2, [2, 1], 1]
            network (3 seeds), these defaults left 24 to 38 of 99 terms
            open at -12 to -13.6 data bits per sample after polish, against
            29 to 50 terms at -10 to -10.8 with lr 1e-2 and gate_lr 0.05.
        scale: set the model's input and output scaling to the data RMS first.
        update_grid: fit the spline grids to the data first.
        seed: seed of the gate noise (default: torch's global generator).
        cheapest_first: warm up on the cheapest primitive of each layer
            first, then reset the other coefficients to zero and open every
            term (default True). Pass False to keep a model's coefficients,
            for example when refitting a model fitted before.

    Returns:
        A :class:`FitRecord`.

    Raises:
        S2KANDynError: shapes do not match the model or data are not finite.
        FitError: the loss became NaN or infinite; the message names the stage.
    """
    X, Y = _check_data(model, X, Y)
    n_samples = X.shape[0]
    if lam < 0 or not math.isfinite(lam):
        raise S2KANDynError(f"lam={lam} is invalid; use a finite value >= 0")
    generator = None
    if seed is not None:
        generator = torch.Generator(device=X.device).manual_seed(seed)
    if scale:
        model.set_scaling_from_data(X, Y)
    if update_grid:
        model.update_grids(X)

    record = FitRecord(lam=lam, n_samples=n_samples)
    gates = [layer.gates for layer in model.layers]
    coefficients = [p for name, p in model.named_parameters() if not name.endswith("log_alpha")]
    log_alphas = [g.log_alpha for g in gates]

    # Warm-up: free gates held open, so the fit is deterministic.
    user_masks = [g.fixed.clone() for g in gates]
    start = time.perf_counter()
    steps = 0
    if cheapest_first:
        for layer, mask in zip(model.layers, user_masks):
            layer.gates.fix(torch.where(torch.isnan(mask), _cheapest_terms(layer), mask))
        steps = _lbfgs(model, X, Y, coefficients, schedule.warmup, "warmup", progress, scaled_mse)
        # NOTE: from a close cheap fit, L-BFGS often cannot move the costly
        # coefficients: 1/x and log|x| near 0 and the log of a small MSE make
        # their gradients 1e6 times larger than the rest, and the line search
        # fails. Those terms then start the Adam stages at zero.
        _zero_costlier(model)
    for g, mask in zip(gates, user_masks):
        g.fix(torch.where(torch.isnan(mask), torch.ones_like(mask), mask))
    steps += _lbfgs(model, X, Y, coefficients, schedule.warmup, "warmup", progress, scaled_mse)
    for g, mask in zip(gates, user_masks):
        g.fix(mask)
    record.stages.append(_measure(model, X, Y, "warmup", steps, 0.0, start))

    # Ramp and freeze: stochastic gates, Adam.
    optimizer = torch.optim.Adam(
        [{"params": coefficients, "lr": lr}, {"params": log_alphas, "lr": gate_lr}]
    )
    for name, n_steps in (("ramp", schedule.ramp), ("freeze", schedule.freeze)):
        start = time.perf_counter()
        model.train()
        rollback = ParameterRollback(coefficients + log_alphas, optimizer, name)
        for step in tqdm(range(n_steps), desc=name, disable=not progress, leave=False):
            weight = lam * (step + 1) / n_steps if name == "ramp" else lam
            model.resample_gates(generator)
            optimizer.zero_grad()
            loss, _, _ = mdl_loss(model, model(X), Y, weight, n_samples)
            if not rollback.check(loss, step):
                continue
            loss.backward()
            optimizer.step()
        if name == "freeze":
            model.freeze_gates()
        record.stages.append(_measure(model, X, Y, name, n_steps, lam, start))

    # Polish: gates fixed, deterministic again.
    start = time.perf_counter()
    steps = _lbfgs(model, X, Y, coefficients, schedule.polish, "polish", progress)
    record.stages.append(_measure(model, X, Y, "polish", steps, 0.0, start))
    model.eval()
    return record


def _cheapest_terms(layer) -> Tensor:
    """Mask ``(n_out, n_in, K + 1)``: 1 on the layer's cheapest primitives, 0 elsewhere."""
    bits = torch.tensor([p.bits for p in layer.primitives])
    cheapest = torch.zeros(layer.n_terms + 1, dtype=layer.coef.dtype, device=layer.coef.device)
    cheapest[: layer.n_terms] = (bits == bits.min()).to(cheapest)
    return cheapest.expand_as(layer.gates.fixed)


@torch.no_grad()
def _zero_costlier(model: S2KAN) -> None:
    """Set the coefficients of every term but the cheapest primitives to zero."""
    for layer in model.layers:
        keep = _cheapest_terms(layer)
        layer.coef.mul_(keep[..., : layer.n_terms])
        layer.spline_coef.zero_()


def _check_data(model: S2KAN, X: Tensor, Y: Tensor) -> tuple[Tensor, Tensor]:
    reference = model.x_scale
    X = torch.as_tensor(X).to(reference)
    Y = torch.as_tensor(Y).to(reference)
    if Y.dim() == 1:
        Y = Y[:, None]
    if X.dim() != 2 or X.shape[1] != model.n_in:
        raise S2KANDynError(f"X has shape {tuple(X.shape)}; expected (n_samples, {model.n_in})")
    if Y.shape != (X.shape[0], model.n_out):
        raise S2KANDynError(
            f"Y has shape {tuple(Y.shape)}; expected ({X.shape[0]}, {model.n_out}) to match X"
        )
    if not bool(torch.isfinite(X).all() and torch.isfinite(Y).all()):
        raise S2KANDynError("X or Y contains NaN or infinite values; drop or fill those rows")
    return X, Y


def _lbfgs(
    model: S2KAN,
    X: Tensor,
    Y: Tensor,
    parameters: list[Tensor],
    max_iter: int,
    stage: str,
    progress: bool,
    objective=None,
) -> int:
    """Minimise the data bits (or ``objective(pred, Y)``) with L-BFGS for up to ``max_iter`` iterations; return iterations run.

    torch's L-BFGS often stalls on these nonconvex fits: its line search
    finds no step, or its curvature history from an earlier region misleads
    it, while a fresh history still makes progress. So L-BFGS restarts from
    the current point every ``LBFGS_RESTART_EVERY`` iterations, or sooner if
    it stops, until the budget is spent or a run gains less than
    ``LBFGS_RESTART_GAIN`` bits per sample.
    """
    bar = tqdm(total=max_iter, desc=stage, disable=not progress, leave=False)

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = (objective or data_bits)(model(X), Y)
        if not torch.isfinite(loss):
            raise FitError(
                f"{stage} stage: data bits became {loss.item()}; "
                "check the data for extreme values or use fewer costly primitives"
            )
        loss.backward()
        return loss

    logger.debug("%s: L-BFGS for up to %d iterations", stage, max_iter)
    done = 0
    runs = 0
    previous = float("inf")
    while done < max_iter:
        runs += 1
        optimizer = torch.optim.LBFGS(
            parameters,
            lr=1.0,
            max_iter=min(LBFGS_RESTART_EVERY, max_iter - done),
            history_size=LBFGS_HISTORY,
            tolerance_grad=LBFGS_TOLERANCE_GRAD,
            tolerance_change=LBFGS_TOLERANCE_CHANGE,
            line_search_fn="strong_wolfe",
        )
        saved = snapshot(parameters)
        try:
            optimizer.step(closure)
        except FitError as error:
            restore(parameters, saved)
            logger.warning("%s; parameters rolled back to the start of L-BFGS run %d, which ends the stage", error, runs)
            break
        iterations = max(1, int(optimizer.state[parameters[0]].get("n_iter", 0)))
        done += iterations
        bar.update(iterations)
        with torch.no_grad():
            current = float(data_bits(model(X), Y))
        if previous - current < LBFGS_RESTART_GAIN:
            break
        previous = current
    bar.close()
    logger.debug("%s: L-BFGS ran %d iterations in %d runs", stage, done, runs)
    return done


def scaled_mse(pred: Tensor, target: Tensor) -> Tensor:
    """Return the mean over states of each state's MSE divided by its mean square, a scalar.

    Unlike the data bits (a sum of log MSEs), its gradient does not grow
    without bound as one state fits to round-off, so L-BFGS keeps fitting
    the other states.
    """
    scale = target.detach().pow(2).mean(dim=0).clamp_min(torch.finfo(target.dtype).tiny)
    return ((pred - target).pow(2).mean(dim=0) / scale).mean()


@torch.no_grad()
def _measure(
    model: S2KAN, X: Tensor, Y: Tensor, name: str, steps: int, lam: float, start: float
) -> StageRecord:
    """Evaluate the stage's figures with eval-mode gates and log them."""
    was_training = model.training
    model.eval()
    n_samples = X.shape[0]
    loss, fit, complexity = mdl_loss(model, model(X), Y, lam, n_samples)
    model.train(was_training)
    record = StageRecord(
        name=name,
        steps=steps,
        loss=float(loss),
        data_bits=float(fit),
        model_bits=float(complexity),
        open_terms=model.n_open_terms(),
        seconds=time.perf_counter() - start,
    )
    logger.info(
        "%s: %d steps, loss %.3f bits/sample (data %.3f, model %.1f bits), %d open terms, %.2f s",
        name, record.steps, record.loss, record.data_bits, record.model_bits,
        record.open_terms, record.seconds,
    )
    return record
