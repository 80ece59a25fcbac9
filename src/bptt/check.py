r"""Check a person's hand-computed BPTT numbers (a claims file) against the exact values.

A claims file (TOML or JSON) holds the scalar model, the sequence, optionally the
targets, and the claimed numbers, each as the person wrote it:

    [model]                       # required: w, w_x, w_h, b1, b2; optional: h0 (0),
    w = 1                         # hidden_activation (sigmoid), output_activation (sigmoid),
    w_x = 1                       # reduction (mean)
    ...
    [sequence]
    x = [1, 0]                    # required
    # y = [0.5, 0.5]              # optional targets
    [claims]
    "h_1" = 0.88                  # building blocks: h_t, "1 - h_t", z_t, u_t, "y'_t"
    "dE_2/dw_x" = "0.0012"        # per-term gradients dE_i/dθ, and dE_i/dy'_i
    "dLoss/dw_h" = 0.0020         # totals dLoss/dθ     (θ: w, w_x, w_h, b1 or b_1, b2 or b_2)

Each claim is checked at the precision it is written with (0.0020: two significant
figures, |exact - 0.0020| <= 0.00005), read from the file's raw text, so a TOML or
JSON number keeps its trailing zeros.

Gradients are compared with the true-sign gradients (dE_i/dy'_i = y'_i - y_i).
Without targets: every claimed gradient is affine in the targets y, so the targets
that best explain the claims are a weighted least-squares fit, and which claims any
targets can reproduce together is a linear programme (``audit.min_misfit``).
"""

from __future__ import annotations

import itertools
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .validation import BPTTError
from .audit import Printed, affine_in_targets, least_squares_targets, min_misfit, round_like
from .engine import PARAM_NAMES

MODEL_KEYS = ("w", "w_x", "w_h", "b1", "b2", "h0", "hidden_activation", "output_activation", "reduction")
SEQUENCE_KEYS = ("x", "y")
TOP_KEYS = ("model", "sequence", "claims", "title")
_PARAM_ALIASES = {"w": "w", "w_x": "w_x", "wx": "w_x", "w_h": "w_h", "wh": "w_h", "b1": "b1", "b_1": "b1",
                  "b2": "b2", "b_2": "b2"}
CLAIM_FORMS = "h_t, 1 - h_t, z_t, u_t, y'_t, dE_i/dy'_i, dE_i/dθ, dLoss/dθ (θ: w, w_x, w_h, b1, b2)"
MAX_SUBSET_LPS = 2000  # exhaustive search for the largest consistent sets up to this many programmes


class _Raw(str):
    """A number as written in the file (from the parser's parse_float/parse_int hooks)."""


# ------------------------------------------------------------------ reading the file
@dataclass(frozen=True)
class Claim:
    """One claimed number.  kind: 'h', '1-h', 'z', 'u', "y'", "dE/dy'", 'dE', 'dLoss'.

    t: the step (1..T; h also 0); theta: the parameter for 'dE' and 'dLoss'.
    """

    key: str
    kind: str
    t: int | None
    theta: str | None
    printed: Printed

    @property
    def depends_on_targets(self) -> bool:
        return self.kind in ("dE/dy'", "dE", "dLoss")


@dataclass
class ClaimsFile:
    path: str
    params: dict[str, float]
    h0: float
    hidden_activation: str
    output_activation: str
    reduction: str
    x: list[float]
    y: list[float] | None
    claims: list[Claim]
    title: str | None = None

    @property
    def T(self) -> int:
        return len(self.x)


