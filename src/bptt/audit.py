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


# A claim also holds within this many float64 ulps of the exact value (16-17 printed digits that equal
# bptt's float64 result to the last bit or two hold, though their written rounding is finer than an ulp).
ULPS = 4


@dataclass(frozen=True)
class Printed:
    """A number as a person wrote it, with the precision the writing implies.

    "0.0168" -> value 0.0168, half_unit 0.00005 (3 significant figures).
    A claim holds when |exact - value| <= half_unit, i.e. the exact value rounds to it, or when it is
    within ULPS float64 ulps of the exact value (``tolerance``).
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
        value = float(d)
        try:
            half_unit = 0.5 * 10.0**exponent
        except OverflowError:
            half_unit = math.inf
        if not (math.isfinite(value) and 0 < half_unit < math.inf):
            raise BPTTError(f"{name}: {s!r} is out of range; a claimed value and its last written digit must "
                            "lie between about 1e-300 and 1e300")
        return cls(text=s, value=value, half_unit=half_unit)

    @property
    def tolerance(self) -> float:
        """How far the exact value may be: the written rounding, or ULPS float64 ulps where that is larger
        (a value printed with 16-17 digits is judged as float64 arithmetic can deliver it)."""
        return max(self.half_unit, ULPS * math.ulp(abs(self.value)))

    def holds(self, exact: float) -> bool:
        # a hair of slack for binary rounding of the decimal bounds themselves; ULPS ulps for float64 itself
        ulps = ULPS * math.ulp(max(abs(exact), abs(self.value)))
        return bool(abs(exact - self.value) <= max(self.half_unit * (1 + 1e-9), ulps))

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


# How an exact value compares with a printed one (``Verdict.kind``).
HOLDS = "holds"  # the exact value rounds to the printed one
TRUNCATED = "truncated"  # the printed value is the exact one cut off, not rounded
SIGN = "sign"  # the printed value holds for the exact value negated
FACTOR2 = "factor2"  # the printed value holds for the exact value halved or doubled (the other 1/2 convention)
WRONG = "wrong"  # none of these: off by ``misfit`` times the printed rounding


@dataclass(frozen=True)
class Verdict:
    """One printed number judged against its exact value."""

    kind: str  # HOLDS, TRUNCATED, SIGN, FACTOR2 or WRONG
    printed: Printed
    exact: float
    misfit: float  # |exact - printed| in units of the tolerance: the printed rounding (half a unit in the
    # last digit), or ULPS ulps where that is larger
    rounded: str  # the exact value written with as many decimals as the printed one

    @property
    def holds(self) -> bool:
        return self.kind == HOLDS


def judge(p: Printed, exact: float, fitted: bool = False) -> Verdict:
    """The verdict on p.  fitted: exact was computed at targets fitted to the claims, where a miss
    says nothing about truncation or sign (the fit absorbs both), so it is only WRONG."""
    if p.holds(exact):
        kind = HOLDS
    elif fitted:
        kind = WRONG
    elif p.value != 0 and math.copysign(1, p.value) != math.copysign(1, exact) and p.holds(-exact):
        kind = SIGN
    elif exact != 0 and (p.holds(exact / 2) or p.holds(exact * 2)):
        kind = FACTOR2
    elif _truncated(p, exact):
        kind = TRUNCATED
    else:
        kind = WRONG
    return Verdict(kind, p, exact, abs(exact - p.value) / p.tolerance, round_like(exact, p))


def _truncated(p: Printed, exact: float) -> bool:
    """exact lies between p and the next printed value away from zero: p is exact cut off."""
    lo, hi = sorted((p.value, p.value + math.copysign(2 * p.half_unit, p.value)))
    return lo <= exact <= hi


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


def min_misfit(A: np.ndarray, b: np.ndarray, half: np.ndarray, A_eq: np.ndarray | None = None,
               b_eq: np.ndarray | None = None, bounds: tuple[float, float] | None = None) -> tuple[float, np.ndarray]:
    """min over y of max_i |A_i y - b_i| / half_i, and the y attaining it; optionally with A_eq y = b_eq
    (cross-entropy targets summing to 1) and every y_j within ``bounds`` (targets of a probability).

    A misfit <= 1 means one choice of y reproduces every claim to its printed digits.
    """
    from scipy.optimize import linprog

    n, m = A.shape
    if n == 0 and A_eq is None and bounds is None:
        return 0.0, np.zeros(m)
    # variables (y, t): minimise t subject to +-(A y - b) / half <= t; each row in units of its own
    # rounding, so the solver's absolute feasibility tolerance (1e-7) is 1e-7 of a rounding unit
    As, bs = A / half[:, None], b / half
    ones = np.ones((n, 1))
    A_ub = np.block([[As, -ones], [-As, -ones]])
    b_ub = np.concatenate([bs, -bs])
    cost = np.zeros(m + 1)
    cost[-1] = 1.0
    eq = {} if A_eq is None or not len(A_eq) else {"A_eq": np.hstack([A_eq, np.zeros((len(A_eq), 1))]), "b_eq": b_eq}
    box = bounds or (None, None)
    res = linprog(cost, A_ub=A_ub if n else None, b_ub=b_ub if n else None, bounds=[box] * m + [(0, None)],
                  method="highs", **eq)
    if not res.success:  # pragma: no cover - the problem is always feasible for t large
        raise RuntimeError(f"linear programme failed: {res.message}")
    return float(res.x[-1]), res.x[:m]


def least_squares_targets(A: np.ndarray, b: np.ndarray, half: np.ndarray, A_eq: np.ndarray | None = None,
                          b_eq: np.ndarray | None = None) -> np.ndarray:
    """y minimising sum_i ((A_i y - b_i) / half_i)^2 (minimum-norm where under-determined), optionally
    subject to A_eq y = b_eq exactly: y = y0 + N z over the null space N of A_eq."""
    As, bs = A / half[:, None], b / half
    if A_eq is None or not len(A_eq):
        y, *_ = np.linalg.lstsq(As, bs, rcond=None)
        return y
    y0, *_ = np.linalg.lstsq(A_eq, b_eq, rcond=None)
    _, sv, vt = np.linalg.svd(A_eq)
    N = vt[int(np.sum(sv > 1e-12 * sv.max())):].T  # (m, m - rank)
    z, *_ = np.linalg.lstsq(As @ N, bs - As @ y0, rcond=None)
    return y0 + N @ z



def nonlinear_least_squares(residuals, jacobian, start: np.ndarray) -> np.ndarray:
    """x minimising sum_i residuals(x)_i^2 from ``start`` (trust region; under-determined allowed)."""
    from scipy.optimize import least_squares

    if start.size == 0:
        return start
    res = least_squares(residuals, start, jac=jacobian, method="trf", xtol=1e-15, ftol=1e-15, gtol=1e-15,
                        max_nfev=200)
    return res.x
