"""The seed's worked example, its printed precision, and the target analysis."""

import numpy as np
import pytest

import bptt
from bptt import seed
from bptt.audit import Printed, min_misfit


def sgm(z):
    return 1 / (1 + np.exp(-z))


def test_building_blocks_to_the_seeds_printed_precision():
    b = seed.building_blocks()
    # independent by-hand values
    h1 = sgm(1 * 1 + 1 * 0 + 1)
    assert b["h_1"] == pytest.approx(h1, rel=1e-15)
    assert round(b["h_1"], 2) == 0.88
    assert round(b["1 - h_1"], 2) == 0.12
    assert round(b["y'_2"], 3) == 0.866
    # the seed prints 0.867 for y'_1 = 0.86770...: truncated, not rounded (an erratum)
    assert np.floor(b["y'_1"] * 1000) / 1000 == 0.867
    assert round(b["y'_1"], 3) == 0.868


def test_target_free_identity_holds_for_any_targets():
    rng = np.random.default_rng(0)
    h1 = seed.building_blocks()["h_1"]
    for _ in range(5):
        y = tuple(rng.uniform(-1, 2, 2))
        g = seed.gradients(y)
        assert g["w_h"] == pytest.approx(h1 * (g["b1"] - g["w_x"]), rel=1e-12)


def test_printed_precision():
    p = Printed.parse("0.0020")
    assert p.half_unit == pytest.approx(5e-5) and p.significant_figures() == 2
    assert Printed.parse("0.0168").significant_figures() == 3
    assert Printed.parse("0.0168").holds(0.01684) and not Printed.parse("0.0168").holds(0.01686)
    assert Printed.parse("1.5e-3").half_unit == pytest.approx(5e-5)


def test_lp_finds_targets_that_exist():
    """Claims made from known targets, rounded as a person would, are always explained (misfit <= 1)."""
    rng = np.random.default_rng(1)
    for _ in range(5):
        y = rng.uniform(0, 1, 2)
        g = seed.gradients(tuple(y))
        claims = {k: Printed.parse(f"{g[k]:.3g}") for k in g}
        from bptt.audit import affine_in_targets

        names = list(claims)
        c, J = affine_in_targets(lambda yy: [seed.gradients(tuple(yy))[k] for k in names], 2)
        b = np.array([claims[k].value for k in names]) - c
        half = np.array([claims[k].half_unit for k in names])
        t, y_fit = min_misfit(J, b, half)
        assert t <= 1.0
        fitted = seed.gradients(tuple(y_fit))
        assert all(claims[k].holds(fitted[k]) or abs(fitted[k] - claims[k].value) <= claims[k].half_unit * (1 + 1e-6) for k in names)


def test_seed_analysis_matches_a_brute_force_search_over_targets():
    a = seed.audit()
    an = a.analysis
    printed = {r.claim.key: r.claim.printed for r in a.report.rows if r.claim.kind == "dLoss"}
    theta = {r.claim.key: r.claim.theta for r in a.report.rows if r.claim.kind == "dLoss"}
    m = seed.model()
    x = seed.claims_file().x

    def misfits(y1, y2):
        _, g = m.loss_and_grad(np.array(x), np.array([y1, y2]), h0=0.0)
        return {k: abs(float(g[theta[k]].ravel()[0]) - printed[k].value) / printed[k].half_unit for k in printed}

    def brute_min(objective):
        """Grid search over targets, zooming in (independent of the LP)."""
        centre, radius, best = (0.5, 0.5), 1.5, np.inf
        for _ in range(12):
            for y1 in np.linspace(centre[0] - radius, centre[0] + radius, 21):
                for y2 in np.linspace(centre[1] - radius, centre[1] + radius, 21):
                    v = objective(misfits(y1, y2))
                    if v < best:
                        best, arg = v, (y1, y2)
            centre, radius = arg, radius / 2.5
        return best

    best_all = brute_min(lambda mis: max(mis.values()))
    best_without_wx = brute_min(lambda mis: max(v for k, v in mis.items() if k != "dLoss/dw_x"))
    # the LP optimum is a lower bound that the search approaches
    assert an.misfit_all <= best_all * (1 + 1e-9) and best_all <= an.misfit_all * 1.05
    assert (an.misfit_without["dLoss/dw_x"] <= best_without_wx * (1 + 1e-9)
            and best_without_wx <= an.misfit_without["dLoss/dw_x"] * 1.05)
    assert an.misfit_all > 1 and an.unexplainable == ["dLoss/dw_x"]
    assert all(v > 10 for k, v in an.misfit_without.items() if k != "dLoss/dw_x")
    assert a.identity.rhs == pytest.approx(0.000905, abs=1e-6) and a.identity.lhs == 0.002
    # no four hold together (each leave-one-out misfit > 1); each largest set holds at its targets
    assert min(an.misfit_without.values()) > 1 and [len(s.claims) for s in an.largest_sets] == [3, 3, 3]
    for s in an.largest_sets:
        g = seed.gradients(s.targets)
        for k in s.claims:
            assert abs(g[theta[k]] - printed[k].value) <= printed[k].half_unit * (1 + 1e-6)


