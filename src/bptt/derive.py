r"""The seed's derivation, generated: BPTT for the scalar network, symbolically, for any T.

For the one-unit network (D = H = O = 1)

    z_t = w_x x_t + w_h h_{t-1} + b_1,   h_t = f(z_t),   u_t = w h_t + b_2,   y'_t = g(u_t)
    E_i = 1/2 (y_i - y'_i)^2,            Loss = c sum_i E_i   (c = 1/T "mean", 1 "sum")

every error term's gradient is written in the seed's chain-rule form

    dE_i/dθ = sum_{k=1}^{i} (dE_i/dy'_i) (dy'_i/dh_i) (dh_i/dh_k) (∂h_k/∂θ)      θ in {w_x, w_h, b_1}
            = (y'_i - y_i) g'(u_i) w  sum_k [prod_{j=k+1}^{i} f'(z_j) w_h] f'(z_k) ∂z_k/∂θ
    dE_i/dw  = (y'_i - y_i) g'(u_i) h_i,      dE_i/db_2 = (y'_i - y_i) g'(u_i) * 1

with ∂z_k/∂w_x = x_k, ∂z_k/∂w_h = h_{k-1}, ∂z_k/∂b_1 = 1, and dLoss/dθ = c sum_i dE_i/dθ.
The sign is the true one, dE_i/dy'_i = (y'_i - y_i); the seed writes (y_i - y'_i).

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

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Sequence

import numpy as np

from . import activations
from .validation import BPTTError
from .activations import Activation
from .engine import PARAM_NAMES
from .document import Document, Edge, Figure, Node, PathInfo, mark, tex_to_text  # noqa: F401 (tex_to_text: public here too)

ORDER = ("w", "w_x", "w_h", "b2", "b1")  # the seed's section order
RECURRENT = ("w_x", "w_h", "b1")  # reach E_i through the hidden states: a sum over paths k
TEX = {"w": "w", "w_x": "w_x", "w_h": "w_h", "b1": "b_1", "b2": "b_2"}
FORMATS = ("md", "tex", "text")
MAX_T = 1000  # the document is O(T) lines, but the per-path numbers are O(T^2)
EXPAND_DEFAULT = 3  # up to this T every factor is written out, as the seed does


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


# ------------------------------------------------------------------ the derivation
class Derivation:
    """The chain-rule terms of the scalar network over T steps, symbolically.

    d = Derivation(2)                        # the seed: sigmoid, sigmoid, mean
    d.term("w_x", 2).expr()                  # sympy: dE_2/dw_x in the seed's form
    d.total_expr("w_x")                      # dLoss/dw_x
    n = d.evaluate(params, x, h0, y=None)    # numbers (affine in y when y is None)
    print(d.render(n, "md"))
    """

    def __init__(self, T: int, hidden_activation: str = "sigmoid", output_activation: str = "sigmoid",
                 reduction: str = "mean"):
        if isinstance(T, bool) or not isinstance(T, (int, np.integer)) or not 1 <= T <= MAX_T:
            raise BPTTError(f"T must be an integer from 1 to {MAX_T} for a derivation, got {T!r}; "
                            "the document is for teaching-size sequences")
        if reduction not in ("mean", "sum"):
            raise BPTTError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        self.T = int(T)
        self.f: Activation = activations.get(hidden_activation, activations.HIDDEN_ACTIVATIONS, "hidden_activation")
        self.g: Activation = activations.get(output_activation, activations.OUTPUT_ACTIVATIONS, "output_activation")
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
        self.y_pred = [None] + [self.g.sym_value(self.u[t]) for t in range(1, T + 1)]
        self.weight = sp.Rational(1, T) if reduction == "mean" else sp.Integer(1)

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
        if kind == "err":  # dE_t/dy'_t = (y'_t - y_t): the true sign
            return Factor(self.y_pred[t] - self.y[t], f"(y'_{{{t}}} - y_{{{t}}})", f"(y'_{{{t}}} - y_{{{t}}})", kind, t)
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
        E = [None] + [
            sp.Rational(1, 2) * (self.y[t] - self.g.sym_value(p("w", t) * h[t] + p("b2", t))) ** 2
            for t in range(1, self.T + 1)
        ]
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
        for t in range(1, self.T + 1):
            vals[self.h[t]] = self.f.sym_value(self.z[t]).xreplace(vals)
        return vals

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
        z = np.array([_num(self.z[t], vals) for t in range(1, T + 1)])  # (T,)
        h1 = np.array([float(vals[self.h[t]]) for t in range(1, T + 1)])  # (T,)
        u = np.array([_num(self.u[t], vals) for t in range(1, T + 1)])  # (T,)
        yp = np.array([_num(self.y_pred[t], vals) for t in range(1, T + 1)])  # (T,)
        fp = np.array([num(F("f'", t)) for t in range(1, T + 1)])  # (T,)
        gp = np.array([num(F("g'", t)) for t in range(1, T + 1)])  # (T,)
        w, w_h = num(F("param", 0, "w")), num(F("param", 0, "w_h"))
        R = {k: np.zeros((T, T)) for k in PARAM_NAMES}
        for i in range(T):  # 0-based
            R["w"][i, i] = gp[i] * num(F("h", i + 1, "w"))
            R["b2"][i, i] = gp[i] * num(F("h", i + 1, "b2"))
        for theta in RECURRENT:
            dz = np.array([num(F("dz", t, theta)) for t in range(1, T + 1)])  # (T,)
            for i in range(T):
                pre = gp[i] * w  # (dy'_i/dh_i) without the (y'_i - y_i)
                chain = 1.0  # dh_i/dh_k = prod_{j=k+1}^{i} f'(z_j) w_h
                for k in range(i, -1, -1):
                    R[theta][i, k] = pre * chain * fp[k] * dz[k]
                    chain *= fp[k] * w_h
        yv = None if y is None else np.asarray([float(v) for v in y], dtype=np.float64)
        if yv is not None and yv.shape != (T,):
            raise BPTTError(f"y has {yv.size} steps but this derivation has T = {T}; give one target per step")
        return Numbers(x=np.array(x), h0=float(h0), z=z, h1=h1, u=u, y_pred=yp, fprime=fp, gprime=gp, R=R,
                       weight=float(self.weight), params={k: float(params[k]) for k in PARAM_NAMES}, y=yv)

    # ---------------------------------------------------------------- the document
    def render(self, n: Numbers, fmt: str = "md", expand: int = EXPAND_DEFAULT, check: "Check | None" = None) -> str:
        """The document.  fmt: 'md' (Markdown with LaTeX math), 'tex' (complete LaTeX) or 'text'."""
        if fmt not in FORMATS:
            raise BPTTError(f"format {fmt!r} is not supported; choose one of {', '.join(FORMATS)}")
        doc = Document()
        _write(doc, self, n, expand=expand, check=check)
        return doc.render(fmt)


@dataclass
class Check:
    """How the document's numbers compare with independent computations."""

    engine_max_abs: float  # max |derivation - RNN.loss_and_grad/decompose| over all totals, terms, paths
    sympy_max_abs: float | None  # max |derivation - sympy.diff of the unrolled loss|; None when skipped


