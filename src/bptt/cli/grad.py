"""`bptt grad`: loss and the five gradients of the scalar network, as a table or JSON."""

from __future__ import annotations

import argparse
import json

from .. import losses
from ..engine import PARAM_NAMES
from ._common import add_model_options, console, fmt, model_from_args, sequence_from_args


# Where `bptt --help` lists this command; the numba modules its first run on a machine compiles.
ORDER = 20
COMPILES = ("kernels",)


def add(sub) -> None:
    p = sub.add_parser("grad", help="loss and the five gradients for a scalar model and sequence",
                       description="Loss and exact BPTT gradients of the seed's scalar network.")
    add_model_options(p)
    p.add_argument("--x", required=True, metavar="X1,X2,...", help="input sequence, comma-separated")
    p.add_argument("--y", required=True, metavar="Y1,Y2,...", help="target sequence, comma-separated")
    p.add_argument("--truncate", type=int, default=None, metavar="K", help="truncated BPTT: each error backpropagates at most K steps")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
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

    con = console()
    t = Table(title="forward", title_justify="left")
    for col in ("t", "x_t", "h_t", "y'_t", "y_t"):
        t.add_column(col, justify="right")
    t.add_row("0", "", fmt(h[0]), "", "")
    for i in range(len(x)):
        t.add_row(str(i + 1), fmt(x[i]), fmt(h[i + 1]), fmt(y_pred[i]), fmt(y[i]))
    con.print(t)
    named = "" if m.loss_name == losses.DEFAULT else f"loss={m.loss_name}, "  # the seed's loss goes unsaid
    t = Table(title=f"Loss = {fmt(loss, 10)}  ({named}reduction={args.reduction}"
              + (f", truncated to {args.truncate} steps" if args.truncate else "") + ")", title_justify="left")
    t.add_column("θ")
    t.add_column("dLoss/dθ", justify="right")
    for k in PARAM_NAMES:
        t.add_row(k, fmt(g[k], 10))
    con.print(t)
    if m.loss_name == losses.DEFAULT:
        con.print("dE_t/dy'_t = (y'_t - y_t): the true sign (the seed writes y_t - y'_t).")
    else:  # the table's formula; `bptt explain --loss` derives dE_t/dy'_t from it
        con.print(f"E_t = {m.criterion.formula}  (--loss {m.loss_name}; the seed's is 1/2 (y - y')^2)")
    return 0
