r"""Hessian-free (HF) optimisation of the seed's network: Martens (ICML 2010), Martens & Sutskever (ICML 2011).

Everything here is built on bptt's own engine: the forward pass, the forward-mode tangents
(``engine.state_tangent``, the R-operator) and the backward pass of the linearised network
(``engine.backward_residual``).  Vectors are flat: θ, δ, v (P,) in ``PARAM_NAMES`` order.

The objective on a batch (S: its scored (t, b) pairs, n = |S|; κ: ``l2``; E the loss, a record of
``losses.py``):

    L(θ) = (1/n) Σ_{(t,b)∈S} E(y'_tb(θ), y_tb) + κ/2 ||θ||²

Gauss-Newton curvature.  Write L = ℓ(u(θ)) with u_tb = w h_tb + b2 the output pre-activations and
ℓ(u) = (1/n) Σ_S E(g(u_tb), y_tb).  Then

    ∇²L = J_u^T ∇²ℓ J_u + Σ_S (∂ℓ/∂u_tb) ∇²u_tb + κI,      J_u = du/dθ   ((T B O) × P)

and the Gauss-Newton matrix drops the middle term: G = J_u^T (1/n) mask M J_u + κI, where M is the
loss record's ``curvature`` (positive semi-definite): for the seed's squared error
M = g'(u)^T g'(u), the Gauss-Newton matrix of the squared error of y' (g' enters twice, g'' is
dropped); for the matching pairs (sigmoid + binary cross-entropy, softmax + cross-entropy) M is
∇²_u E itself, E being convex in u (Schraudolph 2002; Martens & Sutskever 2011, section 7).
G v is one tangent pass (``engine.pre_output_tangent``: J_u v) and one backward pass
(``engine.backward_residual`` with r_u = (1/n) mask M J_u v); ``engine.backward`` is the same pass
with r_u = (1/n) mask dE/du.  Both passes run with their loops over t compiled
(``bptt.curvature_kernels``: the engine's bits exactly); ``reference=True`` (``Curvature``,
``loss_and_grad``, ``HessianFree``) runs the engine's own loops, the reference the tests pin them to.
The forward pass is the engine's in both.

Damping (Levenberg-Marquardt, plus structural damping on the hidden states):

    M(δ) = L(θ) + ∇L^T δ + 1/2 δ^T G δ + λ/2 ||δ||² + μλ · 1/2 δ^T J_h^T (1/B) J_h δ

with J_h = dh/dθ (h_1..h_T, every step of every sequence of the curvature batch, B sequences): the
Gauss-Newton form of the distance (1/B) Σ_{t,b} 1/2 ||h_tb(θ + δ) - h_tb(θ)||², which keeps the
hidden states of a step from moving far where the quadratic model is not to be trusted.  CG
minimises φ(δ) = M(δ) - L(θ) = ∇L^T δ + 1/2 δ^T A δ with A = G + λI + μλ J_h^T J_h / B.

One HF iteration (``HessianFree.iterate``):

    1. gradient ∇L on the gradient batch (``batch`` sequences of the epoch's shuffle, or all)
    2. CG on A δ = -∇L with A's products on the curvature batch (the first ``curvature_batch``
       sequences of the gradient batch), started from ``cg_decay`` · the previous CG solution,
       keeping the iterates i = ceil(1.3^j) and the last; stopped by Martens' relative-progress
       rule (i > k = max(10, 0.1 i) and (φ_i - φ_{i-k}) / φ_i < k · 5e-4) or at ``max_cg``
    3. CG backtracking: from the last kept iterate back, L on the gradient batch, the best one
       before L gets worse
    4. ρ = (L(θ + δ) - L(θ)) / φ(δ); λ ← 3/2 λ if ρ < 1/4, λ ← 2/3 λ if ρ > 3/4
    5. line search: the largest α = 0.8^k (k < 60) with L(θ + αδ) ≤ L(θ) + 10^-2 α ∇L^T δ; none: no step
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
import types
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from . import activations, engine, losses
from .activations import Activation
from .losses import Loss
from .engine import PARAM_NAMES, Params
from .products import dot
from .validation import BPTTError, check_int, check_number, check_state_values

BOOST, DROP = 1.5, 2.0 / 3.0  # λ ← BOOST λ when ρ < 1/4, DROP λ when ρ > 3/4
CG_TOL = 5e-4  # Martens' relative-progress tolerance
ARMIJO, SHRINK, MAX_SHRINK = 1e-2, 0.8, 60  # line search: sufficient decrease, step factor, tries


# ---------------------------------------------------------------- flat vectors
def flatten(arrays: dict[str, np.ndarray] | Params) -> np.ndarray:
    """The five arrays as one vector (P,), in PARAM_NAMES order."""
    d = arrays._asdict() if isinstance(arrays, Params) else arrays
    return np.concatenate([np.ravel(d[k]) for k in PARAM_NAMES])


def unflatten(v: np.ndarray, shapes: dict[str, tuple[int, ...]]) -> Params:
    """(P,) -> Params with the given shapes (views into v)."""
    out, o = {}, 0
    for k in PARAM_NAMES:
        size = math.prod(shapes[k])
        out[k] = v[o : o + size].reshape(shapes[k])
        o += size
    return Params(**out)


def shapes_of(p: dict[str, np.ndarray] | Params) -> dict[str, tuple[int, ...]]:
    d = p._asdict() if isinstance(p, Params) else p
    return {k: tuple(np.shape(d[k])) for k in PARAM_NAMES}


# ---------------------------------------------------------------- batches, loss, gradient
@dataclass(frozen=True)
class Batch:
    """x (T, B, D), y (T, B, O), mask (T, B) bool: the scored steps (every step when built from None)."""

    x: np.ndarray
    y: np.ndarray
    mask: np.ndarray

    @property
    def n(self) -> int:
        """Scored (t, b) pairs."""
        return int(self.mask.sum())

    @classmethod
    def of(cls, x: np.ndarray, y: np.ndarray, mask: np.ndarray | None) -> "Batch":
        """C-contiguous copies where needed: a gather x[:, idx] is not, and every product over all (t, b)
        would reshape (copy) it again (38 times an iteration at T = 100)."""
        m = np.ones(x.shape[:2], dtype=bool) if mask is None else np.asarray(mask, dtype=bool)  # (T, B)
        return cls(np.ascontiguousarray(x), np.ascontiguousarray(y), np.ascontiguousarray(m))


@dataclass(frozen=True)
class Net:
    """The activations (hidden f, output g) and the loss E."""

    f: Activation
    g: Activation
    criterion: Loss

    @classmethod
    def named(cls, hidden: str, output: str, loss: str) -> "Net":
        g = activations.get(output)
        return cls(activations.get(hidden), g, losses.pair(losses.get(loss), g))

    def forward(self, p: Params, b: Batch, reference: bool = False) -> engine.Forward:
        """The forward pass on a batch: compiled (curvature_kernels.forward), or the engine's when
        ``reference``; the same bits."""
        h0 = np.zeros((b.x.shape[1], p.w_h.shape[0]), dtype=b.x.dtype)  # (B, H)
        return _passes(reference).forward(p, b.x, h0, self.f, self.g)


def data_loss(net: Net, fwd: engine.Forward, b: Batch) -> float:
    """(1/n) Σ_S E(y'_tb, y_tb): the loss of the scored steps."""
    e = net.criterion.value(fwd.u, fwd.y_pred, b.y)  # (T, B)
    return float(np.sum(np.where(b.mask, e, 0.0)) / max(b.n, 1))


def loss(net: Net, p: Params, b: Batch, l2: float = 0.0) -> float:
    """L(θ) = (1/n) Σ_S E(y'_tb, y_tb) + l2/2 ||θ||²."""
    reg = 0.5 * l2 * float(sum(np.sum(a * a) for a in p)) if l2 else 0.0
    return data_loss(net, net.forward(p, b), b) + reg


def _passes(reference: bool):
    """The module with HF's tangent and backward passes: ``curvature_kernels`` (compiled loops, the engine's
    bits), or the engine itself (the reference)."""
    if reference:
        return engine
    from . import curvature_kernels  # numba: loaded on the first product, not at import bptt

    return curvature_kernels


def loss_and_grad(net: Net, p: Params, b: Batch, l2: float = 0.0, reference: bool = False
                  ) -> tuple[float, np.ndarray]:
    """(L(θ), ∇L (P,)): ∇L = J_u^T (1/n) mask dE/du + l2 θ, by ``backward_residual`` (the engine's own
    loop when ``reference``; the same bits)."""
    fwd = net.forward(p, b, reference)
    r_u = net.criterion.delta(fwd.u, fwd.y_pred, b.y, net.g, b.mask[..., None] / max(b.n, 1))  # (T, B, O): dL/du
    grad = flatten(_passes(reference).backward_residual(p, b.x, fwd, net.f, r_u))  # (P,)
    value = data_loss(net, fwd, b)
    if l2:
        theta = flatten(p)  # (P,)
        value += 0.5 * l2 * dot(theta, theta)
        grad = grad + l2 * theta
    return value, grad


# ---------------------------------------------------------------- curvature products
@dataclass(frozen=True)
class Curvature:
    """Gauss-Newton products at θ on one batch, with its forward pass stored once."""

    net: Net
    p: Params
    batch: Batch
    fwd: engine.Forward
    reference: bool = False  # the engine's own loops (the reference) instead of the compiled ones: the same bits

    @classmethod
    def at(cls, net: Net, p: Params, b: Batch, reference: bool = False) -> "Curvature":
        return cls(net, p, b, net.forward(p, b, reference), reference)

    @functools.cached_property
    def _fprime(self) -> np.ndarray:
        """f'(z_t) (T, B, H) of the stored forward pass, shared by every product of the compiled passes."""
        return _passes(False).derivatives(self.fwd, self.net.f)

    def _products(self, v: np.ndarray, structural: bool) -> tuple[np.ndarray, np.ndarray | None]:
        dp = unflatten(v, shapes_of(self.p))
        passes = _passes(self.reference)
        shared = {} if self.reference else {"fprime": self._fprime}  # the engine's loops compute their own
        x, fwd, f = self.batch.x, self.fwd, self.net.f
        dh, du = passes.pre_output_tangent(self.p, x, fwd, f, dp, **shared)  # (T, B, H), (T, B, O)
        m_du = self.net.criterion.curvature(fwd.y_pred, du, self.net.g)  # (T, B, O): M J_u v
        r_u = m_du * (self.batch.mask[..., None] / max(self.batch.n, 1))  # (T, B, O)
        gv = flatten(passes.backward_residual(self.p, x, fwd, f, r_u, **shared))
        if not structural:
            return gv, None
        sv = flatten(passes.backward_residual(self.p, x, fwd, f, np.zeros_like(du), dh / x.shape[1], **shared))
        return gv, sv

    def products(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(G v without κ, J_h^T (1/B) J_h v), both (P,): one tangent pass and a backward pass for each.

        G v = J_u^T (1/n) mask M J_u v;  the structural part S v = J_h^T (1/B) J_h v.
        """
        return self._products(v, True)

    def gn(self, v: np.ndarray) -> np.ndarray:
        """G v = J^T (1/n) mask J v (no damping, no l2): one tangent pass and one backward pass.  (P,)"""
        return self._products(v, False)[0]

    def damped(self, lam: float, mu: float, l2: float = 0.0) -> Callable[[np.ndarray], np.ndarray]:
        """v -> A v = G v + (l2 + λ) v + μλ J_h^T (1/B) J_h v (S v computed only when μ > 0)."""
        def apply(v: np.ndarray) -> np.ndarray:
            if mu:
                gv, sv = self.products(v)
                return gv + (l2 + lam) * v + mu * lam * sv
            return self.gn(v) + (l2 + lam) * v
        return apply


# ---------------------------------------------------------------- conjugate gradient
@dataclass
class CGResult:
    """Kept iterates (i, δ_i, φ(δ_i)) in order of i, the last included; iterations run."""

    kept: list[tuple[int, np.ndarray, float]]
    iterations: int

    @property
    def last(self) -> np.ndarray:
        return self.kept[-1][1]


def cg(apply_a: Callable[[np.ndarray], np.ndarray], grad: np.ndarray, x0: np.ndarray, max_iters: int,
       tol: float = CG_TOL) -> CGResult:
    """Minimise φ(x) = grad^T x + 1/2 x^T A x (A ≻ 0) by conjugate gradient from x0.

    r = -grad - A x (the negative gradient of φ),  φ(x) = -1/2 x^T (r - grad).
    Keeps the iterates i = ceil(1.3^j) and the last (for backtracking), and stops once
    i > k = max(10, ceil(0.1 i)), φ_i < 0 and (φ_i - φ_{i-k}) / φ_i < k tol (Martens 2010).
    """
    keep = {math.ceil(1.3**j) for j in range(1, 200) if math.ceil(1.3**j) <= max_iters}
    x = x0.copy()  # (P,)
    r = -grad - apply_a(x)  # (P,)
    d = r.copy()  # (P,): search direction
    rr = dot(r, r)
    phis = [-0.5 * dot(x, r - grad)]
    kept: list[tuple[int, np.ndarray, float]] = []
    i = 0
    while i < max_iters and rr > 0:
        ad = apply_a(d)  # (P,)
        dad = dot(d, ad)
        if dad <= 0:  # only rounding makes a PD matrix do this; stop where we are
            break
        alpha = rr / dad
        x += alpha * d
        r -= alpha * ad
        rr_new = dot(r, r)
        d = r + (rr_new / rr) * d
        rr = rr_new
        i += 1
        phi = -0.5 * dot(x, r - grad)
        phis.append(phi)
        if i in keep:
            kept.append((i, x.copy(), phi))
        k = max(10, math.ceil(0.1 * i))
        if i > k and phi < 0 and (phi - phis[i - k]) / phi < k * tol:
            break
    if not kept or kept[-1][0] != i:
        kept.append((i, x.copy(), phis[-1]))
    return CGResult(kept, i)


def backtrack(kept: list[tuple[int, np.ndarray, float]], objective: Callable[[np.ndarray], float]
              ) -> tuple[int, np.ndarray, float, float]:
    """CG backtracking: from the last kept iterate back, stop before the objective gets worse.

    Returns (i, δ_i, φ(δ_i), objective(δ_i)) of the chosen iterate.
    """
    j = len(kept) - 1
    best = objective(kept[j][1])
    while j > 0:
        prev = objective(kept[j - 1][1])
        if prev >= best:
            break
        j, best = j - 1, prev
    i, delta, phi = kept[j]
    return i, delta, phi, best


def line_search(objective: Callable[[float], float], f0: float, slope: float, f1: float) -> tuple[float, float]:
    """Largest α = 0.8^k (k < 60) with objective(α) ≤ f0 + 10^-2 α slope (slope = ∇L^T δ < 0).

    f1 = objective(1), already known.  Returns (α, objective(α)); (0, f0) when none qualifies.
    """
    alpha, value = 1.0, f1
    for _ in range(MAX_SHRINK):
        if math.isfinite(value) and value <= f0 + ARMIJO * alpha * slope:
            return alpha, value
        alpha *= SHRINK
        value = objective(alpha)
    return 0.0, f0


def reduction_ratio(actual: float, predicted: float) -> float:
    """ρ = (L(θ + δ) - L(θ)) / φ(δ); -inf when the model predicts no decrease."""
    return actual / predicted if predicted < 0 else -math.inf


def adjust_damping(lam: float, rho: float) -> float:
    """Levenberg-Marquardt: λ · 3/2 if ρ < 1/4, λ · 2/3 if ρ > 3/4, else λ."""
    if rho < 0.25:
        return lam * BOOST
    if rho > 0.75:
        return lam * DROP
    return lam


# ---------------------------------------------------------------- settings and the optimizer
def _setting(default: Any, help: str, all_is_none: bool = False) -> Any:
    """A field of HFSettings with its command-line help (``bptt train --hf-<name>``, generated from these) and
    its flat keyword hf_<name> (see optim.setting)."""
    return field(default=default, metadata={"help": help, "all_is_none": all_is_none})


def _named(cls):
    """Each field's flat keyword and flag from its name: damping -> hf_damping, --hf-damping."""
    for f in dataclasses.fields(cls):
        f.metadata = types.MappingProxyType({**f.metadata, "flat": "hf_" + f.name,
                                             "flag": "--hf-" + f.name.replace("_", "-")})
    return cls


@_named
@dataclass(frozen=True)
class HFSettings:
    """Hessian-free's own settings: ``TrainConfig.hf``; ``bptt train``'s ``--hf-<name>`` flags are generated
    from these fields (their ``help``; ``all_is_none``: the flag takes an integer or 'all', None here)."""

    damping: float = _setting(1.0, "initial Levenberg-Marquardt damping λ (default 1)")
    structural: float = _setting(0.0, "structural damping μ on the hidden states (default 0)")
    max_cg: int = _setting(100, "conjugate-gradient iterations per HF iteration, at most (default 100)")
    cg_decay: float = _setting(0.95, "CG starts from this times the previous solution (default 0.95)")
    batch: int | None = _setting(None, "sequences for the gradient (default: the whole training split)")
    curvature_batch: int | None = _setting(500, "sequences for the Gauss-Newton products, the first of the gradient "
                                           "batch (default 500; 'all': the whole gradient batch)", all_is_none=True)
    l2: float = _setting(0.0, "weight decay l2/2 ||θ||² added to the objective (default 0)")
    time_limit: float | None = _setting(None, "seconds of HF iterations, then stop (default: no limit)")

    def validate(self) -> None:
        """One-line BPTTError for a bad setting (named as its flag's words: hf_damping)."""
        check_number("hf_damping", self.damping, 0, low_open=True)
        check_number("hf_structural", self.structural, 0)
        check_int("hf_max_cg", self.max_cg)
        check_number("hf_cg_decay", self.cg_decay, 0, 1)
        check_int("hf_batch", self.batch, none_ok=True)
        check_int("hf_curvature_batch", self.curvature_batch, none_ok=True)
        check_number("hf_l2", self.l2, 0)
        check_number("hf_time_limit", self.time_limit, 0, low_open=True, none_ok=True)


def check_settings(cfg: Any) -> None:
    """cfg.hf checked, and HF with an option of the training loop it cannot honour refused (one line)."""
    if not isinstance(cfg.hf, HFSettings):
        raise BPTTError(f"hf settings must be a bptt.hf.HFSettings, got {type(cfg.hf).__name__}")
    cfg.hf.validate()
    if cfg.optimizer == "hf":
        for name, default in (("chunk", None), ("truncate", None), ("grad_checkpoint", None), ("backend", "numpy"),
                              ("nproc", 1)):
            if getattr(cfg, name) != default:
                raise BPTTError(f"optimizer hf takes whole sequences on the numpy engine; {name} must be "
                                f"{default!r}, got {getattr(cfg, name)!r}")


@dataclass
class HFInfo:
    """What one HF iteration did (``HessianFree.last``)."""

    loss: float
    new_loss: float
    rho: float
    damping: float
    cg_iters: int
    cg_chosen: int
    alpha: float
    seconds: float


@dataclass
class HessianFree:
    """HF training as an epoch runner: one ``run_epoch`` is one whole HF iteration on the training data
    (it needs the data, not a mini-batch's gradient, so it has no ``step``).  Its state is λ, CG's
    last solution and the seconds spent (for checkpoints); ``out_of_time`` stops the loop.
    """

    shapes: dict[str, tuple[int, ...]]
    net: Net
    settings: HFSettings
    lam: float = 1.0
    delta: np.ndarray = field(default=None)  # type: ignore[assignment]  # (P,): CG's last solution
    elapsed: float = 0.0
    t: int = 0
    last: HFInfo | None = None
    reference: bool = False  # the engine's loops for the products and the gradient (the same bits, slower)

    @classmethod
    def create(cls, params: dict[str, np.ndarray], net: Net, settings: HFSettings) -> "HessianFree":
        theta = flatten(params)
        return cls(shapes_of(params), net, settings, settings.damping, np.zeros_like(theta))

    @classmethod
    def from_config(cls, cfg: Any, params: dict[str, np.ndarray]) -> "HessianFree":
        """From a TrainConfig: its activations and loss, and its ``hf`` settings."""
        return cls.create(params, Net.named(cfg.hidden_activation, cfg.output_activation, cfg.loss), cfg.hf)

    @property
    def out_of_time(self) -> bool:
        return self.settings.time_limit is not None and self.elapsed >= self.settings.time_limit

    def run_epoch(self, params: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray, mask: np.ndarray | None,
                  order: np.ndarray) -> tuple[float, int]:
        """The training loop's epoch: one HF iteration (``iterate``).  Returns (loss sum, count) = (L(θ), 1)."""
        return self.iterate(params, x, y, mask, order), 1

    def state(self) -> dict[str, np.ndarray]:
        return {"damping": np.array([self.lam]), "delta": self.delta.copy(), "elapsed": np.array([self.elapsed])}

    def load_state(self, arrays: dict[str, np.ndarray], t: int) -> None:
        """Refuses a state HF cannot continue from: a damping λ <= 0 or negative seconds (finite is checked by
        the caller)."""
        check_state_values("hf", arrays, {"damping": (lambda a: a > 0, "> 0"), "elapsed": (lambda a: a >= 0, ">= 0")})
        self.lam = float(arrays["damping"][0])
        self.delta = arrays["delta"].copy()
        self.elapsed = float(arrays["elapsed"][0])
        self.t = t

    def batches(self, x: np.ndarray, y: np.ndarray, mask: np.ndarray | None, order: np.ndarray) -> tuple[Batch, Batch]:
        """(gradient batch, curvature batch) from the epoch's shuffle ``order`` (N,) of x (T, N, D)."""
        s = self.settings
        idx = order[: s.batch] if s.batch else order  # (B,)
        cidx = idx[: s.curvature_batch] if s.curvature_batch else idx  # (Bc,)
        m = None if mask is None else mask[:, idx]
        cm = None if mask is None else mask[:, cidx]
        return Batch.of(x[:, idx], y[:, idx], m), Batch.of(x[:, cidx], y[:, cidx], cm)

    def iterate(self, params: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray, mask: np.ndarray | None,
                order: np.ndarray) -> float:
        """One HF iteration on the training data x (T, N, D), y (T, N, O), mask (T, N) or None;
        updates ``params`` in place.  Returns L(θ) on the gradient batch before the step."""
        start = time.perf_counter()
        s = self.settings
        gb, cb = self.batches(x, y, mask, order)
        theta = flatten(params)  # (P,)
        p = unflatten(theta, self.shapes)
        f0, grad = loss_and_grad(self.net, p, gb, s.l2, self.reference)

        def objective(delta: np.ndarray) -> float:
            with np.errstate(over="ignore", invalid="ignore"):
                v = loss(self.net, unflatten(theta + delta, self.shapes), gb, s.l2)
            return v if math.isfinite(v) else math.inf

        curv = Curvature.at(self.net, p, cb, self.reference)
        res = cg(curv.damped(self.lam, s.structural, s.l2), grad, s.cg_decay * self.delta, s.max_cg)
        self.delta = res.last.copy()
        chosen, delta, phi, f1 = backtrack(res.kept, objective)
        rho = reduction_ratio(f1 - f0, phi)
        lam_used = self.lam
        self.lam = adjust_damping(self.lam, rho)
        slope = dot(grad, delta)
        alpha, f_new = line_search(lambda a: objective(a * delta), f0, slope, f1) if slope < 0 else (0.0, f0)
        if alpha > 0:
            new = theta + alpha * delta
            for k, v in unflatten(new, self.shapes)._asdict().items():
                params[k][...] = v
        self.t += 1
        seconds = time.perf_counter() - start
        self.elapsed += seconds
        self.last = HFInfo(f0, f_new, rho, lam_used, res.iterations, chosen, alpha, seconds)
        return f0