def test_seed_audit_numbers_match_the_engine():
    """The seed's verdicts are at the fitted targets; each number against a separate engine call."""
    a = seed.audit()
    assert a.report.targets_fitted and a.report.targets == pytest.approx([0.8951, 0.5503], abs=5e-5)
    g = seed.gradients(a.report.targets)
    rows = {r.claim.key: r for r in a.report.rows}
    for k in g:
        key = {"b1": "dLoss/db1", "b2": "dLoss/db2"}.get(k, f"dLoss/d{k}")
        assert rows[key].exact == pytest.approx(g[k], rel=1e-12, abs=1e-15)
        assert np.mean(a.terms[k]) == pytest.approx(g[k], rel=1e-12, abs=1e-15)  # Loss = 1/2 (E_1 + E_2)
    misfit = {k: r.verdict.misfit for k, r in rows.items() if r.claim.kind == "dLoss"}
    assert misfit == pytest.approx({"dLoss/dw": 1.0, "dLoss/dw_x": 2133.3, "dLoss/dw_h": 2.98,
                                    "dLoss/db2": 1.35, "dLoss/db1": 1.37}, abs=0.05)
    assert a.h_2 == pytest.approx(sgm(1 * sgm(2) + 1), rel=1e-15)
    assert [r.verdict.kind for r in a.report.rows][:4] == ["holds", "holds", "truncated", "holds"]


def test_seed_audit_at_given_targets():
    a = seed.audit([0.5, 0.5])
    assert not a.report.targets_fitted and a.report.targets == [0.5, 0.5]
    assert a.analysis.unexplainable == ["dLoss/dw_x"]  # the analysis holds for any targets
    g = seed.gradients((0.5, 0.5))
    assert {r.claim.theta: r.exact for r in a.report.rows if r.claim.kind == "dLoss"} == pytest.approx(g, rel=1e-12)


def test_the_packaged_claims_are_the_example_file():
    """One set of claims: examples/seed_claims.toml is the packaged file, byte for byte."""
    from importlib import resources
    from pathlib import Path

    packaged = resources.files("bptt").joinpath("data", seed.CLAIMS_FILE).read_bytes()
    assert (Path(__file__).resolve().parents[1] / "examples" / "seed_claims.toml").read_bytes() == packaged


def test_errata_cover_the_issue_kinds():
    text = " ".join(f"{e.what} {e.printed} {e.correct}" for e in seed.ERRATA)
    for needle in ("1/(1 + e^{-x})", "(y'_i - y_i)", "dE_i/dw_x", "dE_i/dw_h", "dE_2/db_1", "predictions y'_1"):
        assert needle in text
    assert len(seed.ERRATA) == 13 and len(seed.audit().errata) == 13


def test_the_derivation_writes_its_differences_from_the_one_errata_list(monkeypatch):
    """`bptt explain`'s "Differences" bullets are seed.ERRATA's document texts, in order: change one there and
    the document follows (no second copy in derive.py)."""
    from bptt import derive

    bullets = [e.document for e in seed.ERRATA if e.document]
    assert len(bullets) == 6
    doc = derive.explain({k: 1.0 for k in bptt.PARAM_NAMES}, [1.0, 0.0], fmt="md")
    tail = doc.split("## Differences from the seed's hand derivation")[1]
    assert [ln.split(". ", 1)[1] for ln in tail.strip().splitlines()] == bullets
    changed = [seed.ERRATA[0]._replace(document="A changed bullet.")] + seed.ERRATA[1:]
    monkeypatch.setattr(seed, "ERRATA", changed)
    doc = derive.explain({k: 1.0 for k in bptt.PARAM_NAMES}, [1.0, 0.0], fmt="md")
    assert "1. A changed bullet." in doc and "the seed prints $1/(1 - e^{-x})$" not in doc


def test_a_squared_error_erratum_is_said_to_be_about_the_seeds_loss():
    """With bce the sign bullet cannot claim dE_i/dy'_i = (y'_i - y_i) for the document's own loss."""
    from bptt import derive

    doc = derive.explain({k: 1.0 for k in bptt.PARAM_NAMES}, [1.0, 0.0], fmt="text", loss="bce")
    tail = " ".join(doc.split("Differences from the seed's hand derivation")[1].split())
    assert "With the seed's loss E_i = 1/2 (y_i - y'_i)^2: dE_i/dy'_i = (y'_i - y_i)" in tail


def test_seed_model_is_the_seeds_setup():
    m = seed.model()
    assert isinstance(m, bptt.RNN)
    assert all(float(getattr(m, k).ravel()[0]) == 1.0 for k in bptt.PARAM_NAMES)


def test_seed_command_fitted_or_given_targets(capsys):
    from bptt.cli import main

    assert main(["seed"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # as one line: the console wraps at 80 columns
    assert "gradients at y = (0.8951, 0.5503), fitted" in out and "Fitted targets" in out
    assert "off 2133x" in out and "23.1x" in out and "0.000905 on the right" in out
    assert main(["seed", "--y", "0.9,0.5"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "gradients at y = (0.9000, 0.5000), given with --y" in out
    assert "Fitted targets" not in out and "fitted" not in out.split("Which printed")[0]
    assert "dLoss/dw_x = 0.001122 is the gradient no choice" in out  # the analysis holds for any y
