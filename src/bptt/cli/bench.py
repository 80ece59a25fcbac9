"""`bptt bench`: the speed table against PyTorch and JAX (bench.py does the work)."""

from __future__ import annotations

import argparse


# Where `bptt --help` lists this command; the numba modules its first run on a machine compiles.
ORDER = 80
COMPILES = ("kernels", "limits")


def add(sub) -> None:
    p = sub.add_parser("bench", help="time a full gradient against PyTorch eager and JAX; --memory: checkpointing demo",
                       description="Time one full gradient (loss and five gradients, float32) of this library, PyTorch "
                       "eager, JAX jit and the bptt.torch layer (CPU, and CUDA where present) on a grid of sizes from the seed's T = 2 scalar network to H = 1024, after "
                       "checking all agree; print a Markdown table with ratios and GFLOP/s beside the measured GEMM "
                       "peak, and each size's limit (the best this machine does on the work every gradient of that "
                       "size must do, each part timed alone: bptt.limits) with bptt's time as a percentage of it.  "
                       "Peers not installed show as absent.")
    from ..bench import add_arguments

    add_arguments(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..bench import run

    return run(args)
