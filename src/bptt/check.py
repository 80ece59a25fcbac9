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
from typing import Any, Sequence

import numpy as np

from . import engine
from .audit import Printed, Verdict, judge, least_squares_targets, min_misfit
from .engine import PARAM_NAMES
from .validation import REDUCTIONS, BPTTError, check_choice, check_float_array, short_repr

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
    return from_text(text, ext[1:], str(p))


def from_text(text: str, fmt: str, where: str = "claims file") -> ClaimsFile:
    """A claims file's text (fmt 'toml' or 'json') -> ClaimsFile; ``where`` names it in messages."""
    return from_dict(parse(text, fmt, where), where)


def parse(text: str, fmt: str, where: str = "claims file") -> dict:
    """TOML or JSON text -> dict, with every number kept as its raw text (``_Raw``)."""
    try:
        data = _parse_toml(text, where) if fmt == "toml" else _parse_json(text, where)
    except RecursionError:
        raise BPTTError(f"{where}: nested too deeply to read; a claims file needs only tables of numbers") from None
    if not isinstance(data, dict):
        raise BPTTError(f"{where}: the top level must be a table/object with model, sequence and claims")
    return data


def _parse_toml(text: str, where: str) -> Any:
    import tomllib

    try:
        # TOML integers have no hook; floats keep their text. An int keeps exact precision anyway.
        return tomllib.loads(text, parse_float=_Raw)
    except tomllib.TOMLDecodeError as e:
        raise BPTTError(f"{where}: not valid TOML ({e}); fix the syntax") from None
    except ValueError as e:  # an integer too long for Python to convert
        raise BPTTError(f"{where}: cannot read it ({e})") from None


def _parse_json(text: str, where: str) -> Any:
    def unique_keys(pairs: list[tuple[str, Any]]) -> dict:
        seen: dict[str, Any] = {}
        for k, v in pairs:
            if k in seen:
                raise BPTTError(f"{where}: the key {k!r} appears twice in one object; keep one of them")
            seen[k] = v
        return seen

    try:
        return json.loads(text, parse_float=_Raw, parse_int=_Raw, parse_constant=_Raw, object_pairs_hook=unique_keys)
    except json.JSONDecodeError as e:
        raise BPTTError(f"{where}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}); fix the syntax") from None


def _number(v: Any, field_name: str) -> float:
    """A model or sequence value: a number (not a string, not a boolean), finite."""
    if isinstance(v, bool) or not isinstance(v, (int, float, _Raw)):
        hint = "; write it without quotes, e.g. 1.0" if isinstance(v, str) else ""
        raise BPTTError(f"{field_name}: expected a number, got {type(v).__name__} {short_repr(v)}{hint}")
    try:
        f = float(v)
    except ValueError:
        raise BPTTError(f"{field_name}: {short_repr(str(v))} is not a number") from None
    except OverflowError:  # an integer beyond the float range
        f = math.inf
    if not math.isfinite(f):
        raise BPTTError(f"{field_name}: {short_repr(str(v))} is not finite; every value must be a finite number")
    return f


def _numbers(v: Any, field_name: str) -> list[float]:
    if not isinstance(v, list) or not v:
        raise BPTTError(f"{field_name}: expected a non-empty list of numbers, e.g. [1, 0], got {short_repr(v)}")
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
        raise BPTTError(f"{field_name}: expected a string, got {short_repr(v)}")
    return v


def _known_keys(table: dict, known: tuple[str, ...], what: str) -> None:
    for k in table:
        if k not in known:
            raise BPTTError(f"{what.format(k=k)}; the fields are {', '.join(known)}")


def from_dict(data: dict, where: str = "claims file") -> ClaimsFile:
    """Validate parsed data (numbers as ``_Raw`` text or numbers) into a ClaimsFile."""
    for k in data:
        if k not in TOP_KEYS:
            raise BPTTError(f"{where}: unknown section {k!r}; the sections are model, sequence, claims (and title)")
    model = _model(_table(data, "model", where), where)
    x, y = _sequence(_table(data, "sequence", where), where)
    raw_claims = _table(data, "claims", where)
    if not raw_claims:
        raise BPTTError(f"{where}: [claims] is empty; add claimed numbers such as \"dLoss/dw\" = 0.015")
    claims = [_claim(k, v, len(x)) for k, v in raw_claims.items()]
    title = data.get("title")
    if title is not None:
        title = _string(title, "title")
    return ClaimsFile(where, model["params"], model["h0"], model["hidden"], model["output"], model["reduction"],
                      x, y, claims, title)