def check_against(d: Derivation, n: Numbers, sympy_up_to: int = 4) -> Check:
    """Compare the derivation's numbers with the numeric engine and (small T) with sympy.diff.

    With symbolic targets the comparison is of the affine forms: at y = 0 and at each unit vector.
    """
    from .audit import affine_in_targets
    from .model import RNN

    T = d.T
    params = n.params
    m = RNN.scalar(**params, hidden_activation=d.f.name, output_activation=d.g.name)
    x = np.asarray(n.x)

    def engine(yv):
        _, g = m.loss_and_grad(x, yv, h0=n.h0, reduction=d.reduction, backend="numpy")  # the reference engine
        dec = m.decompose(x, yv, h0=n.h0, reduction=d.reduction)
        out = [g[k].ravel()[0] for k in PARAM_NAMES]
        for k in PARAM_NAMES:
            out += list(dec.paths[k].reshape(T, T).ravel())
        return np.array(out)

    def ours(yv):
        g = n.grads(yv)
        p = n.paths(yv)
        out = [g[k] for k in PARAM_NAMES]
        for k in PARAM_NAMES:
            out += list(p[k].ravel())
        return np.array(out)

    if n.y is not None:
        eng_diff = float(np.max(np.abs(engine(n.y) - ours(n.y))))
    elif T <= 60:
        ce, Je = affine_in_targets(engine, T)
        co, Jo = affine_in_targets(ours, T)
        eng_diff = float(max(np.max(np.abs(ce - co)), np.max(np.abs(Je - Jo))))
    else:  # T + 1 engine runs of O(T^2) decompositions: compare at two target vectors instead
        rng = np.random.default_rng(0)
        eng_diff = max(float(np.max(np.abs(engine(yv) - ours(yv)))) for yv in (np.zeros(T), rng.uniform(0, 1, T)))
    sym_diff = None
    if T <= sympy_up_to:
        sp = _sympy()
        E, _ = d.unrolled_errors()
        vals = d.values(params, list(n.x), n.h0)
        yv = n.y if n.y is not None else np.linspace(0.25, 0.75, T)
        for t in range(1, T + 1):
            vals[d.y[t]] = sp.Float(float(yv[t - 1]), 30)
        terms = n.terms(yv)
        diffs = []
        for k in PARAM_NAMES:
            for i in range(1, T + 1):
                exact = _num(sp.diff(E[i], d.theta[k]), vals)
                diffs.append(abs(exact - terms[k][i - 1]))
        sym_diff = float(max(diffs))
    return Check(engine_max_abs=eng_diff, sympy_max_abs=sym_diff)


