r"""The seed's derivation, generated: BPTT for the scalar network, symbolically, for any T.

For the one-unit network (D = H = O = 1)

    z_t = w_x x_t + w_h h_{t-1} + b_1,   h_t = f(z_t),   u_t = w h_t + b_2,   y'_t = g(u_t)
    E_i = E(y'_i, y_i),                  Loss = c sum_i E_i   (c = 1/T "mean", 1 "sum")

with E from the loss table (``losses``: the seed's 1/2 (y_i - y'_i)^2 by default, or binary
cross-entropy with a sigmoid output)

every error term's gradient is written in the seed's chain-rule form

    dE_i/dθ = sum_{k=1}^{i} (dE_i/dy'_i) (dy'_i/dh_i) (dh_i/dh_k) (∂h_k/∂θ)      θ in {w_x, w_h, b_1}
            = E'_i g'(u_i) w  sum_k [prod_{j=k+1}^{i} f'(z_j) w_h] f'(z_k) ∂z_k/∂θ
    dE_i/dw  = E'_i g'(u_i) h_i,      dE_i/db_2 = E'_i g'(u_i) * 1

with ∂z_k/∂w_x = x_k, ∂z_k/∂w_h = h_{k-1}, ∂z_k/∂b_1 = 1, and dLoss/dθ = c sum_i dE_i/dθ.
E'_i = dE_i/dy'_i is sympy's derivative of the loss's ``sym_value``; it is (y'_i - y_i) times a
function of y'_i alone (1 for the squared error, 1/(y'(1 - y')) for cross-entropy), which keeps
every gradient affine in the targets. For the squared error the sign is the true one,
(y'_i - y_i); the seed writes (y_i - y'_i).

Each factor is a ``Factor``: a sympy expression (in the symbols w, w_x, w_h, b_1, b_2,
x_t, y_t and the hidden states h_t) together with its LaTeX. The local derivatives
f'(z) and g'(u) come from ``activations`` (``sym_value``, ``sym_deriv``, ``symbol``,
``deriv_text``), the same table the numeric engine reads, so the document, the
symbolic expressions and the engine cannot drift apart.

``Derivation.evaluate`` puts numbers in (exactly the factors shown, multiplied
out; y may stay unknown, in which case every gradient is affine in y), and
``render`` writes the document as Markdown, LaTeX or plain text.

sympy is imported lazily: ``import bptt`` stays light.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any, Sequence

import numpy as np

from . import activations, losses
from .validation import BPTTError, check_choice, check_int
from .activations import Activation
from .engine import PARAM_NAMES
from .document import Document, Edge, Figure, Node, PathInfo, mark, tex_to_text

ORDER = ("w", "w_x", "w_h", "b2", "b1")  # the seed's section order
RECURRENT = ("w_x", "w_h", "b1")  # reach E_i through the hidden states: a sum over paths k
TEX = {"w": "w", "w_x": "w_x", "w_h": "w_h", "b1": "b_1", "b2": "b_2"}
FORMATS = ("md", "tex", "text", "html")
MAX_T = 1000  # the document is O(T) lines, but the per-path numbers are O(T^2)
EXPAND_DEFAULT = 3  # up to this T every factor is written out, as the seed does
# The written-out form has O(T^3) characters (T terms of up to T paths of up to T factors, for each parameter).
# Measured (Markdown / HTML page / the page typeset in headless Chromium on 2 busy cores): T = 6: 43 kB / 0.74 MB /
# 2.3 s; T = 8: 77 kB / 0.80 MB / 3.4 s; T = 10: 128 kB / 0.90 MB / 6.2 s; T = 12: 0.2 MB / 1 MB / 9.6 s;
# T = 30: 2.4 MB of Markdown; T = 200: 480 MB. The cap keeps every format under a megabyte and a few seconds.
EXPAND_MAX = 8
EXPAND_WHAT = (f"a whole number of steps from 0 to {EXPAND_MAX} (written out, the document grows as T^3; "
               "longer sequences name the repeated factors)")


def _sympy():
    import sympy

    return sympy


def _num(expr, vals: dict) -> float:
    """A sympy expression at numbers: xreplace with 30-digit Floats, which sympy evaluates as it
    rebuilds (far faster than evalf(subs=...) on sums of tanh/relu terms)."""
    return float(expr.xreplace(vals))


# ------------------------------------------------------------------ factors and terms
@dataclass(frozen=True)
class Factor:
    """One factor of a chain-rule product.

    expr   sympy expression in the Derivation's symbols (h_t are symbols: the stored states)
    full   LaTeX as the seed writes it, every argument spelled out
    short  LaTeX with named quantities (z_k, u_i)
    kind   'err' (dE_i/dy'_i, the only factor that depends on the targets), "g'", "f'",
           'param', 'dz' (∂z_k/∂θ) or 'h'
    t      the step it belongs to (0 for parameters)
    """

    expr: Any
    full: str
    short: str
    kind: str
    t: int = 0


@dataclass(frozen=True)
class Path:
    """Path k of error term i: the factors of (dh_i/dh_k)(∂h_k/∂θ), in chain-rule order."""

    k: int
    factors: tuple[Factor, ...]

    def expr(self):
        sp = _sympy()
        return sp.Mul(*[f.expr for f in self.factors])


@dataclass(frozen=True)
class Term:
    """dE_i/dθ = prod(prefix) * sum_k prod(path_k): prefix is (dE_i/dy'_i)(dy'_i/dh_i)."""

    theta: str
    i: int
    prefix: tuple[Factor, ...]
    paths: tuple[Path, ...]

    def expr(self):
        """The sympy expression of dE_i/dθ, exactly the factors the document shows."""
        sp = _sympy()
        return sp.Mul(*[f.expr for f in self.prefix]) * sp.Add(*[p.expr() for p in self.paths])

    def path_expr(self, k: int):
        """(dE_i/dy'_i)(dy'_i/dh_i)(dh_i/dh_k)(∂h_k/∂θ): the contribution of path k."""
        sp = _sympy()
        for p in self.paths:
            if p.k == k:
                return sp.Mul(*[f.expr for f in self.prefix]) * p.expr()
        return sp.Integer(0)


# ------------------------------------------------------------------ numbers
@dataclass
class Numbers:
    """The derivation with numbers in.  Step-indexed arrays have index 0 = step 1.

    x, z, h1 (h_1..h_T), u, y_pred, fprime (f'(z_t)), gprime (g'(u_t)): (T,)
    h0: h_0.   params: the five parameters by name.   y: (T,) targets, or None when they stay symbolic.
    R[θ] (T, T): R[θ][i, k] = the path's product without the factor (y'_i - y_i), so
        the path's contribution is (y'_i - y_i) R[θ][i, k]  (0-based i, k; 0 for k > i).
        The rest of dE_i/dy'_i, kappa_i, is in R.
    kappa (T,): dE_t/dy'_t / (y'_t - y_t) at y'_t, a function of y'_t alone; None where it is 1 (squared error).
    weight: c in Loss = c sum_i E_i.
    Everything is affine in the targets; ``*_affine`` give [constant, coefficient of y_1, ..., y_T].
    """

    x: np.ndarray
    h0: float
    z: np.ndarray
    h1: np.ndarray
    u: np.ndarray
    y_pred: np.ndarray
    fprime: np.ndarray
    gprime: np.ndarray
    R: dict[str, np.ndarray]
    weight: float
    params: dict[str, float]
    y: np.ndarray | None = None
    kappa: np.ndarray | None = None

    @property
    def T(self) -> int:
        return len(self.x)

    def _y(self, y) -> np.ndarray:
        y = self.y if y is None else np.asarray(y, dtype=np.float64)
        if y is None:
            raise BPTTError("the targets y are symbolic here; pass y to get numbers")
        return y

    def paths(self, y=None) -> dict[str, np.ndarray]:
        """paths[θ][i, k] (T, T): the engine's ``Decomposition.paths`` layout."""
        e = self.y_pred - self._y(y)  # (T,)
        return {k: r * e[:, None] for k, r in self.R.items()}

    def terms(self, y=None) -> dict[str, np.ndarray]:
        """dE_i/dθ (T,)."""
        return {k: p.sum(axis=1) for k, p in self.paths(y).items()}

    def grads(self, y=None) -> dict[str, float]:
        """dLoss/dθ = c sum_i dE_i/dθ."""
        return {k: float(self.weight * v.sum()) for k, v in self.terms(y).items()}

    def term_affine(self, theta: str) -> np.ndarray:
        """(T, T+1): dE_i/dθ = a[i, 0] + a[i, i+1] y_i."""
        T = self.T
        r = self.R[theta].sum(axis=1)  # (T,)
        a = np.zeros((T, T + 1))
        a[:, 0] = r * self.y_pred
        a[np.arange(T), np.arange(T) + 1] = -r
        return a

    def grad_affine(self, theta: str) -> np.ndarray:
        """(T+1,): dLoss/dθ = a[0] + sum_t a[t] y_t."""
        return self.weight * self.term_affine(theta).sum(axis=0)


