r"""Check a person's hand-computed BPTT numbers (a claims file) against the exact values.

A claims file (TOML or JSON) holds the model, the sequence, optionally the targets, the loss
convention and the claimed numbers, each as the person wrote it:

    title = "..."                 # optional
    [model]                       # required: w, w_x, w_h, b1, b2 (numbers or nested lists);
    w = 1                         # optional: h0 (0), hidden_activation (sigmoid: sigmoid, tanh, relu),
    w_x = 1                       # output_activation (sigmoid: sigmoid, identity, softmax), reduction (mean),
    ...                           # loss (squared_error; bce with a sigmoid output, cross_entropy with softmax)
    [loss]                        # optional, the published loss as printed (defaults shown):
    half = true                   #   E_t = 1/2 sum_o (y_t - y'_t)^2 ; false: no 1/2
    reduction = "mean"            #   Loss = 1/|S| sum_{t in S} E_t ; "sum": no 1/|S| ;
                                  #   "mean_all": 1/(|S| O), the mean over every scored output
    scored = "all"                #   S: "all", "last", a list of steps [2, 3], or a 0/1 mask [0, 1, 1]
    [sequence]
    x = [1, 0]                    # required: T numbers (D = 1) or T lists of D numbers
    # y = [0.5, 0.5]              # optional targets: T numbers (O = 1) or T lists of O numbers
    [claims]
    "h_1" = 0.88
    "dLoss/dw_h" = [[0.1, 0.2], [0.3, 0.4]]   # an array claim is judged element by element
    "2 * Loss" = 0.036                        # an expression (below)
    # [given]                     # optional: data used exactly, e.g. "dE_1/dy'_1" = 0.1 (no sequence.y then)
    # [update]                    # optional: lr = 0.1, optimizer = "sgd" for θ_new and Loss_new
    # truncate = 2                # optional, before any section: truncated BPTT for every gradient

model.loss names E from the loss table (``bptt.losses``; ``bptt check --loss`` sets it): the seed's
squared error above (loss.half: with or without the 1/2), "bce" (E_t = -sum_o (y log y' + (1 - y)
log(1 - y')), targets in [0, 1]) or "cross_entropy" (E_t = -sum_o y_o log y'_o; targets class labels
0..O-1 or rows summing to 1). With those two, dE_t/du_t = y'_t - y_t, and Loss and E_i are affine
in the targets like the gradients, so the linear machinery below infers targets for them too (for
cross_entropy with each inferred row held to sum 1, and every inferred target in [0, 1]).

Sizes come from the parameters: H from w_h (H x H), O from b2, D from x; a parameter may be
written with its size-1 axes dropped (w_x = [0.5, -0.3] for H = 2, D = 1). Claimed quantities
(t, i, k are steps 1..T; h_0 too where a state is meant; θ is w, w_x, w_h, b1 or b2):

    forward      h_t, z_t, u_t, y'_t (also ŷ_t), 1 - h_t, f'(z_t) = dh_t/dz_t, g'(u_t) = dy'_t/du_t,
                 sgm'(z_t), tanh'(z_t), relu'(z_t), sgm'(u_t) (that function's derivative at z_t or
                 u_t, whatever the model's f), 1 - h_t^2, h_t(1 - h_t), y'_t(1 - y'_t), dh_i/dh_k
    loss         Loss (L), E_i                      quadratic in the targets (affine: bce, cross_entropy)
    per term     dE_i/dy'_i, dE_i/du_i, dE_i/dh_k, dE_i/dz_k, dE_i/dθ       affine in the targets
    per path     dE_i/dθ [k=2]: the contribution of path k (∂h_k/∂θ, or for w, b2 the term k = i)
    total        dLoss/dθ, dLoss/dh_t, dLoss/dz_t, dLoss/du_t, dLoss/dy'_t  affine in the targets
    per step     dLoss/dθ [t=2]: dLoss/dθ_t, the gradient of the copy θ_t of θ that the unrolled
                 network uses at step t (w_x, w_h, b1 in z_t; w, b2 in u_t), so
                 dLoss/dθ = sum_t dLoss/dθ [t]: for w_x, (dLoss/dz_t) x_t^T.

    inputs       dLoss/dx_t, dE_i/dx_k (k <= i): x_t enters only through z_t, so (dLoss/dz_t) w_x
    sensitivity  dh_t/dθ (H, *θ.shape), dy'_t/dθ (O, *θ.shape): forward (RTRL) S_t = dh_t/dθ through
                 every earlier step (``engine.state_tangent``), target-free
    truncated    dLoss/dθ [K=2], dE_i/dθ [K=2] (also [trunc=2]), dLoss/dz_t, dLoss/dx_t: each E_t
                 backpropagated through its last K steps (``engine.bptt_truncated``); ``truncate = K``
                 at the top of the file truncates every gradient
    update       θ_new (θ_after, θ^+, new_θ) and Loss_new (Loss_after; Loss_before is Loss): one step of
                 [update]'s optimizer (``bptt.optim``): lr (required), optimizer = "sgd" (momentum,
                 nesterov) or "adam" (betas, eps), on dLoss/dθ (truncated with truncate = K)
    expression   any arithmetic over the quantities above and θ (the parameters), x_t, y_t (targets),
                 lr, numbers: + - * / ^ (or **) @ ( ), log ln exp sqrt abs tanh sigmoid softmax relu
                 sum, and [i] / [i,j] (from 1) for one element: "w_h * h_1", "h_2^2", "2 * Loss",
                 "(Loss_before - Loss_after) / Loss_before * 100", "dE_3/dw_h [k=2] + dE_3/dw_h [k=3]",
                 "-log(y'_2[3])", "w_h - lr * dLoss/dw_h". * is element by element, @ the matrix
                 product. A quantity is the longest piece up to an operator that names one. An
                 expression over target-dependent quantities does not take part in inferring the
                 targets: it is judged at the targets the other claims give (marked *).

A step suffix may also be written (k=2), @t=2 or "at t = 2"; for dE_i the path k is the step
k term of dE_i/dθ, so [k=..] and [t=..] mean the same. dE_i means the error term E_i of the
declared loss (with or without the 1/2), whether or not step i is scored.

Given data. [given] holds values the source states as data rather than derives: output errors
dE_t/dy'_t, deltas dE_t/du_t or dLoss/dz_t, with bce or cross_entropy E_t or Loss; any quantity affine
in the targets. Each is used exactly (the float the decimal names): the targets solve c + J y = value
(least squares that must leave no residual beyond float64 rounding, else one line names the given
value no targets reproduce). Where they fix every target, the claims are judged at those (the
report says "solved exactly from the given values"; --json targets.source "given_data"); otherwise
they are equality constraints of the inference below. Not beside sequence.y; a squared-error E_t or
Loss (which fixes only |y_t - y'_t|) is refused.

Conventions. [model] layout = "row": the source writes row vectors (z_t = x_t w_x + h_{t-1} w_h,
u_t = h_t w), so w_x (D x H), w_h and w (H x O) are read transposed, and claims of θ's shape
(dLoss/dθ, dE_i/dθ, θ_new) are written in that layout too. "w_x|w_h" in [model]: the combined matrix
[w_x | w_h] (H x (D + H); with layout = "row" the rows of w_x over those of w_h, (D + H) x H). A
number 0 is accepted for a zero vector or matrix, in [model] and as a claim. With fewer steps scored
than T, sequence.y may list the scored steps' targets only (a claim that needs another step's target
is refused). A square matrix claim whose wrong entries all hold transposed is marked "transposed"
(hint in --json), with the layout = "row" advice.

Untrusted files: load() stats the path first and reads only a regular file of at most MAX_FILE_BYTES
(a FIFO, a device or a huge file is one line, never a blocked read). Without targets, at most
MAX_FITTED_CLAIMS target-dependent claims; the search for consistent subsets costs at most
MAX_SUBSET_LPS programmes exhaustively, then one per claim dropped (greedy: the claim the best targets
miss most), and the leave-one-out misfits are computed up to MAX_LEAVE_ONE_OUT claims.

Each claim is checked at the precision it is written with (0.0020: |exact - 0.0020| <= 0.00005),
read from the file's raw text, or within ``audit.ULPS`` float64 ulps where that is larger. Exact
values at given (or fitted) targets come straight from the float64 engine's functions.

Gradients are the true-sign ones (dE_i/dy'_i = y'_i - y_i, times 2 without the 1/2). Without
targets: the gradient claims are affine in y, so the targets that best explain them are a weighted
least-squares fit, and which claims any targets reproduce together is a linear programme
(``audit.min_misfit``). Loss and E_i are quadratic in y: they are judged at the targets the affine
claims give; the steps no affine claim depends on are fitted to them (a step with an E_t claim to E_t
alone, the rest to Loss), and there y_t - y'_t is fixed only up to its sign (the fit takes
y_t >= y'_t). Last, every target is refitted to the kept affine and the quadratic claims together
(nonlinear least squares, each claim in units of its rounding), kept only if more claims then hold.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import activations, engine, floatmath, losses, optim
from .audit import (Printed, Verdict, judge, least_squares_targets, min_misfit, nonlinear_least_squares)
from .engine import PARAM_NAMES
from .untrusted import open_regular, read_bounded
from .products import matmul as mm
from .validation import REDUCTIONS, BPTTError, check_choice, check_float_array, short_repr

MODEL_KEYS = ("w", "w_x", "w_h", "b1", "b2", "h0", "hidden_activation", "output_activation", "reduction", "loss",
              "layout", "w_x|w_h")
LAYOUTS = ("column", "row")  # column: z_t = w_x x_t + w_h h_{t-1} (the engine's); row: z_t = x_t w_x + h_{t-1} w_h
SEQUENCE_KEYS = ("x", "y")
LOSS_KEYS = ("half", "reduction", "scored")
LOSS_REDUCTIONS = ("mean", "sum", "mean_all")
TOP_KEYS = ("model", "sequence", "loss", "claims", "title", "given", "update", "truncate")
UPDATE_KEYS = ("lr", "optimizer", "momentum", "nesterov", "betas", "eps")
UPDATE_OPTIMIZERS = ("sgd", "adam")
_PARAM_ALIASES = {"w": "w", "w_x": "w_x", "wx": "w_x", "w_h": "w_h", "wh": "w_h", "b1": "b1", "b_1": "b1",
                  "b2": "b2", "b_2": "b2", "w_y": "w", "wy": "w"}
CLAIM_FORMS = ("h_t, z_t, u_t, y'_t, 1 - h_t, f'(z_t), g'(u_t), tanh'(z_t), 1 - h_t^2, dh_i/dh_k, Loss, E_i, "
               "dE_i/dy'_i, dE_i/dh_k, dE_i/dz_k, dE_i/dθ, dE_i/dθ [k=2], dLoss/dθ, dLoss/dθ [t=2], dLoss/dh_t, "
               "dLoss/dz_t, dLoss/du_t, dLoss/dy'_t, dLoss/dx_t, dE_i/dx_k, dh_t/dθ, dy'_t/dθ, θ_new, Loss_new "
               "(θ: w, w_x, w_h, b1, b2; [K=2] after a gradient: truncated BPTT), or an expression over them, "
               "x_t, y_t, θ and lr with + - * / ^ @, log, exp, sqrt, tanh, sigmoid, softmax, sum, abs")
MAX_EXPRESSION = 300  # characters of one expression claim
MAX_SUBSET_LPS = 250  # exhaustive search for the largest consistent sets up to this many programmes
MAX_LEAVE_ONE_OUT = 60  # the leave-one-out misfits (one LP each) up to this many target-dependent claims
MAX_FITTED_CLAIMS = 1000  # without targets, at most this many target-dependent claims (each LP grows with them)
MAX_FILE_BYTES = 1 << 20  # a claims file: a few kB; refused above this before reading
JSON_SCHEMA = 1  # the version of ``report_dict``'s layout

# How a claim's exact value depends on the targets y.
NONE, AFFINE, QUADRATIC, LATE = "none", "affine", "quadratic", "late"  # LATE: any other dependence; judged
# at the targets the others give, not used to infer them
FORWARD_KINDS = ("h", "1-h", "z", "u", "y'", "f'", "g'", "act'", "1-h^2", "h(1-h)", "y'(1-y')", "dh/dh")
SENSITIVITY_KINDS = ("dh/dθ", "dy'/dθ")  # forward (RTRL) sensitivities, target-free
TERM_KINDS = ("dE/dy'", "dE/du", "dE", "dE[k]", "dE/dh", "dE/dz", "dE/dx")
LOSS_KINDS = ("dLoss", "dLoss[t]", "dLoss/dh", "dLoss/dz", "dLoss/du", "dLoss/dy'", "dLoss/dx", "new")
TRUNCATABLE = ("dLoss", "dLoss[t]", "dLoss/dz", "dLoss/dx", "dE", "dE[k]", "dE/dz", "dE/dx", "new")
GRADIENT_OF_THETA = ("dLoss", "dLoss[t]", "dE", "dE[k]", "new", "param")  # shaped like θ (row layout: θ^T)
QUADRATIC_KINDS = ("Loss", "E")


class _Raw(str):
    """A number as written in the file (from the parser's parse_float/parse_int hooks)."""


# ------------------------------------------------------------------ the file's parts
@dataclass(frozen=True)
class LossSpec:
    """The declared loss: E_t = kappa * (the loss record's E of step t) and
    Loss = s sum_{t in scored} E_t, s = 1/|S| (mean), 1 (sum) or 1/(|S| O) (mean_all).

    The squared error: E_t = c sum_o (y_t - y'_t)^2, c = 1/2 with half (the record's), else 1 (kappa = 2).
    bce and cross_entropy have no 1/2 (half False, kappa 1)."""

    half: bool = True
    reduction: str = "mean"
    scored: tuple[int, ...] = ()  # 1-based steps
    declared: bool = False  # the file has a [loss] section
    name: str = losses.DEFAULT  # the loss table's record

    @property
    def record(self) -> losses.Loss:
        return losses.get(self.name)

    @property
    def squared(self) -> bool:
        """E quadratic in the targets (the squared error); else affine (bce, cross_entropy)."""
        return self.name == "squared_error"

    @property
    def c(self) -> float:
        return 0.5 if self.half else 1.0

    @property
    def kappa(self) -> float:
        """E_t = kappa * record.value; for the squared error dE_t/dy'_t = kappa (y'_t - y_t)."""
        return (1.0 if self.half else 2.0) if self.squared else 1.0

    def weights(self, T: int, O: int) -> np.ndarray:
        """w_t with Loss = sum_t w_t E_t, (T,)."""
        n = len(self.scored)
        s = {"mean": 1.0 / n, "sum": 1.0, "mean_all": 1.0 / (n * O)}[self.reduction]
        w = np.zeros(T)
        w[[t - 1 for t in self.scored]] = s
        return w

    def describe(self, T: int, O: int) -> str:
        """'Loss = 1/2 (E_1 + E_2), E_t = 1/2 (y_t - y'_t)^2' and the like."""
        terms = " + ".join(f"E_{t}" for t in self.scored) if len(self.scored) <= 6 else \
            f"sum over {len(self.scored)} scored steps of E_t"
        n = len(self.scored)
        scale = {"mean": f"1/{n} " if n > 1 else "", "sum": "", "mean_all": f"1/{n * O} " if n * O > 1 else ""}
        wrap = f"({terms})" if scale[self.reduction] and len(self.scored) > 1 else terms
        err = ("1/2 " if self.half else "") + ("(y_t - y'_t)^2" if O == 1 else "||y_t - y'_t||^2")
        if self.name == "bce":
            err = ("-(y_t log y'_t + (1 - y_t) log(1 - y'_t))" if O == 1 else
                   "-sum_o (y_t,o log y'_t,o + (1 - y_t,o) log(1 - y'_t,o))")
        elif self.name == "cross_entropy":
            err = "-sum_o y_t,o log y'_t,o"
        return f"Loss = {scale[self.reduction]}{wrap}, E_t = {err}"


@dataclass(frozen=True)
class Claim:
    """One claimed number: one element of a quantity (``FORWARD_KINDS``, ``TERM_KINDS``, ...).

    key: the file's name, with [i] or [i,j] (1-based) for an element of an array claim.
    t: the step (the i of E_i and dE_i, the t of h_t and dLoss/dh_t); k: the second step (dE_i/dh_k,
    dE_i/dθ [k], dLoss/dθ [t], dh_i/dh_k); theta: the parameter; act: sgm'(z_t)'s function and argument;
    index: the element (0-based) within the quantity's array; name: the file's key.
    """

    key: str
    kind: str
    t: int | None
    theta: str | None
    printed: Printed
    k: int | None = None
    act: tuple[str, str] | None = None
    index: tuple[int, ...] = ()
    name: str = ""
    affine_value: bool = False  # Loss and E_i are affine in the targets (bce, cross_entropy)
    trunc: int | None = None  # truncated BPTT: each E_i reaches back through K steps
    expr: Any = None  # an expression claim's tree (``_Expr``)
    row: bool = False  # the file's row layout: θ-shaped quantities are written transposed

    @property
    def dependence(self) -> str:
        """NONE, AFFINE, QUADRATIC or LATE: how the exact value depends on the targets."""
        if self.kind == "expr":
            return self.expr.dependence
        if self.kind in QUADRATIC_KINDS:
            return AFFINE if self.affine_value else QUADRATIC
        if self.kind in ("Loss_new", "y"):
            return LATE if self.kind == "Loss_new" else AFFINE
        return AFFINE if self.kind in TERM_KINDS or self.kind in LOSS_KINDS else NONE

    @property
    def transposed(self) -> bool:
        """Written transposed (row layout) relative to the engine's θ shape."""
        return self.row and self.kind in GRADIENT_OF_THETA and self.theta in ("w", "w_x", "w_h")

    @property
    def engine_index(self) -> tuple[int, ...]:
        """index in the engine's layout."""
        return self.index[::-1] if self.transposed else self.index

    @property
    def depends_on_targets(self) -> bool:
        return self.dependence != NONE


@dataclass
class ClaimsFile:
    """A claims file, validated. params: arrays in the engine's shapes; x (T, D); y (T, O) or None."""

    path: str
    params: dict[str, np.ndarray]
    h0: np.ndarray  # (H,)
    hidden_activation: str
    output_activation: str
    loss: LossSpec
    x: np.ndarray
    y: np.ndarray | None
    claims: list[Claim]
    title: str | None = None
    given: list[Claim] = field(default_factory=list)  # [given]: values used exactly (printed = the value)
    update: "UpdateSpec | None" = None
    truncate: int | None = None
    layout: str = "column"
    unscored_targets: tuple[int, ...] = ()  # steps whose target the file leaves out (unscored; NaN in y)

    @property
    def T(self) -> int:
        return self.x.shape[0]

    @property
    def D(self) -> int:
        return self.x.shape[1]

    @property
    def H(self) -> int:
        return self.params["w_h"].shape[0]

    @property
    def O(self) -> int:
        return self.params["b2"].shape[0]

    @property
    def reduction(self) -> str:
        return self.loss.reduction

    @property
    def is_scalar(self) -> bool:
        return self.D == self.H == self.O == 1

    @property
    def scalar_params(self) -> dict[str, float]:
        """The five parameters as numbers (a one-unit model only)."""
        return {k: float(v.ravel()[0]) for k, v in self.params.items()}


@dataclass(frozen=True)
class UpdateSpec:
    """[update]: one optimizer step θ_new = step(θ, dLoss/dθ) of ``bptt.optim``'s SGD or Adam."""

    lr: float
    optimizer: str = "sgd"
    momentum: float = 0.0
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8


# ------------------------------------------------------------------ reading the file
def load(path: str | Path, loss: str | None = None) -> ClaimsFile:
    """Read and validate a claims file; any problem raises a one-line BPTTError naming the field.

    loss: a loss table name that replaces the file's model.loss (``bptt check --loss``)."""
    p = Path(path)
    ext = p.suffix.lower()
    if p.is_dir():
        raise BPTTError(f"{p}: is a directory, not a claims file")
    if ext not in (".toml", ".json"):
        raise BPTTError(f"{p}: unknown file type {ext or '(no extension)'!r}; a claims file must end in .toml or .json")
    return from_text(_read_small(p), ext[1:], str(p), loss)


def _read_small(p: Path) -> str:
    """The text of a regular file of at most MAX_FILE_BYTES (bptt.untrusted: a FIFO or a device is refused
    before it is read, and the cap holds while it is read)."""
    fix = "give the path of a .toml or .json claims file"
    with open_regular(p, "a claims file", MAX_FILE_BYTES, fix) as f:
        raw = read_bounded(f, MAX_FILE_BYTES, p, "a claims file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BPTTError(f"{p}: cannot read it: not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8") from None


def from_text(text: str, fmt: str, where: str = "claims file", loss: str | None = None) -> ClaimsFile:
    """A claims file's text (fmt 'toml' or 'json') -> ClaimsFile; ``where`` names it in messages."""
    return from_dict(parse(text, fmt, where), where, loss)


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


def _array(v: Any, field_name: str, leaf=None) -> np.ndarray:
    """A number or a rectangular nested list of numbers -> array (leaf: how to read one number)."""
    leaf = leaf or _number
    if not isinstance(v, list):
        return np.asarray(leaf(v, field_name), dtype=object if leaf is not _number else np.float64)
    if not v:
        raise BPTTError(f"{field_name}: an empty list; give the numbers, e.g. [0.5, -0.3]")
    parts = [_array(e, f"{field_name}[{i}]", leaf) for i, e in enumerate(v)]
    if len({p.shape for p in parts}) != 1:
        raise BPTTError(f"{field_name}: rows of different lengths {[p.shape for p in parts][:4]}; "
                        "a nested list must be rectangular")
    return np.stack(parts)


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


def from_dict(data: dict, where: str = "claims file", loss: str | None = None) -> ClaimsFile:
    """Validate parsed data (numbers as ``_Raw`` text or numbers) into a ClaimsFile (loss: as ``load``)."""
    for k in data:
        if k not in TOP_KEYS:
            raise BPTTError(f"{where}: unknown section {k!r}; the sections are model, sequence, loss, claims, "
                            "given, update (and title, truncate)")
    model_table = _table(data, "model", where)
    raw = _model_values(model_table, where)
    x = _inputs(_table(data, "sequence", where), where)
    layout = check_choice("model.layout", _string(model_table.get("layout", "column"), "model.layout"), LAYOUTS)
    if "w_x|w_h" in raw:
        raw["w_x"], raw["w_h"] = _split_combined(raw.pop("w_x|w_h"), x.shape[1], layout)
    model = _model(model_table, raw, x.shape[1], layout)
    O = model["params"]["b2"].shape[0]
    criterion = _criterion(model_table, model["output"], loss)
    loss = _loss(_table(data, "loss", where, required=False), model_table, x.shape[0], "loss" in data,
                 criterion.name)
    y, unscored = _targets_field(_table(data, "sequence", where), x.shape[0], O, criterion, loss.scored)
    raw_claims = _table(data, "claims", where)
    if not raw_claims:
        raise BPTTError(f"{where}: [claims] is empty; add claimed numbers such as \"dLoss/dw\" = 0.015")
    truncate = _truncate(data.get("truncate"), "truncate", x.shape[0]) if "truncate" in data else None
    update = _update(_table(data, "update", where, required=False)) if "update" in data else None
    ctx = _Context(x.shape[0], _shapes(model["params"]), not loss.squared,
                   None if activations.get(model["output"]).elementwise else model["output"], truncate,
                   layout == "row", update is not None)
    claims = [c for k, v in raw_claims.items() for c in _claims(k, v, ctx)]
    given = [c for k, v in _table(data, "given", where, required=False).items() for c in _claims(k, v, ctx, "given")]
    _check_given(given, y, loss, where)
    _check_unscored(claims + given, unscored)
    title = data.get("title")
    if title is not None:
        title = _string(title, "title")
    return ClaimsFile(where, model["params"], model["h0"], model["hidden"], model["output"], loss, x, y, claims, title,
                      given, update, truncate, layout, unscored)


@dataclass(frozen=True)
class _Context:
    """What reading a claim needs: T, the shapes, the loss's kind, the file-wide settings."""

    T: int
    shapes: dict
    affine_value: bool = False  # Loss and E_i affine in the targets (bce, cross_entropy)
    vector_output: str | None = None  # g's name where g is softmax
    truncate: int | None = None  # the file's truncate = K
    row: bool = False  # model.layout = "row"
    update: bool = False  # the file has [update]


def _truncate(v: Any, where: str, T: int) -> int:
    n = _number(v, where)
    if n != int(n) or not 1 <= n:
        raise BPTTError(f"{where}: {short_repr(v)} is not a number of steps; write K = 1, 2, ... (each error "
                        "term backpropagates through at most K steps)")
    return min(int(n), T)


def _update(table: dict) -> UpdateSpec:
    """[update]: lr (required), optimizer sgd (momentum, nesterov) or adam (betas, eps)."""
    _known_keys(table, UPDATE_KEYS, "update.{k} is not an update field")
    if "lr" not in table:
        raise BPTTError("update.lr is missing: give the learning rate of the step, e.g. lr = 0.1")
    lr = _number(table["lr"], "update.lr")
    opt = check_choice("update.optimizer", _string(table.get("optimizer", "sgd"), "update.optimizer"),
                       UPDATE_OPTIMIZERS)
    mine = {"sgd": ("momentum", "nesterov"), "adam": ("betas", "eps")}[opt]
    for k in ("momentum", "nesterov", "betas", "eps"):
        if k in table and k not in mine:
            raise BPTTError(f"update.{k} is a setting of the other optimizer; remove it or set optimizer")
    nesterov = table.get("nesterov", False)
    if not isinstance(nesterov, bool):
        raise BPTTError(f"update.nesterov: expected true or false, got {short_repr(nesterov)}")
    betas = _array(table.get("betas", [0.9, 0.999]), "update.betas")
    if betas.shape != (2,) or not np.all((betas >= 0) & (betas < 1)):
        raise BPTTError("update.betas: expected two numbers in [0, 1), e.g. [0.9, 0.999]")
    momentum = _number(table.get("momentum", 0), "update.momentum")
    eps = _number(table.get("eps", 1e-8), "update.eps")
    if momentum < 0 or eps < 0:
        raise BPTTError("update.momentum and update.eps must be >= 0")
    return UpdateSpec(lr, opt, momentum, nesterov, (float(betas[0]), float(betas[1])), eps)


def _check_given(given: list[Claim], y: np.ndarray | None, loss: LossSpec, where: str) -> None:
    """[given] values fix the targets: not beside sequence.y, and only quantities affine in the targets."""
    if not given:
        return
    if y is not None:
        raise BPTTError(f"{where}: both sequence.y and [given] are present; the given values fix the targets, "
                        "so keep one of them")
    for cl in given:
        if cl.dependence == QUADRATIC:
            raise BPTTError(f"given.{cl.name}: with the squared error {cl.name} fixes only |y_t - y'_t|, not the "
                            "targets; give the output errors dE_t/dy'_t instead (or the targets in sequence.y)")
        if cl.dependence != AFFINE:
            raise BPTTError(f"given.{cl.name}: does not depend on the targets, so giving it fixes nothing; put it "
                            "in [claims] to check it")


def _check_unscored(claims: list[Claim], unscored: tuple[int, ...]) -> None:
    """A step whose target the file leaves out: no claim may need E_t of that step."""
    for cl in claims:
        if cl.kind == "expr":
            needs = cl.expr.term_steps
        else:
            needs = {cl.t} if cl.kind in TERM_KINDS + ("E", "y") else set()
        bad = sorted(needs & set(unscored))
        if bad:
            raise BPTTError(f"claims.{cl.name}: needs the target of step {bad[0]}, which sequence.y leaves out "
                            "(it lists the scored steps' targets only); give all T targets")


def _model_values(model: dict, where: str) -> dict[str, np.ndarray]:
    """[model]'s fields known, the five parameters present, each a number or a nested list of numbers;
    or "w_x|w_h", the combined matrix [w_x | w_h] (H x (D + H); row layout (D + H) x H), for w_x and w_h."""
    model = {("w_x|w_h" if re.sub(r"[\s\[\]]", "", k) in ("w_x|w_h", "W_xh|W_hh", "w_xh|w_hh") else k): v
             for k, v in model.items()}
    _known_keys(model, MODEL_KEYS, f"{where}: model.{{k}} is not a model field")
    raw = {}
    if "w_x|w_h" in model:
        if "w_x" in model or "w_h" in model:
            raise BPTTError("model.w_x|w_h is the combined [w_x | w_h]: give it or w_x and w_h, not both")
        raw["w_x|w_h"] = _array(model["w_x|w_h"], "model.w_x|w_h")
    for k in PARAM_NAMES:
        if k in ("w_x", "w_h") and "w_x|w_h" in raw:
            continue
        if k not in model:
            raise BPTTError(f"{where}: missing model.{k}; the model needs w, w_x, w_h, b1 and b2")
        raw[k] = _array(model[k], f"model.{k}")
    return raw


def _split_combined(m: np.ndarray, D: int, layout: str) -> tuple[np.ndarray, np.ndarray]:
    """[w_x | w_h] (H, D + H) -> w_x (H, D), w_h (H, H); in the row layout [w_x ; w_h] (D + H, H), kept
    in that layout (``_model`` transposes)."""
    a = m.T if layout == "row" and m.ndim == 2 else m
    if a.ndim != 2 or a.shape[1] != D + a.shape[0]:
        want = "(D + H) x H: the rows of w_x over those of w_h" if layout == "row" else \
            "H x (D + H): the columns of w_x beside those of w_h"
        raise BPTTError(f"model.w_x|w_h: expected {want} with D = {D} from sequence.x, got shape {m.shape}")
    wx, wh = a[:, :D], a[:, D:]
    return (wx.T, wh.T) if layout == "row" else (wx, wh)


def _model(model: dict, raw: dict[str, np.ndarray], D: int, layout: str = "column") -> dict[str, Any]:
    """[model]: the five parameters (shapes from w_h, b2 and D), h0 and the activations, checked.
    Row layout: w_x, w_h, w written as the source's x W (D x H, H x H, H x O), transposed here."""
    H = _hidden_size(raw["w_h"])
    O = raw["b2"].size if raw["b2"].ndim <= 1 else -1
    if O < 1:
        raise BPTTError(f"model.b2: expected a number or a list of O numbers (one per output), got shape "
                        f"{raw['b2'].shape}")
    shapes = engine.param_shapes(D, H, O)
    why = f"H = {H} from model.w_h, O = {O} from model.b2, D = {D} from sequence.x"
    if layout == "row":
        why += ', layout = "row": written transposed'
        rows = {k: _fit_shape(raw[k], shapes[k][::-1], f"model.{k}", why) for k in ("w", "w_x", "w_h")}
        params = {k: rows[k].T.copy() if k in rows else _fit_shape(raw[k], shapes[k], f"model.{k}", why)
                  for k in PARAM_NAMES}
    else:
        params = {k: _fit_shape(raw[k], shapes[k], f"model.{k}", why) for k in PARAM_NAMES}
    hidden = _string(model.get("hidden_activation", "sigmoid"), "model.hidden_activation")
    output = _string(model.get("output_activation", "sigmoid"), "model.output_activation")
    activations.get(hidden, activations.HIDDEN_ACTIVATIONS, "model.hidden_activation")
    activations.get(output, activations.OUTPUT_ACTIVATIONS, "model.output_activation")
    h0 = _fit_shape(_array(model.get("h0", 0), "model.h0"), (H,), "model.h0", why, broadcast=True)
    return {"params": params, "h0": h0, "hidden": hidden, "output": output}


def _hidden_size(w_h: np.ndarray) -> int:
    if w_h.ndim == 0:
        return 1
    if w_h.ndim == 2 and w_h.shape[0] == w_h.shape[1]:
        return w_h.shape[0]
    raise BPTTError(f"model.w_h: expected a number (H = 1) or a square H x H nested list, got shape {w_h.shape}")


def _fit_shape(a: np.ndarray, shape: tuple[int, ...], name: str, why: str, broadcast: bool = False) -> np.ndarray:
    """a in ``shape``: as given, with its size-1 axes dropped (a number for size 1, a flat list for
    (H, 1) or (1, H)), or a number broadcast (broadcast=True)."""
    if a.shape == shape:
        return a.astype(np.float64)
    squeezed = tuple(n for n in shape if n != 1)
    if a.size == math.prod(shape) and tuple(n for n in a.shape if n != 1) == squeezed:
        return a.reshape(shape).astype(np.float64)
    if a.ndim == 0 and (broadcast or float(a) == 0.0):  # a number for every entry; 0 for a zero matrix
        return np.full(shape, float(a))
    raise BPTTError(f"{name}: expected shape {shape} ({why}), got {a.shape}; write it as a nested list of that shape")


def _inputs(seq: dict, where: str) -> np.ndarray:
    """sequence.x: T numbers (D = 1) or T lists of D numbers -> (T, D)."""
    _known_keys(seq, SEQUENCE_KEYS, f"{where}: sequence.{{k}} is not a sequence field")
    if "x" not in seq:
        raise BPTTError(f"{where}: missing sequence.x, the input sequence, e.g. x = [1, 0]")
    x = _array(seq["x"], "sequence.x") if isinstance(seq["x"], list) else None
    if x is None or x.ndim not in (1, 2):
        raise BPTTError(f"sequence.x: expected a non-empty list of numbers, e.g. [1, 0] (or of lists of D "
                        f"numbers), got {short_repr(seq['x'])}")
    return x[:, None] if x.ndim == 1 else x


def _criterion(model: dict, output: str, override: str | None) -> losses.Loss:
    """The loss record: ``override`` (--loss), else model.loss, else the squared error; paired with g."""
    if override is not None:
        rec = losses.get(override)
    else:
        name = _string(model.get("loss", losses.DEFAULT), "model.loss")
        rec = losses.LOSSES[check_choice("model.loss", name, tuple(losses.LOSSES))]
    return losses.pair(rec, activations.get(output))


def _targets_field(seq: dict, T: int, O: int, criterion: losses.Loss, scored: tuple[int, ...] = ()
                   ) -> tuple[np.ndarray | None, tuple[int, ...]]:
    """sequence.y: T numbers (O = 1), T class labels (cross_entropy) or T lists of O numbers -> (T, O);
    None when absent. With fewer steps scored than T, one target per scored step also reads: the others
    are NaN rows (the steps returned), never used by Loss or its gradients."""
    if "y" not in seq:
        return None, ()
    y = _array(seq["y"], "sequence.y") if isinstance(seq["y"], list) else None
    if y is None or y.ndim not in (1, 2):
        raise BPTTError(f"sequence.y: expected a list of targets, one per step, got {short_repr(seq['y'])}")
    n = len(scored)
    if 0 < n < T and y.shape[0] == n and T != n:
        full, rest = _targets_field({"y": _pad(seq["y"], scored, T)}, T, O, criterion)
        missing = tuple(t for t in range(1, T + 1) if t not in scored)
        full[[t - 1 for t in missing]] = math.nan
        return full, missing
    return _targets_rows(y, T, O, criterion), ()


def _pad(values: list, scored: tuple[int, ...], T: int) -> list:
    """Targets of the scored steps -> T of them, each unscored step given the first scored step's (a
    valid target, replaced by NaN after validation)."""
    out = [values[0]] * T
    for t, v in zip(scored, values):
        out[t - 1] = v
    return out


def _targets_rows(y: np.ndarray, T: int, O: int, criterion: losses.Loss) -> np.ndarray:
    if y.ndim == 1 and criterion.class_labels and y.shape == (T,):
        return _labels(y, O, "sequence.y")
    y = y[:, None] if y.ndim == 1 else y
    if y.shape != (T, O):
        labels = " (T class labels need loss = \"cross_entropy\")" if y.shape == (T, 1) and O > 1 else ""
        raise BPTTError(f"sequence.y has shape {y.shape} but the sequence has T = {T} steps and the model O = {O} "
                        f"outputs; give one target per step (a list of O per step when O > 1; or one per scored step)"
                        f"{labels}")
    return _valid_targets(y, criterion, "sequence.y")


def _labels(y: np.ndarray, O: int, where: str) -> np.ndarray:
    """T class labels 0..O-1 (whole numbers) -> one-hot rows (T, O)."""
    if np.any(y != np.round(y)):
        bad = y[y != np.round(y)][0]
        raise BPTTError(f"{where}: {float(bad)!r} is not a class label; cross-entropy targets are whole numbers "
                        f"0..{O - 1} (one per step) or one-hot rows of {O} numbers")
    try:
        return losses.one_hot(y.astype(np.int64), O, np.float64)
    except BPTTError as e:
        raise BPTTError(f"{where}: {e}") from None


def _valid_targets(y: np.ndarray, criterion: losses.Loss, where: str) -> np.ndarray:
    try:
        criterion.check_targets(y)
    except BPTTError as e:
        raise BPTTError(f"{where}: {e}") from None
    return y


def _loss(table: dict, model: dict, T: int, declared: bool, name: str = losses.DEFAULT) -> LossSpec:
    """[loss] (half, reduction, scored), with model.reduction as the older spelling of loss.reduction."""
    _known_keys(table, LOSS_KEYS, "loss.{k} is not a loss field")
    if name != "squared_error" and "half" in table:
        raise BPTTError(f"loss.half is the 1/2 of the squared error; the {name} loss has none: remove loss.half "
                        "(or use loss squared_error)")
    half = table.get("half", name == "squared_error")
    if not isinstance(half, bool):
        raise BPTTError(f"loss.half: expected true or false, got {short_repr(half)}; false: E_t = (y_t - y'_t)^2")
    if "reduction" in table and "reduction" in model:
        raise BPTTError("loss.reduction and model.reduction are both given; keep loss.reduction alone")
    red = table.get("reduction", model.get("reduction", "mean"))
    where = "loss.reduction" if "reduction" in table else "model.reduction"
    reduction = check_choice(where, _string(red, where), LOSS_REDUCTIONS if "reduction" in table else REDUCTIONS)
    return LossSpec(half, reduction, _scored(table.get("scored", "all"), T), declared, name)


def _scored(v: Any, T: int) -> tuple[int, ...]:
    """loss.scored: "all", "last", a list of steps (1..T) or a 0/1 mask of length T -> the steps."""
    if v == "all":
        return tuple(range(1, T + 1))
    if v == "last":
        return (T,)
    how = 'write "all", "last", a list of steps such as [2, 3], or a 0/1 mask with one entry per step'
    if not isinstance(v, list) or not v or isinstance(v, str):
        raise BPTTError(f"loss.scored: got {short_repr(v)}; {how}")
    nums = [_number(e, f"loss.scored[{i}]") for i, e in enumerate(v)]
    if any(n != int(n) for n in nums):
        raise BPTTError(f"loss.scored: {short_repr(nums)} has a non-integer entry; {how}")
    ints = [int(n) for n in nums]
    if len(ints) == T and set(ints) <= {0, 1} and 0 in ints:  # a mask
        steps = [t for t, m in enumerate(ints, 1) if m]
    else:
        steps = ints
    if not steps or any(not 1 <= t <= T for t in steps) or len(set(steps)) != len(steps):
        raise BPTTError(f"loss.scored: {short_repr(ints)} must name distinct steps in 1..{T} (at least one); {how}")
    return tuple(sorted(steps))


# ------------------------------------------------------------------ claim names
_STEP = re.compile(r"(.+?)(?:\[(?:k|t)=(\d+)\]|\((?:k|t)=(\d+)\)|@(?:k|t)=(\d+)|at(?:k|t)=(\d+))")
_VAR = r"(h|z|u|y')_(\d+)"
_ACT_NAMES = {"f": "f", "g": "g", "sgm": "sigmoid", "sigmoid": "sigmoid", "sigma": "sigmoid", "tanh": "tanh",
              "relu": "relu", "id": "identity", "identity": "identity"}


def _normalise(key: str, keep_ops: bool = False) -> str:
    """The key as the grammar reads it: no spaces, braces, backslashes or '*' (keep_ops: '*' kept, for an
    expression); ∂ -> d; ŷ_t, y_t' -> y'_t; ·, × -> *; − -> -."""
    s = re.sub(r"[\s{}\\]" if keep_ops else r"[\s{}*\\]", "", key)
    for a, b in (("∂", "d"), ("’", "'"), ("′", "'"), ("σ", "sigma"), ("ŷ", "y'"), ("haty", "y'"), ("yhat", "y'"),
                 ("−", "-"), ("·", "*"), ("×", "*"), ("θ", "theta"), ("η", "lr")):
        s = s.replace(a, b)
    return re.sub(r"y_(\d+)'", r"y'_\1", s)


_TRUNC = re.compile(r"(.+?)(?:\[(?:K|trunc|truncate)=(\d+)\]|\((?:K|trunc|truncate)=(\d+)\))")
_OPS = "+-*/^()@[],"


def _plain_spec(s: str, ctx: "_Context", where: str, in_expr: bool = False) -> dict[str, Any] | None:
    """A quantity's normalised name -> {kind, t, k, theta, act, trunc}; None when it names none (then it
    may be an expression). Raises where the name is recognisably a quantity written wrong."""
    m = re.search(r"(?<![\d.])\d{10,}", s)
    if m:  # no step or K has 10 digits; and int() of thousands of digits would raise (Python's 4300-digit limit)
        raise BPTTError(f"{where}: a whole number of {len(m[0])} digits; steps run from 1 to T = {ctx.T}: "
                        "write the step (or K) as a number at most T")
    trunc = None
    m = _TRUNC.fullmatch(s)
    if m:
        s, trunc = m[1], int(m[2] or m[3])
    step = None
    m = _STEP.fullmatch(s)
    if m:
        s, step = m.group(1), int(next(g for g in m.groups()[1:] if g))
    spec = _forward_name(s) or _loss_name(s) or _term_name(s) or _update_name(s)
    if spec is None:
        if re.fullmatch(r"y_(\d+)", s) and not in_expr:
            t = s[2:]
            raise BPTTError(f"{where}: y_{t} is a target, not a claim; put targets in sequence.y "
                            f"(predictions are y'_{t})")
        return None
    if spec.get("theta") == "?":
        if any(c in spec["bad"] for c in _OPS):
            return None  # dLoss/dw_h/2: an expression
        raise BPTTError(f"{where}: unknown parameter {spec['bad']!r}; the parameters are w, w_x, w_h, b1 (b_1), "
                        "b2 (b_2), or write dh_t, dz_t, du_t, dy'_t, dx_t for a state or an input")
    if step is not None:
        if spec["kind"] not in ("dE", "dLoss"):
            raise BPTTError(f"{where}: a step suffix such as [k=2] belongs to dE_i/dθ or dLoss/dθ (the "
                            "contribution of path or step k)")
        spec = {**spec, "kind": spec["kind"] + ("[k]" if spec["kind"] == "dE" else "[t]"), "k": step}
    if trunc is not None and spec["kind"] not in TRUNCATABLE:
        raise BPTTError(f"{where}: a truncation [K={trunc}] belongs to a gradient of the parameters, of z_t or "
                        "of x_t (dLoss/dθ, dE_i/dθ, dLoss/dz_t, ...), or θ_new")
    trunc = trunc if trunc is not None else ctx.truncate
    if trunc is not None:
        if spec["kind"] in TRUNCATABLE:
            if trunc < 1:
                raise BPTTError(f"{where}: [K={trunc}]: truncation needs K >= 1 steps")
            spec = {**spec, "trunc": min(trunc, ctx.T)}
        elif spec["kind"] in ("dLoss/dh", "dE/dh"):
            raise BPTTError(f"{where}: with truncate = {trunc} the gradient of h_t is not defined here; claim "
                            "dLoss/dz_t (truncated) or drop truncate")
    if spec["kind"] in ("new", "Loss_new") and not ctx.update:
        raise BPTTError(f"{where}: a value after the update step needs an [update] section with its learning "
                        "rate, e.g. [update] lr = 0.1")
    _check_steps(spec, ctx.T, where)
    return spec


def _update_name(s: str) -> dict[str, Any] | None:
    """θ_new (θ_after, θ^+, new_θ) and Loss_new (Loss_after, L_new); Loss_before is Loss."""
    if re.fullmatch(r"(Loss|L|loss)(?:_?new|_after|\^\+|\+|\(new\))", s):
        return {"kind": "Loss_new"}
    if re.fullmatch(r"(Loss|L|loss)_before", s):
        return {"kind": "Loss"}
    m = re.fullmatch(r"(\w+?)(?:_?new|_after|\^\+|\+|\^\(new\)|\(new\))", s) or re.fullmatch(r"new_?(\w+)", s)
    if m and m[1] in _PARAM_ALIASES:
        return {"kind": "new", "theta": _PARAM_ALIASES[m[1]]}
    return None


def _forward_name(s: str) -> dict[str, Any] | None:
    pats = [
        (rf"{_VAR}", lambda m: {"kind": m[1], "t": int(m[2])}),
        (r"1-h_(\d+)", lambda m: {"kind": "1-h", "t": int(m[1])}),
        (r"1-h_(\d+)\^2", lambda m: {"kind": "1-h^2", "t": int(m[1])}),
        (r"h_(\d+)\(1-h_(\d+)\)", lambda m: {"kind": "h(1-h)", "t": int(m[1])} if m[1] == m[2] else None),
        (r"y'_(\d+)\(1-y'_(\d+)\)", lambda m: {"kind": "y'(1-y')", "t": int(m[1])} if m[1] == m[2] else None),
        (r"(\w+)'\((z|u)_(\d+)\)", _activation_name),
        (r"dh_(\d+)/dz_(\d+)", lambda m: {"kind": "f'", "t": int(m[1])} if m[1] == m[2] else None),
        (r"dy'_(\d+)/du_(\d+)", lambda m: {"kind": "g'", "t": int(m[1])} if m[1] == m[2] else None),
        (r"dh_(\d+)/dh_(\d+)", lambda m: {"kind": "dh/dh", "t": int(m[1]), "k": int(m[2])}),
        (r"d(h|y')_(\d+)/d(\w+)", lambda m: {"kind": f"d{m[1]}/dθ", "t": int(m[2]), "theta": _PARAM_ALIASES[m[3]]}
         if m[3] in _PARAM_ALIASES else None),
    ]
    for pat, build in pats:
        m = re.fullmatch(pat, s)
        if m:
            return build(m)
    return None


def _activation_name(m: re.Match) -> dict[str, Any] | None:
    name = _ACT_NAMES.get(m[1])
    if name is None:
        return None
    if name == "f" and m[2] == "z":
        return {"kind": "f'", "t": int(m[3])}
    if name == "g" and m[2] == "u":
        return {"kind": "g'", "t": int(m[3])}
    if name in ("f", "g"):
        return None
    return {"kind": "act'", "t": int(m[3]), "act": (name, m[2])}


def _loss_name(s: str) -> dict[str, Any] | None:
    if s in ("Loss", "L", "loss"):
        return {"kind": "Loss"}
    if (m := re.fullmatch(r"E_(\d+)", s)):
        return {"kind": "E", "t": int(m[1])}
    if not (m := re.fullmatch(r"d(?:Loss|L|loss)/d(.+)", s)):
        return None
    if (v := re.fullmatch(_VAR, m[1])):
        return {"kind": f"dLoss/d{v[1]}", "t": int(v[2])}
    if (v := re.fullmatch(r"x_(\d+)", m[1])):
        return {"kind": "dLoss/dx", "t": int(v[1])}
    return _param_spec("dLoss", m[1], {})


def _term_name(s: str) -> dict[str, Any] | None:
    if not (m := re.fullmatch(r"dE_(\d+)/d(.+)", s)):
        return None
    i, den = int(m[1]), m[2]
    if den in ("y'", "u"):
        return {"kind": f"dE/d{den}", "t": i}
    if (v := re.fullmatch(r"x_(\d+)", den)):
        if int(v[1]) > i:
            return {"kind": "?", "bad_step": True, "t": i, "k": int(v[1]), "var": "x", "later": True}
        return {"kind": "dE/dx", "t": i, "k": int(v[1])}
    if (v := re.fullmatch(_VAR, den)):
        if v[1] in ("h", "z"):
            return {"kind": f"dE/d{v[1]}", "t": i, "k": int(v[2])}
        if int(v[2]) != i:
            return {"kind": "?", "bad_step": True, "t": i, "k": int(v[2]), "var": v[1]}
        return {"kind": f"dE/d{v[1]}", "t": i}
    return _param_spec("dE", den, {"t": i})


def _param_spec(kind: str, name: str, extra: dict) -> dict[str, Any]:
    if name not in _PARAM_ALIASES:
        return {"kind": kind, "theta": "?", "bad": name, **extra}
    return {"kind": kind, "theta": _PARAM_ALIASES[name], **extra}


def _check_steps(spec: dict, T: int, where: str) -> None:
    """Every step in range: states h_0..h_T, everything else 1..T; dh_i/dh_k needs k <= i."""
    if spec.get("later"):
        raise BPTTError(f"{where}: dE_{spec['t']}/dx_{spec['k']} is 0 (E_{spec['t']} does not depend on later "
                        f"inputs); claim dE_{spec['t']}/dx_k with k <= {spec['t']}")
    if spec.get("bad_step"):
        raise BPTTError(f"{where}: dE_{spec['t']}/d{spec['var']}_{spec['k']} is 0 (E_{spec['t']} reaches "
                        f"{spec['var']}_{spec['k']} only at step {spec['t']}); claim dE_{spec['t']}/d{spec['var']}_"
                        f"{spec['t']}")
    kind = spec["kind"]
    state = kind in ("h", "1-h", "1-h^2", "h(1-h)", "dLoss/dh")
    for name, lo in (("t", 0 if state or kind == "dh/dh" else 1), ("k", 0 if kind in ("dE/dh", "dh/dh") else 1)):
        if kind in ("x", "y") and name == "t":
            lo = 1
        v = spec.get(name)
        if v is not None and not lo <= v <= T:
            raise BPTTError(f"{where}: step {v} is out of range; the sequence has T = {T} steps ({lo}..{T})")
    if kind == "dh/dh" and spec["k"] > spec["t"]:
        raise BPTTError(f"{where}: dh_{spec['t']}/dh_{spec['k']} needs k <= i (h_i does not depend on later states)")


def _shapes(params: dict[str, np.ndarray]) -> dict[str, tuple[int, ...]]:
    D, H, O = params["w_x"].shape[1], params["w_h"].shape[0], params["b2"].shape[0]
    return {"H": (H,), "O": (O,), "D": (D,), "HH": (H, H), **engine.param_shapes(D, H, O)}


def quantity_shape(spec: dict, shapes: dict[str, tuple[int, ...]]) -> tuple[int, ...]:
    """The shape of the claimed quantity: () for Loss and E_i, θ's shape for gradients of θ, ..."""
    kind = spec["kind"]
    if kind in QUADRATIC_KINDS or kind in ("Loss_new", "lr"):
        return ()
    if kind in SENSITIVITY_KINDS:
        return shapes["H" if kind == "dh/dθ" else "O"] + shapes[spec["theta"]]
    if spec.get("theta"):
        return shapes[spec["theta"]][::-1] if spec.get("row") and spec["theta"] in ("w", "w_x", "w_h") and \
            kind in GRADIENT_OF_THETA else shapes[spec["theta"]]
    if kind in ("dLoss/dx", "dE/dx", "x"):
        return shapes["D"]
    if kind == "dh/dh":
        return shapes["HH"]
    if kind == "act'":
        return shapes["H"] if spec["act"][1] == "z" else shapes["O"]
    outputs = ("u", "y'", "g'", "y'(1-y')", "dE/dy'", "dE/du", "dLoss/du", "dLoss/dy'", "y")
    return shapes["O"] if kind in outputs else shapes["H"]


def _claims(key: str, value: Any, ctx: _Context, section: str = "claims") -> list[Claim]:
    """One file claim -> its elements (one Claim for a number; one per element for an array)."""
    where = f"{section}.{key!r}" if not re.fullmatch(r"[A-Za-z0-9_]+", key) else f"{section}.{key}"
    spec = _plain_spec(_normalise(key), ctx, where)
    if spec is None:
        spec = {"kind": "expr", "expr": _parse_expression(key, ctx, where)}
    spec["row"] = ctx.row
    if spec["kind"] == "g'" and ctx.vector_output:
        raise BPTTError(f"{where}: g'(u_t) of a {ctx.vector_output} output is an O x O Jacobian (diag(y'_t) - y'_t "
                        "y'_t^T), not one number per output; claim y'_t or dE_t/du_t instead")
    shape = spec["expr"].shape if spec["kind"] == "expr" else quantity_shape(spec, ctx.shapes)
    printed = _claim_values(value, where)
    if printed.shape != shape:
        printed = _fit_claim_shape(printed, shape, where)
    one = math.prod(shape) == 1
    out = []
    for idx in np.ndindex(shape):
        name = key if one else f"{key}[{','.join(str(i + 1) for i in idx)}]"
        out.append(Claim(name, spec["kind"], spec.get("t"), spec.get("theta"), printed[idx], spec.get("k"),
                         spec.get("act"), idx, key, ctx.affine_value, spec.get("trunc"), spec.get("expr"), ctx.row))
    return out


# ------------------------------------------------------------------ expressions over the quantities
_NUMBER = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_INDEX = re.compile(r"\[(\d+)(?:,(\d+))?\]")
_FUNCS = ("log", "ln", "exp", "sqrt", "abs", "tanh", "sigmoid", "sgm", "sigma", "softmax", "relu", "sum")
_FUNC = re.compile(rf"({'|'.join(sorted(_FUNCS, key=len, reverse=True))})\(")
_LR = ("lr", "eta", "alpha")


@dataclass(frozen=True, eq=False)
class _Expr:
    """An expression claim: its tree, atoms (Claims with a placeholder printed value), shape and dependence.

    tree: ("num", v) | ("atom", n) | ("neg", a) | ("op", sym, a, b) | ("fn", name, a) | ("idx", a, index)."""

    text: str
    tree: tuple
    atoms: tuple[Claim, ...]
    shape: tuple[int, ...]

    @property
    def dependence(self) -> str:
        return LATE if any(a.dependence != NONE for a in self.atoms) else NONE

    @property
    def term_steps(self) -> set[int]:
        return {a.t for a in self.atoms if a.kind in TERM_KINDS + ("E", "y")}

    def evaluate(self, value) -> np.ndarray:
        """The expression's value, value(atom) -> that atom's array."""
        with np.errstate(all="ignore"):
            return np.asarray(_evaluate(self.tree, [np.asarray(value(a), dtype=np.float64) for a in self.atoms]))


def _evaluate(node: tuple, atoms: list[np.ndarray]) -> Any:
    kind = node[0]
    if kind == "num":
        return node[1]
    if kind == "atom":
        return atoms[node[1]]
    if kind == "neg":
        return -_evaluate(node[1], atoms)
    if kind == "idx":
        v = np.asarray(_evaluate(node[1], atoms))
        return v[tuple(i - 1 for i in node[2])]
    if kind == "fn":
        v = np.asarray(_evaluate(node[2], atoms), dtype=np.float64)
        name = {"ln": "log", "sgm": "sigmoid", "sigma": "sigmoid"}.get(node[1], node[1])
        if name in ("sigmoid", "softmax", "relu", "tanh"):
            return activations.get(name).value(v)
        return {"log": floatmath.log, "exp": floatmath.exp, "sqrt": np.sqrt, "abs": np.abs, "sum": np.sum}[name](v)
    a, b = _evaluate(node[2], atoms), _evaluate(node[3], atoms)
    return {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide, "^": np.power,
            "@": np.matmul}[node[1]](a, b)


def _parse_expression(key: str, ctx: _Context, where: str) -> _Expr:
    """An arithmetic expression over the quantities -> _Expr; one line naming the problem otherwise."""
    s = _normalise(key, keep_ops=True).replace("**", "^")
    if len(s) > MAX_EXPRESSION:
        raise BPTTError(f"{where}: an expression of {len(s)} characters; at most {MAX_EXPRESSION}")
    tokens, atoms = _tokens(s, ctx, where)
    pos = [0]

    def peek() -> tuple | None:
        return tokens[pos[0]] if pos[0] < len(tokens) else None

    def take(*ops: str) -> str | None:
        t = peek()
        if t is not None and t[0] == "op" and t[1] in ops:
            pos[0] += 1
            return t[1]
        return None

    def fail(what: str) -> BPTTError:
        return BPTTError(f"{where}: not a quantity this checker knows, nor an expression over them ({what}); "
                         f"write one of {CLAIM_FORMS}")

    def expr() -> tuple:
        node = term()
        while (op := take("+", "-")):
            node = ("op", op, node, term())
        return node

    def term() -> tuple:
        node = unary()
        while (op := take("*", "/", "@")):
            node = ("op", op, node, unary())
        return node

    def unary() -> tuple:
        if take("-"):
            return ("neg", unary())
        if take("+"):
            return unary()
        return power()

    def power() -> tuple:
        node = postfix()
        if take("^"):
            node = ("op", "^", node, unary())
        return node

    def postfix() -> tuple:
        node = primary()
        while peek() is not None and peek()[0] == "idx":
            node = ("idx", node, peek()[1])
            pos[0] += 1
        return node

    def primary() -> tuple:
        t = peek()
        if t is None:
            raise fail("it ends early")
        pos[0] += 1
        if t[0] in ("num", "atom"):
            return t
        if t[0] == "fn":
            if not take("("):
                raise fail(f"{t[1]} needs (...)")
            node = ("fn", t[1], expr())
            if not take(")"):
                raise fail("a ( without its )")
            return node
        if t == ("op", "("):
            node = expr()
            if not take(")"):
                raise fail("a ( without its )")
            return node
        raise fail(f"unexpected {t[1]!r}")

    tree = expr()
    if pos[0] != len(tokens):
        raise fail(f"unexpected {str(tokens[pos[0]][1])!r}")
    probe = _Expr(key, tree, tuple(atoms), ())
    try:
        shape = probe.evaluate(lambda a: np.zeros(_atom_shape(a, ctx))).shape
    except (ValueError, IndexError, TypeError) as e:
        raise BPTTError(f"{where}: the quantities' shapes do not combine ({e}); * is element by element, @ the "
                        "matrix product, [i] or [i,j] (from 1) one element") from None
    return _Expr(key, tree, tuple(atoms), shape)


def _atom_shape(a: Claim, ctx: _Context) -> tuple[int, ...]:
    return quantity_shape({"kind": a.kind, "theta": a.theta, "act": a.act, "row": a.row}, ctx.shapes)


def _tokens(s: str, ctx: _Context, where: str) -> tuple[list[tuple], list[Claim]]:
    """s -> tokens ("num", v), ("atom", n), ("fn", name), ("op", c), ("idx", (i, j)); the atoms as Claims.
    A quantity is the longest piece up to an operator that names one (dLoss/dw_h, f'(z_1), dE_3/dw [k=2])."""
    tokens: list[tuple] = []
    atoms: list[Claim] = []
    placeholder = Printed("0", 0.0, 0.5)
    i, first_error = 0, None
    while i < len(s):
        if s.startswith("[", i) and (m := _INDEX.match(s, i)):
            tokens.append(("idx", tuple(int(g) for g in m.groups() if g)))
            i = m.end()
            continue
        if s[i] in _OPS:
            tokens.append(("op", s[i]))
            i += 1
            continue
        if (m := _FUNC.match(s, i)):
            tokens.append(("fn", m[1]))
            i = m.end() - 1
            continue
        spec, end = None, i
        for j in range(len(s), i, -1):
            if j < len(s) and s[j] not in _OPS:
                continue
            try:
                spec = _atom_spec(s[i:j], ctx, where)
            except BPTTError as e:
                first_error = first_error or e
                continue
            if spec is not None:
                end = j
                break
        if spec is not None:
            tokens.append(("atom", len(atoms)))
            atoms.append(Claim(s[i:end], spec["kind"], spec.get("t"), spec.get("theta"), placeholder, spec.get("k"),
                               spec.get("act"), (), s[i:end], ctx.affine_value, spec.get("trunc"), None, ctx.row))
            i = end
            continue
        if (m := _NUMBER.match(s, i)):
            tokens.append(("num", float(m[0])))
            i = m.end()
            continue
        if first_error is not None:
            raise first_error
        piece = re.split(r"[-+*/^()@\[\],]", s[i:])[0] or s[i]
        raise BPTTError(f"{where}: {piece!r} is not a quantity this checker knows; write one of {CLAIM_FORMS}")
    return tokens, atoms


def _atom_spec(s: str, ctx: _Context, where: str) -> dict[str, Any] | None:
    """One operand of an expression: a quantity, a parameter θ, an input x_t, a target y_t or lr."""
    if s in _PARAM_ALIASES:
        return {"kind": "param", "theta": _PARAM_ALIASES[s]}
    if (m := re.fullmatch(r"(x|y)_(\d+)", s)):
        spec = {"kind": m[1], "t": int(m[2])}
        _check_steps(spec, ctx.T, where)
        return spec
    if s in _LR:
        if not ctx.update:
            raise BPTTError(f"{where}: {s} is the learning rate of [update]; add [update] lr = ...")
        return {"kind": "lr"}
    return _plain_spec(s, ctx, where, in_expr=True)


def _claim_values(value: Any, where: str) -> np.ndarray:
    """A claimed number (or a number in quotes), or a nested list of them -> object array of Printed."""
    def leaf(v: Any, name: str) -> Printed:
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            raise BPTTError(f"{name}: expected a number (or a number in quotes), got {type(v).__name__} {v!r}")
        return Printed.parse(str(v), name)

    return _array(value, where, leaf)


def _fit_claim_shape(printed: np.ndarray, shape: tuple[int, ...], where: str) -> np.ndarray:
    squeezed = tuple(n for n in shape if n != 1)
    if printed.size == math.prod(shape) and tuple(n for n in printed.shape if n != 1) == squeezed:
        return printed.reshape(shape)
    if printed.ndim == 0 and printed[()].value == 0:  # 0 for a zero vector or matrix, each entry "0"
        out = np.empty(shape, dtype=object)
        out.fill(printed[()])
        return out
    what = "a number" if math.prod(shape) == 1 else f"a nested list of shape {shape}"
    raise BPTTError(f"{where}: this quantity has shape {shape}, got {printed.shape}; write {what}")


# ------------------------------------------------------------------ exact values
class Net:
    """The claims file's network, one forward pass, and what every exact value is built from."""

    def __init__(self, cf: ClaimsFile):
        self.cf = cf
        self.p = engine.Params(**cf.params)
        self.f = activations.get(cf.hidden_activation)
        self.g = activations.get(cf.output_activation)
        self.xb = cf.x.reshape(cf.T, 1, cf.D)  # (T, 1, D)
        with np.errstate(over="ignore", invalid="ignore"):
            self.fwd = engine.forward(self.p, self.xb, cf.h0.reshape(1, cf.H), self.f, self.g)
        if not np.all(np.isfinite(self.fwd.y_pred)):
            raise BPTTError("the forward pass overflowed to a non-finite value; check the model's weights and inputs")
        self.h = self.fwd.h[:, 0]  # (T+1, H)
        self.fprime = self.f.deriv(self.fwd.h[1:])  # (T, 1, H)
        self.gprime = self.g.deriv(self.fwd.y_pred) if self.g.elementwise else None  # (T, 1, O); softmax: none
        self.criterion = losses.pair(cf.loss.record, self.g)
        self.weights = cf.loss.weights(cf.T, cf.O)  # (T,): Loss = sum_t w_t E_t
        self.coef = self.weights * cf.loss.kappa  # (T,): Loss = sum_t coef_t E(y'_t, y_t) (the record's E)
        self._delta_map: np.ndarray | None = None
        self._sensitivity: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def sensitivity(self, theta: str) -> tuple[np.ndarray, np.ndarray]:
        """Forward (RTRL) sensitivities (dh_t/dθ (T, H, *θ.shape), dy'_t/dθ (T, O, *θ.shape)), one
        ``engine.state_tangent`` per element of θ."""
        if theta not in self._sensitivity:
            v = self.cf.params[theta]
            dh = np.zeros((self.cf.T, self.cf.H) + v.shape)
            dy = np.zeros((self.cf.T, self.cf.O) + v.shape)
            for idx in np.ndindex(v.shape):
                dp = engine.Params(*(_unit_param(a, idx) if name == theta else np.zeros_like(a)
                                     for name, a in self.p._asdict().items()))
                th, ty = engine.state_tangent(self.p, self.xb, self.fwd, self.f, self.g, dp)
                dh[(slice(None), slice(None)) + idx] = th[:, 0]
                dy[(slice(None), slice(None)) + idx] = ty[:, 0]
            self._sensitivity[theta] = (dh, dy)
        return self._sensitivity[theta]

    def step_values(self, y: np.ndarray) -> np.ndarray:
        """E_t (T, O) per output where E is a sum over the outputs (squared error, bce; as engine.loss
        sums them), else (T, 1) per step (cross_entropy: log-sum-exp couples the outputs)."""
        u, yp, kappa, rec = self.fwd.u[:, 0], self.fwd.y_pred[:, 0], self.cf.loss.kappa, self.criterion
        if self.g.elementwise or rec.outputs is None:
            return kappa * rec.value(u[..., None], yp[..., None], y[..., None])
        return kappa * rec.value(u, yp, y)[:, None]

    def output_delta(self, y: np.ndarray, c) -> np.ndarray:
        """c dE/du_t (T, 1, O) from the loss record (c: a number or (T, 1, 1)), as engine.output_delta."""
        return self.criterion.delta(self.fwd.u, self.fwd.y_pred, y[:, None, :], self.g, c)

    def delta_map(self) -> np.ndarray:
        """(T, O, O): [t, o] = d(dE_t/du_t)/dy_{t,o}, the record's delta being affine in the targets."""
        if self._delta_map is None:
            T, O = self.cf.T, self.cf.O
            base = self.output_delta(np.zeros((T, O)), self.cf.loss.kappa)[:, 0]
            self._delta_map = np.stack([self.output_delta(np.tile(np.eye(O)[o], (T, 1)), self.cf.loss.kappa)[:, 0]
                                        - base for o in range(O)], axis=1)
        return self._delta_map

    def forward_value(self, cl: Claim) -> np.ndarray:
        """A target-free quantity."""
        t, f = cl.t, self.fwd
        simple = {"h": lambda: self.h[t], "1-h": lambda: 1 - self.h[t], "z": lambda: f.z[t - 1, 0],
                  "u": lambda: f.u[t - 1, 0], "y'": lambda: f.y_pred[t - 1, 0], "f'": lambda: self.fprime[t - 1, 0],
                  "g'": lambda: self.gprime[t - 1, 0], "1-h^2": lambda: 1 - self.h[t] * self.h[t],
                  "h(1-h)": lambda: self.h[t] * (1 - self.h[t]),
                  "y'(1-y')": lambda: f.y_pred[t - 1, 0] * (1 - f.y_pred[t - 1, 0])}
        if cl.kind in simple:
            return simple[cl.kind]()
        if cl.kind == "act'":
            a = activations.get(cl.act[0])
            arg = f.z[t - 1, 0] if cl.act[1] == "z" else f.u[t - 1, 0]
            return a.deriv(a.value(arg))
        return self.state_jacobian(t, cl.k)

    def state_jacobian(self, i: int, k: int) -> np.ndarray:
        """dh_i/dh_k = prod_{j=k+1}^{i} diag(f'(z_j)) w_h, (H, H)."""
        J = np.eye(self.cf.H)
        for j in range(k + 1, i + 1):
            J = self.fprime[j - 1, 0][:, None] * mm(self.p.w_h, J)
        return J

    def backprop(self, du: np.ndarray, trunc: int | None = None) -> "Backprop":
        """BPTT of an output delta du (n, 1, O) over steps 1..n (the engine's own functions); trunc:
        ``engine.bptt_truncated`` (each E_t through at most trunc steps; then no dh)."""
        n = du.shape[0]
        dh_direct = mm(du, self.p.w)  # (n, 1, H)
        if trunc is not None:
            dz, _ = engine.bptt_truncated(self.p.w_h, dh_direct, self.fprime[:n], trunc)
            grads = engine.weight_grads(self.xb[:n], self.fwd.h[: n + 1], dz, du)
            return Backprop(du, dz, np.full((n + 1, self.cf.H), math.nan), grads)
        dz = engine.bptt_full(self.p.w_h, dh_direct, self.fprime[:n])  # (n, 1, H)
        dh = np.zeros((n + 1, 1, self.cf.H))
        dh[1:] = dh_direct
        dh[:-1] += mm(dz, self.p.w_h)  # dX/dh_t = dE/dh_t direct + dz_{t+1} w_h
        grads = engine.weight_grads(self.xb[:n], self.fwd.h[: n + 1], dz, du)
        return Backprop(du, dz, dh[:, 0], grads)


@dataclass(frozen=True)
class Backprop:
    """One backward pass: du (n, 1, O), dz (n, 1, H), dh (n+1, H) (d/dh_0..d/dh_n), the five gradients."""

    du: np.ndarray
    dz: np.ndarray
    dh: np.ndarray
    grads: dict[str, np.ndarray]

    def step(self, net: Net, k: int) -> dict[str, np.ndarray]:
        """The gradients of the copies θ_k used at step k (zero beyond n)."""
        if k > self.du.shape[0]:
            return {name: np.zeros_like(v) for name, v in self.grads.items()}
        du, dz = self.du[k - 1], self.dz[k - 1]  # (1, O), (1, H)
        return {"w": mm(du.T, net.fwd.h[k]), "w_x": mm(dz.T, net.xb[k - 1]), "w_h": mm(dz.T, net.fwd.h[k - 1]),
                "b1": dz.sum(axis=0), "b2": du.sum(axis=0)}

    def state(self, k: int) -> np.ndarray:
        return self.dh[k] if k < self.dh.shape[0] else np.zeros_like(self.dh[0])

    def pre(self, k: int) -> np.ndarray:
        return self.dz[k - 1, 0] if k <= self.dz.shape[0] else np.zeros_like(self.dz[0, 0])

    def input(self, net: Net, k: int) -> np.ndarray:
        """d/dx_k = (d/dz_k) w_x, (D,): x_k enters the network only through z_k."""
        return mm(self.pre(k), net.p.w_x)


class Exact:
    """Exact values of claims at targets y (T, O), computed directly in float64; lazily, with caches."""

    def __init__(self, net: Net, y: np.ndarray):
        self.net, self.y = net, y
        self.r = net.fwd.y_pred[:, 0] - y  # (T, O): y'_t - y_t
        self.cache: dict[tuple, np.ndarray] = {}
        self.loss_bp: dict[int | None, Backprop] = {}
        self.term_bp: dict[tuple[int, int | None], Backprop] = {}
        self.values: np.ndarray | None = None
        self._updated: dict[str, np.ndarray] | None = None

    def value(self, cl: Claim) -> float:
        key = (cl.kind, cl.t, cl.k, cl.theta, cl.act, cl.trunc, cl.row, id(cl.expr))
        if key not in self.cache:
            self.cache[key] = np.asarray(self.array(cl), dtype=np.float64)
        return float(self.cache[key][cl.index])

    def array(self, cl: Claim) -> np.ndarray:
        a = self._array(cl)
        return np.asarray(a).T if cl.transposed else a

    def _array(self, cl: Claim) -> np.ndarray:
        cf = self.net.cf
        if cl.kind == "expr":
            return cl.expr.evaluate(self.array)
        other = {"x": lambda: cf.x[cl.t - 1], "y": lambda: self.y[cl.t - 1], "param": lambda: cf.params[cl.theta],
                 "lr": lambda: cf.update.lr, "new": lambda: self.updated()[cl.theta],
                 "Loss_new": self.loss_after_update,
                 "dh/dθ": lambda: self.net.sensitivity(cl.theta)[0][cl.t - 1],
                 "dy'/dθ": lambda: self.net.sensitivity(cl.theta)[1][cl.t - 1]}
        if cl.kind in other:
            return other[cl.kind]()
        if cl.dependence == NONE:
            return self.net.forward_value(cl)
        if cl.kind in QUADRATIC_KINDS:
            return self.quadratic(cl)
        return self.term(cl) if cl.kind in TERM_KINDS else self.total(cl)

    def updated(self) -> dict[str, np.ndarray]:
        """The parameters after one step of [update]'s optimizer (``bptt.optim``) on dLoss/dθ (truncated
        with the file's truncate = K)."""
        if self._updated is None:
            spec, cf = self.net.cf.update, self.net.cf
            params = {k: v.copy() for k, v in cf.params.items()}
            opt = optim.SGD(params, spec.momentum, spec.nesterov) if spec.optimizer == "sgd" else \
                optim.Adam(params, spec.betas, spec.eps)
            opt.step(params, dict(self.loss_backprop(cf.truncate).grads), spec.lr)
            self._updated = params
        return self._updated

    def loss_after_update(self) -> float:
        """Loss at the same sequence and targets with the updated parameters."""
        import dataclasses

        cf = self.net.cf
        after = Net(dataclasses.replace(cf, params=self.updated()))
        return Exact(after, self.y).quadratic(Claim("Loss", "Loss", None, None, Printed("0", 0.0, 0.5)))

    def loss_backprop(self, trunc: int | None = None) -> Backprop:
        if trunc not in self.loss_bp:
            self.loss_bp[trunc] = self.net.backprop(self.net.output_delta(self.y, self.net.coef[:, None, None]), trunc)
        return self.loss_bp[trunc]

    def quadratic(self, cl: Claim) -> float:
        """Loss or E_i: the loss record's E (times kappa), summed as engine.loss sums it."""
        spec = self.net.cf.loss
        if self.values is None:
            self.values = self.net.step_values(self.y)  # (T, O) or (T, 1)
        if cl.kind == "E":
            return float(np.sum(self.values[cl.t - 1]))
        s = self.net.weights[spec.scored[0] - 1]
        scored = self.values if len(spec.scored) == self.net.cf.T else self.values[[t - 1 for t in spec.scored]]
        return float(s * np.sum(scored))

    def dE_dpred(self, t: int) -> np.ndarray:
        """dE_t/dy'_t (O,): kappa (y'_t - y_t) for the squared error, else from the record's sympy form."""
        if self.net.cf.loss.squared:
            return self.net.cf.loss.kappa * self.r[t - 1]
        return _dvalue_dpred(self.net.criterion.name)(self.net.fwd.y_pred[t - 1, 0], self.y[t - 1])

    def total(self, cl: Claim) -> np.ndarray:
        """dLoss/d·: one backward pass of the declared loss."""
        bp, t = self.loss_backprop(cl.trunc), cl.t
        get = {"dLoss": lambda: bp.grads[cl.theta], "dLoss/dx": lambda: bp.input(self.net, t),
               "new": lambda: self.updated()[cl.theta], "dLoss[t]": lambda: bp.step(self.net, cl.k)[cl.theta],
               "dLoss/dh": lambda: bp.state(t), "dLoss/dz": lambda: bp.pre(t), "dLoss/du": lambda: bp.du[t - 1, 0],
               "dLoss/dy'": lambda: self.net.weights[t - 1] * self.dE_dpred(t) if not self.net.cf.loss.squared
               else self.net.coef[t - 1] * self.r[t - 1]}
        return get[cl.kind]()

    def term(self, cl: Claim) -> np.ndarray:
        """dE_i/d·: a backward pass from step i alone (E_i as the loss declares it, unweighted)."""
        i, kappa = cl.t, self.net.cf.loss.kappa
        if cl.kind == "dE/dy'":
            return self.dE_dpred(i)
        if (i, cl.trunc) not in self.term_bp:
            du = np.zeros((i, 1, self.net.cf.O))
            du[i - 1] = self.net.output_delta(self.y, kappa)[i - 1]
            self.term_bp[(i, cl.trunc)] = self.net.backprop(du, cl.trunc)
        bp = self.term_bp[(i, cl.trunc)]
        get = {"dE/du": lambda: bp.du[i - 1, 0], "dE": lambda: bp.grads[cl.theta],
               "dE/dx": lambda: bp.input(self.net, cl.k),
               "dE[k]": lambda: bp.step(self.net, cl.k)[cl.theta], "dE/dh": lambda: bp.state(cl.k),
               "dE/dz": lambda: bp.pre(cl.k)}
        return get[cl.kind]()


def exact_values(cf: ClaimsFile, y: np.ndarray | None, net: Net | None = None) -> np.ndarray:
    """Every claim's exact value at targets y (T, O); target-dependent ones are NaN when y is None."""
    net = net or Net(cf)
    ex = Exact(net, y if y is not None else np.zeros((cf.T, cf.O)))
    return np.array([ex.value(cl) if y is not None or cl.dependence == NONE else math.nan for cl in cf.claims])


@functools.lru_cache(maxsize=None)
def _dvalue_dpred(name: str):
    """dE/dy' for one output, (y', y) -> number, differentiated from the loss record's sympy form."""
    import sympy as sp

    yp, y = sp.symbols("yp y")
    return sp.lambdify((yp, y), sp.diff(losses.get(name).sym_value(yp, y), yp), "numpy")


# ------------------------------------------------------------------ the target map of the affine claims
def exact_affine(cf: ClaimsFile, net: Net | None = None, rows: Sequence[int] | None = None,
                 claims: Sequence[Claim] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(c, J) with exact value of claim j = c[j] + J[j] @ y.ravel() for the affine claims (rows: which).

    c is the exact value at y = 0. A dE_i claim depends on y_i alone: its row is two exact evaluations
    per output. A dLoss claim is sum_t coef_t dE_t/du_t . (du_t/d·), dE_t/du_t affine in y_t: its row is
    coef_t (d(dE_t/du_t)/dy_t)^T du_t/d·, with du_t/d· the output pre-activations' tangent in the claim's
    direction (forward mode, ``engine.output_tangent`` or ``engine.output_tangent_from_state``: O(T)
    each, not T + 1 gradient runs); for the squared error that is -coef_t dy'_t/d·. With bce and
    cross_entropy, E_i and Loss are affine too: their rows are E_t's change per unit target, O
    evaluations of the record's E. The others (dLoss/dx_t, θ_new, y_t, truncated gradients of Loss): the
    value at each unit target less c, T O evaluations. claims: these instead of the file's claims.
    """
    net = net or Net(cf)
    claims = cf.claims if claims is None else list(claims)
    rows = [j for j, cl in enumerate(claims) if cl.dependence == AFFINE] if rows is None else list(rows)
    T, O = cf.T, cf.O
    zero = Exact(net, np.zeros((T, O)))
    units: dict[tuple[int, int], Exact] = {}
    tangents: dict[tuple, np.ndarray] = {}
    one_step = TERM_KINDS if cf.loss.squared else TERM_KINDS + ("dLoss/dy'",)  # depend on y_t alone
    value_map = _value_map(net) if any(claims[j].kind in QUADRATIC_KINDS for j in rows) else None
    c, J = np.zeros(len(rows)), np.zeros((len(rows), T * O))
    for n, j in enumerate(rows):
        cl = claims[j]
        c[n] = zero.value(cl)
        if cl.kind in ("dLoss/dx", "new", "y") or (cl.trunc is not None and cl.kind not in one_step):
            for t in range(1, T + 1):
                for o in range(O):
                    unit = units.setdefault((t, o), Exact(net, _unit(T, O, t, o)))
                    J[n, (t - 1) * O + o] = unit.value(cl) - c[n]
        elif cl.kind in one_step:
            for o in range(O):
                unit = units.setdefault((cl.t, o), Exact(net, _unit(T, O, cl.t, o)))
                J[n, (cl.t - 1) * O + o] = unit.value(cl) - c[n]
        elif cl.kind == "E":
            J[n, (cl.t - 1) * O: cl.t * O] = value_map[cl.t - 1]
        elif cl.kind == "Loss":
            J[n] = (net.weights[:, None] * value_map).ravel()
        else:
            key = (cl.kind, cl.t, cl.k, cl.theta, cl.engine_index)
            if key not in tangents:
                tangents[key] = _target_row(net, cl)
            J[n] = tangents[key]
    return c, J


def _value_map(net: Net) -> np.ndarray:
    """(T, O): dE_t/dy_{t,o} of E_t affine in y_t (bce, cross_entropy): E_t at y_t = e_o less at y_t = 0."""
    T, O = net.cf.T, net.cf.O
    base = net.step_values(np.zeros((T, O))).sum(axis=1)
    return np.stack([net.step_values(np.tile(np.eye(O)[o], (T, 1))).sum(axis=1) - base for o in range(O)], axis=1)


def _target_row(net: Net, cl: Claim) -> np.ndarray:
    """The row of a dLoss claim (dLoss/dθ, dθ[t], dh_t, dz_t, du_t) in J, (T O,)."""
    if cl.kind == "dLoss/dy'":  # squared error (the others' is one step's): coef_t (y'_t - y_t)
        dy = np.zeros((net.cf.T, net.cf.O))
        dy[cl.t - 1, cl.engine_index[0]] = 1.0
        return -(net.coef[:, None] * dy).ravel()
    du = _pre_output_tangent(net, cl)  # (T, O): du_t in the claim's direction
    if net.cf.loss.squared:  # d(dE_t/du_t)/dy_t = -kappa g'(u_t): the outputs' tangent, as the seed writes it
        return -(net.coef[:, None] * net.g.jvp(net.fwd.y_pred[:, 0], du)).ravel()
    return (net.weights[:, None] * np.einsum("top,tp->to", net.delta_map(), du)).ravel()


def _unit(T: int, O: int, t: int, o: int) -> np.ndarray:
    y = np.zeros((T, O))
    y[t - 1, o] = 1.0
    return y


# The output tangent through an identity output is du_t itself (identity's jvp is 1 * v, exact).
_IDENTITY = activations.get("identity")


def _pre_output_tangent(net: Net, cl: Claim) -> np.ndarray:
    """du/d· (T, O) in the direction of one element of a dLoss claim."""
    T, O, H = net.cf.T, net.cf.O, net.cf.H
    if cl.kind == "dLoss/du":
        du = np.zeros((T, O))
        du[cl.t - 1, cl.index[0]] = 1.0
        return du
    if cl.kind in ("dLoss/dh", "dLoss/dz"):
        dh = np.zeros((1, H))
        dh[0, cl.index[0]] = 1.0 if cl.kind == "dLoss/dh" or cl.t == 0 else net.fprime[cl.t - 1, 0, cl.index[0]]
        return engine.output_tangent_from_state(net.p, net.fwd, net.f, _IDENTITY, cl.t, dh)[:, 0]
    dp = engine.Params(*(_unit_param(v, cl.engine_index) if name == cl.theta else np.zeros_like(v)
                         for name, v in net.p._asdict().items()))
    if cl.kind == "dLoss":
        return engine.output_tangent(net.p, net.xb, net.fwd, net.f, _IDENTITY, dp)[:, 0]
    return _step_tangent(net, dp, cl.k)


def _unit_param(v: np.ndarray, index: tuple[int, ...]) -> np.ndarray:
    e = np.zeros_like(v)
    e[index] = 1.0
    return e


def _step_tangent(net: Net, dp: engine.Params, k: int) -> np.ndarray:
    """du/dθ_k (T, O): the copies of the parameters used at step k alone, moved by dp."""
    if dp.w.any() or dp.b2.any():  # u_k = w_k h_k + b2_k: only u_k moves
        du = np.zeros((net.cf.T, net.cf.O))
        du[k - 1] = (mm(net.fwd.h[k], dp.w.T) + dp.b2)[0]
        return du
    dz = mm(net.xb[k - 1], dp.w_x.T) + mm(net.fwd.h[k - 1], dp.w_h.T) + dp.b1  # (1, H): z_k moved
    return engine.output_tangent_from_state(net.p, net.fwd, net.f, _IDENTITY, k, net.fprime[k - 1] * dz)[:, 0]


# ------------------------------------------------------------------ checking
@dataclass
class Row:
    """One claim and its verdict; at_fitted_targets: its exact value is at targets fitted to the claims."""

    claim: Claim
    verdict: Verdict
    at_fitted_targets: bool = False
    hint: str | None = None  # a recognised slip: "transposed" (the whole matrix's transpose holds),
    # "previous_step"/"next_step" (the quantity of step t -+ 1 holds), "factor_T" (exact times or over T holds)

    @property
    def exact(self) -> float:
        return self.verdict.exact

    @property
    def holds(self) -> bool:
        return self.verdict.holds


@dataclass(frozen=True)
class ConsistentSet:
    """Claims that one choice of targets reproduces together, and such targets (from the LP, flattened)."""

    claims: tuple[str, ...]
    targets: tuple[float, ...]


@dataclass
class TargetAnalysis:
    """What any targets can make of the target-dependent claims (``infer_targets``).

    Targets are flattened step by step (y_1, ..., y_T for one output; y_1[1], y_1[2], y_2[1], ... for O > 1).
    """

    targets: list[float] | None  # the fitted targets; None when no claim depends on them
    lsq_targets: list[float] | None = None  # weighted least squares over all affine claims (None: there are none)
    undetermined: list[int] = field(default_factory=list)  # steps t whose target no claim depends on (set to 0)
    misfit_all: float | None = None  # LP: min over y of the worst miss, in units of the written rounding
    misfit_without: dict[str, float] = field(default_factory=dict)  # the same, one claim left out
    largest_sets: list[ConsistentSet] = field(default_factory=list)  # the largest sets one choice of y reproduces
    largest_exhaustive: bool = True  # False: the sets were found greedily (too many subsets to try)
    unexplainable_alone: list[str] = field(default_factory=list)  # no targets give this claim even by itself
    unexplainable: list[str] = field(default_factory=list)  # no targets give it alongside the others
    kept: list[str] = field(default_factory=list)  # the affine claims the fitted targets were fitted to
    quadratic: list[str] = field(default_factory=list)  # the Loss and E_i claims
    quadratic_steps: list[int] = field(default_factory=list)  # steps fitted to them (no affine claim sees them)
    refined: bool = False  # the targets were refitted to the kept affine and the quadratic claims together


@dataclass
class Report:
    cf: ClaimsFile
    rows: list[Row]
    y: np.ndarray | None  # (T, O): the targets the claims were evaluated at
    targets_fitted: bool  # True: inferred from the claims (``analysis``); False: given
    analysis: TargetAnalysis | None = None  # with fitted targets: how they were inferred
    negated_holds: int | None = None  # with given targets: how many gradient claims hold if negated
    plain_holds: int | None = None
    from_given: bool = False  # the targets were solved exactly from [given]

    @property
    def targets_source(self) -> str:
        """"given" (sequence.y), "given_data" (solved from [given]), "fitted" or "none"."""
        if self.y is None:
            return "none"
        return "given_data" if self.from_given else "fitted" if self.targets_fitted else "given"

    @property
    def targets(self) -> list | None:
        """The targets: one number per step for one output, a list of O per step otherwise."""
        if self.y is None:
            return None
        return [float(v) for v in self.y[:, 0]] if self.cf.O == 1 else self.y.tolist()

    @property
    def all_hold(self) -> bool:
        return all(r.holds for r in self.rows)


def check(cf: ClaimsFile, y: Sequence | None = None) -> Report:
    """Compare every claim with the exact value, at targets y, else the file's, else inferred ones."""
    net = Net(cf)
    targets = _targets(y, cf.T, cf.O, net.criterion) if y is not None else cf.y
    if targets is not None and np.isnan(targets).any():  # unscored steps the file gives no target for
        targets = np.where(np.isnan(targets), net.fwd.y_pred[:, 0], targets)
    given_eq = None
    if targets is None and cf.given:
        targets, given_eq = given_targets(cf, net)
    analysis = infer_targets(cf, net, given_eq) if targets is None else None
    fitted = analysis is not None
    if fitted and analysis.targets is not None:
        targets = np.asarray(analysis.targets).reshape(cf.T, cf.O)
    if targets is None:
        late = next((cl for cl in cf.claims if cl.dependence == LATE), None)
        if late is not None:
            raise BPTTError(f"claims.{late.name}: depends on the targets, which neither sequence.y, [given] nor any "
                            "other claim determines; give the targets (sequence.y) or the output errors ([given])")
    exact = exact_values(cf, targets, net)
    rows = [Row(cl, judge(cl.printed, float(e), fitted and cl.depends_on_targets), fitted and cl.depends_on_targets)
            for cl, e in zip(cf.claims, exact)]
    _transposed_hints(rows, exact)
    if targets is not None:
        _slip_hints(rows, Exact(net, targets), fitted)
    report = Report(cf, rows, targets, fitted, analysis, from_given=bool(cf.given) and not fitted)
    if not fitted:
        grads = [i for i, cl in enumerate(cf.claims) if cl.dependence == AFFINE and cl.kind not in QUADRATIC_KINDS]
        report.plain_holds = sum(rows[i].holds for i in grads)
        report.negated_holds = sum(cf.claims[i].printed.holds(-exact[i]) for i in grads)
    return report


def _transposed_hints(rows: list[Row], exact: np.ndarray) -> None:
    """Mark the wrong elements of a square matrix claim whose every element holds against the transpose
    (a source in the row-vector convention, x W, read as W x)."""
    groups: dict[str, list[int]] = {}
    for n, r in enumerate(rows):
        if len(r.claim.index) == 2:
            groups.setdefault(r.claim.name, []).append(n)
    for ns in groups.values():
        where = {rows[n].claim.index: n for n in ns}
        if all(rows[n].holds for n in ns) or any((j, i) not in where for i, j in where):
            continue
        if all(rows[n].claim.printed.holds(float(exact[where[rows[n].claim.index[::-1]]])) for n in ns):
            for n in ns:
                if not rows[n].holds:
                    rows[n].hint = "transposed"


def _slip_hints(rows: list[Row], ex: Exact, fitted: bool) -> None:
    """Name a recognisable slip where it explains a wrong number exactly (at its printed digits): the
    same quantity of the previous or next step ("previous_step", "next_step"), and, at given targets, a
    factor T (a mean taken as a sum or back: "factor_T")."""
    T = ex.net.cf.T
    for r in rows:
        cl = r.claim
        if r.verdict.kind != "wrong" or r.hint is not None or cl.kind == "expr":
            continue  # (sign, factor 2 and truncation are the verdict's own kinds)
        if cl.t is not None and cl.kind not in ("dh/dh", "dE/dh", "dE/dz", "dE/dx", "dE[k]"):
            for hint, t in (("previous_step", cl.t - 1), ("next_step", cl.t + 1)):
                other = dataclasses.replace(cl, t=t)
                try:
                    _check_steps({"kind": cl.kind, "t": t, "k": cl.k}, T, "")
                    if t < 1 and cl.kind not in ("h", "1-h", "1-h^2", "h(1-h)", "dLoss/dh"):
                        continue
                    if fitted and other.depends_on_targets:
                        continue
                    if cl.printed.holds(ex.value(other)):
                        r.hint = hint
                        break
                except (BPTTError, IndexError):
                    continue
        if r.hint is None and not fitted and T > 1 and r.exact != 0 and \
                (cl.printed.holds(r.exact * T) or cl.printed.holds(r.exact / T)):
            r.hint = "factor_T"


def given_targets(cf: ClaimsFile, net: Net) -> tuple[np.ndarray | None, tuple | None]:
    """The targets that [given] fixes exactly: (y, None) where they fix every target, else (None, (A_eq,
    b_eq)): independent linear equations for the inference. The given values are exact data: float64
    solves them (least squares that must leave no residual beyond rounding)."""
    c, J = exact_affine(cf, net, claims=cf.given)
    b = np.array([cl.printed.value for cl in cf.given]) - c
    y, *_ = np.linalg.lstsq(J, b, rcond=None)
    scale = np.abs(J) @ np.abs(y) + np.abs(b) + np.abs(c) + 1e-300
    bad = np.abs(J @ y - b) > 1e-9 * scale
    if bad.any():
        n = int(np.argmax(bad))
        raise BPTTError(f"given.{cf.given[n].key}: no targets give this together with the other given values "
                        f"(the closest give {c[n] + J[n] @ y:.12g}); check the [given] numbers")
    _, sv, vt = np.linalg.svd(J)
    rank = int(np.sum(sv > 1e-12 * sv.max())) if sv.size else 0
    if rank < cf.T * cf.O:  # some targets left free: the equations, reduced to independent rows, go to the fit
        return None, (vt[:rank], vt[:rank] @ y)
    y = y.reshape(cf.T, cf.O)
    try:
        net.criterion.check_targets(y)
    except BPTTError as e:
        raise BPTTError(f"[given]: the given values imply targets {short_repr(y.ravel().tolist())}, outside what "
                        f"the loss allows ({e}); check them") from None
    return y, None


def _targets(y: Sequence, T: int, O: int, criterion: losses.Loss | None = None) -> np.ndarray:
    """Targets given to ``check``: T numbers (O = 1), T class labels (cross_entropy) or (T, O), finite,
    and what the loss is defined for."""
    criterion = criterion or losses.get(losses.DEFAULT)
    a = check_float_array(y, "targets", np.dtype(np.float64))
    if a.shape == (T,) and criterion.class_labels:
        return _labels(a, O, "targets")
    if a.shape == (T,) and O == 1:
        a = a[:, None]
    if a.shape != (T, O):
        raise BPTTError(f"targets: expected {T} numbers, one per step{f' ({T}, {O})' if O > 1 else ''}, "
                        f"got shape {a.shape}")
    return _valid_targets(a, criterion, "targets")


def analyse_targets(cf: ClaimsFile) -> TargetAnalysis:
    """``infer_targets`` for a claims file, whether or not it gives targets."""
    return infer_targets(cf, Net(cf))


def infer_targets(cf: ClaimsFile, net: Net, given_eq: tuple | None = None) -> TargetAnalysis:
    """The targets that best explain the claims, and which claims any targets reproduce.

    Affine claims: least squares over them, each in units of its written rounding; a linear programme
    (``audit.min_misfit``) for which can hold together; claims no targets explain alongside the others
    are left out of the fit. Then Loss and E_i: the steps no affine claim depends on are fitted to them
    (nonlinear least squares); the steps the affine claims fix stay as they are.
    """
    aff = [i for i, cl in enumerate(cf.claims) if cl.dependence == AFFINE]
    quad = [i for i, cl in enumerate(cf.claims) if cl.dependence == QUADRATIC]
    fixed = _given_steps(cf, given_eq)
    if not aff and not quad:
        if given_eq is None:
            return TargetAnalysis(targets=None, undetermined=list(range(1, cf.T + 1)))
        y = np.linalg.lstsq(given_eq[0], given_eq[1], rcond=None)[0]
        return TargetAnalysis(targets=[float(v) for v in y], undetermined=[t for t in range(1, cf.T + 1)
                                                                           if t not in fixed])
    if len(aff) + len(quad) > MAX_FITTED_CLAIMS:
        raise BPTTError(f"{cf.path}: {len(aff) + len(quad)} claims depend on the targets, which are not given; "
                        f"inferring them handles at most {MAX_FITTED_CLAIMS}: give the targets (sequence.y) or "
                        "split the claims over several files")
    c, J = exact_affine(cf, net, aff)
    a, y = _affine_analysis(cf, aff, c, J, given_eq)
    free = [t for t in range(1, cf.T + 1) if not np.any(J[:, (t - 1) * cf.O: t * cf.O]) and t not in fixed]
    if quad:
        a.quadratic = [cf.claims[i].key for i in quad]
        a.quadratic_steps = [t for t in free if _quadratic_sees(cf, quad, t)]
        y = _fit_quadratic(cf, net, quad, y, a.quadratic_steps)
        kept = [i for i in aff if cf.claims[i].key in a.kept]
        if given_eq is None:  # (a refit of every target would move those [given] fixes)
            refined = _refine(cf, net, quad, kept, c[[aff.index(i) for i in kept]], J[[aff.index(i) for i in kept]],
                              y)
            a.refined, y = refined is not y, refined
    a.undetermined = [t for t in free if t not in a.quadratic_steps and not np.any(J[:, (t - 1) * cf.O: t * cf.O])]
    for t in a.undetermined:
        y[(t - 1) * cf.O: t * cf.O] = 0.0
    a.targets = [float(v) for v in y]
    return a


def _given_steps(cf: ClaimsFile, given_eq: tuple | None) -> set[int]:
    """The steps whose targets [given]'s equations involve."""
    if given_eq is None:
        return set()
    cols = np.flatnonzero(np.any(np.abs(given_eq[0]) > 1e-12, axis=0))
    return {int(j) // cf.O + 1 for j in cols}


def _affine_analysis(cf: ClaimsFile, dep: list[int], c: np.ndarray, J: np.ndarray, given_eq: tuple | None = None
                     ) -> tuple[TargetAnalysis, np.ndarray]:
    """The LP and least-squares analysis of the affine claims; returns it and the fitted y (flattened)."""
    n_y = cf.T * cf.O
    eq, bounds = _target_constraints(cf)
    if given_eq is not None:
        eq = (np.vstack([eq[0], given_eq[0]]), np.concatenate([eq[1], given_eq[1]])) if eq else given_eq
        eq = _independent(*eq)
    if not dep:
        return TargetAnalysis(targets=None), (np.linalg.lstsq(eq[0], eq[1], rcond=None)[0] if eq else np.zeros(n_y))
    A = J  # (n, T O)
    b = np.array([cf.claims[i].printed.value for i in dep]) - c
    half = np.array([cf.claims[i].printed.tolerance for i in dep])
    names = [cf.claims[i].key for i in dep]

    def misfit(idx) -> tuple[float, np.ndarray]:
        idx = list(idx)
        return min_misfit(A[idx], b[idx], half[idx], *eq, bounds=bounds)

    misfit.miss = lambda idx, y: np.abs(A[idx] @ y - b[idx]) / half[idx]  # each claim's miss at y

    a = TargetAnalysis(targets=None, lsq_targets=[float(v) for v in least_squares_targets(A, b, half, *eq)])
    # a claim whose row is zero does not depend on the targets after all (e.g. x_k = 0 kills every path)
    a.unexplainable_alone = [names[j] for j in range(len(dep)) if misfit([j])[0] > 1.0]
    a.misfit_all = misfit(range(len(dep)))[0]
    if a.misfit_all > 1.0 and len(dep) > 1:
        _flag_unexplainable(a, names, misfit)
    kept = [j for j in range(len(dep)) if names[j] not in a.unexplainable]
    a.kept = [names[j] for j in kept]
    return a, _fit(A[kept], b[kept], half[kept], n_y, eq, bounds)


def _independent(A_eq: np.ndarray, b_eq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same equations as independent rows (the LP needs no redundant ones)."""
    y = np.linalg.lstsq(A_eq, b_eq, rcond=None)[0]
    _, sv, vt = np.linalg.svd(A_eq)
    rank = int(np.sum(sv > 1e-12 * sv.max()))
    return vt[:rank], vt[:rank] @ y


def _target_constraints(cf: ClaimsFile) -> tuple[tuple, tuple[float, float] | None]:
    """What inferred targets must satisfy: ((A_eq, b_eq) or (), bounds): cross_entropy's rows sum to 1
    (its gradients cannot see a shift of y_t along y'_t, so without this the sum is arbitrary), and
    bce's and cross_entropy's targets lie in [0, 1] (the linear programme only)."""
    if cf.loss.squared:
        return (), None
    if cf.loss.name != "cross_entropy":
        return (), (0.0, 1.0)
    A_eq = np.kron(np.eye(cf.T), np.ones((1, cf.O)))  # (T, T O): sum_o y_t,o
    return (A_eq, np.ones(cf.T)), (0.0, 1.0)


def _quadratic_sees(cf: ClaimsFile, quad: list[int], t: int) -> bool:
    """Whether a Loss or E_i claim depends on y_t."""
    return any((cf.claims[i].kind == "E" and cf.claims[i].t == t) or
               (cf.claims[i].kind == "Loss" and t in cf.loss.scored) for i in quad)


def _fit_quadratic(cf: ClaimsFile, net: Net, quad: list[int], y: np.ndarray, steps: list[int]) -> np.ndarray:
    """y with the targets of ``steps`` (no affine claim sees them) fitted to the quadratic claims,
    y_t = y'_t + d_t with d_t >= 0: a step with an E_t claim from E_t alone (closed form); the other
    steps, one common d, from Loss (closed form, then nonlinear least squares over the Loss claims, each
    in units of its written rounding). So a wrong Loss never moves the targets an E_t claim fixes."""
    if not steps:
        return y
    O, yp = cf.O, net.fwd.y_pred[:, 0]  # (T, O)
    printed = np.array([cf.claims[i].printed.value for i in quad])
    coef = [_quadratic_coef(cf, net, cf.claims[i]) for i in quad]  # value = sum_t coef_t ||y_t - y'_t||^2
    out = y.copy()
    cols = [(t - 1) * O + o for t in steps for o in range(O)]
    out[cols] = yp.ravel()[cols] + np.repeat(_start_offsets(cf, net, quad, coef, printed, y, steps), O)
    with_e = {cf.claims[i].t for i in quad if cf.claims[i].kind == "E"}
    loss = [n for n, i in enumerate(quad) if cf.claims[i].kind == "Loss"]
    free = [(t - 1) * O + o for t in steps if t not in with_e for o in range(O)]
    if not loss or not free:
        return out
    tol = np.array([cf.claims[quad[n]].printed.tolerance for n in loss])

    def errors(v: np.ndarray) -> np.ndarray:
        full = out.copy()
        full[free] = v
        return full.reshape(cf.T, O) - yp  # (T, O): y - y'

    def residuals(v: np.ndarray) -> np.ndarray:
        e = errors(v)
        return (np.array([coef[n] @ np.sum(e * e, axis=1) for n in loss]) - printed[loss]) / tol

    def jacobian(v: np.ndarray) -> np.ndarray:
        e = errors(v)
        return np.array([(2 * coef[n][:, None] * e).ravel()[free] for n in loss]) / tol[:, None]

    out[free] = nonlinear_least_squares(residuals, jacobian, out[free])
    return out


def _refine(cf: ClaimsFile, net: Net, quad: list[int], kept: list[int], c: np.ndarray, J: np.ndarray,
            y: np.ndarray) -> np.ndarray:
    """All targets refitted to the kept affine claims and the quadratic ones together (nonlinear least
    squares, each claim in units of its written rounding, from y); kept only if more claims then hold."""
    rows = kept + quad
    printed = np.array([cf.claims[i].printed.value for i in rows])
    tol = np.array([cf.claims[i].printed.tolerance for i in rows])
    coef = np.array([_quadratic_coef(cf, net, cf.claims[i]) for i in quad]).reshape(len(quad), cf.T)
    yp = net.fwd.y_pred[:, 0].ravel()  # (T O,)

    def values(v: np.ndarray) -> np.ndarray:
        e = (v - yp).reshape(cf.T, cf.O)
        return np.concatenate([c + J @ v, coef @ np.sum(e * e, axis=1)])

    def jacobian(v: np.ndarray) -> np.ndarray:
        e = (v - yp).reshape(cf.T, cf.O)
        quad_rows = (2 * coef[:, :, None] * e[None]).reshape(len(quad), -1)
        return np.vstack([J, quad_rows]) / tol[:, None]

    def holding(v: np.ndarray) -> int:
        return int(np.sum(np.abs(values(v) - printed) <= tol))

    new = nonlinear_least_squares(lambda v: (values(v) - printed) / tol, jacobian, y)
    return new if holding(new) > holding(y) else y


def _quadratic_coef(cf: ClaimsFile, net: Net, cl: Claim) -> np.ndarray:
    """(T,) with the claim's value = sum_t coef_t ||y_t - y'_t||^2: E_i: c at i; Loss: c w_t."""
    if cl.kind == "Loss":
        return cf.loss.c * net.weights
    coef = np.zeros(cf.T)
    coef[cl.t - 1] = cf.loss.c
    return coef


def _start_offsets(cf: ClaimsFile, net: Net, quad: list[int], coef: list[np.ndarray], printed: np.ndarray,
                   y: np.ndarray, steps: list[int]) -> np.ndarray:
    """d_t >= 0 per fitted step: from E_t's claim where there is one, else one d for the rest that
    gives the claimed Loss (the others' contributions at the targets the affine claims fix)."""
    O = cf.O
    d = np.full(len(steps), math.nan)
    for n, i in enumerate(quad):
        cl = cf.claims[i]
        if cl.kind == "E" and cl.t in steps:
            d[steps.index(cl.t)] = math.sqrt(max(printed[n], 0.0) / (cf.loss.c * O))
    loss = [n for n, i in enumerate(quad) if cf.claims[i].kind == "Loss"]
    rest = [j for j, t in enumerate(steps) if math.isnan(d[j])]
    if loss and rest:
        e = y.reshape(cf.T, O) - net.fwd.y_pred[:, 0]
        for j, t in enumerate(steps):
            e[t - 1] = d[j] if not math.isnan(d[j]) else 0.0
        cw = coef[loss[0]]
        known = float(cw @ np.sum(e * e, axis=1))
        weight = float(sum(cw[steps[j] - 1] for j in rest)) * O
        d[rest] = math.sqrt(max(printed[loss[0]] - known, 0.0) / weight) if weight > 0 else 0.0
    return np.nan_to_num(d, nan=0.0)


def _flag_unexplainable(a: TargetAnalysis, names: list[str], misfit) -> None:
    """Fill misfit_without, largest_sets and unexplainable: (1) claims in none of the largest consistent
    sets; (2) the seed's test: leaving one claim out helps far more than leaving out any other (twice the
    next best, by the LP); (3) claims no targets give even alone. (2) costs one LP per claim, so it is
    run up to MAX_LEAVE_ONE_OUT claims."""
    n = len(names)
    if n <= MAX_LEAVE_ONE_OUT:
        a.misfit_without = {names[j]: misfit([k for k in range(n) if k != j])[0] for j in range(n)}
    a.largest_sets, a.largest_exhaustive = _largest_sets(n, misfit, names)
    in_some = {c for s in a.largest_sets for c in s.claims}
    flagged = [c for c in names if c not in in_some]
    if a.misfit_without:
        best, second = sorted(a.misfit_without, key=a.misfit_without.get)[:2]
        if a.misfit_without[second] > 2 * a.misfit_without[best] and best not in flagged:
            flagged.append(best)
    a.unexplainable = flagged + [c for c in a.unexplainable_alone if c not in flagged]


def _fit(A: np.ndarray, b: np.ndarray, half: np.ndarray, n_y: int, eq: tuple = (),
         bounds: tuple[float, float] | None = None) -> np.ndarray:
    """Weighted least squares; where it misses a claim that some targets do reproduce, or leaves the
    bounds, the LP's targets."""
    if len(b) == 0:
        return np.linalg.lstsq(eq[0], eq[1], rcond=None)[0] if eq else np.zeros(n_y)
    y = least_squares_targets(A, b, half, *eq)
    t_lp, y_lp = min_misfit(A, b, half, *eq, bounds=bounds)
    worst_ls = float(np.max(np.abs(A @ y - b) / half))
    outside = bounds is not None and bool(np.any((y < bounds[0] - 1e-9) | (y > bounds[1] + 1e-9)))
    return y_lp if t_lp <= 1.0 and (worst_ls > 1.0 or outside) else y


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
    # greedy: drop the claim the best targets miss most, until the rest fit (one LP per claim dropped)
    keep = list(range(n))
    t, y = misfit(keep)
    while len(keep) > 1 and t > 1.0:
        keep.pop(int(np.argmax(misfit.miss(keep, y))))
        t, y = misfit(keep)
    return [ConsistentSet(tuple(names[i] for i in keep), tuple(float(v) for v in y))], False


def _consistent(idx: Sequence[int], misfit, names: list[str]) -> ConsistentSet | None:
    t, y = misfit(idx)
    return ConsistentSet(tuple(names[i] for i in idx), tuple(float(v) for v in y)) if t <= 1.0 else None


# ------------------------------------------------------------------ the report as data (``bptt check --json``)
def report_dict(report: Report, exit_status: int | None = None) -> dict[str, Any]:
    """The report as plain JSON-ready data; the layout (``JSON_SCHEMA``) is documented in docs/howto/claims.md (The JSON report).

    {"schema", "file", "title", "model": {sizes D H O, parameters, h0, activations},
     "loss": {half, reduction, scored, formula}, "sequence": {"x"},
     "targets": {"source": "given" | "fitted" | "none", "values": (T,) or (T, O) list or null},
     "claims": [{key, name, kind, step, k, theta, index, dependence, printed, value, tolerance,
                 significant_figures, exact, verdict, holds, misfit, rounded, at_fitted_targets}],
     "summary": {claims, hold, all_hold, negated_holds, plain_holds},
     "analysis": null or {lsq_targets, misfit_all, misfit_without, largest_sets, largest_exhaustive,
                          unexplainable_alone, unexplainable, kept, undetermined, quadratic, quadratic_steps,
                          refined},
     "exit_status"}
    """
    cf = report.cf
    source = report.targets_source
    out = {
        "schema": JSON_SCHEMA, "file": cf.path, "title": cf.title,
        "model": {"sizes": {"D": cf.D, "H": cf.H, "O": cf.O}, **{k: v.tolist() for k, v in cf.params.items()},
                  "h0": cf.h0.tolist(), "hidden_activation": cf.hidden_activation,
                  "output_activation": cf.output_activation},
        "loss": {"half": cf.loss.half, "reduction": cf.loss.reduction, "scored": list(cf.loss.scored),
                 "formula": cf.loss.describe(cf.T, cf.O)},
        "sequence": {"x": cf.x[:, 0].tolist() if cf.D == 1 else cf.x.tolist()},
        "targets": {"source": source, "values": report.targets},
        "given": [{"key": g.key, "name": g.name, "kind": g.kind, "value": g.printed.value} for g in cf.given],
        "layout": cf.layout, "truncate": cf.truncate,
        "update": None if cf.update is None else {"lr": cf.update.lr, "optimizer": cf.update.optimizer},
        "claims": [_row_dict(r) for r in report.rows],
        "summary": {"claims": len(report.rows), "hold": sum(r.holds for r in report.rows),
                    "all_hold": report.all_hold, "negated_holds": report.negated_holds,
                    "plain_holds": report.plain_holds},
        "analysis": _analysis_dict(report.analysis) if report.analysis is not None else None,
        "exit_status": exit_status,
    }
    return out


def _row_dict(r: Row) -> dict[str, Any]:
    cl, v = r.claim, r.verdict
    return {"key": cl.key, "name": cl.name, "kind": cl.kind, "step": cl.t, "k": cl.k, "theta": cl.theta,
            "index": [i + 1 for i in cl.index], "dependence": cl.dependence, "printed": cl.printed.text,
            "value": cl.printed.value, "tolerance": cl.printed.tolerance,
            "significant_figures": cl.printed.significant_figures(), "exact": v.exact, "verdict": v.kind,
            "holds": v.holds, "misfit": _finite(v.misfit), "rounded": v.rounded,
            "at_fitted_targets": r.at_fitted_targets, "hint": r.hint, "truncate": cl.trunc}


def _analysis_dict(a: TargetAnalysis) -> dict[str, Any]:
    return {"lsq_targets": a.lsq_targets, "misfit_all": _finite(a.misfit_all),
            "misfit_without": {k: _finite(v) for k, v in a.misfit_without.items()},
            "largest_sets": [{"claims": list(s.claims), "targets": list(s.targets)} for s in a.largest_sets],
            "largest_exhaustive": a.largest_exhaustive, "unexplainable_alone": a.unexplainable_alone,
            "unexplainable": a.unexplainable, "kept": a.kept, "undetermined": a.undetermined,
            "quadratic": a.quadratic, "quadratic_steps": a.quadratic_steps, "refined": a.refined}


def _finite(v: float | None) -> float | None:
    """JSON has no inf or NaN: those become null."""
    return None if v is None or not math.isfinite(v) else float(v)
