"""`bptt seed`: the seed's worked example reproduced, its printed numbers audited, its errata listed."""

from __future__ import annotations

import argparse

from ..validation import BPTTError
from ._common import console, numbers


def add(sub) -> None:
    p = sub.add_parser("seed", help="reproduce the seed's worked example and list its errata",
                       description="Reproduce the seed's worked example (w = w_x = w_h = b1 = b2 = 1, h_0 = 0, x = (1, 0)).")
    p.add_argument("--y", default=None, metavar="Y1,Y2",
                   help="targets y_1,y_2 (the seed never states them; default: the targets that best explain its printed gradients)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rich.table import Table

    from .. import seed
    from ..audit import Printed, round_like

    con = console()
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
        vals = numbers(args.y, "--y")
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