def _check_finite(n: Numbers, eg: np.ndarray) -> None:
    """Every number the document writes is a float64: one line naming the first that is not (inf or nan), where it
    arose.  (sympy evaluates beyond float64's range; the engine, the check and the page compute in float64.)"""
    T = n.T
    named = [("z_{t}", n.z), ("h_{t}", n.h1), ("u_{t}", n.u), ("y'_{t}", n.y_pred), ("f'(z_{t})", n.fprime),
             ("g'(u_{t})", n.gprime), ("(dE_{t}/dy'_{t}) g'(u_{t}) / (y'_{t} - y_{t})", eg)]
    for t in range(1, T + 1):
        for name, a in named:
            if not np.isfinite(a[t - 1]):
                _not_finite(name.format(t=t), a[t - 1], T)
    with np.errstate(over="ignore", invalid="ignore"):
        for k in PARAM_NAMES:
            if not np.all(np.isfinite(n.R[k])):
                i, j = np.argwhere(~np.isfinite(n.R[k]))[0]
                _not_finite(f"the path k = {j + 1} of dE_{i + 1}/d{k}", n.R[k][i, j], T)
            forms = {f"dE_i/d{k} (i = {i + 1})": v for i, v in enumerate(n.term_affine(k))} | \
                    {f"dLoss/d{k}": n.grad_affine(k)}
            if n.y is not None:
                forms |= {f"dLoss/d{k}": np.array([n.grads()[k]]),
                          **{f"the paths of dE_i/d{k} (i = {i + 1})": v for i, v in enumerate(n.paths()[k])}}
            for name, v in forms.items():
                if not np.all(np.isfinite(v)):
                    _not_finite(name, v[~np.isfinite(v)][0], T)


def _not_finite(name: str, value: float, T: int) -> None:
    raise BPTTError(f"{name} is {value} in float64 (beyond about ±1.8e308, or undefined), so the derivation cannot "
                    "write it; give parameters, inputs and h0 whose sums and products stay within float64's range")


def _paths_of_term(pre: float, fp: np.ndarray, dz: np.ndarray, w_h: float) -> np.ndarray:
    """(i,) for k = 1..i: pre * [prod_{j=k+1}^{i} f'(z_j) w_h] * f'(z_k) * dz_k, pre = kappa_i g'(u_i) w.

    The chain dh_i/dh_k is accumulated from k = i down (np.cumprod multiplies in order, as a loop
    would), so all paths of a term cost O(i), not O(i^2)."""
    a = fp * w_h  # (i,): f'(z_j) w_h
    chain = np.ones_like(fp)  # chain[k] = prod_{j > k} a[j]
    chain[:-1] = np.cumprod(a[:0:-1])[::-1]
    return pre * chain * fp * dz


# ------------------------------------------------------------------ the loss
# How the document writes dE/dy' ({p}: the prediction y', {y}: the target). The expression itself is
# sympy's derivative of the loss table's sym_value; tests/test_derive.py pins each text to it.
# A loss not listed is written from sympy's LaTeX.
ERR_TEX = {"squared_error": "({p} - {y})", "bce": r"\frac{{p} - {y}}{{p}(1 - {p})}"}
# What E_i is, in words, for the document.
LOSS_WORDS = {"squared_error": "half the squared error", "bce": "the binary cross-entropy"}


def _scalar_outputs(loss: losses.Loss) -> bool:
    """Whether a one-output network can have this loss: it takes an elementwise output (not only softmax)."""
    return loss.outputs is None or any(activations.ACTIVATIONS[o].elementwise for o in loss.outputs)


SCALAR_LOSSES = tuple(n for n, r in losses.LOSSES.items() if _scalar_outputs(r))  # what --loss offers


def scalar_loss(name: str, output_activation: "str | Activation") -> losses.Loss:
    """The loss table's record for the scalar network with this output; one BPTTError line for a name not
    in the table, a loss of vector outputs (cross-entropy: a softmax over classes), or a mismatched pair."""
    loss = losses.get(name)
    if not _scalar_outputs(loss):
        raise BPTTError(f"loss {name!r} needs a {' or '.join(loss.outputs or ())} output over several classes, but "
                        f"the scalar network has one output; use loss {' or '.join(map(repr, SCALAR_LOSSES))} here, or "
                        f"bptt.RNN with several outputs for {name}")
    g = output_activation if isinstance(output_activation, Activation) else activations.get(
        output_activation, activations.OUTPUT_ACTIVATIONS, "output_activation")
    return losses.pair(loss, g)


def _err_scale(loss: losses.Loss):
    """(kappa, p): dE/dy' = (y' - y) kappa(p) at p = y', kappa free of the target y (else refused: the
    derivation keeps (y' - y) apart so that unknown targets stay exact and every gradient affine in them)."""
    sp = _sympy()
    p, y = sp.Symbol("p"), sp.Symbol("y")
    dE = sp.diff(loss.sym_value(p, y), p)
    kappa = sp.simplify(dE / (p - y))
    if kappa.has(y):
        raise BPTTError(f"loss {loss.name!r} has dE/dy' = {dE}, not (y' - y) times a function of y' alone; "
                        "bptt explain writes only such losses (squared_error, bce): use one of them")
    return kappa, p


def _formula_tex(formula: str, i: str) -> str:
    """A loss record's formula text as LaTeX for step i: '1/2 (y - y')^2' -> '\\frac{1}{2} (y_i - y'_i)^2'."""
    tex = re.sub(r"\by'", f"y'_{i}", formula.replace("1/2", r"\frac{1}{2}"))
    tex = re.sub(r"\by\b(?!')", f"y_{i}", tex)
    return re.sub(r"\blog\b", r"\\log", tex)


