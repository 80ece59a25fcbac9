"""The seed's worked example: its printed numbers (a packaged claims file), its errata, and their audit.

The seed (a hand derivation of BPTT for one sigmoid hidden unit and one sigmoid output
over two steps) sets w = w_x = w_h = b1 = b2 = 1, h_0 = 0, x = (1, 0) and prints
building blocks and five gradients. Those are claims, kept in one place:
``bptt/data/seed_claims.toml``, read with importlib.resources. ``audit`` is ``check.check``
on that file: the same verdicts and the same target inference as ``bptt check``, plus
what only the seed needs (h_2, the per-term gradients, a target-free identity, the errata).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import NamedTuple, Sequence

import numpy as np

from . import check
from .engine import PARAM_NAMES
from .model import RNN

CLAIMS_FILE = "seed_claims.toml"  # in the package's data folder


class Erratum(NamedTuple):
    """One thing wrong or inconsistent in the seed's text, with its correction.

    what, printed, correct   `bptt seed` lists these (plain text)
    document                 the bullet `bptt explain` writes for it under "Differences from the seed's
                             hand derivation" (LaTeX); "" where that section has none (too small for a
                             derivation reader, or said by another erratum's bullet)
    squared_error            true only of the seed's loss 1/2 (y - y')^2: a derivation with another loss
                             says so before the bullet
    """

    what: str
    printed: str
    correct: str
    document: str = ""
    squared_error: bool = False


# The one list of the seed's errata: `bptt seed` prints it, `bptt explain` (derive.py) writes its bullets.
# The printed gradients are not listed here: ``audit`` checks every printed number (the claims file) and names them.
ERRATA = [
    Erratum("sgm definition", "sgm(x) = 1/(1 - e^{-x})",
            "sgm(x) = 1/(1 + e^{-x}); the seed's own numbers use the plus sign (sgm(2) = 0.88; with the minus sign sgm(2) would be 1.157)",
            "$\\operatorname{sgm}(x) = 1/(1 + e^{-x})$; the seed prints $1/(1 - e^{-x})$."),
    Erratum("sign of dE_i/dy'_i", "1/2 * 2 * (y_i - y'_i)",
            "d/dy'_i of 1/2 (y_i - y'_i)^2 is (y'_i - y_i): every printed formula has the opposite sign of the true gradient; bptt uses (y'_i - y_i)",
            "$\\frac{dE_i}{dy'_i} = (y'_i - y_i)$; the seed writes $(y_i - y'_i)$, the opposite sign.", squared_error=True),
    Erratum("E_i called an MSE", "E_i is the MSE for the i-th term",
            "E_i = 1/2 (y_i - y'_i)^2 is half the squared error of step i; Loss = 1/2 (E_1 + E_2) is the mean over the two steps"),
    Erratum("general chain-rule formula", "dE_i/dθ = sum_k dE_i/dy'_i dy'_i/dh_i dh_i/dh_k dh_k/dθ",
            "the last factor must be the immediate partial ∂h_k/∂θ (h_{k-1} held fixed), else paths are counted twice; w and b2 reach E_i through y'_i directly, not through any h_k, so for them there is no sum over k",
            "The last factor of the general formula is the immediate partial $\\frac{\\partial h_k}{\\partial \\theta}$; "
            "$w$ and $b_2$ have no sum over $k$."),
    Erratum("first-term formula", "dE_1/dθ = dE_1/dy' * dy'/dh_1 * dh_1/dθ", "y' should be y'_1: dE_1/dy'_1 * dy'_1/dh_1 * ∂h_1/∂θ"),
    # this bullet speaks for the three label errata and the missing totals below it
    Erratum("dLoss/dw_x label", "dLoss/dw_x = 1/2 sum_i dE_i/dw", "dLoss/dw_x = 1/2 sum_i dE_i/dw_x",
            "Each total is $\\frac{d\\mathrm{Loss}}{d\\theta}$ of its own parameter (the seed labels the $w_x$ and "
            "$w_h$ totals with $dE_i/dw$, and its section on $b_1$ labels $\\frac{dE_2}{db_1}$ as $\\frac{dE_2}{dw_h}$); "
            "the totals for $b_2$ and $b_1$ are stated."),
    Erratum("dLoss/dw_h label", "dLoss/dw_h = 1/2 sum_i dE_i/dw", "dLoss/dw_h = 1/2 sum_i dE_i/dw_h"),
    Erratum("section 5 (b1) label", "dE_2/dw_h = ... * [w_h sgm'(...) * 1 + 1]", "that formula is dE_2/db_1"),
    Erratum("missing totals", "sections 4 (b2) and 5 (b1) stop at dE_2/dθ",
            "dLoss/db_2 = 1/2 (dE_1/db_2 + dE_2/db_2) and dLoss/db_1 = 1/2 (dE_1/db_1 + dE_2/db_1)"),
    Erratum("building-block names", "y_1 = sgm(wh_1 + b_2) = 0.867, y_2 = sgm(wh_2 + b_2) = 0.866",
            "these are the predictions y'_1, y'_2, not the targets y_1, y_2; the targets are never stated",
            "$y'_i$ (prediction) and $y_i$ (target) are kept apart; the seed calls the predictions $y_1, y_2$."),
    Erratum("y'_1 rounding", "y'_1 = 0.867", "y'_1 = 0.86770 rounds to 0.868; the seed truncated it",
            "Numbers are rounded, not truncated (the seed's $y'_1 = 0.867$ is $0.86770$, which rounds to $0.868$)."),
    Erratum("unstated inputs", "h_2 and x_2 are never given",
            "h_2 = sgm(w_x x_2 + w_h h_1 + b_1) = 0.8677 with x_2 = 0, which reproduces the printed y'_2 = 0.866 (any x_2 in about [-0.05, 0.02] would)"),
    Erratum("typesetting", "dLoss/dw_h line ends in a stray \\end{split}", "remove it; the LaTeX does not compile as printed"),
]


def claims_file() -> check.ClaimsFile:
    """The seed's setup and printed numbers, from the packaged claims file."""
    text = resources.files("bptt").joinpath("data", CLAIMS_FILE).read_text(encoding="utf-8")
    return check.from_text(text, "toml", f"bptt/data/{CLAIMS_FILE}")


