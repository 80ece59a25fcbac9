"""`bptt check FILE`: hand-computed BPTT numbers checked at their written precision.

Also the presentation `bptt seed` shares (it is `bptt check` on the packaged seed claims
file): verdicts in words and the target analysis.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ._common import console

if TYPE_CHECKING:
    from ..audit import Verdict
    from ..check import Report, TargetAnalysis


# Where `bptt --help` lists this command; whether its first run on a machine compiles the numba kernels.
ORDER = 70
COMPILES = False


def add(sub) -> None:
    p = sub.add_parser("check", help="check hand-computed BPTT numbers (a TOML or JSON claims file)",
                       description="Check each claimed number (h_t, y'_t, dE_i/dθ, dLoss/dθ, ...) at the precision it "
                                   "is written with. Without targets in the file, infer the targets that best explain "
                                   "the claims and say which claims no targets can explain. Exit status: 0 all hold, "
                                   "1 some claim is wrong, 2 the file is unusable. See examples/seed_claims.toml.")
    p.add_argument("file", metavar="FILE", help="claims file, .toml or .json")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from .. import check

    report = check.check(check.load(args.file))
    print_report(report, console(wide=True))
    return 0 if report.all_hold else 1


# ------------------------------------------------------------------ verdicts in words
def verdict_text(v: "Verdict", short: bool = False) -> str:
    """'holds', 'WRONG: truncated, not rounded (exact rounds to 0.868)', ...; short: for narrow tables."""
    from ..audit import HOLDS, SIGN, TRUNCATED

    if v.kind == HOLDS:
        return "holds"
    if v.kind == TRUNCATED:
        return f"truncated (rounds to {v.rounded})" if short else f"WRONG: truncated, not rounded (exact rounds to {v.rounded})"
    if v.kind == SIGN:
        return f"WRONG sign (rounds to {v.rounded})" if short else f"WRONG sign (exact rounds to {v.rounded})"
    if short:
        return f"off {v.misfit:.1f}x" if v.misfit < 100 else f"off {v.misfit:.0f}x"
    return f"WRONG (exact rounds to {v.rounded}; off by {v.misfit:.{2 if v.misfit < 10 else 1}f}x the rounding)"


def fmt(v: float) -> str:
    return f"{v:.6g}" if v == 0 or 1e-4 <= abs(v) < 1e6 else f"{v:.6e}"


# Long target lists are shown by their ends; --json (or the Python API) has them all.
TARGETS_SHOWN = 12


def targets_text(y) -> str:
    y = list(y)
    if len(y) <= TARGETS_SHOWN:
        return ", ".join(f"{v:.4f}" for v in y)
    head, tail = y[: TARGETS_SHOWN - 3], y[-3:]
    return (", ".join(f"{v:.4f}" for v in head) + f", ... ({len(y) - TARGETS_SHOWN} more) ..., "
            + ", ".join(f"{v:.4f}" for v in tail))


# ------------------------------------------------------------------ the report
def print_report(report: "Report", con) -> None:
    """The claimed / exact / verdict table and the target analysis."""
    from rich.table import Table

    cf = report.cf
    say = _say(con)
    con.print(f"[bold]{_escape(cf.title or cf.path)}[/bold]", markup=True)
    say(f"model: w={fmt(cf.params['w'])} w_x={fmt(cf.params['w_x'])} w_h={fmt(cf.params['w_h'])} "
        f"b1={fmt(cf.params['b1'])} b2={fmt(cf.params['b2'])} h0={fmt(cf.h0)}, hidden {cf.hidden_activation}, "
        f"output {cf.output_activation}, reduction {cf.reduction}; x = ({', '.join(fmt(v) for v in cf.x)})")
    if not report.targets_fitted:
        say(f"targets y = ({', '.join(fmt(v) for v in report.targets or [])}) (given)")
    elif report.targets is not None:
        undetermined = report.analysis.undetermined if report.analysis else []
        say(f"targets not given; fitted y = ({targets_text(report.targets)})"
            + (f"; y_{', y_'.join(map(str, undetermined))} not determined by any claim (set to 0)"
               if undetermined else ""))
    t = Table(title_justify="left")
    for col, just in (("quantity", "left"), ("claimed", "right"), ("sig. fig.", "right"), ("exact", "right"),
                      ("verdict", "left")):
        t.add_column(col, justify=just)
    for r in report.rows:
        t.add_row(_escape(r.claim.key), r.claim.printed.text, str(r.claim.printed.significant_figures()),
                  fmt(r.exact) + (" *" if r.at_fitted_targets else ""), verdict_text(r.verdict))
    con.print(t)
    if any(r.at_fitted_targets for r in report.rows):
        say("* at the fitted targets")
    n_bad = sum(not r.holds for r in report.rows)
    say(f"{len(report.rows) - n_bad} of {len(report.rows)} claims hold at the precision written.")
    say("Gradients are compared with the true sign, dE_i/dy'_i = y'_i - y_i (the seed writes y_i - y'_i).")
    if not report.targets_fitted and report.negated_holds is not None and report.negated_holds > (report.plain_holds or 0):
        say(f"With every gradient claim negated, {report.negated_holds} of them would hold instead of "
            f"{report.plain_holds}: the file may use the seed's sign, (y_i - y'_i).")
    if report.analysis is not None:
        print_target_analysis(report.analysis, con)


def print_target_analysis(a: "TargetAnalysis", con) -> None:
    say = _say(con)
    if a.lsq_targets is None:
        say("No claim depends on the targets, so none were fitted.")
        return
    say("\nTargets not given: every gradient is affine in them, so they are inferred.")
    say("With unknown targets the sign convention does not matter: negating every gradient claim is the same "
        "as replacing y_t by 2 y'_t - y_t.")
    say(f"- Weighted least squares over all {len(a.kept) + len(a.unexplainable)} target-dependent "
        f"claims: y = ({targets_text(a.lsq_targets)}).")
    if a.misfit_all is not None and a.misfit_all <= 1.0:
        say(f"- One choice of targets reproduces every target-dependent claim to its written digits "
            f"(worst miss {a.misfit_all:.2f}x the rounding, by linear programming).")
        return
    say(f"- No targets reproduce all of them: the best targets still miss by {a.misfit_all:.1f}x the "
        f"written rounding (linear programming over y).")
    for n in a.unexplainable_alone:
        say(f"- {n}: no targets give this value even on its own.")
    if a.largest_sets:
        how = "" if a.largest_exhaustive else " (greedy search: there are too many subsets to try them all)"
        sets = "; ".join("{" + ", ".join(s.claims) + "}" for s in a.largest_sets)
        say(f"- The most that one choice of targets reproduces is {len(a.largest_sets[0].claims)}{how}: {sets}.")
    if a.misfit_without:
        parts = ", ".join(f"{n}: {v:.1f}x" for n, v in sorted(a.misfit_without.items(), key=lambda kv: kv[1]))
        say(f"- Best misfit with one claim left out: {parts}.")
    for n in a.unexplainable:
        if n in a.unexplainable_alone:
            continue
        say(f"- {n} is the claim no targets explain alongside the others: leaving it out brings the misfit "
            f"to {a.misfit_without.get(n, float('nan')):.1f}x; leaving out any other still misses by "
            f"{best_other_misfit(a, n):.1f}x or more.")
    if a.kept:
        say(f"- Fitted targets (least squares over {', '.join(a.kept)}): "
            f"y = ({targets_text(a.targets or [])}); the verdicts marked * are at these.")


def best_other_misfit(a: "TargetAnalysis", name: str) -> float:
    """The best misfit with one claim other than ``name`` left out."""
    return min((v for n, v in a.misfit_without.items() if n != name), default=float("nan"))


def _say(con):
    """print one paragraph as plain text (no markup, wrapped only by the terminal)."""
    return lambda text: con.print(text, markup=False, soft_wrap=True)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