# ------------------------------------------------------------------ the derivation
class Derivation:
    """The chain-rule terms of the scalar network over T steps, symbolically.

    d = Derivation(2)                        # the seed: sigmoid, sigmoid, mean, squared error
    Derivation(2, loss="bce")                # binary cross-entropy (sigmoid output)
    d.term("w_x", 2).expr()                  # sympy: dE_2/dw_x in the seed's form
    d.total_expr("w_x")                      # dLoss/dw_x
    n = d.evaluate(params, x, h0, y=None)    # numbers (affine in y when y is None)
    print(d.render(n, "md"))
    """

    def __init__(self, T: int, hidden_activation: str = "sigmoid", output_activation: str = "sigmoid",
                 reduction: str = "mean", loss: str = losses.DEFAULT):
        if isinstance(T, bool) or not isinstance(T, (int, np.integer)) or not 1 <= T <= MAX_T:
            raise BPTTError(f"T must be an integer from 1 to {MAX_T} for a derivation, got {T!r}; "
                            "the document is for teaching-size sequences")
        if reduction not in ("mean", "sum"):
            raise BPTTError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        self.T = int(T)
        self.f: Activation = activations.get(hidden_activation, activations.HIDDEN_ACTIVATIONS, "hidden_activation")
        self.g: Activation = activations.get(output_activation, activations.OUTPUT_ACTIVATIONS, "output_activation")
        activations.require(self.f, "sympy", "hidden_activation")
        activations.require(self.g, "sympy", "output_activation")  # softmax: a vector output, not the scalar network's
        self.loss: losses.Loss = losses.require(scalar_loss(loss, self.g), "sympy")
        self.reduction = reduction
        sp = _sympy()
        self.theta = {name: sp.Symbol(TEX[name]) for name in PARAM_NAMES}
        self.x = [None] + [sp.Symbol(f"x_{t}") for t in range(1, T + 1)]  # 1-based
        self.y = [None] + [sp.Symbol(f"y_{t}") for t in range(1, T + 1)]
        self.h = [sp.Symbol(f"h_{t}") for t in range(T + 1)]  # h_0..h_T: the stored states
        w, w_x, w_h, b1, b2 = (self.theta[k] for k in ("w", "w_x", "w_h", "b1", "b2"))
        # one step of the recurrence, in terms of the previous state's symbol
        self.z = [None] + [w_x * self.x[t] + w_h * self.h[t - 1] + b1 for t in range(1, T + 1)]
        self.u = [None] + [w * self.h[t] + b2 for t in range(1, T + 1)]
        self.weight = sp.Rational(1, T) if reduction == "mean" else sp.Integer(1)
        self._kappa, self._p = _err_scale(self.loss)  # first: a loss it cannot write is refused before any work

    @cached_property
    def y_pred(self) -> list:
        """y'_t = g(u_t), 1-based (built on first use: sympy is slow to build T of them)."""
        return [None] + [self.g.sym_value(self.u[t]) for t in range(1, self.T + 1)]

    # ---------------------------------------------------------------- notation
    @staticmethod
    def op(a: Activation) -> str | None:
        """LaTeX name of an activation (from its table ``symbol``); None for the identity."""
        if a.name == "identity":
            return None
        return {"tanh": r"\tanh"}.get(a.symbol, rf"\operatorname{{{a.symbol}}}")

    def apply(self, a: Activation, arg: str) -> str:
        op = self.op(a)
        return f"({arg})" if op is None else f"{op}({arg})"

    def deriv_tex(self, a: Activation, value_tex: str) -> str:
        """a'(·) written from the output a(·), by the table's ``deriv_text``."""
        return a.deriv_text.format(a=value_tex)

    def deriv_short(self, a: Activation, arg: str) -> str:
        """a'(arg), or the constant when the derivative is one (identity)."""
        if "{a}" not in a.deriv_text:
            return a.deriv_text
        return f"{self.op(a)}'({arg})"

    # ---------------------------------------------------------------- the loss
    def err_expr(self, y_pred, y):
        """dE/dy' at (y_pred, y): sympy's derivative of the loss table's E."""
        sp = _sympy()
        p, t = self._p, sp.Symbol("t")
        return sp.diff(self.loss.sym_value(p, t), p).xreplace({p: y_pred, t: y})

    def kappa(self, y_pred):
        """dE/dy' / (y' - y) at y_pred (free of the target): 1 for the squared error."""
        return self._kappa.xreplace({self._p: y_pred})

    @property
    def squared_error_form(self) -> bool:
        """dE/dy' is (y' - y) itself (the seed's loss): the document writes it as the seed does."""
        return self._kappa == 1

    def err_tex(self, p: str, y: str) -> str:
        """dE/dy' as LaTeX, prediction p and target y: the table below, or sympy's for a loss not in it."""
        if self.loss.name in ERR_TEX:
            return ERR_TEX[self.loss.name].replace("{p}", p).replace("{y}", y)
        sp = _sympy()
        den = sp.latex(sp.factor(1 / self._kappa).xreplace({self._p: sp.Symbol(p)}))
        return rf"\frac{{{p} - {y}}}{{{den}}}"

    def loss_tex(self, i: str) -> str:
        """E_i as LaTeX, from the loss record's formula text ('1/2 (y - y')^2' -> \frac{1}{2} (y_i - y'_i)^2)."""
        return _formula_tex(self.loss.formula, i)

    @cached_property
    def cancels(self) -> bool:
        """dE/dy' * g'(u) is exactly (y' - y) though neither factor is: a matching pair (sigmoid + bce)."""
        sp = _sympy()
        if self.squared_error_form:
            return False
        return sp.simplify(self._kappa * self.g.sym_deriv(self._p)) == 1

    @staticmethod
    def z_full(k: int) -> str:
        return f"w_x x_{{{k}}} + w_h h_{{{k - 1}}} + b_1"

    @staticmethod
    def u_full(i: int) -> str:
        return f"w h_{{{i}}} + b_2"

    # ---------------------------------------------------------------- factors
    @lru_cache(maxsize=None)
    def factor(self, kind: str, t: int = 0, theta: str = "") -> Factor:
        sp = _sympy()
        if kind == "err":  # dE_t/dy'_t: sympy's derivative of the loss (squared error: y'_t - y_t, the true sign)
            tex = self.err_tex(f"y'_{{{t}}}", f"y_{{{t}}}")
            return Factor(self.err_expr(self.y_pred[t], self.y[t]), tex, tex, kind, t)
        if kind == "g'":  # dy'_t/du_t = g'(u_t), written from y'_t = g(u_t)
            full = self.deriv_tex(self.g, self.apply(self.g, self.u_full(t)))
            return Factor(self.g.sym_deriv(self.y_pred[t]), full, self.deriv_short(self.g, f"u_{{{t}}}"), kind, t)
        if kind == "f'":  # dh_t/dz_t = f'(z_t), written from h_t = f(z_t)
            full = self.deriv_tex(self.f, self.apply(self.f, self.z_full(t)))
            expr = self.f.sym_deriv(self.f.sym_value(self.z[t]))
            return Factor(expr, full, self.deriv_short(self.f, f"z_{{{t}}}"), kind, t)
        if kind == "param":
            return Factor(self.theta[theta], TEX[theta], TEX[theta], kind, 0)
        if kind == "dz":  # ∂z_t/∂θ with h_{t-1} held fixed
            if theta == "w_x":
                return Factor(self.x[t], f"x_{{{t}}}", f"x_{{{t}}}", kind, t)
            if theta == "w_h":
                return Factor(self.h[t - 1], f"h_{{{t - 1}}}", f"h_{{{t - 1}}}", kind, t)
            return Factor(sp.Integer(1), "1", "1", kind, t)
        if kind == "h":  # ∂u_t/∂w = h_t, ∂u_t/∂b_2 = 1
            if theta == "w":
                return Factor(self.h[t], f"h_{{{t}}}", f"h_{{{t}}}", kind, t)
            return Factor(sp.Integer(1), "1", "1", kind, t)
        raise ValueError(kind)  # pragma: no cover - internal

    def term(self, theta: str, i: int) -> Term:
        """dE_i/dθ (1-based i) as prefix * sum over paths."""
        if theta not in PARAM_NAMES:
            raise BPTTError(f"unknown parameter {theta!r}; choose one of {', '.join(PARAM_NAMES)}")
        if not 1 <= i <= self.T:
            raise BPTTError(f"error term {i} is out of range; this derivation has E_1..E_{self.T}")
        F = self.factor
        if theta not in RECURRENT:  # w, b2 reach E_i through y'_i only: no sum over k
            return Term(theta, i, (F("err", i), F("g'", i)), (Path(i, (F("h", i, theta),)),))
        paths = []
        for k in range(1, i + 1):
            chain: list[Factor] = []
            for j in range(i, k, -1):  # dh_j/dh_{j-1} = f'(z_j) w_h
                chain += [F("f'", j), F("param", 0, "w_h")]
            paths.append(Path(k, tuple(chain) + (F("f'", k), F("dz", k, theta))))
        return Term(theta, i, (F("err", i), F("g'", i), F("param", 0, "w")), tuple(paths))

    def total_expr(self, theta: str):
        """dLoss/dθ = c sum_i dE_i/dθ, sympy."""
        sp = _sympy()
        return self.weight * sp.Add(*[self.term(theta, i).expr() for i in range(1, self.T + 1)])

    # ---------------------------------------------------------------- independent symbolic check
    def unrolled_errors(self, split: bool = False) -> tuple[list, dict]:
        """E_1..E_T as explicit functions of the parameters (no h symbols), for sympy.diff.

        split=True gives each step its own copy of every parameter (w_x^(k) in z_k,
        w^(i) in u_i, ...): ∂E_i/∂θ^(k) is then exactly path k of the seed's sum.
        Returns (E list 1-based with E[0] = None, copies {(θ, step): symbol}).
        """
        sp = _sympy()
        copies: dict[tuple[str, int], Any] = {}

        def p(name, t):
            if not split:
                return self.theta[name]
            return copies.setdefault((name, t), sp.Symbol(f"{TEX[name]}^({t})"))

        h = [self.h[0]]
        for t in range(1, self.T + 1):
            h.append(self.f.sym_value(p("w_x", t) * self.x[t] + p("w_h", t) * h[t - 1] + p("b1", t)))
        E = [None] + [self.loss.sym_value(self.g.sym_value(p("w", t) * h[t] + p("b2", t)), self.y[t])
                      for t in range(1, self.T + 1)]
        return E, copies

    # ---------------------------------------------------------------- numbers
    def values(self, params: dict[str, float], x: Sequence[float], h0: float) -> dict:
        """Symbol -> number for the parameters, inputs and the states h_t (run through the
        symbolic recurrence h_t = f(z_t) itself)."""
        sp = _sympy()
        vals: dict = {self.theta[k]: sp.Float(float(params[k]), 30) for k in PARAM_NAMES}
        vals[self.h[0]] = sp.Float(float(h0), 30)
        for t in range(1, self.T + 1):
            vals[self.x[t]] = sp.Float(float(x[t - 1]), 30)
        for t in range(1, self.T + 1):  # h_t = f(z_t) with z_t's number in: the same value, built far faster
            vals[self.h[t]] = self.f.sym_value(self.z[t].xreplace(vals))
        return vals

    def step_numbers(self, vals: dict) -> tuple[list, list, list, list]:
        """(z, u, f'(z), g'(u)) at the numbers, 1-based lists of sympy Floats: the factors f'(z_t) and
        g'(u_t) of ``factor`` are their expressions applied to z_t and u_t, so they are evaluated as
        exactly that (building f(w_x x_t + w_h h_{t-1} + b_1) in sympy first costs milliseconds a step)."""
        z = [None] + [self.z[t].xreplace(vals) for t in range(1, self.T + 1)]
        u = [None] + [self.u[t].xreplace(vals) for t in range(1, self.T + 1)]
        fp = [None] + [self.f.sym_deriv(self.f.sym_value(z[t])) for t in range(1, self.T + 1)]
        gp = [None] + [self.g.sym_deriv(self.g.sym_value(u[t])) for t in range(1, self.T + 1)]
        return z, u, fp, gp

    def evaluate(self, params: dict[str, float], x: Sequence[float], h0: float = 0.0,
                 y: Sequence[float] | None = None) -> Numbers:
        """The numbers: each distinct factor evaluated once, then the paths multiplied out.

        The path (i, k) of θ in {w_x, w_h, b_1} is the product of the factors ``term``
        lists for it; it is accumulated from k = i down so that all paths of a term
        cost O(i), not O(i^2). The factor (y'_i - y_i) is kept apart (``Numbers.R``)
        so unknown targets stay exact: every result is affine in y.
        """
        T = self.T
        x = [float(v) for v in x]
        if len(x) != T:
            raise BPTTError(f"x has {len(x)} steps but this derivation has T = {T}")
        vals = self.values(params, x, h0)

        def num(factor: Factor) -> float:
            return _num(factor.expr, vals)

        F = self.factor
        zs, us, fps, gps = self.step_numbers(vals)
        z, u, fp, gp = (np.array([float(v) for v in a[1:]]) for a in (zs, us, fps, gps))  # (T,) each
        h1 = np.array([float(vals[self.h[t]]) for t in range(1, T + 1)])  # (T,)
        yps = [None] + [self.g.sym_value(us[t]) for t in range(1, T + 1)]
        yp = np.array([float(v) for v in yps[1:]])  # (T,)
        kappa = eg = None
        if self.squared_error_form:
            eg = gp  # dE/dy' = (y' - y) exactly: kappa = 1
        else:  # kappa g' multiplied at 30 digits: for bce 1/(y'(1 - y')) times y'(1 - y'), finite however saturated
            # kappa through its reciprocal (y'(1 - y') for bce: 0 where y' rounds to 1 at 30 digits, so kappa = inf,
            # which the document writes as that denominator); a matching pair (sigmoid + bce) is exactly 1 there
            with np.errstate(divide="ignore", over="ignore"):
                kappa = 1 / np.array([float(1 / self.kappa(yps[t])) for t in range(1, T + 1)])
            eg = np.ones(T) if self.cancels else np.array([float(self.kappa(yps[t]) * gps[t])
                                                          for t in range(1, T + 1)])
        w, w_h = num(F("param", 0, "w")), num(F("param", 0, "w_h"))
        R = {k: np.zeros((T, T)) for k in PARAM_NAMES}
        for i in range(T):  # 0-based
            R["w"][i, i] = eg[i] * num(F("h", i + 1, "w"))
            R["b2"][i, i] = eg[i] * num(F("h", i + 1, "b2"))
        for theta in RECURRENT:
            dz = np.array([num(F("dz", t, theta)) for t in range(1, T + 1)])  # (T,)
            for i in range(T):
                R[theta][i, : i + 1] = _paths_of_term(eg[i] * w, fp[: i + 1], dz[: i + 1], w_h)
        yv = None if y is None else np.asarray([float(v) for v in y], dtype=np.float64)
        if yv is not None and yv.shape != (T,):
            raise BPTTError(f"y has {yv.size} steps but this derivation has T = {T}; give one target per step")
        if yv is not None:
            self.loss.check_targets(yv)  # bce: targets in [0, 1]
        n = Numbers(x=np.array(x), h0=float(h0), z=z, h1=h1, u=u, y_pred=yp, fprime=fp, gprime=gp, R=R,
                    weight=float(self.weight), params={k: float(params[k]) for k in PARAM_NAMES}, y=yv, kappa=kappa)
        _check_finite(n, eg)
        return n

    # ---------------------------------------------------------------- the document
    def document(self, n: Numbers, expand: int = EXPAND_DEFAULT, check: "Check | None" = None) -> Document:
        """The document model, which every format renders."""
        expand = check_int("expand", expand, 0, EXPAND_MAX, what=EXPAND_WHAT)
        doc = Document()
        _write(doc, self, n, expand=expand, check=check)
        return doc

    def render(self, n: Numbers, fmt: str = "md", expand: int = EXPAND_DEFAULT, check: "Check | None" = None) -> str:
        """The document.  fmt: 'md' (Markdown with LaTeX math), 'tex' (complete LaTeX), 'text', or 'html'
        (a self-contained page: math typeset by the KaTeX shipped in the package, the network drawn, and
        live controls that recompute it in the page up to html.LIVE_MAX_T steps; static beyond)."""
        fmt = check_choice("format", fmt, FORMATS)
        doc = self.document(n, expand, check)
        if fmt == "html":
            from . import html

            if self.T > html.LIVE_MAX_T:
                return html.render(doc)
            live = html.live_state(n.params, n.x.tolist(), n.h0, None if n.y is None else n.y.tolist(), self.f.name,
                                   self.g.name, self.loss.name, self.reduction, expand=expand)
            return html.render(doc, live=live)
        return doc.render(fmt)


