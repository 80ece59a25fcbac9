"""The one table of activations: everything every backend needs, one record each.

Each ``Activation`` record holds, for one function f:

    numpy    value(z), deriv(a)              the reference engine (engine.py, dispatch.py)
    sympy    sym_value(z), sym_deriv(a)      the symbolic derivation (derive.py)
    torch    torch_value(z, out), torch_deriv(a)   the PyTorch layer (bptt.torch)
    numba    code                            the branch of kernels._f / kernels._df

Only the numpy parts are required.  A record without the parts of a backend
is *refused* by that backend (``require``: a one-line BPTTError naming the
backends that do run it), never computed as something else; ``backends``
lists what a record supports.  ``RNN(backend="auto")`` runs such an
activation on numpy.

Every derivative is written in terms of the activation's *output* a = f(z),
as the seed writes it: sgm'(z) = sgm(z)(1 - sgm(z)). That lets the backward
pass use the stored h_t and y'_t instead of the pre-activations.

Softmax is the one *vector* activation (an output only): its Jacobian
diag(a) - a a^T is not elementwise, so its record has no ``deriv`` but a
``vector_jvp(a, v)`` = J v (J is symmetric, so J^T v is the same).  Every caller
goes through ``Activation.jvp`` (dy' = g'(u) du for an elementwise g), which
serves both kinds.  The loss table (``losses.py``) pairs it with cross-entropy.

Adding an activation: one record in ``_TABLE`` below (its numpy, sympy and torch
parts).  To run it compiled too, give it the next free ``code`` and add that
branch to ``kernels._f`` and ``kernels._df``; ``tests/test_kernels.py`` checks
every coded record against its numpy value.  The tests take their activation
lists from this table.

Every exp and tanh is ``floatmath``'s, not numpy's: numpy's last bits depend on the CPU's SIMD
features, floatmath's do not.

sympy and torch are imported lazily, inside the functions that use them:
``import bptt`` stays light.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from . import floatmath
from .validation import BPTTError, check_choice

# Who reads the table: the numpy engine, the compiled kernels, the PyTorch layer, the derivation.
BACKENDS = ("numpy", "numba", "torch", "sympy")
ROLES = ("hidden", "output")


# ---------------------------------------------------------------- numpy
def _sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic 1/(1+e^{-z}), stable for any |z| (no overflow, no NaN)."""
    e = floatmath.exp(-np.abs(z))  # in (0, 1]: never overflows
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(z.dtype, copy=False)


def _relu(z: np.ndarray) -> np.ndarray:
    return np.maximum(z, 0)


def _identity(z: np.ndarray) -> np.ndarray:
    return z


