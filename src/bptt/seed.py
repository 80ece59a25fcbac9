"""The seed's worked example: its setup, its printed numbers, and its errata.

The seed (a hand derivation of BPTT for one sigmoid hidden unit and one
sigmoid output over two steps) sets w = w_x = w_h = b1 = b2 = 1, h_0 = 0,
x = (1, 0) and prints building blocks and five gradients. It never states its
targets y_1, y_2; every gradient is affine in them, so which printed values
*any* targets can reproduce is decided exactly by ``audit``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from .audit import Printed, affine_in_targets, least_squares_targets, min_misfit
from .engine import PARAM_NAMES
from .model import RNN

SETUP = {"w": 1.0, "w_x": 1.0, "w_h": 1.0, "b1": 1.0, "b2": 1.0}
H0 = 0.0
X = (1.0, 0.0)  # x_2 is not printed; 0 is what reproduces the printed y'_2 = 0.866

# As printed in the seed (section 6 and 7), text kept to keep the precision.
PRINTED_BLOCKS = {"h_1": "0.88", "1 - h_1": "0.12", "y'_1": "0.867", "y'_2": "0.866"}
PRINTED_GRADS = {"w": "0.015", "w_x": "0.001122", "w_h": "0.0020", "b2": "0.0168", "b1": "0.00215"}

# Everything wrong or inconsistent in the seed's text, each with its correction.
# The numeric ones (printed gradients) are computed, not listed here: see ``analyse``.
ERRATA = [
    ("sgm definition", "sgm(x) = 1/(1 - e^{-x})",
     "sgm(x) = 1/(1 + e^{-x}); the seed's own numbers use the plus sign (sgm(2) = 0.88; with the minus sign sgm(2) would be 1.157)"),
    ("sign of dE_i/dy'_i", "1/2 * 2 * (y_i - y'_i)",
     "d/dy'_i of 1/2 (y_i - y'_i)^2 is (y'_i - y_i): every printed formula has the opposite sign of the true gradient; bptt uses (y'_i - y_i)"),
    ("E_i called an MSE", "E_i is the MSE for the i-th term",
     "E_i = 1/2 (y_i - y'_i)^2 is half the squared error of step i; Loss = 1/2 (E_1 + E_2) is the mean over the two steps"),
    ("general chain-rule formula", "dE_i/dθ = sum_k dE_i/dy'_i dy'_i/dh_i dh_i/dh_k dh_k/dθ",
     "the last factor must be the immediate partial ∂h_k/∂θ (h_{k-1} held fixed), else paths are counted twice; w and b2 reach E_i through y'_i directly, not through any h_k, so for them there is no sum over k"),
    ("first-term formula", "dE_1/dθ = dE_1/dy' * dy'/dh_1 * dh_1/dθ", "y' should be y'_1: dE_1/dy'_1 * dy'_1/dh_1 * ∂h_1/∂θ"),
    ("dLoss/dw_x label", "dLoss/dw_x = 1/2 sum_i dE_i/dw", "dLoss/dw_x = 1/2 sum_i dE_i/dw_x"),
    ("dLoss/dw_h label", "dLoss/dw_h = 1/2 sum_i dE_i/dw", "dLoss/dw_h = 1/2 sum_i dE_i/dw_h"),
    ("section 5 (b1) label", "dE_2/dw_h = ... * [w_h sgm'(...) * 1 + 1]", "that formula is dE_2/db_1"),
    ("missing totals", "sections 4 (b2) and 5 (b1) stop at dE_2/dθ",
     "dLoss/db_2 = 1/2 (dE_1/db_2 + dE_2/db_2) and dLoss/db_1 = 1/2 (dE_1/db_1 + dE_2/db_1)"),
    ("building-block names", "y_1 = sgm(wh_1 + b_2) = 0.867, y_2 = sgm(wh_2 + b_2) = 0.866",
     "these are the predictions y'_1, y'_2, not the targets y_1, y_2; the targets are never stated"),
    ("y'_1 rounding", "y'_1 = 0.867", "y'_1 = 0.86770 rounds to 0.868; the seed truncated it"),
    ("unstated inputs", "h_2 and x_2 are never given",
     "h_2 = sgm(w_x x_2 + w_h h_1 + b_1) = 0.8677 with x_2 = 0, which reproduces the printed y'_2 = 0.866 (any x_2 in about [-0.05, 0.02] would)"),
    ("typesetting", "dLoss/dw_h line ends in a stray \\end{split}", "remove it; the LaTeX does not compile as printed"),
]


def model(hidden_activation: str = "sigmoid", output_activation: str = "sigmoid") -> RNN:
    """The seed's network with its parameters."""
    return RNN.scalar(**SETUP, hidden_activation=hidden_activation, output_activation=output_activation)