KINKS = {"relu": 0.0}  # activations with a point where they are not differentiable: the argument there
AGREE_RTOL = 1e-9  # a difference above this, relative to the largest number compared, is a disagreement


@dataclass
class Check:
    """How the document's numbers compare with independent computations.

    engine_max_abs   max |derivation - RNN.loss_and_grad/decompose| over all totals, terms, paths
    sympy_max_abs    max |derivation - sympy.diff of the unrolled E_i| (small T); None when skipped
    scale            the largest |number| compared: differences are judged relative to it
    kinks            steps t where z_t sits exactly on a kink of the hidden activation (relu at 0)
    fd_max_abs       with kinks: max |central finite difference of the Loss - the totals|
    """

    engine_max_abs: float
    sympy_max_abs: float | None
    scale: float = 1.0
    kinks: tuple[int, ...] = ()
    fd_max_abs: float | None = None

    def agrees(self, diff: float | None) -> bool:
        """diff is rounding: at most AGREE_RTOL relative to the numbers compared."""
        return diff is not None and diff <= AGREE_RTOL * self.scale

    @property
    def engine_agrees(self) -> bool:
        return self.agrees(self.engine_max_abs)

    @property
    def sympy_agrees(self) -> bool:
        return self.agrees(self.sympy_max_abs)


def check_against(d: Derivation, n: Numbers, sympy_up_to: int = 4) -> Check:
    """Compare the derivation's numbers with the numeric engine, (small T) with sympy.diff, and where
    z_t sits on a kink of the activation, with central finite differences of the Loss.

    With symbolic targets the comparison is of the affine forms: at y = 0 and at each unit vector
    (T <= 60), or at one generic target vector (every path is (y'_i - y_i) times a number).
    """
    T = d.T
    m = _scalar_model(d, n.params)
    x = np.asarray(n.x)

    def engine(yv):
        _, g = m.loss_and_grad(x, yv, h0=n.h0, reduction=d.reduction, backend="numpy")  # the reference engine
        dec = m.decompose(x, yv, h0=n.h0, reduction=d.reduction)
        return np.concatenate([[g[k].ravel()[0] for k in PARAM_NAMES]]
                              + [dec.paths[k].reshape(T * T) for k in PARAM_NAMES])

    def ours(yv):
        g, p = n.grads(yv), n.paths(yv)
        return np.concatenate([[g[k] for k in PARAM_NAMES]] + [p[k].ravel() for k in PARAM_NAMES])

    eng_diff, scale = _engine_diff(engine, ours, n)
    kinks = tuple(t for t in range(1, T + 1) if d.f.name in KINKS and n.z[t - 1] == KINKS[d.f.name])
    yv = n.y if n.y is not None else np.linspace(0.25, 0.75, T)
    sym_diff = _sympy_diff(d, n, yv) if T <= sympy_up_to else None
    fd = _finite_difference_diff(d, n, yv) if kinks else None
    return Check(engine_max_abs=eng_diff, sympy_max_abs=sym_diff, scale=scale, kinks=kinks, fd_max_abs=fd)


def _scalar_model(d: Derivation, params: dict[str, float]):
    from .model import RNN

    return RNN.scalar(**params, hidden_activation=d.f.name, output_activation=d.g.name, loss=d.loss.name)


