"""The ``bptt`` command line.  Each subcommand parses its options here and calls one module.

Bad input: one line ``error: ...`` on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any, Callable, Sequence

from .validation import BPTTError
from .activations import HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS
from .engine import PARAM_NAMES

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, not a usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise BPTTError(f"{self.prog}: {message} (see '{self.prog} --help')")


def _numbers(text: str, option: str) -> list[float]:
    """'1,0' -> [1.0, 0.0]; one clear error for anything else."""
    parts = [p.strip() for p in str(text).split(",")]
    if not text.strip() or any(p == "" for p in parts):
        raise BPTTError(f"{option}: {text!r} is not a comma-separated list of numbers; write e.g. {option} 1,0")
    out = []
    for p in parts:
        try:
            v = float(p)
        except ValueError:
            raise BPTTError(f"{option}: {p!r} is not a number; write e.g. {option} 1,0") from None
        if not math.isfinite(v):
            raise BPTTError(f"{option}: {p!r} is not finite; every value must be a finite number")
        out.append(v)
    return out


def _number(text: str, option: str) -> float:
    vals = _numbers(text, option)
    if len(vals) != 1:
        raise BPTTError(f"{option}: expected one number, got {text!r}")
    return vals[0]


def _console():
    from rich.console import Console

    return Console(highlight=False)


def _fmt(v: float, digits: int = 6) -> str:
    return f"{v:.{digits}g}" if abs(v) >= 1e-4 or v == 0 else f"{v:.{digits}e}"


# ------------------------------------------------------------------ model options (shared by grad, explain, seed)
def add_model_options(p: argparse.ArgumentParser, defaults: bool = True) -> None:
    """--w --w-x --w-h --b1 --b2 --h0 --x --y and the activation/reduction options."""
    g = p.add_argument_group("model (the seed's scalar network)")
    for name in PARAM_NAMES:
        g.add_argument(f"--{name.replace('_', '-')}", dest=name, default="1", metavar="NUM", help=f"{name} (default 1)")
    g.add_argument("--h0", default="0", metavar="NUM", help="initial hidden state h_0 (default 0)")
    g.add_argument("--hidden-activation", default="sigmoid", help=f"one of {', '.join(HIDDEN_ACTIVATIONS)} (default sigmoid)")
    g.add_argument("--output-activation", default="sigmoid", help=f"one of {', '.join(OUTPUT_ACTIVATIONS)} (default sigmoid)")
    g.add_argument("--reduction", default="mean", help="mean (Loss = 1/T sum E_t, the seed's) or sum")


def model_from_args(args: argparse.Namespace):
    from .model import RNN

    values = {name: _number(getattr(args, name), f"--{name.replace('_', '-')}") for name in PARAM_NAMES}
    return RNN.scalar(**values, hidden_activation=args.hidden_activation, output_activation=args.output_activation)


def sequence_from_args(args: argparse.Namespace) -> tuple[list[float], list[float], float]:
    x = _numbers(args.x, "--x")
    y = _numbers(args.y, "--y")
    if len(x) != len(y):
        raise BPTTError(f"--x has {len(x)} steps but --y has {len(y)}; give one target per input step")
    return x, y, _number(args.h0, "--h0")


# ------------------------------------------------------------------ bptt grad
def _add_grad(sub) -> None:
    p = sub.add_parser("grad", help="loss and the five gradients for a scalar model and sequence",
                       description="Loss and exact BPTT gradients of the seed's scalar network.")
    add_model_options(p)
    p.add_argument("--x", required=True, metavar="X1,X2,...", help="input sequence, comma-separated")
    p.add_argument("--y", required=True, metavar="Y1,Y2,...", help="target sequence, comma-separated")
    p.add_argument("--truncate", type=int, default=None, metavar="K", help="truncated BPTT: each error backpropagates at most K steps")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=_run_grad)


def _run_grad(args: argparse.Namespace) -> int:
    import numpy as np

    m = model_from_args(args)
    x, y, h0 = sequence_from_args(args)
    loss, grads = m.loss_and_grad(np.array(x), np.array(y), h0=h0, reduction=args.reduction, truncate=args.truncate)
    fwd = m.forward(np.array(x), h0=h0)
    h = [float(v) for v in fwd.h[:, 0]]
    y_pred = [float(v) for v in fwd.y_pred[:, 0]]
    g = {k: float(grads[k].ravel()[0]) for k in PARAM_NAMES}
    if args.json:
        print(json.dumps({"loss": loss, "grads": g, "h": h, "y_pred": y_pred}))
        return 0
    from rich.table import Table

    con = _console()
    t = Table(title="forward", title_justify="left")
    for col in ("t", "x_t", "h_t", "y'_t", "y_t"):
        t.add_column(col, justify="right")
    t.add_row("0", "", _fmt(h[0]), "", "")
    for i in range(len(x)):
        t.add_row(str(i + 1), _fmt(x[i]), _fmt(h[i + 1]), _fmt(y_pred[i]), _fmt(y[i]))
    con.print(t)
    t = Table(title=f"Loss = {_fmt(loss, 10)}  (reduction={args.reduction}"
              + (f", truncated to {args.truncate} steps" if args.truncate else "") + ")", title_justify="left")
    t.add_column("θ")
    t.add_column("dLoss/dθ", justify="right")
    for k in PARAM_NAMES:
        t.add_row(k, _fmt(g[k], 10))
    con.print(t)
    con.print("dE_t/dy'_t = (y'_t - y_t): the true sign (the seed writes y_t - y'_t).")
    return 0


# ------------------------------------------------------------------ bptt seed
def _add_seed(sub) -> None:
    p = sub.add_parser("seed", help="reproduce the seed's worked example and list its errata",
                       description="Reproduce the seed's worked example (w = w_x = w_h = b1 = b2 = 1, h_0 = 0, x = (1, 0)).")
    p.add_argument("--y", default=None, metavar="Y1,Y2",
                   help="targets y_1,y_2 (the seed never states them; default: the targets that best explain its printed gradients)")
    p.set_defaults(run=_run_seed)


def _run_seed(args: argparse.Namespace) -> int:
    from rich.table import Table

    from . import seed
    from .audit import Printed, round_like

    con = _console()
    con.print("[bold]The seed's worked example[/bold]: one sigmoid hidden unit, one sigmoid output, T = 2")
    con.print("w = w_x = w_h = b1 = b2 = 1,  h_0 = 0,  x = (1, 0),  Loss = 1/2 (E_1 + E_2),  E_i = 1/2 (y_i - y'_i)^2\n")

    blocks = seed.building_blocks()
    t = Table(title="building blocks (independent of the targets)", title_justify="left")
    for col in ("quantity", "seed printed", "exact", "verdict"):
        t.add_column(col, justify="right" if col != "quantity" else "left")
    for name, text in seed.PRINTED_BLOCKS.items():
        p = Printed.parse(text)
        exact = blocks[name]
        if p.holds(exact):
            verdict = "holds"
        elif p.value <= exact < p.value + 2 * p.half_unit:
            verdict = f"truncated (rounds to {round_like(exact, p)})"
        else:
            verdict = "WRONG"
        t.add_row(name, text, f"{exact:.6f}", verdict)
    t.add_row("h_2", "(not printed)", f"{blocks['h_2']:.6f}", "")
    con.print(t)

    a = seed.analyse()
    if args.y is None:
        y = a.best_targets
        y_note = "fitted (see below)"
    else:
        vals = _numbers(args.y, "--y")
        if len(vals) != 2:
            raise BPTTError(f"--y: the seed has two steps, so give two targets like --y 0.9,0.5; got {len(vals)}")
        y = (vals[0], vals[1])
        y_note = "given with --y"
    grads = seed.gradients(y)
    m = seed.model()
    import numpy as np

    dec = m.decompose(np.array(seed.X), np.array(y), h0=seed.H0)
    t = Table(title=f"gradients at y = ({y[0]:.4f}, {y[1]:.4f}), {y_note}", title_justify="left")
    for col in ("θ", "dE_1/dθ", "dE_2/dθ", "dLoss/dθ", "printed", "exact, rounded", "verdict"):
        t.add_column(col, justify="left" if col == "θ" else "right")
    for k in a.names:
        p = a.printed[k]
        exact = grads[k]
        e1, e2 = (float(v.ravel()[0]) for v in dec.terms[k])
        off = abs(exact - p.value) / p.half_unit
        verdict = "holds" if p.holds(exact) else (f"off {off:.1f}x" if off < 100 else f"off {off:.0f}x")
        t.add_row(k, f"{e1:.4g}", f"{e2:.4g}", f"{exact:.4g}", p.text, round_like(exact, p), verdict)
    con.print(t)
    con.print("Signs: bptt uses dE_i/dy'_i = (y'_i - y_i). Every gradient is affine in the targets, so the seed's "
              "dropped minus sign is absorbed by the targets and changes none of the conclusions below. "
              "Fitted targets: weighted least squares (each claim in units of its printed rounding) over the printed "
              "gradients other than the one flagged below, as `bptt check` infers them. "
              "'off Nx': the exact value misses the printed one by N times the printed rounding (half a unit in its last digit).\n")

    con.print("[bold]Which printed gradients can any targets reproduce?[/bold] (exact, by linear programming over y_1, y_2)")
    con.print(f"- All five at once: no. The best targets still miss by {a.misfit_all:.1f}x the printed rounding.")
    sets = "; ".join("{" + ", ".join(s) + f"}} at y = ({yy[0]:.3f}, {yy[1]:.3f})" for s, yy in a.maximal_sets)
    con.print(f"- The most that one choice of targets reproduces to the printed digits is {len(a.maximal_sets[0][0])}: {sets}.")
    for k in a.unreproducible:
        others = [n for n in a.names if n != k]
        worst_other = min(v for n, v in a.misfit_without.items() if n != k)
        con.print(
            f"- [bold]dLoss/d{k} = {a.printed[k].text} is the gradient no choice of targets reproduces[/bold] alongside the others: "
            f"without it, {{{', '.join(others)}}} come within {a.misfit_without[k]:.1f}x the rounding; "
            f"leaving out any other gradient instead still misses by at least {worst_other:.1f}x."
        )
    con.print(
        f"- A check that needs no targets at all: with x = (1, 0) and h_0 = 0, dLoss/dw_h = h_1 (dLoss/db_1 - dLoss/dw_x) "
        f"for every y. The printed values give {a.identity_rhs:.6f} on the right and {a.identity_lhs} on the left."
    )

    con.print("\n[bold]Errata[/bold] (everything wrong or inconsistent in the seed, with the correction)")
    for i, (what, printed, correct) in enumerate(seed.ERRATA, 1):
        con.print(f"{i:2d}. {what}: the seed has  {printed}\n    correct: {correct}", markup=False)
    n = len(seed.ERRATA) + 1
    con.print(f"{n:2d}. printed gradients: see the analysis above; dLoss/d{', dLoss/d'.join(a.unreproducible) or '?'} "
              "matches no targets together with the rest.", markup=False)
    return 0


# ------------------------------------------------------------------ bptt train / predict / gradflow
def _add_train(sub) -> None:
    from .tasks import TASKS

    p = sub.add_parser("train", help="train the network on a task; writes model, metrics and plots to --out",
                       description="Train the seed's network on a task. Writes model.npz, metrics.json, config.json, "
                       "checkpoint.npz and loss/predictions/gradflow PNGs to --out. Options left out take the task's defaults.")
    p.add_argument("--task", default=None, help=f"one of {', '.join(TASKS)}")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (must be new or empty unless --force or --resume)")
    p.add_argument("--force", action="store_true", help="write into an existing non-empty --out")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint (its own settings; other options are ignored)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--backend", default="numpy", help="numpy (default: this library's engine) or torch "
                   "(bptt.torch.SigmoidRNN, data-parallel with DistributedDataParallel; see README '## PyTorch layer')")
    p.add_argument("--nproc", type=int, default=None, metavar="N", help="--backend torch: processes on this machine (gloo over 127.0.0.1)")
    g = p.add_argument_group("model")
    g.add_argument("--hidden", type=int, default=None, metavar="H", help="hidden units")
    g.add_argument("--hidden-activation", default=None, help=f"one of {', '.join(HIDDEN_ACTIVATIONS)} (default sigmoid)")
    g.add_argument("--output-activation", default=None, help=f"one of {', '.join(OUTPUT_ACTIVATIONS)} (default sigmoid)")
    g.add_argument("--dtype", default=None, help="float64 (default) or float32")
    g = p.add_argument_group("optimisation")
    g.add_argument("--optimizer", default=None, help="adam (default) or sgd")
    g.add_argument("--lr", type=float, default=None, help="learning rate")
    g.add_argument("--momentum", type=float, default=None, help="sgd momentum (default 0)")
    g.add_argument("--nesterov", action="store_true", default=None, help="Nesterov momentum (sgd)")
    g.add_argument("--clip", default=None, metavar="NORM", help="clip the global gradient norm (default 1; 'none' to disable)")
    g.add_argument("--schedule", default=None, help="constant (default) or cosine")
    g.add_argument("--min-lr", type=float, default=None, help="cosine schedule's final learning rate (default 0)")
    g.add_argument("--epochs", type=int, default=None)
    g.add_argument("--batch-size", type=int, default=None)
    g.add_argument("--chunk", type=int, default=None, metavar="K", help="truncated BPTT over streams: update every K steps, hidden state carried")
    g.add_argument("--truncate", type=int, default=None, metavar="K", help="each error backpropagates at most K steps")
    g.add_argument("--patience", type=int, default=None, metavar="E", help="early stopping after E epochs without a better validation loss")
    g.add_argument("--seed", type=int, default=None, help="one seed for data, initialisation and shuffling (default 0)")
    g.add_argument("--checkpoint-every", type=int, default=None, metavar="E", help="checkpoint every E epochs (default 10)")
    g = p.add_argument_group("task options")
    for opt, typ, hlp in (("--bits", int, "binary-addition: operand bits"), ("--n-train", int, "training sequences/pairs"),
                          ("--n-val", int, "validation sequences/pairs/values"), ("--n-test", int, "test sequences/pairs/values"),
                          ("--length", int, "sine, adding: sequence length"), ("--noise", float, "sine: noise standard deviation"),
                          ("--window", int, "sunspots, csv: window length"), ("--csv", str, "csv: the file"),
                          ("--column", str, "csv: the column (header name)")):
        g.add_argument(opt, type=typ, default=None, help=hlp)
    p.set_defaults(run=_run_train)


def train_config_from_args(args: argparse.Namespace):
    """All of `bptt train`'s options -> one TrainConfig (task defaults under the options given)."""
    from .train import config_for

    if args.task is None:
        raise BPTTError("bptt train: --task is required (or --resume to continue a run); e.g. --task binary-addition")
    clip: Any = None
    if args.clip is not None:
        clip = None if str(args.clip).lower() == "none" else _number(args.clip, "--clip")
    given = {
        "hidden_size": args.hidden, "hidden_activation": args.hidden_activation, "output_activation": args.output_activation,
        "dtype": args.dtype, "optimizer": args.optimizer, "lr": args.lr, "momentum": args.momentum, "nesterov": args.nesterov,
        "schedule": args.schedule, "min_lr": args.min_lr, "epochs": args.epochs, "batch_size": args.batch_size,
        "chunk": args.chunk, "truncate": args.truncate, "patience": args.patience, "seed": args.seed,
        "checkpoint_every": args.checkpoint_every,
    }
    settings = {k: v for k, v in given.items() if v is not None}
    if args.clip is not None:
        settings["clip"] = clip
    task_options = {k: getattr(args, k) for k in ("bits", "n_train", "n_val", "n_test", "length", "noise", "window", "column")
                    if getattr(args, k) is not None}
    if args.csv is not None:
        from pathlib import Path

        task_options["path"] = str(Path(args.csv).resolve())  # resume and gradflow --model work from any folder
    return config_for(args.task, task_options, **settings)


