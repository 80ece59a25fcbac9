r"""The one table of losses: everything every backend needs, one record each.

A loss E compares the outputs y'_t = g(u_t) of one step with its targets y_t; the
network's Loss is c * sum_{t,b} E(y'_{t,b}, y_{t,b}) with c = 1/(T B) ("mean") or 1
("sum").  Each ``Loss`` record holds, for one E:

    numpy    value(u, y_pred, y)        E per step, summed over the outputs: (..., O) -> (...); u None:
                                        from y' alone (an ensemble's mean prediction has no u)
             delta(u, y_pred, y, g, c)  c dE/du, the output pre-activation's error (..., O), scaled by c
                                        (a number or an array broadcasting over (..., O))
             curvature(y_pred, v, g)    the Gauss-Newton matrix of E in u applied to v (bptt.hf)
             check_targets(y)           refuse targets E is not defined for (one BPTTError line)
    sympy    sym_value(y_pred, y)       E for one output number, as a sympy expression
    text     formula, symbol            how a derivation writes E ('1/2 (y - y')^2')
    torch    torch_value(u, y_pred, y)  value on tensors (u may be None: from y_pred)
    numba    code                       the kernels' branch for it (None: no compiled version)

``outputs`` lists the output activations E is defined with (None: any; the squared error).  For the *matching* pairs
(sigmoid + binary cross-entropy, softmax + cross-entropy) dE/du = y' - y, the exact
and stable form, and the loss's value is computed from u (log-sum-exp, softplus),
never from a rounded y'.  The seed's ½-squared error takes any output activation:
dE/du = g'(u)^T (y' - y), through ``Activation.jvp``.

Every derivative here is written beside its value (micrograd's rule); the tests
compare each pair with torch autograd and central finite differences
(tests/test_losses.py).  A backend lacking a loss's part refuses it (``require``),
never computes another loss.

Every exp and log is ``floatmath``'s (the same bits on every CPU), not numpy's.

Adding a loss: one record in ``_TABLE`` below; to run it compiled, give it the next
``code`` and add its branch to ``kernels._loss_term`` / ``kernels._loss_delta``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from . import floatmath
from .activations import Activation
from .validation import BPTTError, check_choice

BACKENDS = ("numpy", "numba", "torch", "sympy")


# ---------------------------------------------------------------- squared error (the seed's)
def _se_value(u, y_pred, y):
    r = y_pred - y
    return 0.5 * (r * r).sum(-1)


def _se_delta(u, y_pred, y, g: Activation, c):
    return g.jvp(y_pred, c * (y_pred - y))  # dE/dy' = y' - y, then back through g


def _se_curvature(y_pred, v, g: Activation):
    return g.jvp(y_pred, g.jvp(y_pred, v))  # J_g^T J_g v: E's Hessian in y' is I (g'' dropped)


def _se_sym(y_pred, y):
    return (y - y_pred) ** 2 / 2


def _se_check(y):
    pass  # any finite number (finiteness is checked at every door)


# ---------------------------------------------------------------- binary cross-entropy (with sigmoid)
def _softplus(u):
    return np.maximum(u, 0) + floatmath.log1p(floatmath.exp(-np.abs(u)))


def _bce_value(u, y_pred, y):
    # -[y log sgm(u) + (1 - y) log(1 - sgm(u))] = softplus(u) - y u, exact for any u
    if u is None:
        return -(y * floatmath.log(y_pred) + (1 - y) * floatmath.log1p(-y_pred)).sum(-1)
    return (_softplus(u) - y * u).sum(-1)


def _bce_delta(u, y_pred, y, g: Activation, c):
    return c * (y_pred - y)


def _bce_curvature(y_pred, v, g: Activation):
    return y_pred * (1 - y_pred) * v  # d^2E/du^2 = sgm'(u): E is convex in u, the GN matrix is its Hessian


def _bce_sym(y_pred, y):
    import sympy as sp

    return -(y * sp.log(y_pred) + (1 - y) * sp.log(1 - y_pred))


def _bce_check(y):
    if np.any((y < 0) | (y > 1)):
        bad = y[(y < 0) | (y > 1)].flat[0]
        raise BPTTError(f"binary cross-entropy needs targets in [0, 1], got {float(bad)!r}; give 0/1 labels or "
                        "probabilities, or use --loss squared_error for real-valued targets")


def _torch_bce(u, y_pred, y):
    import torch

    if u is None:
        u = torch.logit(y_pred)
    return (torch.nn.functional.softplus(u) - y * u).sum(-1)


# ---------------------------------------------------------------- cross-entropy (with softmax)
def _logsumexp(u):
    m = np.max(u, axis=-1, keepdims=True)
    return (m + floatmath.log(np.sum(floatmath.exp(u - m), axis=-1, keepdims=True)))[..., 0]


def _ce_value(u, y_pred, y):
    # -sum_o y_o log softmax(u)_o = (sum_o y_o) logsumexp(u) - sum_o y_o u_o
    if u is None:
        return -(y * floatmath.log(y_pred)).sum(-1)
    return y.sum(-1) * _logsumexp(u) - (y * u).sum(-1)


def _ce_delta(u, y_pred, y, g: Activation, c):
    return c * (y_pred * y.sum(-1, keepdims=True) - y)  # y' - y for targets that sum to 1


def _ce_curvature(y_pred, v, g: Activation):
    return g.jvp(y_pred, v)  # d^2E/du^2 = diag(y') - y' y'^T, softmax's own Jacobian (targets sum to 1)


def _ce_sym(y_pred, y):
    import sympy as sp

    return -y * sp.log(y_pred)


def _ce_check(y):
    if np.any(y < 0) or not np.allclose(y.sum(-1), 1.0, rtol=0, atol=1e-6 if y.dtype == np.float32 else 1e-12):
        raise BPTTError("cross-entropy needs targets that are class labels or rows of probabilities summing to 1 "
                        "(one-hot); give integer labels or one-hot rows")


def _torch_ce(u, y_pred, y):
    import torch

    if u is None:
        return -(y * torch.log(y_pred)).sum(-1)
    return y.sum(-1) * torch.logsumexp(u, dim=-1) - (y * u).sum(-1)


def _torch_se(u, y_pred, y):
    r = y_pred - y
    return 0.5 * (r * r).sum(-1)


# ---------------------------------------------------------------- the record and the table
@dataclass(frozen=True)
class Loss:
    """One loss E with what every backend needs (see the module docstring)."""

    name: str
    outputs: tuple[str, ...] | None
    formula: str
    value: Callable[[Any, Any, Any], Any]
    delta: Callable[[Any, Any, Any, Activation, Any], Any]
    curvature: Callable[[Any, Any, Activation], Any]
    check_targets: Callable[[np.ndarray], None]
    class_labels: bool = False
    sym_value: Callable[[Any, Any], Any] | None = None
    torch_value: Callable[[Any, Any, Any], Any] | None = None
    code: int | None = None

    @property
    def backends(self) -> tuple[str, ...]:
        has = {"numpy": True, "numba": self.code is not None, "torch": self.torch_value is not None,
               "sympy": self.sym_value is not None}
        return tuple(b for b in BACKENDS if has[b])


_TABLE = [
    Loss("squared_error", None, "1/2 (y - y')^2", _se_value, _se_delta, _se_curvature, _se_check,
         sym_value=_se_sym, torch_value=_torch_se, code=0),
    Loss("bce", ("sigmoid",), "-(y log y' + (1 - y) log(1 - y'))", _bce_value, _bce_delta, _bce_curvature,
         _bce_check, sym_value=_bce_sym, torch_value=_torch_bce, code=1),
    Loss("cross_entropy", ("softmax",), "-sum_o y_o log y'_o", _ce_value, _ce_delta, _ce_curvature, _ce_check,
         class_labels=True, sym_value=_ce_sym, torch_value=_torch_ce),
]

LOSSES: dict[str, Loss] = {loss.name: loss for loss in _TABLE}
DEFAULT = "squared_error"


def get(name: str) -> Loss:
    """Look a loss up by name; unknown names raise a one-line BPTTError."""
    check_choice("loss", name, tuple(LOSSES))
    return LOSSES[name]


def pair(loss: Loss, output_act: Activation) -> Loss:
    """``loss`` if it is defined with ``output_act``; else a one-line BPTTError with the fix."""
    if loss.outputs is not None and output_act.name not in loss.outputs:
        fits = [name for name, rec in LOSSES.items() if rec.outputs is None or output_act.name in rec.outputs]
        raise BPTTError(f"loss {loss.name!r} needs a {' or '.join(loss.outputs)} output, got output_activation "
                        f"{output_act.name!r}; use output_activation={loss.outputs[0]!r}, or with "
                        f"{output_act.name!r} the loss {' or '.join(repr(f) for f in fits)}")
    return loss


def require(loss: Loss, backend: str) -> Loss:
    """``loss`` if ``backend`` runs it; else a one-line BPTTError naming the backends that do."""
    if backend not in loss.backends:
        raise BPTTError(f"loss {loss.name!r} has no {backend} implementation; it runs on {', '.join(loss.backends)} "
                        f"(add its {backend} part to its record in bptt/losses.py)")
    return loss


def one_hot(labels: np.ndarray, classes: int, dtype) -> np.ndarray:
    """Integer class labels (...,) in 0..classes-1 as one-hot rows (..., classes)."""
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        bad = labels[(labels < 0) | (labels >= classes)].flat[0]
        raise BPTTError(f"class label {int(bad)} is outside 0..{classes - 1} (the model has {classes} outputs); "
                        f"give labels below {classes} or build the model with more outputs")
    out = np.zeros(labels.shape + (classes,), dtype)
    np.put_along_axis(out, labels[..., None].astype(np.intp), 1, axis=-1)
    return out