def _engine_diff(engine, ours, n: Numbers) -> tuple[float, float]:
    """(max |engine - ours|, max |engine|) over totals and paths, as affine forms when y is symbolic."""
    T = n.T
    if n.y is not None:
        e = engine(n.y)
        return float(np.max(np.abs(e - ours(n.y)))), float(np.max(np.abs(e)))
    if T <= 60:
        from .audit import affine_in_targets

        ce, Je = affine_in_targets(engine, T)
        co, Jo = affine_in_targets(ours, T)
        diff = max(np.max(np.abs(ce - co)), np.max(np.abs(Je - Jo)))
        return float(diff), float(max(np.max(np.abs(ce)), np.max(np.abs(Je))))
    yv = np.random.default_rng(0).uniform(0, 1, T)  # T + 1 O(T^2) engine runs would take minutes
    e = engine(yv)
    return float(np.max(np.abs(e - ours(yv)))), float(np.max(np.abs(e)))


def _sympy_diff(d: Derivation, n: Numbers, yv: np.ndarray) -> float:
    """max |sympy.diff(E_i, θ) - dE_i/dθ| at targets yv, over every θ and i."""
    sp = _sympy()
    E, _ = d.unrolled_errors()
    vals = d.values(n.params, list(n.x), n.h0)
    for t in range(1, d.T + 1):
        vals[d.y[t]] = sp.Float(float(yv[t - 1]), 30)
    terms = n.terms(yv)
    try:
        return float(max(abs(_num(sp.diff(E[i], d.theta[k]), vals) - terms[k][i - 1])
                         for k in PARAM_NAMES for i in range(1, d.T + 1)))
    except TypeError:  # a complex infinity: the unrolled loss is undefined there (bce's log 0 where y' rounds to 1)
        return math.nan


def _finite_difference_diff(d: Derivation, n: Numbers, yv: np.ndarray, eps: float = 1e-6) -> float:
    """max over θ of |(Loss(θ + ε) - Loss(θ - ε)) / 2ε - dLoss/dθ| at targets yv (the engine's Loss)."""
    x, grads, worst = np.asarray(n.x), n.grads(yv), 0.0
    for k in PARAM_NAMES:
        loss = []
        for sign in (1, -1):
            p = dict(n.params, **{k: n.params[k] + sign * eps})
            loss.append(_scalar_model(d, p).loss_and_grad(x, yv, h0=n.h0, reduction=d.reduction,
                                                           backend="numpy")[0])
        worst = max(worst, abs((float(loss[0]) - float(loss[1])) / (2 * eps) - grads[k]))
    return worst


def derive(params: dict[str, float], x: Sequence[float], h0: float = 0.0, y: Sequence[float] | None = None,
           hidden_activation: str = "sigmoid", output_activation: str = "sigmoid", reduction: str = "mean",
           loss: str = losses.DEFAULT) -> tuple[Derivation, Numbers]:
    """Build the derivation for this model and sequence, and evaluate it."""
    d = Derivation(len(x), hidden_activation, output_activation, reduction, loss)
    return d, d.evaluate(params, x, h0, y)


def explain(params: dict[str, float], x: Sequence[float], h0: float = 0.0, y: Sequence[float] | None = None,
            hidden_activation: str = "sigmoid", output_activation: str = "sigmoid", reduction: str = "mean",
            fmt: str = "md", expand: int = EXPAND_DEFAULT, loss: str = losses.DEFAULT) -> str:
    """The whole document for one model and sequence, checked against the engine."""
    fmt = check_choice("format", fmt, FORMATS)
    check_int("expand", expand, 0, EXPAND_MAX, what=EXPAND_WHAT)
    d, n = derive(params, x, h0, y, hidden_activation, output_activation, reduction, loss)
    return d.render(n, fmt, expand=expand, check=check_against(d, n))


# ------------------------------------------------------------------ numbers as LaTeX
def fnum(v: float, digits: int = 6) -> str:
    """A number for the document: `digits` significant figures, LaTeX-safe."""
    v = float(v)
    if v == 0:
        return "0"
    if abs(v) >= 1e-4 and abs(v) < 1e6:
        s = f"{v:.{digits}g}"
    else:
        m, e = f"{v:.{digits - 1}e}".split("e")
        m = m.rstrip("0").rstrip(".")
        s = f"{m} \\times 10^{{{int(e)}}}"
    return s


def fpar(v: float, digits: int = 6) -> str:
    """fnum, parenthesised when negative (inside a product)."""
    s = fnum(v, digits)
    return f"({s})" if s.startswith("-") else s


def faffine(a: np.ndarray, digits: int = 6, var: str = "y") -> str:
    """[c, a_1..a_T] -> 'c - a_1 y_{1} + ...' (zero coefficients left out)."""
    parts = []
    c = float(a[0])
    if c != 0 or all(float(v) == 0 for v in a[1:]):
        parts.append(fnum(c, digits))
    for t, v in enumerate(a[1:], 1):
        v = float(v)
        if v == 0:
            continue
        mag = fnum(abs(v), digits)
        term = f"{mag}\\, {var}_{{{t}}}" if mag != "1" else f"{var}_{{{t}}}"
        if parts:
            parts.append(("- " if v < 0 else "+ ") + term)
        else:
            parts.append(("-" if v < 0 else "") + term)
    return " ".join(parts)


# ------------------------------------------------------------------ writing the document
def _frac(a: str, b: str) -> str:
    return rf"\frac{{{a}}}{{{b}}}"


def _dE(i, theta_tex: str) -> str:
    return _frac(f"dE_{{{i}}}", f"d{theta_tex}")


def _dL(theta_tex: str) -> str:
    return _frac(r"d\mathrm{Loss}", f"d{theta_tex}")


def _write(doc: Document, d: Derivation, n: Numbers, expand: int, check: Check | None) -> None:
    """The whole document: notation, formulas, the numbers put in, the results, the seed's differences."""
    full = d.T <= expand  # every factor written out, as the seed does; else the repeated factors are named
    _write_title(doc, d)
    doc.figure(_figure(d, n, expand))
    _write_notation(doc, d, full)
    _write_formulas(doc, d, full)
    sec = len(ORDER) + 2
    _write_building_blocks(doc, d, n, full, sec)
    _write_numbers_in(doc, d, n, full, sec + 1)
    _write_results(doc, d, n, expand, check, sec + 2)
    _write_differences(doc, d)


def _loss_factor(d: Derivation) -> str:
    """What multiplies the sum of the error terms in the Loss: 1/T for the mean, nothing for the sum."""
    return rf"\frac{{1}}{{{d.T}}}" if d.reduction == "mean" else ""


def _write_title(doc: Document, d: Derivation) -> None:
    loss = "" if d.loss.name == losses.DEFAULT else f", loss {d.loss.name}"  # the seed's loss goes unsaid
    doc.h1(f"BPTT derivation: T = {d.T}, hidden {d.f.name}, output {d.g.name}, reduction {d.reduction}{loss}")
    doc.p("Generated by `bptt explain´. Every formula below is a product of chain-rule factors that the "
          "program also evaluates; the numbers are those factors multiplied out, and they are checked "
          "against the numeric BPTT engine at the end.")