def load(path: str | Path) -> ClaimsFile:
    """Read and validate a claims file; any problem raises a one-line BPTTError naming the field."""
    p = Path(path)
    ext = p.suffix.lower()
    if p.is_dir():
        raise BPTTError(f"{p}: is a directory, not a claims file")
    if ext not in (".toml", ".json"):
        raise BPTTError(f"{p}: unknown file type {ext or '(no extension)'!r}; a claims file must end in .toml or .json")
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BPTTError(f"{p}: no such file; give the path of a .toml or .json claims file") from None
    except IsADirectoryError:
        raise BPTTError(f"{p}: is a directory, not a claims file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise BPTTError(f"{p}: cannot read it ({type(e).__name__}: {e}); check the path and permissions") from None
    data = parse(text, ext[1:], str(p))
    return from_dict(data, str(p))


def parse(text: str, fmt: str, where: str = "claims file") -> dict:
    """TOML or JSON text -> dict, with every number kept as its raw text (``_Raw``)."""
    if fmt == "toml":
        import tomllib

        try:
            # TOML integers have no hook; floats keep their text. An int keeps exact precision anyway.
            data = tomllib.loads(text, parse_float=_Raw)
        except tomllib.TOMLDecodeError as e:
            raise BPTTError(f"{where}: not valid TOML ({e}); fix the syntax") from None
    else:
        try:
            data = json.loads(text, parse_float=_Raw, parse_int=_Raw, parse_constant=_Raw)
        except json.JSONDecodeError as e:
            raise BPTTError(f"{where}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}); fix the syntax") from None
    if not isinstance(data, dict):
        raise BPTTError(f"{where}: the top level must be a table/object with model, sequence and claims")
    return data


def _number(v: Any, field_name: str) -> float:
    """A model or sequence value: a number (not a string, not a boolean), finite."""
    if isinstance(v, bool) or not isinstance(v, (int, float, _Raw)):
        hint = "; write it without quotes, e.g. 1.0" if isinstance(v, str) else ""
        raise BPTTError(f"{field_name}: expected a number, got {type(v).__name__} {v!r}{hint}")
    try:
        f = float(v)
    except ValueError:
        raise BPTTError(f"{field_name}: {str(v)!r} is not a number") from None
    if not math.isfinite(f):
        raise BPTTError(f"{field_name}: {str(v)!r} is not finite; every value must be a finite number")
    return f


def _numbers(v: Any, field_name: str) -> list[float]:
    if not isinstance(v, list) or not v:
        raise BPTTError(f"{field_name}: expected a non-empty list of numbers, e.g. [1, 0], got {v!r}")
    return [_number(e, f"{field_name}[{i}]") for i, e in enumerate(v)]


def _table(data: dict, key: str, where: str, required: bool = True) -> dict:
    if key not in data:
        if required:
            raise BPTTError(f"{where}: missing section [{key}]")
        return {}
    v = data[key]
    if not isinstance(v, dict):
        raise BPTTError(f"{where}: {key} must be a table/object, got {type(v).__name__}")
    return v


def _string(v: Any, field_name: str) -> str:
    if not isinstance(v, str) or isinstance(v, _Raw):
        raise BPTTError(f"{field_name}: expected a string, got {v!r}")
    return v


def from_dict(data: dict, where: str = "claims file") -> ClaimsFile:
    from . import activations

    for k in data:
        if k not in TOP_KEYS:
            raise BPTTError(f"{where}: unknown section {k!r}; the sections are model, sequence, claims (and title)")
    model = _table(data, "model", where)
    for k in model:
        if k not in MODEL_KEYS:
            raise BPTTError(f"{where}: model.{k} is not a model field; the fields are {', '.join(MODEL_KEYS)}")
    params = {}
    for k in PARAM_NAMES:
        if k not in model:
            raise BPTTError(f"{where}: missing model.{k}; the model needs w, w_x, w_h, b1 and b2")
        params[k] = _number(model[k], f"model.{k}")
    h0 = _number(model.get("h0", 0), "model.h0")
    hidden = _string(model.get("hidden_activation", "sigmoid"), "model.hidden_activation")
    output = _string(model.get("output_activation", "sigmoid"), "model.output_activation")
    activations.get(hidden, activations.HIDDEN_ACTIVATIONS, "model.hidden_activation")
    activations.get(output, activations.OUTPUT_ACTIVATIONS, "model.output_activation")
    reduction = _string(model.get("reduction", "mean"), "model.reduction")
    if reduction not in ("mean", "sum"):
        raise BPTTError(f"model.reduction: {reduction!r} is not supported; choose mean or sum")

    seq = _table(data, "sequence", where)
    for k in seq:
        if k not in SEQUENCE_KEYS:
            raise BPTTError(f"{where}: sequence.{k} is not a sequence field; the fields are x and y (targets, optional)")
    if "x" not in seq:
        raise BPTTError(f"{where}: missing sequence.x, the input sequence, e.g. x = [1, 0]")
    x = _numbers(seq["x"], "sequence.x")
    y = None
    if "y" in seq:
        y = _numbers(seq["y"], "sequence.y")
        if len(y) != len(x):
            raise BPTTError(f"sequence.y has {len(y)} targets but sequence.x has {len(x)} steps; give one target per step")

    raw_claims = _table(data, "claims", where)
    if not raw_claims:
        raise BPTTError(f"{where}: [claims] is empty; add claimed numbers such as \"dLoss/dw\" = 0.015")
    claims = [_claim(k, v, len(x)) for k, v in raw_claims.items()]
    title = data.get("title")
    if title is not None:
        title = _string(title, "title")
    return ClaimsFile(where, params, h0, hidden, output, reduction, x, y, claims, title)


_BLOCK = re.compile(r"(1-h|h|z|u|y'|y)_(\d+)(')?")
_DE = re.compile(r"dE_(\d+)/d(.+)")
_DL = re.compile(r"d(?:Loss|L|loss)/d(.+)")


def _claim(key: str, value: Any, T: int) -> Claim:
    """Parse one claim's name and value.  Names are written as in the seed (spaces and braces ignored)."""
    where = f"claims.{key!r}" if not re.fullmatch(r"[A-Za-z0-9_]+", key) else f"claims.{key}"
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise BPTTError(f"{where}: expected a number (or a number in quotes), got {type(value).__name__} {value!r}")
    printed = Printed.parse(str(value), where)
    s = key.replace(" ", "").replace("{", "").replace("}", "").replace("*", "")
    kind = t = theta = None
    m = _BLOCK.fullmatch(s)
    if m and m.group(1) == "y" and not m.group(3):
        raise BPTTError(f"{where}: y_{m.group(2)} is a target, not a claim; put targets in sequence.y "
                        f"(predictions are y'_{m.group(2)})")
    elif m and (m.group(3) is None or m.group(1) == "y"):
        kind = {"1-h": "1-h", "h": "h", "z": "z", "u": "u", "y'": "y'", "y": "y'"}[m.group(1)]
        t = int(m.group(2))
    elif (m := _DE.fullmatch(s)):
        t = int(m.group(1))
        target = m.group(2)
        if target in (f"y'_{t}", f"y_{t}'", "y'"):
            kind = "dE/dy'"
        else:
            kind, theta = "dE", _param(target, where)
    elif (m := _DL.fullmatch(s)):
        kind, theta = "dLoss", _param(m.group(1), where)
    else:
        raise BPTTError(f"{where}: not a quantity this checker knows; write one of {CLAIM_FORMS}")
    lo = 0 if kind == "h" else 1
    if t is not None and not lo <= t <= T:
        raise BPTTError(f"{where}: step {t} is out of range; the sequence has T = {T} steps ({lo}..{T})")
    return Claim(key, kind, t, theta, printed)


def _param(name: str, where: str) -> str:
    if name not in _PARAM_ALIASES:
        raise BPTTError(f"{where}: unknown parameter {name!r}; the parameters are w, w_x, w_h, b1 (b_1), b2 (b_2)")
    return _PARAM_ALIASES[name]


# ------------------------------------------------------------------ checking
@dataclass
class Row:
    claim: Claim
    exact: float
    holds: bool
    verdict: str
    at_fitted_targets: bool = False


@dataclass
class Report:
    cf: ClaimsFile
    rows: list[Row]
    targets: list[float] | None  # the targets the gradients were evaluated at
    targets_fitted: bool
    lsq_targets: list[float] | None = None  # weighted least squares over all target-dependent claims
    undetermined: list[int] = field(default_factory=list)  # steps t whose target no claim depends on
    misfit_all: float | None = None  # LP: min over y of the worst miss, in units of the written rounding
    misfit_without: dict[str, float] = field(default_factory=dict)
    largest_sets: list[tuple[str, ...]] = field(default_factory=list)
    largest_exhaustive: bool = True
    unexplainable_alone: list[str] = field(default_factory=list)  # no targets give this claim even by itself
    unexplainable: list[str] = field(default_factory=list)  # no targets give it alongside the others
    kept: list[str] = field(default_factory=list)  # the claims the fitted targets were fitted to
    negated_holds: int | None = None  # with given targets: how many gradient claims hold if negated
    plain_holds: int | None = None

    @property
    def all_hold(self) -> bool:
        return all(r.holds for r in self.rows)


def exact_affine(cf: ClaimsFile) -> tuple[np.ndarray, np.ndarray]:
    """(c, J) with exact value of claim j = c[j] + J[j] @ y, from the numpy reference engine.

    Building blocks do not depend on y (J row 0); dE_i/dy'_i = y'_i - y_i; dE_i/dθ depends on
    y_i alone (two decompositions give it exactly); dLoss/dθ by ``audit.affine_in_targets``
    over ``loss_and_grad`` (T + 1 O(T) runs).
    """
    from .model import RNN

    T = cf.T
    m = RNN.scalar(**cf.params, hidden_activation=cf.hidden_activation, output_activation=cf.output_activation)
    x = np.asarray(cf.x, dtype=np.float64)  # (T,)
    fwd = m.forward(x, h0=cf.h0)
    h = fwd.h[:, 0]  # (T+1,)
    fixed = {"h": lambda t: h[t], "1-h": lambda t: 1 - h[t], "z": lambda t: fwd.z[t - 1, 0],
             "u": lambda t: fwd.u[t - 1, 0], "y'": lambda t: fwd.y_pred[t - 1, 0]}
    n = len(cf.claims)
    c, J = np.zeros(n), np.zeros((n, T))
    if any(cl.kind == "dE" for cl in cf.claims):
        d0 = m.decompose(x, np.zeros(T), h0=cf.h0, reduction=cf.reduction).terms
        d1 = m.decompose(x, np.ones(T), h0=cf.h0, reduction=cf.reduction).terms
    if any(cl.kind == "dLoss" for cl in cf.claims):
        def grads(y):
            _, g = m.loss_and_grad(x, np.asarray(y), h0=cf.h0, reduction=cf.reduction, backend="numpy")
            return [float(g[k].ravel()[0]) for k in PARAM_NAMES]

        gc, gJ = affine_in_targets(grads, T)  # (5,), (5, T)
    for j, cl in enumerate(cf.claims):
        if cl.kind in fixed:
            c[j] = fixed[cl.kind](cl.t)
        elif cl.kind == "dE/dy'":
            c[j], J[j, cl.t - 1] = fwd.y_pred[cl.t - 1, 0], -1.0
        elif cl.kind == "dE":
            a0 = float(d0[cl.theta][cl.t - 1].ravel()[0])
            c[j], J[j, cl.t - 1] = a0, float(d1[cl.theta][cl.t - 1].ravel()[0]) - a0
        else:
            k = PARAM_NAMES.index(cl.theta)
            c[j], J[j] = gc[k], gJ[k]
    return c, J


def _verdict(p: Printed, exact: float, fitted: bool = False) -> tuple[bool, str]:
    if p.holds(exact):
        return True, "holds"
    rounded = round_like(exact, p)
    off = abs(exact - p.value) / p.half_unit
    if fitted:  # a miss at fitted targets says nothing about truncation
        return False, f"WRONG (exact rounds to {rounded}; off by {off:.{2 if off < 10 else 1}f}x the rounding)"
    if p.value != 0 and math.copysign(1, p.value) != math.copysign(1, exact) and Printed.parse(
            p.text.lstrip("-") if p.text.startswith("-") else "-" + p.text).holds(exact):
        return False, f"WRONG sign (exact rounds to {rounded})"
    lo, hi = sorted((p.value, p.value + math.copysign(2 * p.half_unit, p.value)))
    if lo <= exact <= hi:
        return False, f"WRONG: truncated, not rounded (exact rounds to {rounded})"
    return False, f"WRONG (exact rounds to {rounded}; off by {off:.{2 if off < 10 else 1}f}x the rounding)"


def check(cf: ClaimsFile) -> Report:
    """Compare every claim with the exact value; infer the targets when the file gives none."""
    c, J = exact_affine(cf)  # exact = c + J y for every claim
    names = [cl.key for cl in cf.claims]
    report = Report(cf=cf, rows=[], targets=None, targets_fitted=False)
    if cf.y is not None:
        y = np.asarray(cf.y)
        report.targets = list(cf.y)
    else:
        y = _infer_targets(cf, c, J, names, report)
    exact = c + J @ y
    for cl, e in zip(cf.claims, exact):
        fitted = cf.y is None and cl.depends_on_targets
        ok, verdict = _verdict(cl.printed, float(e), fitted)
        report.rows.append(Row(cl, float(e), ok, verdict, at_fitted_targets=fitted))
    if cf.y is not None:
        grads = [i for i, cl in enumerate(cf.claims) if cl.kind in ("dE", "dLoss", "dE/dy'")]
        report.plain_holds = sum(report.rows[i].holds for i in grads)
        report.negated_holds = sum(cf.claims[i].printed.holds(-exact[i]) for i in grads)
    return report


def _infer_targets(cf: ClaimsFile, c: np.ndarray, J: np.ndarray, names: list[str], report: Report) -> np.ndarray:
    """Least squares over the target-dependent claims; LP for which claims can hold together."""
    T = cf.T
    dep = [i for i, cl in enumerate(cf.claims) if cl.depends_on_targets]
    report.targets_fitted = True
    if not dep:
        report.targets = None
        report.undetermined = list(range(1, T + 1))
        return np.zeros(T)
    A = J[dep]  # (n, T)
    b = np.array([cf.claims[i].printed.value for i in dep]) - c[dep]
    half = np.array([cf.claims[i].printed.half_unit for i in dep])
    dnames = [names[i] for i in dep]
    report.undetermined = [t + 1 for t in range(T) if not np.any(A[:, t] != 0)]
    report.lsq_targets = [float(v) for v in least_squares_targets(A, b, half)]

    def misfit(idx):
        idx = list(idx)
        return min_misfit(A[idx], b[idx], half[idx])

    # a claim whose row is zero does not depend on the targets after all (e.g. x_k = 0 kills every path)
    report.unexplainable_alone = [dnames[j] for j in range(len(dep)) if misfit([j])[0] > 1.0]
    report.misfit_all, _ = misfit(range(len(dep)))
    kept = list(range(len(dep)))
    if report.misfit_all > 1.0 and len(dep) > 1:
        report.misfit_without = {dnames[j]: misfit([k for k in kept if k != j])[0] for j in kept}
        report.largest_sets, report.largest_exhaustive = _largest_sets(len(dep), misfit, dnames)
        in_some = {n for s in report.largest_sets for n in s}
        # (1) claims in none of the largest consistent sets; (2) the seed's test: leaving one claim out
        # helps far more than leaving out any other (twice the next best, by the LP)
        flagged = [n for n in dnames if n not in in_some]
        order = sorted(report.misfit_without, key=report.misfit_without.get)
        best, second = order[0], order[1]
        if report.misfit_without[second] > 2 * report.misfit_without[best] and best not in flagged:
            flagged.append(best)
        flagged += [n for n in report.unexplainable_alone if n not in flagged]
        report.unexplainable = flagged
        kept = [j for j in range(len(dep)) if dnames[j] not in flagged]
    report.kept = [dnames[j] for j in kept]
    y = least_squares_targets(A[kept], b[kept], half[kept]) if kept else np.zeros(T)
    # least squares can miss a claim that some targets do reproduce: then take the LP's targets
    t_kept, y_lp = misfit(kept) if kept else (0.0, y)
    worst_ls = float(np.max(np.abs(A[kept] @ y - b[kept]) / half[kept])) if kept else 0.0
    if t_kept <= 1.0 < worst_ls:
        y = y_lp
    for t in report.undetermined:
        y[t - 1] = 0.0
    report.targets = [float(v) for v in y]
    return y


def _largest_sets(n: int, misfit, names: list[str]) -> tuple[list[tuple[str, ...]], bool]:
    """The largest subsets of claims one choice of targets reproduces (exhaustive while cheap, else greedy)."""
    budget = MAX_SUBSET_LPS
    for size in range(n - 1, 0, -1):
        count = math.comb(n, size)
        if count > budget:
            break
        budget -= count
        found = [tuple(names[i] for i in idx) for idx in itertools.combinations(range(n), size)
                 if misfit(idx)[0] <= 1.0]
        if found:
            return found, True
    # greedy: drop the claim whose removal lowers the misfit most, until the rest fit
    keep = list(range(n))
    while len(keep) > 1 and misfit(keep)[0] > 1.0:
        keep = min(([k for k in keep if k != j] for j in keep), key=lambda s: misfit(s)[0])
    return [tuple(names[i] for i in keep)], False


# ------------------------------------------------------------------ output
def _fmt(v: float) -> str:
    return f"{v:.6g}" if v == 0 or 1e-4 <= abs(v) < 1e6 else f"{v:.6e}"


def print_report(report: Report, console=None) -> None:
    """The claimed / exact / verdict table and the target analysis, with rich."""
    from rich.console import Console
    from rich.table import Table

    con = console
    if con is None:
        con = Console(highlight=False)
        if not con.is_terminal:  # files and pipes: wide enough that the table does not wrap
            con = Console(highlight=False, width=120)
    cf = report.cf
    title = cf.title or cf.path
    con.print(f"[bold]{title}[/bold]", markup=True)
    con.print(f"model: w={_fmt(cf.params['w'])} w_x={_fmt(cf.params['w_x'])} w_h={_fmt(cf.params['w_h'])} "
              f"b1={_fmt(cf.params['b1'])} b2={_fmt(cf.params['b2'])} h0={_fmt(cf.h0)}, hidden {cf.hidden_activation}, "
              f"output {cf.output_activation}, reduction {cf.reduction}; x = ({', '.join(_fmt(v) for v in cf.x)})",
              markup=False, soft_wrap=True)
    if cf.y is not None:
        con.print(f"targets y = ({', '.join(_fmt(v) for v in cf.y)}) (given)", markup=False, soft_wrap=True)
    elif report.targets is not None:
        con.print(f"targets not given; fitted y = ({', '.join(f'{v:.4f}' for v in report.targets)})"
                  + (f"; y_{', y_'.join(map(str, report.undetermined))} not determined by any claim (set to 0)"
                     if report.undetermined else ""), markup=False, soft_wrap=True)
    t = Table(title_justify="left")
    for col, just in (("quantity", "left"), ("claimed", "right"), ("sig. fig.", "right"), ("exact", "right"),
                      ("verdict", "left")):
        t.add_column(col, justify=just)
    for r in report.rows:
        t.add_row(r.claim.key, r.claim.printed.text, str(r.claim.printed.significant_figures()),
                  _fmt(r.exact) + (" *" if r.at_fitted_targets else ""), r.verdict)
    con.print(t)
    if any(r.at_fitted_targets for r in report.rows):
        con.print("* at the fitted targets", markup=False, soft_wrap=True)
    n_bad = sum(not r.holds for r in report.rows)
    con.print(f"{len(report.rows) - n_bad} of {len(report.rows)} claims hold at the precision written.", markup=False, soft_wrap=True)
    con.print("Gradients are compared with the true sign, dE_i/dy'_i = y'_i - y_i (the seed writes y_i - y'_i).",
              markup=False, soft_wrap=True)
    if cf.y is not None and report.negated_holds is not None and report.negated_holds > (report.plain_holds or 0):
        con.print(f"With every gradient claim negated, {report.negated_holds} of them would hold instead of "
                  f"{report.plain_holds}: the file may use the seed's sign, (y_i - y'_i).", markup=False, soft_wrap=True)
    if report.targets_fitted:
        _print_target_analysis(report, con)


def _print_target_analysis(report: Report, con) -> None:
    if report.lsq_targets is None:
        con.print("No claim depends on the targets, so none were fitted.", markup=False, soft_wrap=True)
        return
    con.print("\nTargets not given: every gradient is affine in them, so they are inferred.", markup=False, soft_wrap=True)
    con.print("With unknown targets the sign convention does not matter: negating every gradient claim is the same "
              "as replacing y_t by 2 y'_t - y_t.", markup=False, soft_wrap=True)
    con.print(f"- Weighted least squares over all {len(report.kept) + len(report.unexplainable)} target-dependent "
              f"claims: y = ({', '.join(f'{v:.4f}' for v in report.lsq_targets)}).", markup=False, soft_wrap=True)
    if report.misfit_all is not None and report.misfit_all <= 1.0:
        con.print(f"- One choice of targets reproduces every target-dependent claim to its written digits "
                  f"(worst miss {report.misfit_all:.2f}x the rounding, by linear programming).", markup=False, soft_wrap=True)
        return
    con.print(f"- No targets reproduce all of them: the best targets still miss by {report.misfit_all:.1f}x the "
              f"written rounding (linear programming over y).", markup=False, soft_wrap=True)
    for n in report.unexplainable_alone:
        con.print(f"- {n}: no targets give this value even on its own.", markup=False, soft_wrap=True)
    if report.largest_sets:
        k = len(report.largest_sets[0])
        how = "" if report.largest_exhaustive else " (greedy search: there are too many subsets to try them all)"
        sets = "; ".join("{" + ", ".join(s) + "}" for s in report.largest_sets)
        con.print(f"- The most that one choice of targets reproduces is {k}{how}: {sets}.", markup=False, soft_wrap=True)
    if report.misfit_without:
        parts = ", ".join(f"{n}: {v:.1f}x" for n, v in sorted(report.misfit_without.items(), key=lambda kv: kv[1]))
        con.print(f"- Best misfit with one claim left out: {parts}.", markup=False, soft_wrap=True)
    for n in report.unexplainable:
        if n in report.unexplainable_alone:
            continue
        others = [m for m in report.misfit_without if m != n]
        worst = min((report.misfit_without[m] for m in others), default=float("nan"))
        con.print(f"- {n} is the claim no targets explain alongside the others: leaving it out brings the misfit "
                  f"to {report.misfit_without.get(n, float('nan')):.1f}x; leaving out any other still misses by "
                  f"{worst:.1f}x or more.", markup=False, soft_wrap=True)
    if report.kept:
        con.print(f"- Fitted targets (least squares over {', '.join(report.kept)}): "
                  f"y = ({', '.join(f'{v:.4f}' for v in report.targets or [])}); the verdicts marked * are at these.",
                  markup=False, soft_wrap=True)