def derive(params: dict[str, float], x: Sequence[float], h0: float = 0.0, y: Sequence[float] | None = None,
           hidden_activation: str = "sigmoid", output_activation: str = "sigmoid", reduction: str = "mean"
           ) -> tuple[Derivation, Numbers]:
    """Build the derivation for this model and sequence, and evaluate it."""
    d = Derivation(len(x), hidden_activation, output_activation, reduction)
    return d, d.evaluate(params, x, h0, y)


def explain(params: dict[str, float], x: Sequence[float], h0: float = 0.0, y: Sequence[float] | None = None,
            hidden_activation: str = "sigmoid", output_activation: str = "sigmoid", reduction: str = "mean",
            fmt: str = "md", expand: int = EXPAND_DEFAULT) -> str:
    """The whole document for one model and sequence, checked against the engine."""
    if fmt not in FORMATS:
        raise BPTTError(f"--format {fmt!r} is not supported; choose one of {', '.join(FORMATS)}")
    d, n = derive(params, x, h0, y, hidden_activation, output_activation, reduction)
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
    _write_notation(doc, d, full)
    _write_formulas(doc, d, full)
    sec = len(ORDER) + 2
    _write_building_blocks(doc, d, n, full, sec)
    _write_numbers_in(doc, d, n, full, sec + 1)
    _write_results(doc, d, n, expand, check, sec + 2)
    _write_differences(doc)


def _loss_factor(d: Derivation) -> str:
    """What multiplies the sum of the error terms in the Loss: 1/T for the mean, nothing for the sum."""
    return rf"\frac{{1}}{{{d.T}}}" if d.reduction == "mean" else ""