def building_blocks(m: RNN | None = None) -> dict[str, float]:
    m = m or model()
    f = m.forward(np.array(X))
    return {
        "h_1": float(f.h[1, 0]),
        "1 - h_1": float(1 - f.h[1, 0]),
        "y'_1": float(f.y_pred[0, 0]),
        "y'_2": float(f.y_pred[1, 0]),
        "h_2": float(f.h[2, 0]),
    }


def gradients(y: tuple[float, float], m: RNN | None = None) -> dict[str, float]:
    """dLoss/dθ at targets y, Loss = 1/2 (E_1 + E_2) as in the seed."""
    m = m or model()
    _, g = m.loss_and_grad(np.array(X), np.asarray(y, dtype=float), h0=H0, reduction="mean")
    return {k: float(g[k].ravel()[0]) for k in PARAM_NAMES}


@dataclass
class Analysis:
    """What any targets can make of the seed's five printed gradients."""

    names: list[str]
    printed: dict[str, Printed]
    misfit_all: float  # min over targets of max misfit, in units of the printed rounding
    misfit_without: dict[str, float]  # the same with one gradient left out
    maximal_sets: list[tuple[tuple[str, ...], tuple[float, float]]]  # largest sets one target pair reproduces
    unreproducible: list[str]  # no targets reproduce these together with the others
    best_targets: tuple[float, float]  # least-squares targets for the reproducible ones
    identity_lhs: float  # printed dLoss/dw_h
    identity_rhs: float  # h_1 (printed dLoss/db_1 - printed dLoss/dw_x)


def analyse(m: RNN | None = None) -> Analysis:
    """Decide, by linear programming over the targets, which printed gradients can hold.

    Each printed value p with half-unit u constrains the targets to |g(y) - p| <= u.
    """
    m = m or model()
    names = list(PRINTED_GRADS)
    printed = {k: Printed.parse(v, f"dLoss/d{k}") for k, v in PRINTED_GRADS.items()}
    c, J = affine_in_targets(lambda y: [gradients(tuple(y), m)[k] for k in names], 2)
    b = np.array([printed[k].value for k in names]) - c
    half = np.array([printed[k].half_unit for k in names])

    def misfit(idx):
        return min_misfit(J[list(idx)], b[list(idx)], half[list(idx)])

    misfit_all, _ = misfit(range(len(names)))
    misfit_without = {names[i]: misfit([j for j in range(len(names)) if j != i])[0] for i in range(len(names))}
    maximal: list[tuple[tuple[str, ...], tuple[float, float]]] = []
    for size in range(len(names), 0, -1):
        for idx in itertools.combinations(range(len(names)), size):
            t, y = misfit(idx)
            if t <= 1.0:
                maximal.append((tuple(names[i] for i in idx), (float(y[0]), float(y[1]))))
        if maximal:
            break
    # A gradient no targets reproduce alongside the others: leaving it out helps
    # far more than leaving out any other (by the LP, not by eye).
    order = sorted(misfit_without, key=misfit_without.get)
    unreproducible = []
    if misfit_all > 1.0:
        best, second = order[0], order[1]
        if misfit_without[second] > 2 * misfit_without[best]:
            unreproducible = [best]
    keep = [i for i, k in enumerate(names) if k not in unreproducible]
    # weighted least squares over the kept claims, as `bptt check` infers targets
    y_fit = least_squares_targets(J[keep], b[keep], half[keep])
    blocks = building_blocks(m)
    return Analysis(
        names=names,
        printed=printed,
        misfit_all=misfit_all,
        misfit_without=misfit_without,
        maximal_sets=maximal,
        unreproducible=unreproducible,
        best_targets=(float(y_fit[0]), float(y_fit[1])),
        identity_lhs=printed["w_h"].value,
        identity_rhs=blocks["h_1"] * (printed["b1"].value - printed["w_x"].value),
    )