def _write_notation(doc: Document, d: Derivation, full: bool) -> None:
    """Section 1: activations, model, loss, the sign, the general formula (for long T also δ_i and P_{i,k})."""
    T = d.T
    f, g = d.f, d.g
    fop, gop = d.op(f), d.op(g)
    c_tex = _loss_factor(d)
    sp = _sympy()
    zs = sp.Symbol("z")
    doc.h2("1. Formulas and notation")
    defs = []
    for a in (f, g):
        if a.name == "identity":
            continue
        op = d.op(a)
        dname = d.deriv_short(a, "z")
        defs.append(rf"{op}(z) &= {sp.latex(a.sym_value(zs))}, \qquad {dname} = {d.deriv_tex(a, op + '(z)')}")
    doc.eq(*dict.fromkeys(defs))
    doc.eq(
        rf"z_t &= w_x x_t + w_h h_{{t-1}} + b_1, \qquad h_t = {d.apply(f, 'z_t') if fop else 'z_t'}",
        rf"u_t &= w h_t + b_2, \qquad y'_t = {d.apply(g, 'u_t') if gop else 'u_t'}",
        rf"E_i &= {d.loss_tex('i')}, \qquad \mathrm{{Loss}} = {c_tex} \sum_{{i=1}}^{{{T}}} E_i",
    )
    mean = ("The Loss is the mean over the steps, so $\\mathrm{Loss} = \\frac{1}{" + str(T) + "} \\sum_i E_i$."
            if d.reduction == "mean" else "The Loss is the sum over the steps.")
    err = d.err_tex("y'_i", "y_i")
    if d.squared_error_form:
        doc.p("$E_i$ is half the squared error of step $i$ (not an MSE); $y'_t$ is the prediction and $y_t$ the "
              "target. " + mean)
        doc.p("Sign: $\\frac{dE_i}{dy'_i} = (y'_i - y_i)$. The seed writes $(y_i - y'_i)$, which is the negative of "
              "the true derivative; every gradient here has the true sign.")
    else:
        words = LOSS_WORDS.get(d.loss.name, f"the loss {d.loss.name}")
        seeds = _formula_tex(losses.get(losses.DEFAULT).formula, "i")
        doc.p(f"$E_i$ is {words} of step $i$ (`--loss {d.loss.name}´; the seed's loss is ${seeds}$); $y'_t$ is "
              "the prediction and $y_t$ the target. " + mean)
        doc.p(f"Its derivative (sympy's, of $E_i$ above): $\\frac{{dE_i}}{{dy'_i}} = {err}$, which is $(y'_i - y_i)$ "
              "times a function of $y'_i$ alone: every gradient stays affine in the targets.")
        if d.cancels:
            doc.p(f"For the matching pair ({g.name} output, {d.loss.name}) the output's derivative cancels it:")
            gp = d.deriv_tex(g, "y'_i")
            doc.eq(rf"\frac{{dE_i}}{{du_i}} = \frac{{dE_i}}{{dy'_i}} \cdot \frac{{dy'_i}}{{du_i}} &= {err} \cdot "
                   rf"{gp} = (y'_i - y_i),")
            doc.p("the error the engine propagates (`bptt.losses´): no factor $" + d.deriv_short(g, "u_i")
                  + "$ to vanish when the output saturates. The formulas below keep the two factors apart, "
                  "as the chain rule writes them.")
    doc.p("The general formula: each parameter reaches $E_i$ through every earlier state $h_k$, so")
    doc.eq(
        r"\frac{dE_i}{d\theta} &= \sum_{k=1}^{i} \frac{dE_i}{dy'_i} \cdot \frac{dy'_i}{dh_i} \cdot "
        r"\frac{dh_i}{dh_k} \cdot \frac{\partial h_k}{\partial \theta}, \qquad \theta \in \{w_x, w_h, b_1\}",
        rf"\frac{{dy'_i}}{{dh_i}} &= {d.deriv_short(g, 'u_i')} \cdot w, \qquad "
        rf"\frac{{dh_i}}{{dh_k}} = \prod_{{j=k+1}}^{{i}} {d.deriv_short(f, 'z_j')} \cdot w_h "
        r"\quad (= 1 \text{ for } k = i)",
        rf"\frac{{\partial h_k}}{{\partial \theta}} &= {d.deriv_short(f, 'z_k')} \cdot "
        r"\frac{\partial z_k}{\partial \theta}, \qquad \frac{\partial z_k}{\partial w_x} = x_k, \quad "
        r"\frac{\partial z_k}{\partial w_h} = h_{k-1}, \quad \frac{\partial z_k}{\partial b_1} = 1",
        rf"\frac{{dE_i}}{{dw}} &= {err} \cdot {d.deriv_short(g, 'u_i')} \cdot h_i, \qquad "
        rf"\frac{{dE_i}}{{db_2}} = {err} \cdot {d.deriv_short(g, 'u_i')} \cdot 1",
        _dL(r"\theta") + rf" &= {c_tex} \sum_{{i=1}}^{{{T}}} \frac{{dE_i}}{{d\theta}}",
    )
    doc.p("$\\frac{\\partial h_k}{\\partial \\theta}$ is the immediate partial derivative ($h_{k-1}$ held fixed); "
          "the dependence through earlier states is the factor $\\frac{dh_i}{dh_k}$. $w$ and $b_2$ reach $E_i$ "
          "only through $y'_i$, so their formula has no sum over $k$.")
    if full:
        doc.p("Written out as in the seed (each factor spelled out; the common factor "
              "$\\frac{dE_i}{dy'_i} \\frac{dy'_i}{dh_i}$ taken out of the sum, one line per path $k$):")
    else:
        _write_named_factors(doc, d)


def _write_named_factors(doc: Document, d: Derivation) -> None:
    """For long sequences: δ_i and P_{i,k}, the factors the written-out form would repeat O(T^2) times."""
    T, f, g = d.T, d.f, d.g
    err = d.err_tex("y'_i", "y_i")
    doc.p(f"With T = {T} the written-out form would repeat every factor $O(T^2)$ times, so the repeated "
          "factors are named once. Write")
    doc.eq(
        rf"\delta_i &= \frac{{dE_i}}{{dy'_i}} \cdot \frac{{dy'_i}}{{dh_i}} = {err} \cdot "
        rf"{d.deriv_short(g, 'u_i')} \cdot w",
        rf"P_{{i,k}} &= \frac{{dh_i}}{{dh_k}} = \prod_{{j=k+1}}^{{i}} {d.deriv_short(f, 'z_j')} \cdot w_h "
        r"= P_{i,k+1} \cdot " + d.deriv_short(f, "z_{k+1}") + r" \cdot w_h, \qquad P_{i,i} = 1",
    )
    doc.p("Then, for every $i = 1, \\ldots, " + str(T) + "$:")


def _write_formulas(doc: Document, d: Derivation, full: bool) -> None:
    """Sections 2-6: dE_i/dθ and dLoss/dθ for each parameter, in the seed's order."""
    T, c_tex = d.T, _loss_factor(d)
    for theta in ORDER:
        tt = TEX[theta]
        doc.h2(f"{ORDER.index(theta) + 2}. For ${tt}$")
        if full:
            lines = []
            for i in range(1, T + 1):
                lines += _term_lines(d.term(theta, i), "full")
            lines.append(rf"{_dL(tt)} &= {c_tex} \sum_{{i=1}}^{{{T}}} {_dE('i', tt)}" if T > 1 else
                         rf"{_dL(tt)} &= {c_tex} {_dE(1, tt)}")
            doc.eq(*lines)
        else:
            if theta in RECURRENT:
                dzk = {"w_x": "x_k", "w_h": "h_{k-1}", "b1": "1"}[theta]
                body = rf"\delta_i \sum_{{k=1}}^{{i}} P_{{i,k}} \cdot {d.deriv_short(d.f, 'z_k')} \cdot {dzk}"
            else:
                err = d.err_tex("y'_i", "y_i")
                body = rf"{err} \cdot {d.deriv_short(d.g, 'u_i')} \cdot " + ("h_i" if theta == "w" else "1")
            doc.eq(rf"{_dE('i', tt)} &= {body}", rf"{_dL(tt)} &= {c_tex} \sum_{{i=1}}^{{{T}}} {_dE('i', tt)}")


def _write_building_blocks(doc: Document, d: Derivation, n: Numbers, full: bool, sec: int) -> None:
    """The setup in words, then h_t, y'_t and the activations' derivatives (written out, or as a table)."""
    doc.h2(f"{sec}. Building blocks")
    doc.p(_setup_sentence(d, n, full))
    if full:
        doc.eq(*_building_block_lines(d, n))
    else:
        doc.table(*_building_block_table(d, n))


def _setup_sentence(d: Derivation, n: Numbers, full: bool) -> str:
    T, params = d.T, n.params
    setup = ", ".join(f"${TEX[k]} = {fnum(params[k])}$" for k in ORDER if k in params)
    xs = "x = (" + ", ".join(fnum(v) for v in n.x) + ")"
    ynames = ", ".join(f"y_{{{t}}}" for t in range(1, T + 1)) if T <= 3 else r"y_1, \ldots, y_{" + str(T) + "}"
    if not full:  # a long list in one inline formula cannot be broken across lines: the table has them
        xs = r"x_1, \ldots, x_{" + str(T) + "}"
    return (f"Parameters {setup}; $h_0 = {fnum(n.h0)}$; inputs ${xs}$" + (" (in the table)" if not full else "") + "; "
            + ("targets $y_1, \\ldots, y_{" + str(T) + "}$ (in the table)." if n.y is not None and not full else
               f"targets $y = ({', '.join(fnum(v) for v in n.y)})$." if n.y is not None
               else f"targets ${ynames}$"
                    " not given: they stay symbols, and every gradient is affine in them (the seed never states its "
                    "targets either)."))


