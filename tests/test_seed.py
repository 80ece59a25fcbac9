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
    a = seed.analyse()
    names = a.names
    m = seed.model()

    def misfits(y1, y2):
        _, g = m.loss_and_grad(np.array(seed.X), np.array([y1, y2]), h0=0.0)
        return {k: abs(float(g[k].ravel()[0]) - a.printed[k].value) / a.printed[k].half_unit for k in names}

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
    best_without_wx = brute_min(lambda mis: max(v for k, v in mis.items() if k != "w_x"))
    # the LP optimum is a lower bound that the search approaches
    assert a.misfit_all <= best_all * (1 + 1e-9) and best_all <= a.misfit_all * 1.05
    assert a.misfit_without["w_x"] <= best_without_wx * (1 + 1e-9) and best_without_wx <= a.misfit_without["w_x"] * 1.05
    assert a.misfit_all > 1 and a.unreproducible == ["w_x"]
    assert all(v > 10 for k, v in a.misfit_without.items() if k != "w_x")
    assert a.identity_rhs == pytest.approx(0.000905, abs=1e-6)
    # each maximal set really is reproduced by its targets
    for names_set, y in a.maximal_sets:
        g = seed.gradients(y)
        for k in names_set:
            assert abs(g[k] - a.printed[k].value) <= a.printed[k].half_unit * (1 + 1e-6)


def test_errata_cover_the_issue_kinds():
    text = " ".join(" ".join(e) for e in seed.ERRATA)
    for needle in ("1/(1 + e^{-x})", "(y'_i - y_i)", "dE_i/dw_x", "dE_i/dw_h", "dE_2/db_1", "predictions y'_1"):
        assert needle in text


def test_seed_model_is_the_seeds_setup():
    m = seed.model()
    assert isinstance(m, bptt.RNN)
    assert all(float(getattr(m, k).ravel()[0]) == 1.0 for k in bptt.PARAM_NAMES)
