"""`bptt gradflow`: the gradient-flow heat maps and their decay summary."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from .. import io as bio
from .. import tasks
from ..gradflow import decay_summary, gradflow_pair, gradflow_sequence
from ..model import RNN
from ..train import TrainConfig, load_task
from ..validation import BPTTError
from ._common import steps


def add(sub) -> None:
    p = sub.add_parser("gradflow", help="heat map of ||dE_t/dh_k|| over (t, k), sigmoid vs tanh side by side",
                       description="Gradient flow: how the error E_t's signal decays back through the hidden states h_k. "
                       "With --model, for a trained model on one of its task's test sequences (and the same weights "
                       "with the other hidden activation); without, for fresh random networks with sigmoid and tanh "
                       "hidden units and identical weights.")
    p.add_argument("--out", required=True, metavar="PNG", help="the image to write (refuses an existing file unless --force)")
    p.add_argument("--force", action="store_true", help="overwrite --out")
    p.add_argument("--model", default=None, metavar="DIR", help="a model written by `bptt train`")
    p.add_argument("--index", type=int, default=0, help="with --model: which test sequence (default 0)")
    p.add_argument("--x", default=None, metavar="V1,V2,...", help="with --model: your own input sequence instead "
                   "(a:b for several inputs per step; series models: values in the data's units, the targets are the next values)")
    p.add_argument("--y", default=None, metavar="Y1,Y2,...", help="with --model --x: targets, one per step (not needed for series models)")
    p.add_argument("--hidden", type=int, default=16, help="without --model: hidden units (default 16)")
    p.add_argument("--length", type=int, default=40, help="without --model: sequence length (default 40)")
    p.add_argument("--init-scale", type=float, default=1.0, help="without --model: multiply the initial weights (default 1)")
    p.add_argument("--seed", type=int, default=0, help="without --model: seed of weights and data (default 0)")
    p.add_argument("--json", action="store_true", help="print the decay summary as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return gradflow_cli(args.out, force=args.force, model=args.model, index=args.index, hidden=args.hidden,
                        length=args.length, init_scale=args.init_scale, seed=args.seed, as_json=args.json,
                        x=args.x, y=args.y)


def gradflow_cli(out: str | Path, force: bool = False, model: str | None = None, index: int = 0, hidden: int = 16,
                 length: int = 40, init_scale: float = 1.0, seed: int = 0, as_json: bool = False,
                 x: str | None = None, y: str | None = None) -> int:
    """`bptt gradflow`: the ‖∂E_t/∂h_k‖ heat maps, sigmoid and tanh side by side, and a decay summary.

    With ``model``: one test sequence of its task (``index``) or the user's ``x`` (and ``y``; for a
    series model the inputs are x_1..x_{T-1} and the targets x_2..x_T, in the data's units).
    """
    from .. import plots

    out = Path(out)
    if out.exists() and not force:
        raise BPTTError(f"{out} exists; give another --out or --force to overwrite it")
    if out.suffix.lower() != ".png":
        raise BPTTError(f"--out {out}: the heat map is written as PNG; give a file name ending in .png")
    if not out.parent.is_dir():
        raise BPTTError(f"--out {out}: folder {out.parent} does not exist")
    if (x is not None or y is not None) and model is None:
        raise BPTTError("--x/--y need --model (without it, gradflow draws random networks on random data)")
    if model is not None and x is not None:
        m, info = bio.load_model(model)
        xv = steps(x, m.input_size)  # (T, D)
        scaling = tasks.Scaling(**info["scaling"]) if info.get("scaling") else None
        if y is None:
            if scaling is None or m.input_size != 1:
                raise BPTTError("give --y targets, one per step of --x (only series models take the next values as targets)")
            if len(xv) < 2:
                raise BPTTError("--x needs at least 2 values: the targets are the next values")
            u = scaling.to_unit(xv)
            xs_, ys_ = u[:-1], u[1:]  # (T-1, 1): predict each next value
        else:
            yv = steps(y, m.output_size)
            if len(yv) != len(xv):
                raise BPTTError(f"--x has {len(xv)} steps but --y has {len(yv)}; give one target per step")
            xs_ = scaling.to_unit(xv) if scaling else xv
            ys_ = scaling.to_unit(yv) if scaling else yv
        maps = gradflow_pair(m, xs_, ys_)
        title = f"{info.get('task', 'model')}, your sequence: ‖∂E_t/∂h_k‖"
    elif model is not None:
        m, info = bio.load_model(model)
        if "config" not in info:
            raise BPTTError(f"{model}: the model file does not say which task it was trained on; gradflow --model needs a `bptt train` model")
        cfg = TrainConfig.from_json(info["config"])
        data = load_task(cfg)
        x, y = gradflow_sequence(data, index)
        maps = gradflow_pair(m, x, y)
        title = f"{cfg.task}, test sequence {index}: ‖∂E_t/∂h_k‖"
    else:
        for name, v, lo in (("--hidden", hidden, 1), ("--length", length, 2), ("--seed", seed, 0)):
            if v < lo:
                raise BPTTError(f"{name} must be >= {lo}, got {v}")
        if not (math.isfinite(init_scale) and init_scale > 0):
            raise BPTTError(f"--init-scale must be a positive number, got {init_scale}")
        base = RNN(1, hidden, 1, "sigmoid", "sigmoid", seed=seed)
        params = {k: v * init_scale for k, v in base.params().items()}
        base.set_params(**params)
        rng = np.random.default_rng([seed, 7])
        x = rng.uniform(0, 1, size=(length, 1))  # (T, 1)
        y = rng.uniform(0, 1, size=(length, 1))  # (T, 1)
        maps = gradflow_pair(base, x, y)
        maps = {k.replace(" (as trained)", " (random init)"): v for k, v in maps.items()}
        title = f"random network, H={hidden}, init ×{init_scale:g}, seed {seed}: ‖∂E_t/∂h_k‖"
    plots.gradient_flow_maps(maps, out, title=title)
    summary = {label: decay_summary(G) for label, G in maps.items()}
    if as_json:
        print(json.dumps({"out": str(out), "decay": summary}))
    else:
        print("median over t of ||dE_t/dh_(t-lag)|| / ||dE_t/dh_t||:")
        for label, d in summary.items():
            print(f"  {label:28s} " + "  ".join(f"lag {k}: {v:.3g}" for k, v in d.items()))
        print(f"wrote {out}")
    return 0
