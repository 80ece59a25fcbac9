"""The one table of activations: value, derivative and symbolic form.

Both the numeric engine (``engine.py``, ``kernels.py``) and the symbolic
derivation (``derive.py``) read this table, so they cannot drift apart.

Every derivative is written in terms of the activation's *output* a = f(z),
as the seed writes it: sgm'(z) = sgm(z)(1 - sgm(z)). That lets the backward
pass use the stored h_t and y'_t instead of the pre-activations.

sympy is imported lazily: ``import bptt`` stays light.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic 1/(1+e^{-z}), stable for any |z| (no overflow, no NaN)."""
    e = np.exp(-np.abs(z))  # in (0, 1]: never overflows
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(z.dtype, copy=False)


def _relu(z: np.ndarray) -> np.ndarray:
    return np.maximum(z, 0)


def _identity(z: np.ndarray) -> np.ndarray:
    return z


# Derivatives from the output a = f(z). Plain arithmetic, so the same
# function serves numpy arrays and sympy expressions where it can.
def _d_sigmoid(a):
    return a * (1 - a)


def _d_tanh(a):
    return 1 - a * a


def _d_relu(a: np.ndarray) -> np.ndarray:
    return (a > 0).astype(a.dtype)


def _d_identity(a):
    return np.ones_like(a) if isinstance(a, np.ndarray) else 1


def _sym(name: str) -> Callable[[Any], Any]:
    def value(z):
        import sympy as sp

        return {
            "sigmoid": lambda u: 1 / (1 + sp.exp(-u)),
            "tanh": sp.tanh,
            "relu": lambda u: sp.Max(u, 0),
            "identity": lambda u: u,
        }[name](z)

    return value


def _sym_d(name: str) -> Callable[[Any], Any]:
    def deriv(a):
        import sympy as sp

        return {
            "sigmoid": _d_sigmoid,
            "tanh": _d_tanh,
            # d relu / dz = 1 where the output is positive, else 0
            "relu": lambda u: sp.Heaviside(u, 0),
            "identity": lambda u: sp.Integer(1),
        }[name](a)

    return deriv


@dataclass(frozen=True)
class Activation:
    """One activation f with everything both engines need.

    value(z) -> f(z)                 numpy, elementwise
    deriv(a) -> f'(z) given a = f(z)  numpy, elementwise
    sym_value(z), sym_deriv(a)       the same as sympy expressions
    symbol                           how a derivation names it: 'sgm', 'tanh', ...
    deriv_text                       f'(z) in that notation, with {a} for f(z)
    code                             integer id for the compiled kernels
    """

    name: str
    value: Callable[[np.ndarray], np.ndarray]
    deriv: Callable[[np.ndarray], np.ndarray]
    sym_value: Callable[[Any], Any]
    sym_deriv: Callable[[Any], Any]
    symbol: str
    deriv_text: str
    code: int


#            name        value        deriv (from output)  symbol    f'(z) written from a = f(z)        code
_TABLE = [
    Activation("sigmoid", _sigmoid, _d_sigmoid, _sym("sigmoid"), _sym_d("sigmoid"), "sgm", "{a}(1 - {a})", 0),
    Activation("tanh", np.tanh, _d_tanh, _sym("tanh"), _sym_d("tanh"), "tanh", "(1 - {a}^2)", 1),
    Activation("relu", _relu, _d_relu, _sym("relu"), _sym_d("relu"), "relu", "[{a} > 0]", 2),
    Activation("identity", _identity, _d_identity, _sym("identity"), _sym_d("identity"), "id", "1", 3),
]

ACTIVATIONS: dict[str, Activation] = {a.name: a for a in _TABLE}
HIDDEN_ACTIVATIONS = ("sigmoid", "tanh", "relu")
OUTPUT_ACTIVATIONS = ("sigmoid", "identity")


def get(name: str, allowed: tuple[str, ...] | None = None, role: str = "activation") -> Activation:
    """Look an activation up by name; unknown names raise a one-line BPTTError."""
    from .validation import BPTTError

    choices = allowed if allowed is not None else tuple(ACTIVATIONS)
    if not isinstance(name, str) or name not in choices:
        raise BPTTError(
            f"{role} {name!r} is not supported; choose one of {', '.join(choices)}"
        )
    return ACTIVATIONS[name]