def _run_train(args: argparse.Namespace) -> int:
    from .train import run_cli

    if args.backend != "numpy" or args.nproc is not None:
        if args.backend == "numpy":
            raise BPTTError("--nproc needs --backend torch (data-parallel training runs on PyTorch)")
        from .ddp import run_train_args

        return run_train_args(args)

    cfg = None if args.resume else train_config_from_args(args)
    return run_cli(cfg, args.out, force=args.force, resume=args.resume, progress=not args.no_progress)


def _add_predict(sub) -> None:
    p = sub.add_parser("predict", help="run a trained model; series models answer in the data's own units",
                       description="Predict with a model written by `bptt train`. Series models (sunspots, csv, sine) take "
                       "values in the data's units and return one-step-ahead predictions in those units; the last one "
                       "forecasts the next value. Without input, sunspots forecasts the year after its data.")
    p.add_argument("--model", required=True, metavar="DIR", help="the --out folder of `bptt train` (or its model.npz)")
    p.add_argument("--x", default=None, metavar="V1,V2,...",
                   help="input steps, comma-separated; a step with several inputs as a:b (e.g. 0.3:0,0.7:1)")
    p.add_argument("--csv", default=None, metavar="FILE", help="read the input series from a CSV file's --column")
    p.add_argument("--column", default=None, help="the CSV column")
    p.add_argument("--a", default=None, metavar="A1,A2,...", help="binary-addition: first operands")
    p.add_argument("--b", default=None, metavar="B1,B2,...", help="binary-addition: second operands")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=_run_predict)


