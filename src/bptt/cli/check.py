"""`bptt check FILE`: hand-computed BPTT numbers checked at their written precision.

Also the presentation `bptt seed` shares (it is `bptt check` on the packaged seed claims
file): verdicts in words and the target analysis.
"""

from __future__ import annotations

import argparse
import re
from typing import TYPE_CHECKING

from ._common import console

if TYPE_CHECKING:
    from ..audit import Verdict
    from ..check import Report, TargetAnalysis


# Where `bptt --help` lists this command; the numba modules its first run on a machine compiles.
ORDER = 70
COMPILES = ()


def add(sub) -> None:
    p = sub.add_parser("check", help="check hand-computed BPTT numbers (a TOML or JSON claims file)",
                       description="Check each claimed number (h_t, y'_t, Loss, E_i, dE_i/dθ, dLoss/dθ, dLoss/dh_t, "
                                   "per-path and per-step contributions, ...) at the precision it is written with. "
                                   "Without targets in the file, infer the targets that best explain the claims and "
                                   "say which claims no targets can explain. Exit status: 0 all hold, 1 some claim "
                                   "is wrong, 2 the file is unusable. See examples/*.toml.")
    p.add_argument("file", metavar="FILE", help="claims file, .toml or .json")
    p.add_argument("--loss", metavar="NAME", default=None,
                   help="the loss E, replacing the file's model.loss: squared_error (any output), bce (sigmoid "
                        "output) or cross_entropy (softmax output)")
    p.add_argument("--json", action="store_true",
                   help="print the report as one JSON object (layout: docs/howto/claims.md, The JSON report) instead of the table")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from .. import check

    report = check.check(check.load(args.file, loss=args.loss))
    status = 0 if report.all_hold else 1
    if args.json:
        print(json_text(check.report_dict(report, status)))
    else:
        print_report(report, console(wide=True))
    return status


# ------------------------------------------------------------------ verdicts in words
def verdict_text(v: "Verdict", short: bool = False) -> str:
    """'holds', 'WRONG: truncated, not rounded (exact rounds to 0.868)', ...; short: for narrow tables."""
    from ..audit import FACTOR2, HOLDS, SIGN, TRUNCATED

    if v.kind == HOLDS:
        return "holds"
    if v.kind == FACTOR2:
        how = "half" if abs(v.printed.value) < abs(v.exact) else "twice"
        return (f"{how} the exact (rounds to {v.rounded})" if short else
                f"WRONG: {how} the exact value (a 1/2 slip; exact rounds to {v.rounded})")
    if v.kind == TRUNCATED:
        return f"truncated (rounds to {v.rounded})" if short else f"WRONG: truncated, not rounded (exact rounds to {v.rounded})"
    if v.kind == SIGN:
        return f"WRONG sign (rounds to {v.rounded})" if short else f"WRONG sign (exact rounds to {v.rounded})"
    if short:
        return f"off {v.misfit:.1f}x" if v.misfit < 100 else f"off {v.misfit:.0f}x"
    return f"WRONG (exact rounds to {v.rounded}; off by {v.misfit:.{2 if v.misfit < 10 else 1}f}x the rounding)"


def fmt(v: float, digits: int = 6) -> str:
    """v to ``digits`` significant figures (a claim's own and two more in the exact column)."""
    return f"{v:.{digits}g}" if v == 0 or 1e-4 <= abs(v) < 1e6 else f"{v:.{digits}e}"


# Long target lists are shown by their ends; --json (or the Python API) has them all.
TARGETS_SHOWN = 12


def targets_text(y, O: int = 1) -> str:
    """y_1, ..., y_T (long lists by their ends); with O > 1 outputs, flattened y is shown step by step."""
    y = list(y)
    if O > 1:
        y = [y[i: i + O] for i in range(0, len(y), O)]
    one = (lambda v: f"{v:.4f}") if O == 1 else (lambda v: "(" + ", ".join(f"{e:.4f}" for e in v) + ")")
    if len(y) <= TARGETS_SHOWN:
        return ", ".join(one(v) for v in y)
    head, tail = y[: TARGETS_SHOWN - 3], y[-3:]
    return (", ".join(one(v) for v in head) + f", ... ({len(y) - TARGETS_SHOWN} more) ..., "
            + ", ".join(one(v) for v in tail))


def array_text(a) -> str:
    """A number, or a nested list of numbers written with ``fmt``."""
    if getattr(a, "ndim", 0) == 0:
        return fmt(float(a))
    return "[" + ", ".join(array_text(v) for v in a) + "]"