def _model(model: dict, where: str) -> dict[str, Any]:
    """[model]: the five parameters, h0 and the activations and reduction, checked."""
    from . import activations

    _known_keys(model, MODEL_KEYS, f"{where}: model.{{k}} is not a model field")
    params = {}
    for k in PARAM_NAMES:
        if k not in model:
            raise BPTTError(f"{where}: missing model.{k}; the model needs w, w_x, w_h, b1 and b2")
        params[k] = _number(model[k], f"model.{k}")
    hidden = _string(model.get("hidden_activation", "sigmoid"), "model.hidden_activation")
    output = _string(model.get("output_activation", "sigmoid"), "model.output_activation")
    activations.get(hidden, activations.HIDDEN_ACTIVATIONS, "model.hidden_activation")
    activations.get(output, activations.OUTPUT_ACTIVATIONS, "model.output_activation")
    reduction = check_choice("model.reduction", _string(model.get("reduction", "mean"), "model.reduction"), REDUCTIONS)
    return {"params": params, "h0": _number(model.get("h0", 0), "model.h0"), "hidden": hidden, "output": output,
            "reduction": reduction}


def _sequence(seq: dict, where: str) -> tuple[list[float], list[float] | None]:
    """[sequence]: the inputs x and the optional targets y, one per step."""
    _known_keys(seq, SEQUENCE_KEYS, f"{where}: sequence.{{k}} is not a sequence field")
    if "x" not in seq:
        raise BPTTError(f"{where}: missing sequence.x, the input sequence, e.g. x = [1, 0]")
    x = _numbers(seq["x"], "sequence.x")
    if "y" not in seq:
        return x, None
    y = _numbers(seq["y"], "sequence.y")
    if len(y) != len(x):
        raise BPTTError(f"sequence.y has {len(y)} targets but sequence.x has {len(x)} steps; give one target per step")
    return x, y


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
    """One claim and its verdict; at_fitted_targets: its exact value is at targets fitted to the claims."""

    claim: Claim
    verdict: Verdict
    at_fitted_targets: bool = False

    @property
    def exact(self) -> float:
        return self.verdict.exact

    @property
    def holds(self) -> bool:
        return self.verdict.holds


@dataclass(frozen=True)
class ConsistentSet:
    """Claims that one choice of targets reproduces together, and such targets (from the LP)."""

    claims: tuple[str, ...]
    targets: tuple[float, ...]


@dataclass
class TargetAnalysis:
    """What any targets can make of the target-dependent claims (``infer_targets``)."""

    targets: list[float] | None  # the fitted targets; None when no claim depends on them
    lsq_targets: list[float] | None = None  # weighted least squares over all target-dependent claims
    undetermined: list[int] = field(default_factory=list)  # steps t whose target no claim depends on (set to 0)
    misfit_all: float | None = None  # LP: min over y of the worst miss, in units of the written rounding
    misfit_without: dict[str, float] = field(default_factory=dict)  # the same, one claim left out
    largest_sets: list[ConsistentSet] = field(default_factory=list)  # the largest sets one choice of y reproduces
    largest_exhaustive: bool = True  # False: the sets were found greedily (too many subsets to try)
    unexplainable_alone: list[str] = field(default_factory=list)  # no targets give this claim even by itself
    unexplainable: list[str] = field(default_factory=list)  # no targets give it alongside the others
    kept: list[str] = field(default_factory=list)  # the claims the fitted targets were fitted to


@dataclass
class Report:
    cf: ClaimsFile
    rows: list[Row]
    targets: list[float] | None  # the targets the gradients were evaluated at
    targets_fitted: bool  # True: inferred from the claims (``analysis``); False: given
    analysis: TargetAnalysis | None = None  # with fitted targets: how they were inferred
    negated_holds: int | None = None  # with given targets: how many gradient claims hold if negated
    plain_holds: int | None = None

    @property
    def all_hold(self) -> bool:
        return all(r.holds for r in self.rows)