def _write_title(doc: Document, d: Derivation) -> None:
    doc.h1(f"BPTT derivation: T = {d.T}, hidden {d.f.name}, output {d.g.name}, reduction {d.reduction}")
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
        rf"E_i &= \frac{{1}}{{2}} (y_i - y'_i)^2, \qquad \mathrm{{Loss}} = {c_tex} \sum_{{i=1}}^{{{T}}} E_i",
    )
    doc.p("$E_i$ is half the squared error of step $i$ (not an MSE); $y'_t$ is the prediction and $y_t$ the target. "
          + ("The Loss is the mean over the steps, so $\\mathrm{Loss} = \\frac{1}{" + str(T) + "} \\sum_i E_i$."
             if d.reduction == "mean" else "The Loss is the sum over the steps."))
    doc.p("Sign: $\\frac{dE_i}{dy'_i} = (y'_i - y_i)$. The seed writes $(y_i - y'_i)$, which is the negative of "
          "the true derivative; every gradient here has the true sign.")
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
        rf"\frac{{dE_i}}{{dw}} &= (y'_i - y_i) \cdot {d.deriv_short(g, 'u_i')} \cdot h_i, \qquad "
        rf"\frac{{dE_i}}{{db_2}} = (y'_i - y_i) \cdot {d.deriv_short(g, 'u_i')} \cdot 1",
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
    doc.p(f"With T = {T} the written-out form would repeat every factor $O(T^2)$ times, so the repeated "
          "factors are named once. Write")
    doc.eq(
        rf"\delta_i &= \frac{{dE_i}}{{dy'_i}} \cdot \frac{{dy'_i}}{{dh_i}} = (y'_i - y_i) \cdot "
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
                body = rf"(y'_i - y_i) \cdot {d.deriv_short(d.g, 'u_i')} \cdot " + ("h_i" if theta == "w" else "1")
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
        s = (f"Check: these numbers equal the numeric BPTT engine (`bptt.RNN.loss_and_grad´ and "
             f"`bptt.RNN.decompose´, every total, term and path) to {check.engine_max_abs:.1e}")
        if check.sympy_max_abs is not None:
            s += (f", and sympy's derivative of the fully unrolled $E_i$ (every $\\frac{{dE_i}}{{d\\theta}}$) to "
                  f"{check.sympy_max_abs:.1e}")
        doc.p(s + ".")


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


def _write_differences(doc: Document) -> None:
    doc.h2("Differences from the seed's hand derivation")
    doc.bullets([
        "$\\operatorname{sgm}(x) = 1/(1 + e^{-x})$; the seed prints $1/(1 - e^{-x})$.",
        "$\\frac{dE_i}{dy'_i} = (y'_i - y_i)$; the seed writes $(y_i - y'_i)$, the opposite sign.",
        "The last factor of the general formula is the immediate partial $\\frac{\\partial h_k}{\\partial \\theta}$; "
        "$w$ and $b_2$ have no sum over $k$.",
        "Each total is $\\frac{d\\mathrm{Loss}}{d\\theta}$ of its own parameter (the seed labels the $w_x$ and "
        "$w_h$ totals with $dE_i/dw$, and its section on $b_1$ labels $\\frac{dE_2}{db_1}$ as $\\frac{dE_2}{dw_h}$); "
        "the totals for $b_2$ and $b_1$ are stated.",
        "$y'_i$ (prediction) and $y_i$ (target) are kept apart; the seed calls the predictions $y_1, y_2$.",
        "Numbers are rounded, not truncated (the seed's $y'_1 = 0.867$ is $0.86770$, which rounds to $0.868$).",
    ])


def _prod(factors: Sequence[Factor], form: str) -> str:
    return r" \cdot ".join(getattr(f, form) for f in factors)


def _term_lines(term: Term, form: str) -> list[str]:
    """dE_i/dθ as aligned LaTeX lines, broken like the seed's: the common prefix
    (dE_i/dy'_i)(dy'_i/dh_i) on the first line, then each path k, one activation
    derivative (with what it multiplies) per line, so no line is wider than a page."""
    tt = TEX[term.theta]
    lhs = _dE(term.i, tt)
    if len(term.paths) == 1 and all(f.kind != "f'" for f in term.paths[0].factors):  # w, b_2: one short line
        return [rf"{lhs} &= {_prod(term.prefix + term.paths[0].factors, form)}"]
    lines = [rf"{lhs} &= {_prod(term.prefix, form)}"]
    many = len(term.paths) > 1
    for j, p in enumerate(term.paths):
        chunks: list[list[Factor]] = []  # [f'(z_j), w_h] ... [f'(z_k), ∂z_k/∂θ]
        for fac in p.factors:
            if fac.kind == "f'" or not chunks:
                chunks.append([fac])
            else:
                chunks[-1].append(fac)
        for c, chunk in enumerate(chunks):
            body = _prod(chunk, form)
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
        return f"({fnum(n.y_pred[fac.t - 1])} - {yv})"
    if fac.kind == "g'":
        return fpar(n.gprime[fac.t - 1])
    if fac.kind == "f'":
        return fpar(n.fprime[fac.t - 1])
    return fpar(_num(fac.expr, vals))  # w, w_h, x_k, h_k or 1


def _term_number_lines(term: Term, n: Numbers, vals: dict) -> list[str]:
    """The lines of ``_term_lines`` with every factor's value, then the product."""
    tt = TEX[term.theta]
    lhs = _dE(term.i, tt)
    pre = r" \cdot ".join(_factor_value(f, n, vals) for f in term.prefix)
    path_txt = [r" \cdot ".join(_factor_value(f, n, vals) for f in p.factors) for p in term.paths]
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
