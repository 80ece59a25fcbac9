"""Checking hand-computed numbers: their printed precision, and which targets explain them.

Every gradient of the loss is affine in the targets y (dE/dy' = y' - y and
nothing else depends on y), so a set of claimed gradients is a set of linear
interval constraints on the targets:  |A e - b| <= half, with e = y' - y.
Which claims can hold together is then a small linear programme.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import numpy as np

from .validation import BPTTError


@dataclass(frozen=True)
class Printed:
    """A number as a person wrote it, with the precision the writing implies.

    "0.0168" -> value 0.0168, half_unit 0.00005 (3 significant figures).
    A claim holds when |exact - value| <= half_unit, i.e. the exact value rounds to it.
    """

    text: str
    value: float
    half_unit: float

    @classmethod
    def parse(cls, text: str | float | int, name: str = "value") -> "Printed":
        s = str(text).strip()
        try:
            d = Decimal(s)
        except InvalidOperation:
            raise BPTTError(f"{name}: {s!r} is not a number; write it as digits, e.g. 0.0168") from None
        if not d.is_finite():
            raise BPTTError(f"{name}: {s!r} is not finite; every claimed value must be a finite number")
        exponent = d.as_tuple().exponent
        assert isinstance(exponent, int)
        return cls(text=s, value=float(d), half_unit=0.5 * 10.0**exponent)

    def holds(self, exact: float) -> bool:
        # a hair of slack for binary rounding of the decimal bounds themselves
        return abs(exact - self.value) <= self.half_unit * (1 + 1e-9)

    def significant_figures(self) -> int:
        d = Decimal(self.text)
        digits = d.as_tuple().digits
        s = "".join(map(str, digits)).lstrip("0")
        return max(len(s), 1)


def round_like(x: float, p: Printed) -> str:
    """x written with as many decimals as p was."""
    exponent = Decimal(p.text).as_tuple().exponent
    assert isinstance(exponent, int)
    if exponent >= 0:
        return f"{x:.0f}"
    return f"{x:.{-exponent}f}"


def affine_in_targets(grad_at, n_targets: int) -> tuple[np.ndarray, np.ndarray]:
    """grad_at(y) -> vector of claimed quantities, affine in y (flat, length n_targets).

    Returns (c, J) with grad_at(y) = c + J y exactly (up to rounding), found by
    evaluating at y = 0 and at the unit vectors.
    """
    c = np.asarray(grad_at(np.zeros(n_targets)), dtype=np.float64)
    J = np.empty((c.size, n_targets))
    for j in range(n_targets):
        e = np.zeros(n_targets)
        e[j] = 1.0
        J[:, j] = np.asarray(grad_at(e), dtype=np.float64) - c
    return c, J


def min_misfit(A: np.ndarray, b: np.ndarray, half: np.ndarray) -> tuple[float, np.ndarray]:
    """min over y of max_i |A_i y - b_i| / half_i, and the y attaining it.

    A misfit <= 1 means one choice of y reproduces every claim to its printed digits.
    """
    from scipy.optimize import linprog

    n, m = A.shape
    if n == 0:
        return 0.0, np.zeros(m)
    # variables (y, t): minimise t subject to +-(A y - b) <= t * half
    A_ub = np.block([[A, -half[:, None]], [-A, -half[:, None]]])
    b_ub = np.concatenate([b, -b])
    cost = np.zeros(m + 1)
    cost[-1] = 1.0
    res = linprog(cost, A_ub=A_ub, b_ub=b_ub, bounds=[(None, None)] * m + [(0, None)], method="highs")
    if not res.success:  # pragma: no cover - the problem is always feasible for t large
        raise RuntimeError(f"linear programme failed: {res.message}")
    return float(res.x[-1]), res.x[:m]


def least_squares_targets(A: np.ndarray, b: np.ndarray, half: np.ndarray) -> np.ndarray:
    """y minimising sum_i ((A_i y - b_i) / half_i)^2 (minimum-norm where under-determined)."""
    y, *_ = np.linalg.lstsq(A / half[:, None], b / half, rcond=None)
    return y


def is_finite_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