def exact_affine(cf: ClaimsFile) -> tuple[np.ndarray, np.ndarray]:
    """(c, J) with exact value of claim j = c[j] + J[j] @ y, from the numpy reference engine.

    Building blocks do not depend on y (J row 0); dE_i/dy'_i = y'_i - y_i; dE_i/dθ depends on
    y_i alone (two decompositions give it exactly); dLoss/dθ by ``loss_gradient_affine``
    (forward mode: O(T) per parameter).
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
        gc, gJ = loss_gradient_affine(m, x, cf.h0, cf.reduction)  # (5,), (5, T)
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


def loss_gradient_affine(m, x: np.ndarray, h0: float, reduction: str) -> tuple[np.ndarray, np.ndarray]:
    """(c, J) with dLoss/dθ = c + J y for the scalar model, in O(T) work per parameter.

    Loss = (c_r / 2) sum_t (y'_t - y_t)^2, so dLoss/dθ = c_r sum_t (y'_t - y_t) dy'_t/dθ and
    J[θ, t] = -c_r dy'_t/dθ: the outputs' Jacobian, by forward mode (``engine.output_tangent``),
    one pass per parameter instead of T + 1 gradient runs.
    """
    T = x.shape[0]
    _, g0 = m.loss_and_grad(x, np.zeros(T), h0=h0, reduction=reduction, backend="numpy")
    c = np.array([float(g0[k].ravel()[0]) for k in PARAM_NAMES])  # (5,): the gradient at y = 0
    p = m.engine_params()
    xb = x.reshape(T, 1, 1)  # (T, 1, 1)
    fwd = engine.forward(p, xb, np.full((1, 1), h0), m.hidden_act, m.output_act)
    scale = engine.loss_scale(T, 1, reduction)
    J = np.empty((len(PARAM_NAMES), T))
    for i, k in enumerate(PARAM_NAMES):
        dp = engine.Params(*(np.ones_like(v) if name == k else np.zeros_like(v) for name, v in p._asdict().items()))
        J[i] = -scale * engine.output_tangent(p, xb, fwd, m.hidden_act, m.output_act, dp)[:, 0, 0]  # (T,)
    return c, J


def check(cf: ClaimsFile, y: Sequence[float] | None = None) -> Report:
    """Compare every claim with the exact value, at targets y, else the file's, else inferred ones."""
    targets = _targets(y, cf.T) if y is not None else cf.y
    c, J = exact_affine(cf)  # exact = c + J y for every claim
    analysis = infer_targets(cf, c, J) if targets is None else None
    fitted = analysis is not None
    if fitted:
        targets = analysis.targets  # None when no claim depends on the targets
    exact = c + J @ np.asarray(targets if targets is not None else np.zeros(cf.T), dtype=np.float64)
    if targets is not None:  # c + J y cancels digits when y is large: the gradients at y, computed directly
        exact = _with_direct_gradients(cf, exact, targets)
    rows = [Row(cl, judge(cl.printed, float(e), fitted and cl.depends_on_targets), fitted and cl.depends_on_targets)
            for cl, e in zip(cf.claims, exact)]
    report = Report(cf, rows, targets, fitted, analysis)
    if not fitted:
        grads = [i for i, cl in enumerate(cf.claims) if cl.depends_on_targets]
        report.plain_holds = sum(rows[i].holds for i in grads)
        report.negated_holds = sum(cf.claims[i].printed.holds(-exact[i]) for i in grads)
    return report


def _with_direct_gradients(cf: ClaimsFile, exact: np.ndarray, targets: Sequence[float]) -> np.ndarray:
    """exact with every dLoss/dθ claim replaced by the engine's gradient at these targets (full precision)."""
    from .model import RNN

    rows = [j for j, cl in enumerate(cf.claims) if cl.kind == "dLoss"]
    if not rows:
        return exact
    m = RNN.scalar(**cf.params, hidden_activation=cf.hidden_activation, output_activation=cf.output_activation)
    _, g = m.loss_and_grad(np.asarray(cf.x, dtype=np.float64), np.asarray(targets, dtype=np.float64), h0=cf.h0,
                           reduction=cf.reduction, backend="numpy")
    out = exact.copy()
    for j in rows:
        out[j] = float(g[cf.claims[j].theta].ravel()[0])
    return out


def _targets(y: Sequence[float], T: int) -> list[float]:
    """Targets given to ``check``: T finite numbers."""
    a = check_float_array(y, "targets", np.dtype(np.float64))
    if a.shape != (T,):
        raise BPTTError(f"targets: expected {T} numbers, one per step, got shape {a.shape}")
    return [float(v) for v in a]


def analyse_targets(cf: ClaimsFile) -> TargetAnalysis:
    """``infer_targets`` for a claims file, whether or not it gives targets."""
    c, J = exact_affine(cf)
    return infer_targets(cf, c, J)


