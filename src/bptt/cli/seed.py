"""`bptt seed`: `bptt check` on the seed's packaged claims file, presented as the seed's example, then its errata."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from ..validation import BPTTError
from ._common import numbers
from ._common import console, printable
from .check import best_other_misfit, targets_text, verdict_text

if TYPE_CHECKING:
    from ..check import ClaimsFile
    from ..seed import SeedAudit


# Where `bptt --help` lists this command; the numba modules its first run on a machine compiles.
ORDER = 10
COMPILES = ("_floatmath_compiled", "_products_compiled")


def add(sub) -> None:
    p = sub.add_parser("seed", help="reproduce the seed's worked example and list its errata",
                       description="Reproduce the seed's worked example (w = w_x = w_h = b1 = b2 = 1, h_0 = 0, x = (1, 0)): "
                                   "`bptt check` on the packaged seed claims file, then the seed's errata.")
    p.add_argument("--y", default=None, metavar="Y1,Y2",
                   help="targets y_1,y_2 (the seed never states them; default: the targets that best explain its printed gradients)")
    p.add_argument("--json", action="store_true", help="print one JSON object: `bptt check --json`'s report of the seed's "
                   "claims under \"check\", plus h_2, the per-term gradients, the target-free identity and the errata")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from .. import seed

    y = _targets(args.y)
    a = seed.audit(y)
    if args.json:
        print(json.dumps(seed_dict(a), indent=2, ensure_ascii=False))
        return 0
    con = console()
    _print_setup(con, a.report.cf)
    con.print(_blocks_table(a))
    con.print(_gradients_table(a, given=y is not None, roomy=printable("θ", con.encoding) == "θ"))
    _say(con, _notes(a, given=y is not None))
    _print_analysis(con, a)
    _print_errata(con, a)
    return 0


def seed_dict(a: "SeedAudit") -> dict:
    """`bptt seed --json`: the check report (the layout of `bptt check --json`) and what the seed adds."""
    from .. import check

    return {"check": check.report_dict(a.report), "h_2": a.h_2, "terms": {k: list(v) for k, v in a.terms.items()},
            "identity": {"lhs": a.identity.lhs, "rhs": a.identity.rhs,
                         "says": "dLoss/dw_h = h_1 (dLoss/db_1 - dLoss/dw_x) for every y, at x = (1, 0), h_0 = 0"},
            "errata": [{"what": e.what, "printed": e.printed, "correct": e.correct} for e in a.errata]}


def _targets(text: str | None) -> list[float] | None:
    if text is None:
        return None
    vals = numbers(text, "--y")
    if len(vals) != 2:
        raise BPTTError(f"--y: the seed has two steps, so give two targets like --y 0.9,0.5; got {len(vals)}")
    return vals


def _say(con, text: str) -> None:
    con.print(text, markup=False)


def _print_setup(con, cf: "ClaimsFile") -> None:
    scalars = cf.scalar_params
    values = {f"{v:g}" for v in scalars.values()}
    params = (" = ".join(scalars) + f" = {values.pop()}" if len(values) == 1
              else ", ".join(f"{k} = {v:g}" for k, v in scalars.items()))
    terms = " + ".join(f"E_{i}" for i in range(1, cf.T + 1))
    loss = f"1/{cf.T} ({terms})" if cf.reduction == "mean" else terms
    con.print(f"[bold]The seed's worked example[/bold]: one {cf.hidden_activation} hidden unit, "
              f"one {cf.output_activation} output, T = {cf.T}")
    _say(con, f"{params},  h_0 = {float(cf.h0[0]):g},  x = ({', '.join(f'{v:g}' for v in cf.x[:, 0])}),  Loss = {loss},  "
              "E_i = 1/2 (y_i - y'_i)^2\n")


def _blocks_table(a: "SeedAudit"):
    from rich.table import Table

    t = Table(title="building blocks (independent of the targets)", title_justify="left")
    for col in ("quantity", "seed printed", "exact", "verdict"):
        t.add_column(col, justify="right" if col != "quantity" else "left")
    for r in a.report.rows:
        if not r.claim.depends_on_targets:
            t.add_row(r.claim.key, r.claim.printed.text, f"{r.exact:.6f}", verdict_text(r.verdict, short=True))
    t.add_row("h_2", "(not printed)", f"{a.h_2:.6f}", "")
    return t


def _gradients_table(a: "SeedAudit", given: bool, roomy: bool = True):
    """roomy: False where θ is spelled 'theta': the dθ headers then break after the '/', and the table
    drops its outer padding, to fit 80 columns."""
    from rich.table import Table

    y = a.report.targets or []
    how = "given with --y" if given else "fitted (see below)"
    t = Table(title=f"gradients at y = ({targets_text(y)}), {how}", title_justify="left", pad_edge=roomy)
    names = [f"dE_{i}/dθ" for i in range(1, a.report.cf.T + 1)] + ["dLoss/dθ"]
    cols = ["θ"] + [n if roomy else n.replace("/", "/\n") for n in names] + ["printed", "exact, rounded", "verdict"]
    for col in cols:
        t.add_column(col, justify="left" if col == "θ" else "right", overflow="fold")  # never "…"
    for r in a.report.rows:
        if r.claim.kind == "dLoss":
            k = r.claim.theta
            t.add_row(k, *(f"{v:.4g}" for v in a.terms[k]), f"{r.exact:.4g}", r.claim.printed.text, r.verdict.rounded,
                      verdict_text(r.verdict, short=True))
    return t


def _notes(a: "SeedAudit", given: bool) -> str:
    how = ("Targets given with --y: the verdicts above are at these targets; the analysis below holds for any targets. "
           if given else
           "Fitted targets: weighted least squares (each claim in units of its printed rounding) over the printed "
           "gradients other than the one flagged below, as `bptt check` infers them (`bptt seed` is `bptt check` "
           "on the packaged claims file). ")
    return ("Signs: bptt uses dE_i/dy'_i = (y'_i - y_i). Every gradient is affine in the targets, so the seed's "
            "dropped minus sign is absorbed by the targets and changes none of the conclusions below. " + how +
            "'off Nx': the exact value misses the printed one by N times the printed rounding (half a unit in its "
            "last digit).\n")


_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def _print_analysis(con, a: "SeedAudit") -> None:
    an = a.analysis
    theta = {r.claim.key: r.claim.theta for r in a.report.rows if r.claim.kind == "dLoss"}
    printed = {r.claim.key: r.claim.printed.text for r in a.report.rows}
    con.print("[bold]Which printed gradients can any targets reproduce?[/bold] "
              "(exact, by linear programming over y_1, y_2)")
    n = _WORDS[len(theta)] if len(theta) < len(_WORDS) else str(len(theta))
    if an.misfit_all is not None and an.misfit_all <= 1.0:
        _say(con, f"- All {n} at once: yes, to within {an.misfit_all:.2f}x the printed rounding.")
    else:
        _say(con, f"- All {n} at once: no. The best targets still miss by {an.misfit_all:.1f}x the printed rounding.")
    if an.largest_sets:
        sets = "; ".join("{" + ", ".join(theta[c] for c in s.claims) + "}"
                         + f" at y = ({', '.join(f'{v:.3f}' for v in s.targets)})" for s in an.largest_sets)
        _say(con, f"- The most that one choice of targets reproduces to the printed digits is "
                  f"{len(an.largest_sets[0].claims)}: {sets}.")
    for k in an.unexplainable:
        others = [theta[c] for c in theta if c != k]
        con.print(f"- [bold]{k} = {printed[k]} is the gradient no choice of targets reproduces[/bold] alongside the "
                  f"others: without it, {{{', '.join(others)}}} come within {an.misfit_without[k]:.1f}x the rounding; "
                  f"leaving out any other gradient instead still misses by at least {best_other_misfit(an, k):.1f}x.")
    _say(con, f"- A check that needs no targets at all: with x = (1, 0) and h_0 = 0, dLoss/dw_h = h_1 (dLoss/db_1 - "
              f"dLoss/dw_x) for every y. The printed values give {a.identity.rhs:.6f} on the right and "
              f"{a.identity.lhs} on the left.")


def _print_errata(con, a: "SeedAudit") -> None:
    con.print("\n[bold]Errata[/bold] (everything wrong or inconsistent in the seed, with the correction)")
    for i, e in enumerate(a.errata, 1):
        _say(con, f"{i:2d}. {e.what}: the seed has  {e.printed}\n    correct: {e.correct}")
    flagged = ", ".join(a.analysis.unexplainable) or "?"
    _say(con, f"{len(a.errata) + 1:2d}. printed gradients: see the analysis above; {flagged} "
              "matches no targets together with the rest.")