def _softmax(z: np.ndarray) -> np.ndarray:
    """exp(z_o) / sum_k exp(z_k) over the last axis, shifted by the maximum (no overflow)."""
    e = floatmath.exp(z - np.max(z, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


def _softmax_jvp(a, v):
    """J v for J = diag(a) - a a^T, a = softmax(z): a * (v - <a, v>) over the last axis (numpy or torch)."""
    return a * (v - (a * v).sum(-1, keepdims=True))


# Derivatives from the output a = f(z).  Plain arithmetic, so sigmoid's and tanh's serve
# numpy arrays, torch tensors and sympy expressions alike.
def _d_sigmoid(a):
    return a * (1 - a)


def _d_tanh(a):
    return 1 - a * a


def _d_relu(a: np.ndarray) -> np.ndarray:
    return (a > 0).astype(a.dtype)


def _d_identity(a: np.ndarray) -> np.ndarray:
    return np.ones_like(a)


# ---------------------------------------------------------------- sympy
def _sym_sigmoid(z):
    import sympy as sp

    return 1 / (1 + sp.exp(-z))


def _sym_tanh(z):
    import sympy as sp

    return sp.tanh(z)


def _sym_relu(z):
    import sympy as sp

    return sp.Max(z, 0)


def _sym_d_relu(a):
    import sympy as sp

    return sp.Heaviside(a, 0)  # d relu / dz = 1 where the output is positive, else 0


def _sym_identity(z):
    return z


def _sym_d_identity(a):
    import sympy as sp

    return sp.Integer(1)


# ---------------------------------------------------------------- torch: (z, out=None) -> f(z), out may be z
def _torch_sigmoid(z, out=None):
    import torch

    return torch.sigmoid(z, out=out)


def _torch_tanh(z, out=None):
    import torch

    return torch.tanh(z, out=out)


def _torch_relu(z, out=None):
    import torch

    return torch.clamp_min(z, 0, out=out)


def _torch_identity(z, out=None):
    return z.clone() if out is None else out.copy_(z)


def _torch_softmax(z, out=None):
    import torch

    return torch.softmax(z, dim=-1) if out is None else out.copy_(torch.softmax(z, dim=-1))


def _torch_d_relu(a):
    return (a > 0).to(a.dtype)  # the numpy [a > 0]


def _torch_d_identity(a):
    return a.new_ones(a.shape)


# ---------------------------------------------------------------- the record and the table
@dataclass(frozen=True)
class Activation:
    """One activation f with what every backend needs (see the module docstring).

    name, roles          'sigmoid'; where a model may use it: ('hidden',), ('output',) or both
    value(z), deriv(a)   numpy, elementwise; deriv is f'(z) given a = f(z)        (required, but see
                         vector_jvp: a vector activation has deriv None)
    symbol, deriv_text   how a derivation names it ('sgm') and writes f'(z), with {a} for f(z)
    sym_value, sym_deriv the same as sympy expressions                        (None: no sympy)
    torch_value(z, out=None), torch_deriv(a)   the same on tensors            (None: no torch)
    code                 the kernels' branch for it                           (None: no numba)
    vector_jvp(a, v)     for an activation over the last axis (softmax): J v given a = f(z), on
                         numpy arrays and tensors alike; None for an elementwise one
    """

    name: str
    roles: tuple[str, ...]
    value: Callable[[np.ndarray], np.ndarray]
    deriv: Callable[[np.ndarray], np.ndarray]
    symbol: str
    deriv_text: str
    sym_value: Callable[[Any], Any] | None = None
    sym_deriv: Callable[[Any], Any] | None = None
    torch_value: Callable[..., Any] | None = None
    torch_deriv: Callable[[Any], Any] | None = None
    code: int | None = None
    vector_jvp: Callable[[Any, Any], Any] | None = None

    @property
    def elementwise(self) -> bool:
        """Whether f acts on each number alone (every activation but softmax)."""
        return self.vector_jvp is None

    def jvp(self, a, v):
        """f'(z) v given a = f(z): the tangent of the output for a tangent v of z (numpy or torch).

        Every activation's Jacobian is symmetric, so this is also the vector-Jacobian product.
        """
        return self.deriv(a) * v if self.vector_jvp is None else self.vector_jvp(a, v)

    def torch_jvp(self, a, v):
        """``jvp`` on tensors, from the record's torch parts."""
        return self.torch_deriv(a) * v if self.vector_jvp is None else self.vector_jvp(a, v)

    @property
    def backends(self) -> tuple[str, ...]:
        """The backends that can run this activation, in ``BACKENDS`` order."""
        elementwise = self.vector_jvp is None
        has = {
            "numpy": True,
            "numba": self.code is not None,
            "torch": self.torch_value is not None and (self.torch_deriv is not None or not elementwise),
            "sympy": self.sym_value is not None and self.sym_deriv is not None,
        }
        return tuple(b for b in BACKENDS if has[b])


_BOTH = ("hidden", "output")

_TABLE = [
    Activation("sigmoid", _BOTH, _sigmoid, _d_sigmoid, "sgm", "{a}(1 - {a})",
               _sym_sigmoid, _d_sigmoid, _torch_sigmoid, _d_sigmoid, code=0),
    Activation("tanh", ("hidden",), floatmath.tanh, _d_tanh, "tanh", "(1 - {a}^2)",
               _sym_tanh, _d_tanh, _torch_tanh, _d_tanh, code=1),
    Activation("relu", ("hidden",), _relu, _d_relu, "relu", "[{a} > 0]",
               _sym_relu, _sym_d_relu, _torch_relu, _torch_d_relu, code=2),
    Activation("identity", ("output",), _identity, _d_identity, "id", "1",
               _sym_identity, _sym_d_identity, _torch_identity, _torch_d_identity, code=3),
    Activation("softmax", ("output",), _softmax, None, "softmax", "(diag({a}) - {a} {a}^T)",
               torch_value=_torch_softmax, vector_jvp=_softmax_jvp),
]

ACTIVATIONS: dict[str, Activation] = {a.name: a for a in _TABLE}


def names(role: str) -> tuple[str, ...]:
    """The table's activations a model may use in ``role`` ('hidden' or 'output'), in table order."""
    return tuple(a.name for a in ACTIVATIONS.values() if role in a.roles)


HIDDEN_ACTIVATIONS = names("hidden")  # ('sigmoid', 'tanh', 'relu')
OUTPUT_ACTIVATIONS = names("output")  # ('sigmoid', 'identity', 'softmax')


def get(name: str, allowed: tuple[str, ...] | None = None, role: str = "activation") -> Activation:
    """Look an activation up by name; unknown names raise a one-line BPTTError."""
    check_choice(role, name, allowed if allowed is not None else tuple(ACTIVATIONS))
    return ACTIVATIONS[name]


def supports(act: Activation, backend: str) -> bool:
    """Whether ``backend`` (one of BACKENDS) can run ``act``."""
    return backend in act.backends


def require(act: Activation, backend: str, role: str = "activation") -> Activation:
    """``act`` if ``backend`` runs it; else a one-line BPTTError naming the backends that do."""
    if not supports(act, backend):
        raise BPTTError(
            f"{role} {act.name!r} has no {backend} implementation; it runs on {', '.join(act.backends)} "
            f"(add its {backend} part to its record in bptt/activations.py)"
        )
    return act