def infer_targets(cf: ClaimsFile, c: np.ndarray, J: np.ndarray) -> TargetAnalysis:
    """The targets that best explain the claims (exact = c + J y), and which claims any targets reproduce.

    Least squares over the target-dependent claims, each in units of its written rounding; a linear
    programme (``audit.min_misfit``) for which claims can hold together. Claims no targets explain
    alongside the others are left out of the fit.
    """
    dep = [i for i, cl in enumerate(cf.claims) if cl.depends_on_targets]
    if not dep:
        return TargetAnalysis(targets=None, undetermined=list(range(1, cf.T + 1)))
    A = J[dep]  # (n, T)
    b = np.array([cf.claims[i].printed.value for i in dep]) - c[dep]
    half = np.array([cf.claims[i].printed.half_unit for i in dep])
    names = [cf.claims[i].key for i in dep]

    def misfit(idx) -> tuple[float, np.ndarray]:
        idx = list(idx)
        return min_misfit(A[idx], b[idx], half[idx])

    a = TargetAnalysis(targets=None, undetermined=[t + 1 for t in range(cf.T) if not np.any(A[:, t] != 0)],
                       lsq_targets=[float(v) for v in least_squares_targets(A, b, half)])
    # a claim whose row is zero does not depend on the targets after all (e.g. x_k = 0 kills every path)
    a.unexplainable_alone = [names[j] for j in range(len(dep)) if misfit([j])[0] > 1.0]
    a.misfit_all = misfit(range(len(dep)))[0]
    if a.misfit_all > 1.0 and len(dep) > 1:
        _flag_unexplainable(a, names, misfit)
    kept = [j for j in range(len(dep)) if names[j] not in a.unexplainable]
    a.kept = [names[j] for j in kept]
    y = _fit(A[kept], b[kept], half[kept], cf.T)
    for t in a.undetermined:
        y[t - 1] = 0.0
    a.targets = [float(v) for v in y]
    return a


def _flag_unexplainable(a: TargetAnalysis, names: list[str], misfit) -> None:
    """Fill misfit_without, largest_sets and unexplainable: (1) claims in none of the largest consistent
    sets; (2) the seed's test: leaving one claim out helps far more than leaving out any other (twice the
    next best, by the LP); (3) claims no targets give even alone."""
    n = len(names)
    a.misfit_without = {names[j]: misfit([k for k in range(n) if k != j])[0] for j in range(n)}
    a.largest_sets, a.largest_exhaustive = _largest_sets(n, misfit, names)
    in_some = {c for s in a.largest_sets for c in s.claims}
    flagged = [c for c in names if c not in in_some]
    best, second = sorted(a.misfit_without, key=a.misfit_without.get)[:2]
    if a.misfit_without[second] > 2 * a.misfit_without[best] and best not in flagged:
        flagged.append(best)
    a.unexplainable = flagged + [c for c in a.unexplainable_alone if c not in flagged]


def _fit(A: np.ndarray, b: np.ndarray, half: np.ndarray, T: int) -> np.ndarray:
    """Weighted least squares; where it misses a claim that some targets do reproduce, the LP's targets."""
    if len(b) == 0:
        return np.zeros(T)
    y = least_squares_targets(A, b, half)
    t_lp, y_lp = min_misfit(A, b, half)
    worst_ls = float(np.max(np.abs(A @ y - b) / half))
    return y_lp if t_lp <= 1.0 < worst_ls else y


def _largest_sets(n: int, misfit, names: list[str]) -> tuple[list[ConsistentSet], bool]:
    """The largest subsets of claims one choice of targets reproduces (exhaustive while cheap, else greedy)."""
    budget = MAX_SUBSET_LPS
    for size in range(n - 1, 0, -1):
        count = math.comb(n, size)
        if count > budget:
            break
        budget -= count
        found = [_consistent(idx, misfit, names) for idx in itertools.combinations(range(n), size)]
        found = [s for s in found if s is not None]
        if found:
            return found, True
    # greedy: drop the claim whose removal lowers the misfit most, until the rest fit
    keep = list(range(n))
    while len(keep) > 1 and misfit(keep)[0] > 1.0:
        keep = min(([k for k in keep if k != j] for j in keep), key=lambda s: misfit(s)[0])
    t, y = misfit(keep)
    return [ConsistentSet(tuple(names[i] for i in keep), tuple(float(v) for v in y))], False


def _consistent(idx: Sequence[int], misfit, names: list[str]) -> ConsistentSet | None:
    t, y = misfit(idx)
    return ConsistentSet(tuple(names[i] for i in idx), tuple(float(v) for v in y)) if t <= 1.0 else None