# ------------------------------------------------------------------ the report
def print_report(report: "Report", con) -> None:
    """The claimed / exact / verdict table and the target analysis."""
    from rich.table import Table

    cf = report.cf
    say = _say(con)
    con.print(f"[bold]{_escape(cf.title or cf.path)}[/bold]", markup=True)
    say(_model_text(cf))
    say(f"loss: {cf.loss.describe(cf.T, cf.O)}" + _scored_text(cf))
    _print_targets(report, say)
    t = Table(title_justify="left")
    for col, just in (("quantity", "left"), ("claimed", "right"), ("sig. fig.", "right"), ("exact", "right"),
                      ("verdict", "left")):
        t.add_column(col, justify=just)
    for r in report.rows:
        sig = r.claim.printed.significant_figures()
        t.add_row(_escape(r.claim.key), r.claim.printed.text, str(sig),
                  fmt(r.exact, max(6, sig + 2)) + (" *" if r.at_fitted_targets else ""),
                  _hint_text(r) or verdict_text(r.verdict))
    con.print(t)
    if any(r.at_fitted_targets for r in report.rows):
        say("* at the fitted targets")
    n_bad = sum(not r.holds for r in report.rows)
    say(f"{len(report.rows) - n_bad} of {len(report.rows)} claims hold at the precision written.")
    if any(r.claim.dependence == "affine" and r.claim.kind not in ("Loss", "E") for r in report.rows):
        de = "y'_i - y_i" if cf.loss.half else "2 (y'_i - y_i)"
        de = f"dE_i/dy'_i = {de}" if cf.loss.squared else "dE_i/du_i = y'_i - y_i"
        say(f"Gradients are compared with the true sign, {de} (the seed, and others, write the "
            "opposite sign).")
    if not report.targets_fitted and report.negated_holds is not None and report.negated_holds > (report.plain_holds or 0):
        say(f"With every gradient claim negated, {report.negated_holds} of them would hold instead of "
            f"{report.plain_holds}: the file may use the seed's sign, (y_i - y'_i).")
    if any(r.hint == "transposed" for r in report.rows):
        say("A matrix that holds transposed: the source may write row vectors (x W, h W_hh); say so with "
            "layout = \"row\" in [model], and write the model's matrices as the source does.")
    if report.analysis is not None:
        print_target_analysis(report.analysis, con, cf.O, cf.loss.name)


_HINTS = {"transposed": "transposed", "previous_step": "the value of step t - 1",
          "next_step": "the value of step t + 1", "factor_T": "off by a factor T (mean vs sum?)"}


def _hint_text(r) -> str | None:
    """'WRONG: transposed (exact rounds to ...)' and the like, for a row with a recognised slip."""
    if r.hint is None:
        return None
    return f"WRONG: {_HINTS.get(r.hint, r.hint)} (exact rounds to {r.verdict.rounded})"


def _model_text(cf) -> str:
    acts = f"hidden {cf.hidden_activation}, output {cf.output_activation}"
    xs = ", ".join(fmt(v) for v in cf.x[:, 0]) if cf.D == 1 else ", ".join(array_text(v) for v in cf.x)
    if cf.is_scalar:
        p = cf.scalar_params
        return (f"model: w={fmt(p['w'])} w_x={fmt(p['w_x'])} w_h={fmt(p['w_h'])} b1={fmt(p['b1'])} "
                f"b2={fmt(p['b2'])} h0={fmt(float(cf.h0[0]))}, {acts}; x = ({xs})")
    params = " ".join(f"{k}={array_text(v)}" for k, v in cf.params.items())
    return f"model: D={cf.D} H={cf.H} O={cf.O}, {acts}; {params} h0={array_text(cf.h0)}; x = ({xs})"


def _scored_text(cf) -> str:
    if len(cf.loss.scored) == cf.T or len(cf.loss.scored) <= 6:
        return ""
    return f" (scored steps: {', '.join(map(str, cf.loss.scored))})"


def _print_targets(report: "Report", say) -> None:
    cf = report.cf
    flat = None if report.y is None else [float(v) for v in report.y.ravel()]
    if cf.given:
        say("given (used exactly): " + ", ".join(f"{g.key} = {g.printed.text}" for g in cf.given))
    if report.from_given:
        say(f"targets y = ({targets_text(flat, cf.O)}) (solved exactly from the given values)")
    elif not report.targets_fitted:
        say(f"targets y = ({targets_text(flat or [], cf.O)}) (given)")
    elif flat is not None:
        undetermined = report.analysis.undetermined if report.analysis else []
        say(f"targets not given; fitted y = ({targets_text(flat, cf.O)})"
            + (f"; y_{', y_'.join(map(str, undetermined))} not determined by any claim (set to 0)"
               if undetermined else ""))