def _building_block_lines(d: Derivation, n: Numbers) -> list[str]:
    """h_t, 1 - h_t, f'(z_t), y'_t, g'(u_t) with every step of the arithmetic, as aligned LaTeX lines."""
    T, params = d.T, n.params
    f, g = d.f, d.g
    lines = []
    for t in range(1, T + 1):
        zt = " + ".join([f"{fpar(params['w_x'])} \\cdot {fpar(n.x[t - 1])}",
                         f"{fpar(params['w_h'])} \\cdot {fpar(n.h1[t - 2] if t > 1 else n.h0)}",
                         fpar(params["b1"])])
        lines.append(rf"h_{{{t}}} &= {d.apply(f, d.z_full(t))} = {d.apply(f, zt)} = "
                     rf"{d.apply(f, fnum(n.z[t - 1]))} = {fnum(n.h1[t - 1])}")
        if f.name == "sigmoid":
            lines.append(rf"1 - h_{{{t}}} &= {fnum(1 - n.h1[t - 1])}")
        lines.append(rf"{d.deriv_short(f, f'z_{{{t}}}')} &= {d.deriv_tex(f, fnum(n.h1[t - 1]))} = "
                     rf"{fnum(n.fprime[t - 1])}")
    for t in range(1, T + 1):
        ut = f"{fpar(params['w'])} \\cdot {fpar(n.h1[t - 1])} + {fpar(params['b2'])}"
        lines.append(rf"y'_{{{t}}} &= {d.apply(g, d.u_full(t))} = {d.apply(g, ut)} = "
                     + (rf"{d.apply(g, fnum(n.u[t - 1]))} = " if d.op(g) else "") + fnum(n.y_pred[t - 1]))
        if "{a}" in g.deriv_text:
            lines.append(rf"{d.deriv_short(g, f'u_{{{t}}}')} &= {d.deriv_tex(g, fnum(n.y_pred[t - 1]))} = "
                         rf"{fnum(n.gprime[t - 1])}")
    return lines


def _building_block_table(d: Derivation, n: Numbers) -> tuple[list[str], list[list[str]]]:
    """(header, rows): one row per step t = 0..T."""
    header = ["$t$", "$x_t$", "$z_t$", "$h_t$", f"${d.deriv_short(d.f, 'z_t')}$", "$u_t$", "$y'_t$",
              f"${d.deriv_short(d.g, 'u_t')}$"] + (["$y_t$"] if n.y is not None else [])
    rows = [["0", "", "", f"${fnum(n.h0)}$", "", "", "", ""] + ([""] if n.y is not None else [])]
    for t in range(d.T):
        row = [str(t + 1)] + [f"${fnum(v)}$" for v in (n.x[t], n.z[t], n.h1[t], n.fprime[t], n.u[t],
                                                        n.y_pred[t], n.gprime[t])]
        if n.y is not None:
            row.append(f"${fnum(n.y[t])}$")
        rows.append(row)
    return header, rows


def _write_numbers_in(doc: Document, d: Derivation, n: Numbers, full: bool, sec: int) -> None:
    """Each error term dE_i/dθ with the numbers in (written out), or as a table of r_{θ,i} or dE_i/dθ."""
    doc.h2(f"{sec}. The formulas with the numbers in")
    if full:
        vals = d.values(n.params, list(n.x), n.h0)
        for theta in ORDER:
            lines = []
            for i in range(1, d.T + 1):
                lines += _term_number_lines(d.term(theta, i), n, vals)
            doc.eq(*lines)
        return
    if n.y is None:
        doc.p("Each error term is $(y'_i - y_i)$ times a number $r_{\\theta,i}$; the table gives "
              "$r_{\\theta,i} = \\frac{dE_i}{d\\theta} / (y'_i - y_i)$, summed over the paths $k$ "
              "(`bptt.RNN.decompose´ gives each path).")
    else:
        doc.p("Each row is one error term, $\\frac{dE_i}{d\\theta}$, summed over its paths $k$.")
    heads = [f"$r_{{{TEX[k]},i}}$" for k in ORDER] if n.y is None else [f"${_dE('i', TEX[k])}$" for k in ORDER]
    doc.table(["$i$", "$(y'_i - y_i)$"] + heads, _term_rows(n))


def _write_results(doc: Document, d: Derivation, n: Numbers, expand: int, check: Check | None, sec: int) -> None:
    """The five totals dLoss/dθ (numbers, or affine in the targets), then the check against the engine."""
    doc.h2(f"{sec}. Results")
    short = d.T <= max(expand, 6)  # each total written as its sum of terms
    lines = [_result_line(d, n, theta, short) + ("," if theta != ORDER[-1] else ".") for theta in ORDER]
    doc.eq(*lines)
    if n.y is None and not short:
        doc.p("where $r_{\\theta,i}$ is the number in row $i$ of the table above.")
    if check is not None:
        for sentence in _check_sentences(d, n, check):
            doc.p(sentence)


_ENGINE = ("the numeric BPTT engine (`bptt.RNN.loss_and_grad´ and `bptt.RNN.decompose´, every total, term "
           "and path)")
_SYMPY = "sympy's derivative of the fully unrolled $E_i$ (every $\\frac{dE_i}{d\\theta}$)"


def _check_sentences(d: Derivation, n: Numbers, check: Check) -> list[str]:
    """The self-check: agreement only where the difference is rounding; a kink is named, never hidden."""
    agree, differ, out_of_reach = [], [], []
    for what, diff in ((_ENGINE, check.engine_max_abs), (_SYMPY, None if check.kinks else check.sympy_max_abs)):
        if diff is None:
            continue
        if math.isnan(diff) and what is _SYMPY:  # not a disagreement: the unrolled loss has no number here
            out_of_reach.append(f"{what} is undefined at these numbers (at 30 digits the prediction rounds to where "
                                "the loss's logarithm is infinite), so it is not compared")
            continue
        if check.agrees(diff):
            agree.append(f"{what} to {diff:.1e}")
        else:
            differ.append(f"{what} by up to {diff:.1e} (relative {diff / max(check.scale, 1e-300):.1e})")
    out = []
    if agree:
        out.append("Check: these numbers equal " + ", and ".join(agree) + ".")
    if differ:
        out.append("Check FAILED: these numbers differ from " + ", and from ".join(differ)
                   + f", more than rounding (relative {AGREE_RTOL:.0e}) explains.")
    out += [f"{reason[0].upper()}{reason[1:]}." for reason in out_of_reach]
    if check.kinks:
        out.append(_kink_sentence(d, n, check))
    return out


def _kink_sentence(d: Derivation, n: Numbers, check: Check) -> str:
    """z_t on the kink of relu: the derivative used there is a convention, so say what finite differences give."""
    t0 = check.kinks[0]
    zs = " = ".join(f"z_{{{t}}}" for t in check.kinks)
    where = "a kink" if len(check.kinks) == 1 else "kinks"
    s = (f"${zs} = {fnum(KINKS[d.f.name])}$ at {where} of {d.f.name}: the derivative there is a convention "
         f"({fnum(n.fprime[t0 - 1])} here); ")
    fd = check.fd_max_abs
    if fd is not None and fd <= 1e-6 * max(check.scale, 1.0):
        s += f"finite differences happen to agree here (to {fd:.1e}), but no derivative exists there"
    else:
        s += f"finite differences disagree (central differences of the Loss differ from these totals by {fd:.1e}"
        if check.sympy_max_abs is not None:
            s += f"; {_SYMPY}, which takes another convention, by {check.sympy_max_abs:.1e}"
        s += ")"
    return s + "."


def _result_line(d: Derivation, n: Numbers, theta: str, short: bool) -> str:
    T, tt, c_tex = d.T, TEX[theta], _loss_factor(d)
    if n.y is None:
        a = n.grad_affine(theta)
        if short:
            return rf"{_dL(tt)} &= {faffine(a)}"
        return rf"{_dL(tt)} &= {fnum(a[0])} - {c_tex} \sum_{{i=1}}^{{{T}}} r_{{{tt},i}}\, y_i"
    total = fnum(n.grads()[theta], 10)
    if not short:
        return rf"{_dL(tt)} &= {c_tex} \sum_{{i=1}}^{{{T}}} {_dE('i', tt)} = {total}"
    s = " + ".join(fpar(v) for v in n.terms()[theta])
    pre = rf"\frac{{1}}{{{T}}} \left({s}\right)" if d.reduction == "mean" else s
    return rf"{_dL(tt)} &= {pre} = {total}"


def _write_differences(doc: Document, d: Derivation) -> None:
    """The seed's errata that a derivation reader meets, from the one list (``seed.ERRATA``)."""
    from .seed import ERRATA

    doc.h2("Differences from the seed's hand derivation")
    seeds = "" if d.squared_error_form else rf"With the seed's loss $E_i = {_formula_tex(losses.get(losses.DEFAULT).formula, 'i')}$: "
    doc.bullets([(seeds if e.squared_error else "") + e.document for e in ERRATA if e.document])


def _prod(factors: Sequence[Factor], form: str) -> str:
    return r" \cdot ".join(getattr(f, form) for f in factors)