def _run_predict(args: argparse.Namespace) -> int:
    from .train import predict_cli

    return predict_cli(args.model, x=args.x, csv=args.csv, column=args.column, a=args.a, b=args.b, as_json=args.json)


def _add_gradflow(sub) -> None:
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
    p.set_defaults(run=_run_gradflow)


def _run_gradflow(args: argparse.Namespace) -> int:
    from .train import gradflow_cli

    return gradflow_cli(args.out, force=args.force, model=args.model, index=args.index, hidden=args.hidden,
                        length=args.length, init_scale=args.init_scale, seed=args.seed, as_json=args.json,
                        x=args.x, y=args.y)


# ------------------------------------------------------------------ bptt explain / bptt check (derive.py, check.py)
def _add_explain(sub) -> None:
    p = sub.add_parser("explain", help="write the chain-rule derivation of the five gradients as a document",
                       description="Write the seed's derivation for this model and sequence: the chain-rule formulas, "
                                   "the same with the numbers in, the building blocks and the five gradients. "
                                   "Without --y the targets stay symbols (as in the seed) and every gradient is affine in them.")
    add_model_options(p)
    p.add_argument("--x", default="1,0", metavar="X1,X2,...", help="input sequence (default 1,0: the seed's)")
    p.add_argument("--y", default=None, metavar="Y1,Y2,...", help="targets (default: left as symbols y_1, y_2, ...)")
    p.add_argument("--format", default="md", metavar="md|tex|text",
                   help="md: Markdown with LaTeX math (default); tex: a complete LaTeX document; text: plain text")
    p.add_argument("--expand", default="3", metavar="T",
                   help="write every factor out, as the seed does, up to this many steps (default 3); "
                        "longer sequences name the repeated factors once")
    p.add_argument("--out", default=None, metavar="FILE", help="write the document to FILE instead of standard output")
    p.add_argument("--force", action="store_true", help="with --out: overwrite FILE if it exists")
    p.set_defaults(run=_run_explain)