def print_target_analysis(a: "TargetAnalysis", con, O: int = 1, loss: str = "squared_error") -> None:
    say = _say(con)
    if a.lsq_targets is None and not a.quadratic:
        say("No claim depends on the targets, so none were fitted.")
        return
    if a.lsq_targets is not None:
        _print_affine_analysis(a, say, O, loss)
    if a.quadratic:
        _print_quadratic_analysis(a, say)


def _print_affine_analysis(a: "TargetAnalysis", say, O: int, loss: str = "squared_error") -> None:
    if loss == "squared_error":
        say("\nTargets not given: every gradient is affine in them, so they are inferred.")
        say("With unknown targets the sign convention does not matter: negating every gradient claim is the same "
            "as replacing y_t by 2 y'_t - y_t.")
    else:
        held = " (each step's summing to 1)" if loss == "cross_entropy" else ""
        say(f"\nTargets not given: with {loss} every gradient and the loss itself are affine in them, so they are "
            f"inferred, in [0, 1]{held}.")
    say(f"- Weighted least squares over all {len(a.kept) + len(a.unexplainable)} target-dependent "
        f"{'gradient ' if loss == 'squared_error' else ''}claims: y = ({targets_text(a.lsq_targets, O)}).")
    if a.misfit_all is not None and a.misfit_all <= 1.0:
        kind = "gradient " if loss == "squared_error" else ""
        say(f"- One choice of targets reproduces every target-dependent {kind}claim to its written digits "
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
        # sorted by the figure as printed, ties in the claims' order: an order decided by digits nobody sees
        # would change with the last bits of the arithmetic
        parts = ", ".join(f"{n}: {v:.1f}x" for n, v in sorted(a.misfit_without.items(), key=lambda kv: float(f"{kv[1]:.1f}")))
        say(f"- Best misfit with one claim left out: {parts}.")
    for n in a.unexplainable:
        if n in a.unexplainable_alone:
            continue
        say(f"- {n} is the claim no targets explain alongside the others: leaving it out brings the misfit "
            f"to {a.misfit_without.get(n, float('nan')):.1f}x; leaving out any other still misses by "
            f"{best_other_misfit(a, n):.1f}x or more.")
    if a.kept:
        say(f"- Fitted targets (least squares over {', '.join(a.kept)}): "
            f"y = ({targets_text(a.targets or [], O)}); the verdicts marked * are at these.")


def _print_quadratic_analysis(a: "TargetAnalysis", say) -> None:
    head = "\n" if a.lsq_targets is None else ""
    say(f"{head}- {', '.join(a.quadratic)}: quadratic in the targets, so judged at the targets the gradient "
        "claims give.")
    if a.quadratic_steps:
        steps = ", ".join(f"y_{t}" for t in a.quadratic_steps)
        say(f"- No gradient claim depends on {steps}: fitted to {', '.join(a.quadratic)} by nonlinear least "
            "squares; there only |y_t - y'_t| is determined, and the fit takes y_t >= y'_t.")
    if a.refined:
        say("- Then every target was refitted to the kept gradient claims and these together (nonlinear least "
            "squares), which makes more claims hold; the verdicts marked * are at those targets.")


def best_other_misfit(a: "TargetAnalysis", name: str) -> float:
    """The best misfit with one claim other than ``name`` left out."""
    return min((v for n, v in a.misfit_without.items() if n != name), default=float("nan"))


def _say(con):
    """print one paragraph as plain text (no markup, wrapped only by the terminal; control characters
    from the file, such as terminal escape sequences in a claim's name, shown escaped)."""
    return lambda text: con.print(clean(text, keep_newlines=True), markup=False, soft_wrap=True)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(clean(text))


# C0, DEL, C1 (0x9b is a one-byte CSI), and the line/paragraph separators and bidirectional overrides,
# which reorder or hide what follows on a terminal
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")

_JSON_CONTROL = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")  # json.dumps escapes C0


def clean(text: str, keep_newlines: bool = False) -> str:
    """text with its control characters written as escapes (\\x1b, \\u202e), so a file cannot drive the
    terminal; keep_newlines: the report's own paragraph breaks (a name from the file is one line anyway)."""
    if keep_newlines:
        return "\n".join(clean(part) for part in text.split("\n"))
    return _CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100 else f"\\u{ord(m[0]):04x}", text)


def json_text(obj) -> str:
    """JSON with non-ASCII kept readable but C1 controls and separators escaped (JSON escapes C0 itself)."""
    import json

    return _JSON_CONTROL.sub(lambda m: f"\\u{ord(m[0]):04x}", json.dumps(obj, indent=2, ensure_ascii=False))
