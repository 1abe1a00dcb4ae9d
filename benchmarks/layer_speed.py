"""Time forward+backward of one S2KAN layer against an MLP of the same size.

The MLP is ``Linear(n_in, h) -> tanh -> Linear(h, n_out)`` with ``h`` chosen
so that its parameter count is the closest to the layer's (coefficients,
inner maps, spline coefficients, biases and gate locations). Both run in
float64 in the same process on the same batch, timed alternately so that
load from other processes affects both alike. Each time is the median of
``--repeats`` calls after ``--warmup`` untimed ones, and the ratio is given
both as the ratio of the medians and as the median of the per-pair ratios.
The S2KAN layer runs in training mode with sampled gates, as in a fit.

Usage::

    python benchmarks/layer_speed.py --n-in 8 --n-out 8 --batch 1024 --threads 1
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch
from torch import nn

from s2kan_dyn.model import DEFAULT_PRIMITIVES, S2KANLayer


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def matching_mlp(n_in: int, n_out: int, n_parameters: int) -> nn.Module:
    """Build an MLP with one tanh hidden layer whose size is closest to ``n_parameters``."""
    # (n_in + 1) * h + (h + 1) * n_out = n_parameters, solved for h.
    hidden = max(1, round((n_parameters - n_out) / (n_in + 1 + n_out)))
    return nn.Sequential(
        nn.Linear(n_in, hidden, dtype=torch.float64),
        nn.Tanh(),
        nn.Linear(hidden, n_out, dtype=torch.float64),
    )


def forward_backward(module: nn.Module, x: torch.Tensor) -> float:
    """Return the seconds of one forward and backward pass of ``module`` on ``x``."""
    if isinstance(module, S2KANLayer):
        module.gates.resample()
    module.zero_grad(set_to_none=True)
    start = time.perf_counter()
    module(x).square().mean().backward()
    return time.perf_counter() - start


def time_pairs(
    layer: nn.Module, mlp: nn.Module, x: torch.Tensor, warmup: int, repeats: int
) -> tuple[list[float], list[float]]:
    """Time the two modules alternately, so that load from other processes hits both alike."""
    layer_times, mlp_times = [], []
    for index in range(warmup + repeats):
        layer_seconds = forward_backward(layer, x)
        mlp_seconds = forward_backward(mlp, x)
        if index >= warmup:
            layer_times.append(layer_seconds)
            mlp_times.append(mlp_seconds)
    return layer_times, mlp_times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-in", type=int, default=8, help="inputs of the layer (default 8)")
    parser.add_argument("--n-out", type=int, default=8, help="outputs of the layer (default 8)")
    parser.add_argument("--batch", type=int, default=1024, help="batch size (default 1024)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed calls first (default 10)")
    parser.add_argument("--repeats", type=int, default=50, help="timed calls (default 50)")
    parser.add_argument(
        "--no-spline", action="store_true", help="time the layer without its spline term"
    )
    parser.add_argument(
        "--primitives",
        default=",".join(DEFAULT_PRIMITIVES),
        help="comma-separated primitive names (default: every default primitive)",
    )
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    primitives = tuple(args.primitives.split(","))
    layer = S2KANLayer(args.n_in, args.n_out, primitives=primitives, spline=not args.no_spline)
    layer.train()
    mlp = matching_mlp(args.n_in, args.n_out, count_parameters(layer))
    x = torch.randn(args.batch, args.n_in, dtype=torch.float64)

    layer_times, mlp_times = time_pairs(layer, mlp, x, args.warmup, args.repeats)
    s2kan_seconds = statistics.median(layer_times)
    mlp_seconds = statistics.median(mlp_times)
    pair_ratio = statistics.median(a / b for a, b in zip(layer_times, mlp_times))

    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"machine: {platform.machine()} {platform.processor() or platform.platform()}, "
          f"{os.cpu_count()} logical CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, float64")
    print(f"layer: {args.n_in} -> {args.n_out}, {len(primitives)} primitives"
          f"{'' if args.no_spline else ' + spline'}, batch {args.batch}, "
          f"median of {args.repeats} after {args.warmup} warm-up calls")
    print(f"S2KAN layer: {count_parameters(layer)} parameters, {1e3 * s2kan_seconds:.3f} ms forward+backward")
    print(f"MLP (hidden {mlp[0].out_features}): {count_parameters(mlp)} parameters, "
          f"{1e3 * mlp_seconds:.3f} ms forward+backward")
    print(f"ratio S2KAN / MLP: {s2kan_seconds / mlp_seconds:.2f} of medians, "
          f"{pair_ratio:.2f} median of alternating pairs")


if __name__ == "__main__":
    main()