def _write_out(path: str, text: str, force: bool) -> None:
    """Atomic write that never overwrites an existing file unless asked."""
    import os

    from .io import atomic_write_text

    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise BPTTError(f"--out {path}: the folder {parent} does not exist; create it or choose another path")
    if os.path.isdir(path):
        raise BPTTError(f"--out {path}: is a directory; give a file name")
    if os.path.exists(path) and not force:
        raise BPTTError(f"--out {path}: the file exists; add --force to overwrite it or choose another name")
    try:
        atomic_write_text(path, text)
    except OSError as e:
        raise BPTTError(f"--out {path}: cannot write it ({e.strerror or e}); check the path and permissions") from None


def _run_explain(args: argparse.Namespace) -> int:
    from . import derive

    fmt = args.format
    if fmt not in derive.FORMATS:
        raise BPTTError(f"--format {fmt!r} is not supported; choose md, tex or text")
    m = model_from_args(args)
    if args.reduction not in ("mean", "sum"):
        raise BPTTError(f"--reduction {args.reduction!r} is not supported; choose mean or sum")
    x = _numbers(args.x, "--x")
    y = None if args.y is None else _numbers(args.y, "--y")
    if y is not None and len(y) != len(x):
        raise BPTTError(f"--x has {len(x)} steps but --y has {len(y)}; give one target per input step")
    expand = _number(args.expand, "--expand")
    if expand != int(expand) or expand < 0:
        raise BPTTError(f"--expand must be a whole number of steps (0 or more), got {args.expand!r}")
    if len(x) > derive.MAX_T:
        raise BPTTError(f"--x has {len(x)} steps; bptt explain writes documents up to {derive.MAX_T} steps")
    params = {k: float(v.ravel()[0]) for k, v in m.params().items()}
    doc = derive.explain(params, x, h0=_number(args.h0, "--h0"), y=y, hidden_activation=m.hidden_activation,
                         output_activation=m.output_activation, reduction=args.reduction, fmt=fmt, expand=int(expand))
    if args.out is None:
        sys.stdout.write(doc)
    else:
        _write_out(args.out, doc, args.force)
        print(f"wrote {args.out} ({fmt}, T = {len(x)})", file=sys.stderr)
    return 0