def model(cf: check.ClaimsFile | None = None) -> RNN:
    """The seed's network with its parameters."""
    cf = cf or claims_file()
    return RNN.scalar(**cf.scalar_params, hidden_activation=cf.hidden_activation,
                      output_activation=cf.output_activation)


def building_blocks(cf: check.ClaimsFile | None = None) -> dict[str, float]:
    """h_1, 1 - h_1, y'_1, y'_2 and h_2 (which the seed never prints), exact."""
    cf = cf or claims_file()
    f = model(cf).forward(cf.x, h0=cf.h0)
    return {"h_1": float(f.h[1, 0]), "1 - h_1": float(1 - f.h[1, 0]), "y'_1": float(f.y_pred[0, 0]),
            "y'_2": float(f.y_pred[1, 0]), "h_2": float(f.h[2, 0])}


def gradients(y: Sequence[float], cf: check.ClaimsFile | None = None) -> dict[str, float]:
    """dLoss/dθ at targets y, Loss = 1/2 (E_1 + E_2) as in the seed."""
    cf = cf or claims_file()
    _, g = model(cf).loss_and_grad(cf.x, np.asarray(y, dtype=float), h0=cf.h0, reduction=cf.reduction)
    return {k: float(g[k].ravel()[0]) for k in PARAM_NAMES}


def error_terms(y: Sequence[float], cf: check.ClaimsFile | None = None) -> dict[str, tuple[float, ...]]:
    """dE_i/dθ for i = 1..T at targets y: {θ: (dE_1/dθ, dE_2/dθ)}."""
    cf = cf or claims_file()
    d = model(cf).decompose(cf.x, np.asarray(y, dtype=float), h0=cf.h0, reduction=cf.reduction)
    return {k: tuple(float(v.ravel()[0]) for v in d.terms[k]) for k in PARAM_NAMES}


@dataclass(frozen=True)
class Identity:
    """dLoss/dw_h = h_1 (dLoss/db_1 - dLoss/dw_x) for every target when x_2 = 0 and h_0 = 0:
    a test of the printed gradients that needs no targets."""

    lhs: float  # the printed dLoss/dw_h
    rhs: float  # exact h_1 times (printed dLoss/db_1 - printed dLoss/dw_x)


@dataclass
class SeedAudit:
    """``bptt seed``: the seed's claims checked, what any targets can make of them, and the errata."""

    report: check.Report  # every printed number checked, at the fitted targets or at the given ones
    analysis: check.TargetAnalysis  # which printed gradients any targets reproduce (LP over y_1, y_2)
    h_2: float  # exact; the seed never prints it
    terms: dict[str, tuple[float, ...]]  # dE_i/dθ at the report's targets
    identity: Identity
    errata: list[Erratum]


def audit(y: Sequence[float] | None = None) -> SeedAudit:
    """Check the seed's claims at targets y, or (None) at the targets that best explain them."""
    cf = claims_file()
    report = check.check(cf, y)
    analysis = report.analysis if report.analysis is not None else check.analyse_targets(cf)
    blocks = building_blocks(cf)
    return SeedAudit(report=report, analysis=analysis, h_2=blocks["h_2"], terms=error_terms(report.targets, cf),
                     identity=identity(cf, blocks["h_1"]), errata=list(ERRATA))


def identity(cf: check.ClaimsFile, h_1: float) -> Identity:
    printed = {cl.theta: cl.printed.value for cl in cf.claims if cl.kind == "dLoss"}
    return Identity(lhs=printed["w_h"], rhs=h_1 * (printed["b1"] - printed["w_x"]))