def _term_lines(term: Term, form: str) -> list[str]:
    """dE_i/dθ as aligned LaTeX lines, broken like the seed's: the common prefix
    (dE_i/dy'_i)(dy'_i/dh_i) on the first line, then each path k, one activation
    derivative (with what it multiplies) per line, so no line is wider than a page."""
    tt = TEX[term.theta]
    lhs = _dE(term.i, tt)
    pre = mark("prefix", prefix_tag(term.theta, term.i), _prod(term.prefix, form))
    if len(term.paths) == 1 and all(f.kind != "f'" for f in term.paths[0].factors):  # w, b_2: one short line
        p = term.paths[0]
        return [rf"{lhs} &= {pre} \cdot {mark('path', path_tag(term.theta, term.i, p.k), _prod(p.factors, form))}"]
    lines = [rf"{lhs} &= {pre}"]
    many = len(term.paths) > 1
    for j, p in enumerate(term.paths):
        chunks: list[list[Factor]] = []  # [f'(z_j), w_h] ... [f'(z_k), ∂z_k/∂θ]
        for fac in p.factors:
            if fac.kind == "f'" or not chunks:
                chunks.append([fac])
            else:
                chunks[-1].append(fac)
        for c, chunk in enumerate(chunks):
            body = mark("path", path_tag(term.theta, term.i, p.k), _prod(chunk, form))
            if c == 0:
                lead = (r"\cdot \Big[\, " if j == 0 else "+ ") if many else r"\cdot "
                lines.append(rf"&\quad {lead}{body}")
            else:
                lines.append(rf"&\qquad\quad \cdot {body}")
    if many:
        lines[-1] += r" \,\Big]"
    return lines


def _factor_value(fac: Factor, n: Numbers, vals: dict) -> str:
    """One factor's value as LaTeX: (y'_i - y_i) with y_i a symbol or a number, else a number."""
    if fac.kind == "err":
        yv = f"y_{{{fac.t}}}" if n.y is None else fpar(n.y[fac.t - 1])
        if n.kappa is None:
            return f"({fnum(n.y_pred[fac.t - 1])} - {yv})"
        # (y' - y) kappa written as a fraction: for bce its denominator y'(1 - y') is the g' beside it
        return rf"\frac{{{fnum(n.y_pred[fac.t - 1])} - {yv}}}{{{fnum(1 / n.kappa[fac.t - 1])}}}"
    if fac.kind == "g'":
        return fpar(n.gprime[fac.t - 1])
    if fac.kind == "f'":
        return fpar(n.fprime[fac.t - 1])
    return fpar(_num(fac.expr, vals))  # w, w_h, x_k, h_k or 1


def _term_number_lines(term: Term, n: Numbers, vals: dict) -> list[str]:
    """The lines of ``_term_lines`` with every factor's value, then the product."""
    tt = TEX[term.theta]
    lhs = _dE(term.i, tt)
    pre = mark("prefix", prefix_tag(term.theta, term.i), r" \cdot ".join(_factor_value(f, n, vals) for f in term.prefix))
    path_txt = [mark("path", path_tag(term.theta, term.i, p.k), r" \cdot ".join(_factor_value(f, n, vals) for f in p.factors))
                for p in term.paths]
    if len(path_txt) == 1:
        lines = [rf"{lhs} &= {pre} \cdot {path_txt[0]}"]
    else:
        lines = [rf"{lhs} &= {pre} \cdot \Big[\, {path_txt[0]}"] + [rf"&\qquad + {s}" for s in path_txt[1:]]
        lines[-1] += r" \,\Big]"
    i0 = term.i - 1
    r = float(n.R[term.theta][i0].sum())
    err = f"(y'_{{{term.i}}} - y_{{{term.i}}})"
    if n.y is None:
        lines.append(rf"&= {fpar(r)} \cdot {err} = {faffine(n.term_affine(term.theta)[i0])}")
    else:
        e = n.y_pred[i0] - n.y[i0]
        lines.append(rf"&= {fpar(r)} \cdot {fpar(e)} = {fnum(r * e)}")
    return lines


def _term_rows(n: Numbers) -> list[list[str]]:
    rows = []
    terms = None if n.y is None else n.terms()
    for i in range(n.T):
        err = f"$({fnum(n.y_pred[i])} - y_{{{i + 1}}})$" if n.y is None else f"${fnum(n.y_pred[i] - n.y[i])}$"
        if terms is None:
            cells = [f"${fnum(n.R[k][i].sum())}$" for k in ORDER]
        else:
            cells = [f"${fnum(terms[k][i])}$" for k in ORDER]
        rows.append([str(i + 1), err] + cells)
    return rows


# ------------------------------------------------------------------ the picture (drawn by the HTML page)
def path_tag(theta: str, i: int, k: int) -> str:
    """The id of path k of dE_i/dθ in the page: 'E2-wh-k1' (data-path on its terms)."""
    return f"{prefix_tag(theta, i)}-k{k}"


def prefix_tag(theta: str, i: int) -> str:
    """The id of the factor (dE_i/dy'_i)(dy'_i/dh_i) that multiplies every path of dE_i/dθ: 'E2-wh'."""
    return f"E{i}-{theta.replace('_', '')}"


def path_edges(term: Term, path: Path) -> tuple[str, ...]:
    """The edges of the unrolled network that path k of dE_i/dθ runs along, read off its factors:
    w (in dy'_i/dh_i, or ∂u_i/∂w = h_i) is h_i -> y'_i; each w_h after f'(z_j) is h_{j-1} -> h_j;
    ∂z_k/∂θ is θ's own edge into h_k (x_k, h_{k-1} or the bias b_1); ∂u_i/∂b_2 = 1 is b_2's edge into y'_i."""
    out: list[str] = []
    last = 0  # the step of the latest f'(z_j)
    for f in term.prefix + path.factors:
        if f.kind == "f'":
            last = f.t
        elif f.kind == "param" and f.short == TEX["w"]:
            out.append(f"h{term.i}-y{term.i}")
        elif f.kind == "param" and f.short == TEX["w_h"]:
            out.append(f"h{last - 1}-h{last}")
        elif f.kind == "dz":
            out.append({"w_x": f"x{f.t}-h{f.t}", "w_h": f"h{f.t - 1}-h{f.t}", "b1": f"b1-h{f.t}"}[term.theta])
        elif f.kind == "h":
            out.append(f"h{f.t}-y{f.t}" if term.theta == "w" else f"b2-y{f.t}")
    return tuple(dict.fromkeys(out))


def _figure(d: Derivation, n: Numbers, expand: int) -> Figure:
    """The unrolled network with its forward values; every path of every error term when the document
    writes the paths out (T <= expand), none beyond (the document names δ_i and P_{i,k} instead)."""
    T = d.T
    nodes = [Node("h0", "h_0", fnum(n.h0), 0, 1)]
    edges = []
    for t in range(1, T + 1):
        nodes += [Node(f"x{t}", f"x_{t}", fnum(n.x[t - 1]), t, 0), Node(f"h{t}", f"h_{t}", fnum(n.h1[t - 1]), t, 1),
                  Node(f"y{t}", f"y'_{t}", fnum(n.y_pred[t - 1]), t, 2)]
        edges += [Edge(f"x{t}-h{t}", f"x{t}", f"h{t}", "w_x"), Edge(f"h{t - 1}-h{t}", f"h{t - 1}", f"h{t}", "w_h"),
                  Edge(f"b1-h{t}", "b1", f"h{t}", "b_1"), Edge(f"h{t}-y{t}", f"h{t}", f"y{t}", "w"),
                  Edge(f"b2-y{t}", "b2", f"y{t}", "b_2")]
    paths = []
    if T <= expand:
        for theta in ORDER:
            for i in range(1, T + 1):
                term = d.term(theta, i)
                paths += [PathInfo(path_tag(theta, i, p.k), TEX[theta], i, p.k, path_edges(term, p),
                                   _path_value(n, theta, i, p.k), prefix_tag(theta, i)) for p in term.paths]
        caption = ("Hover or click a term of a sum in the formulas, or a path below: its edges light up, with "
                   "the factors it multiplies. Path k of dEᵢ/dθ is (dEᵢ/dy'ᵢ)(dy'ᵢ/dhᵢ)(dhᵢ/dhₖ)(∂hₖ/∂θ).")
    else:
        caption = (f"With T = {T} > {expand} (--expand) the document names the repeated factors δᵢ and Pᵢ,ₖ "
                   "instead of writing each path out, and the picture shows the states only; with a shorter "
                   f"sequence or a larger --expand (at most {EXPAND_MAX}) every path is drawn.")
    return Figure(f"The unrolled network, T = {T}", tuple(nodes), tuple(edges), tuple(paths), caption)


def _path_value(n: Numbers, theta: str, i: int, k: int) -> str:
    """Path k's contribution to dE_i/dθ, (y'_i - y_i) R[θ][i, k], as plain text (affine in y_i when y is symbolic)."""
    r = float(n.R[theta][i - 1, k - 1])
    if n.y is not None:
        return tex_to_text(fnum(r * (n.y_pred[i - 1] - n.y[i - 1])))
    a = np.zeros(n.T + 1)
    a[0], a[i] = r * n.y_pred[i - 1], -r
    return tex_to_text(faffine(a))