def _add_check(sub) -> None:
    p = sub.add_parser("check", help="check hand-computed BPTT numbers (a TOML or JSON claims file)",
                       description="Check each claimed number (h_t, y'_t, dE_i/dθ, dLoss/dθ, ...) at the precision it "
                                   "is written with. Without targets in the file, infer the targets that best explain "
                                   "the claims and say which claims no targets can explain. Exit status: 0 all hold, "
                                   "1 some claim is wrong, 2 the file is unusable. See examples/seed_claims.toml.")
    p.add_argument("file", metavar="FILE", help="claims file, .toml or .json")
    p.set_defaults(run=_run_check)


def _run_check(args: argparse.Namespace) -> int:
    from . import check

    report = check.check(check.load(args.file))
    check.print_report(report)
    return 0 if report.all_hold else 1


# ------------------------------------------------------------------ bptt bench (bench.py)
def _add_bench(sub) -> None:
    p = sub.add_parser("bench", help="time a full gradient against PyTorch eager and JAX; --memory: checkpointing demo",
                       description="Time one full gradient (loss and five gradients, float32) of this library, PyTorch "
                       "eager, JAX jit and the bptt.torch layer (CPU, and CUDA where present) on the issue's grid, after "
                       "checking all agree; print a Markdown table with ratios and GFLOP/s beside the measured GEMM "
                       "peak.  Peers not installed show as absent.")
    from .bench import add_arguments

    add_arguments(p)
    p.set_defaults(run=_run_bench)


def _run_bench(args: argparse.Namespace) -> int:
    from .bench import run

    return run(args)


# ------------------------------------------------------------------ entry point
# Each entry adds one subcommand; its run(args) -> exit status.
SUBCOMMANDS: list[Callable[[Any], None]] = [_add_seed, _add_grad, _add_train, _add_predict, _add_gradflow, _add_explain, _add_check, _add_bench]


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(prog="bptt", description="Exact backpropagation through time for the seed's sigmoid RNN.")
    parser.add_argument("--version", action="version", version=f"bptt {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "run", None):
            parser.print_help()
            return EXIT_BAD_INPUT
        return int(args.run(args) or 0)
    except BPTTError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
