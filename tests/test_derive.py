"""bptt.derive: the symbolic chain-rule terms equal the numeric engine; the document is right and readable."""

from __future__ import annotations

import dataclasses
import math
import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bptt import activations, derive, losses
from bptt.cli import main
from bptt.engine import PARAM_NAMES
from bptt.model import RNN

SEED = {"w": 1.0, "w_x": 1.0, "w_h": 1.0, "b1": 1.0, "b2": 1.0}

small = st.floats(-1.5, 1.5, allow_nan=False, allow_infinity=False)


# Every (output activation, loss) pair the derivation can write: sympy parts, and a one-output network.
PAIRS = [(g, name) for g in activations.OUTPUT_ACTIVATIONS if "sympy" in activations.ACTIVATIONS[g].backends
         for name, rec in losses.LOSSES.items() if rec.outputs is None or g in rec.outputs]


def test_the_pairs_are_the_scalar_ones():
    assert sorted(PAIRS) == [("identity", "squared_error"), ("sigmoid", "bce"), ("sigmoid", "squared_error")]


@st.composite
def problems(draw, max_T=6):
    T = draw(st.integers(1, max_T))
    params = {k: draw(small) for k in PARAM_NAMES}
    x = [draw(small) for _ in range(T)]
    output, loss = draw(st.sampled_from(PAIRS))
    lo = 0 if loss == "bce" else -1  # bce's targets are probabilities
    y = [draw(st.floats(lo, 1)) for _ in range(T)]
    return dict(T=T, params=params, x=x, y=y, h0=draw(small),
                hidden=draw(st.sampled_from(activations.HIDDEN_ACTIVATIONS)), output=output, loss=loss,
                reduction=draw(st.sampled_from(["mean", "sum"])))


def _engine(pb):
    m = RNN.scalar(**pb["params"], hidden_activation=pb["hidden"], output_activation=pb["output"], loss=pb["loss"])
    x, y = np.array(pb["x"]), np.array(pb["y"])
    _, g = m.loss_and_grad(x, y, h0=pb["h0"], reduction=pb["reduction"], backend="numpy")
    dec = m.decompose(x, y, h0=pb["h0"], reduction=pb["reduction"])
    fwd = m.forward(x, h0=pb["h0"])
    return g, dec, fwd


def _subs(d: derive.Derivation, pb) -> dict:
    import sympy as sp

    vals = d.values(pb["params"], pb["x"], pb["h0"])
    for t in range(1, d.T + 1):
        vals[d.y[t]] = sp.Float(pb["y"][t - 1], 30)
    return vals


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_symbolic_terms_equal_engine(pb):
    """Every sympy expression (totals, terms, paths), evaluated at the numbers, equals RNN.loss_and_grad/decompose."""
    d = derive.Derivation(pb["T"], pb["hidden"], pb["output"], pb["reduction"], pb["loss"])
    vals = _subs(d, pb)
    g, dec, fwd = _engine(pb)
    T = pb["T"]
    # the states the symbolic recurrence produces are the engine's
    np.testing.assert_allclose([float(vals[d.h[t]]) for t in range(T + 1)], fwd.h[:, 0], rtol=0, atol=1e-12)
    for k in PARAM_NAMES:
        total = float(d.total_expr(k).xreplace(vals))
        assert abs(total - g[k].ravel()[0]) <= 1e-12
        for i in range(1, T + 1):
            term = d.term(k, i)
            assert abs(float(term.expr().xreplace(vals)) - dec.terms[k][i - 1].ravel()[0]) <= 1e-12
            for kk in range(1, T + 1):
                path = float(term.path_expr(kk).xreplace(vals))
                assert abs(path - dec.paths[k][i - 1, kk - 1].ravel()[0]) <= 1e-12


@settings(max_examples=25, deadline=None)
@given(problems())
def test_numbers_equal_engine(pb):
    """The document's numbers (factors multiplied out, y kept apart) equal the engine, with y given and as affine forms."""
    d, n = derive.derive(pb["params"], pb["x"], pb["h0"], None, pb["hidden"], pb["output"], pb["reduction"], pb["loss"])
    g, dec, fwd = _engine(pb)
    y = np.array(pb["y"])
    for k in PARAM_NAMES:
        assert abs(n.grads(y)[k] - g[k].ravel()[0]) <= 1e-12
        assert abs(n.grad_affine(k) @ np.r_[1.0, y] - g[k].ravel()[0]) <= 1e-12
        np.testing.assert_allclose(n.paths(y)[k], dec.paths[k].reshape(pb["T"], pb["T"]), rtol=0, atol=1e-12)
    np.testing.assert_allclose(n.y_pred, fwd.y_pred[:, 0], rtol=0, atol=1e-12)


@settings(max_examples=4, deadline=None)
@given(problems(max_T=3))
def test_chain_rule_form_equals_sympy_diff_of_unrolled_loss(pb):
    """Independent of the engine: sympy.diff of the fully unrolled E_i, and per-step parameter copies for paths."""
    _chain_rule_equals_sympy_diff(pb)


@pytest.mark.parametrize("output, loss", PAIRS)
def test_chain_rule_form_equals_sympy_diff_for_each_loss(output, loss):
    """The same, for every pair at a fixed random point: hypothesis may not draw each loss."""
    rng = np.random.default_rng(7)
    pb = dict(T=3, params=dict(zip(PARAM_NAMES, rng.uniform(-1.5, 1.5, 5))), x=list(rng.uniform(-1, 1, 3)),
              y=list(rng.uniform(0, 1, 3)), h0=0.3, hidden="tanh", output=output, loss=loss, reduction="mean")
    _chain_rule_equals_sympy_diff(pb)


def _chain_rule_equals_sympy_diff(pb):
    import sympy as sp

    d = derive.Derivation(pb["T"], pb["hidden"], pb["output"], pb["reduction"], pb["loss"])
    vals = _subs(d, pb)
    # the loss is the table's: E_i at the numbers is its numpy value (independent of sympy)
    E, _ = d.unrolled_errors()
    fwd = _engine(pb)[2]
    rec = losses.get(pb["loss"])
    for i in range(1, d.T + 1):
        want = rec.value(None, fwd.y_pred[i - 1], np.array([pb["y"][i - 1]]))
        assert abs(float(E[i].xreplace(vals)) - float(want)) <= 1e-12
    Es, copies = d.unrolled_errors(split=True)
    split_vals = dict(vals)
    for (name, _t), s in copies.items():
        split_vals[s] = vals[d.theta[name]]
    for k in PARAM_NAMES:
        for i in range(1, d.T + 1):
            term = d.term(k, i)
            ours = float(term.expr().xreplace(vals))
            assert abs(ours - float(sp.diff(E[i], d.theta[k]).xreplace(vals))) <= 1e-12
            for kk in range(1, i + 1):  # path kk: the parameter's copy in step kk (z_kk or u_kk)
                if (k, kk) not in copies:
                    continue
                exact = float(sp.diff(Es[i], copies[(k, kk)]).xreplace(split_vals))
                assert abs(float(term.path_expr(kk).xreplace(vals)) - exact) <= 1e-12


def test_seed_terms_equal_the_derivative_to_50_digits():
    """T = 2, sigmoid, at 50-digit precision: the chain-rule form minus sympy's derivative vanishes to 1e-40,
    i.e. beyond anything float64 rounding could hide (an identity, checked at random points)."""
    import sympy as sp

    d = derive.Derivation(2)
    E, _ = d.unrolled_errors()
    rng = np.random.default_rng(3)
    for _ in range(3):
        vals = {s: sp.Float(str(v), 50) for s, v in zip(
            [*d.theta.values(), d.h[0], d.x[1], d.x[2], d.y[1], d.y[2]], rng.uniform(-1.5, 1.5, 10))}
        for t in (1, 2):
            vals[d.h[t]] = d.f.sym_value(d.z[t]).xreplace(vals)
        for k in PARAM_NAMES:
            for i in (1, 2):
                diff = d.term(k, i).expr().xreplace(vals) - sp.diff(E[i], d.theta[k]).xreplace(vals)
                assert abs(sp.N(diff, 50)) < sp.Float("1e-40")


def test_local_derivatives_come_from_the_activation_table(monkeypatch):
    """Change the table's sigmoid derivative: the derivation's expressions and text follow (one source)."""
    sig = activations.ACTIVATIONS["sigmoid"]
    fake = dataclasses.replace(sig, sym_deriv=lambda a: 2 * a * (1 - a), deriv_text="2{a}(1 - {a})")
    monkeypatch.setitem(activations.ACTIVATIONS, "sigmoid", fake)
    d, n = derive.derive(SEED, [1.0, 0.0])
    s2 = 1 / (1 + math.exp(-2))
    assert n.fprime[0] == pytest.approx(2 * s2 * (1 - s2), abs=1e-15)
    assert r"2\operatorname{sgm}(w_x x_{1} + w_h h_{0} + b_1)(1 - " in d.render(n, "md")


def _sig(v):
    return 1 / (1 + math.exp(-v))


def test_seed_document_numbers_and_form():
    """The corrected seed: its factors written as the seed writes them, numbers computed here by hand (math)."""
    doc = derive.explain(SEED, [1.0, 0.0], fmt="md")
    h1 = _sig(2.0)
    h2 = _sig(1.0 * 0.0 + 1.0 * h1 + 1.0)
    y1, y2 = _sig(h1 + 1), _sig(h2 + 1)
    g1, g2 = y1 * (1 - y1), y2 * (1 - y2)
    assert f"= {h1:.6g}" in doc and f"= {y1:.6g}" in doc and f"= {y2:.6g}" in doc
    # dLoss/db_2 = 1/2 [(y'_1 - y_1) g'_1 + (y'_2 - y_2) g'_2]
    assert rf"\frac{{d\mathrm{{Loss}}}}{{db_2}} &= {0.5 * (y1 * g1 + y2 * g2):.6g} - {0.5 * g1:.6g}\, y_{{1}} - {0.5 * g2:.6g}\, y_{{2}}" in doc
    # dLoss/dw_h = 1/2 (y'_2 - y_2) g'_2 w f'(z_2) h_1 (the k = 1 path carries h_0 = 0)
    c = 0.5 * g2 * 1.0 * h2 * (1 - h2) * h1
    assert rf"\frac{{d\mathrm{{Loss}}}}{{dw_h}} &= {c * y2:.6g} - {c:.6g}\, y_{{2}}" in doc
    assert r"\operatorname{sgm}(w_x x_{2} + w_h h_{1} + b_1)(1 - \operatorname{sgm}(w_x x_{2} + w_h h_{1} + b_1))" in doc
    assert r"(y'_{1} - y_{1})" in doc and "(y_{1} - y'_{1})" not in doc  # the true sign
    assert r"\frac{1}{1 + e^{- z}}" in doc  # sgm with the plus sign
    for theta in ("w", "w_x", "w_h", "b_2", "b_1"):
        assert rf"\frac{{d\mathrm{{Loss}}}}{{d{theta}}} &= \frac{{1}}{{2}} \sum_{{i=1}}^{{2}}" in doc
    assert "Check: these numbers equal the numeric BPTT engine" in doc


def test_long_sequences_name_repeated_factors():
    x = list(np.sin(np.arange(40)))
    doc40 = derive.explain(SEED, x, y=[0.5] * 40, fmt="md")
    doc80 = derive.explain(SEED, list(np.sin(np.arange(80))), y=[0.5] * 80, fmt="md")
    assert r"P_{i,k}" in doc40 and r"\delta_i" in doc40
    assert "w_x x_{1} + w_h h_{0}" not in doc40  # no written-out factors
    assert len(doc80) < 2.3 * len(doc40)  # O(T) lines, not O(T^2)


@pytest.mark.parametrize("fmt", ["md", "tex", "text"])
def test_formats_render(fmt):
    doc = derive.explain(SEED, [1.0, 0.0, 0.5], y=[0.2, 0.4, 0.6], hidden_activation="tanh",
                         output_activation="identity", reduction="sum", fmt=fmt)
    assert "For" in doc and "Results" in doc
    if fmt == "text":
        assert "\\" not in doc and "$" not in doc
        assert "(1 - tanh(w_x x_1 + w_h h_0 + b_1)^2)" in doc
    if fmt == "tex":
        assert doc.startswith(r"\documentclass") and doc.rstrip().endswith(r"\end{document}")


def test_tex_to_text():
    assert derive.tex_to_text(r"\frac{dE_{1}}{dw_x}") == "dE_1/dw_x"
    assert derive.tex_to_text(r"\frac{\partial h_k}{\partial \theta}") == "∂h_k/∂θ"
    assert derive.tex_to_text(r"\frac{1}{1 + e^{- z}}") == "1/(1 + e^{- z})"


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
@pytest.mark.parametrize("T", [2, 9])
def test_tex_compiles(tmp_path, T):
    x = [1.0, 0.0] if T == 2 else list(np.cos(np.arange(T)))
    (tmp_path / "d.tex").write_text(derive.explain(SEED, x, y=None if T == 2 else [0.5] * T, fmt="tex"))
    r = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "d.tex"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-2000:]
    assert (tmp_path / "d.pdf").stat().st_size > 1000


def test_cli_explain_out(tmp_path, capsys):
    out = tmp_path / "seed.md"
    assert main(["explain", "--out", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("# BPTT derivation: T = 2")
    out.write_text("mine")
    assert main(["explain", "--out", str(out)]) == 2
    assert out.read_text() == "mine"  # not overwritten
    err = capsys.readouterr().err
    assert "exists" in err and "--force" in err
    assert main(["explain", "--out", str(out), "--force", "--format", "text"]) == 0
    assert out.read_text().startswith("BPTT derivation")
    assert [p.name for p in tmp_path.iterdir()] == ["seed.md"]  # no temporary files left


@pytest.mark.parametrize("argv, word", [
    (["explain", "--format", "pdf"], "--format"),
    (["explain", "--x", "1,0", "--y", "1"], "--y"),
    (["explain", "--x", "1,a"], "--x"),
    (["explain", "--hidden-activation", "softplus"], "hidden_activation"),
    (["explain", "--reduction", "max"], "reduction"),
    (["explain", "--expand", "-1"], "--expand"),
    (["explain", "--out", "/nonexistent-dir/x.md"], "--out"),
])
def test_cli_explain_bad_input(argv, word, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and word in err and "\n" not in err


# ------------------------------------------------------------------ the self-check does not claim agreement it lacks
RELU_KINK = {"w": 1.0, "w_x": 1.0, "w_h": 1.0, "b1": -1.0, "b2": 1.0}  # z_1 = 1 * 1 + 1 * 0 - 1 = 0


def test_relu_kink_is_flagged_not_called_agreement(capsys):
    """z_1 = 0 exactly, where relu has no derivative: the document says so instead of 'equal ... to 2.3e-02'."""
    assert main(["explain", "--hidden-activation", "relu", "--b1=-1", "--x", "1,0", "--y", "0.5,0.5",
                 "--format", "text"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert ("z_1 = 0 at a kink of relu: the derivative there is a convention (0 here); finite differences disagree"
            in out)
    assert "sympy's derivative of the fully unrolled E_i (every dE_i/dθ) to" not in out  # no claim of agreement
    assert "Check: these numbers equal the numeric BPTT engine" in out  # the engine takes the same convention
    d, n = derive.derive(RELU_KINK, [1.0, 0.0], y=[0.5, 0.5], hidden_activation="relu")
    c = derive.check_against(d, n)
    assert c.kinks == (1,) and c.fd_max_abs > 1e-3 and not c.sympy_agrees and c.engine_agrees


def test_relu_away_from_the_kink_agrees_with_sympy():
    d, n = derive.derive(dict(RELU_KINK, b1=-0.25), [1.0, 0.0], y=[0.5, 0.5], hidden_activation="relu")
    c = derive.check_against(d, n)
    assert c.kinks == () and c.sympy_agrees and c.engine_agrees and c.fd_max_abs is None
    assert "and sympy's derivative of the fully unrolled" in d.render(n, "md", check=c)


@pytest.mark.parametrize("rel, agrees", [(1e-12, True), (5e-10, True), (2e-9, False), (2.3e-2, False)])
def test_disagreement_above_1e_9_relative_is_never_agreement(rel, agrees):
    d, n = derive.derive(SEED, [1.0, 0.0])
    c = derive.Check(engine_max_abs=rel * 0.5, sympy_max_abs=rel * 0.5, scale=0.5)
    doc = d.render(n, "text", check=c)
    assert ("Check: these numbers equal" in doc) == agrees
    assert ("Check FAILED" in doc) == (not agrees)


def test_a_wrong_number_is_caught():
    """Spoil one path of the evaluated derivation: the check against the engine reports it."""
    d, n = derive.derive(SEED, [1.0, 0.0, 0.5], y=[0.2, 0.4, 0.6])
    n.R["w_h"][2, 1] *= 1 + 1e-6
    c = derive.check_against(d, n)
    assert not c.engine_agrees
    assert "Check FAILED: these numbers differ from the numeric BPTT engine" in d.render(n, "md", check=c)


# ------------------------------------------------------------------ bounded work
@pytest.mark.parametrize("argv", [["--expand", str(derive.EXPAND_MAX + 1)], ["--expand", "1000"]])
def test_expand_is_capped(argv, capsys):
    assert main(["explain", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --expand") and f"from 0 to {derive.EXPAND_MAX}" in err and "\n" not in err
    with pytest.raises(derive.BPTTError, match="expand"):
        derive.explain(SEED, [1.0, 0.0], expand=1000)


def test_largest_written_out_document_is_small():
    x = list(np.sin(np.arange(derive.EXPAND_MAX)))
    for fmt in derive.FORMATS:
        doc = derive.explain(SEED, x, fmt=fmt, expand=derive.EXPAND_MAX)
        assert len(doc) < 1_500_000, fmt


@pytest.mark.slow
def test_longest_sequence_is_checked_once_and_bounded_in_every_format(monkeypatch):
    """T = MAX_T: the engine check is one run of the O(T^2) decomposition (one generic target vector,
    not T + 1 affine probes), sympy is skipped, and every format (the page too) is a complete document
    of bounded size.  How long that takes is the benchmarks' business, not a test's."""
    calls = {"decompose": 0, "loss_and_grad": 0}
    for name in calls:
        orig = getattr(RNN, name)

        def counted(self, *a, _orig=orig, _name=name, **kw):
            calls[_name] += 1
            return _orig(self, *a, **kw)

        monkeypatch.setattr(RNN, name, counted)
    T = derive.MAX_T
    d, n = derive.derive(SEED, list(np.sin(np.arange(T))))
    c = derive.check_against(d, n)
    assert calls == {"decompose": 1, "loss_and_grad": 1}
    assert c.engine_agrees and c.sympy_max_abs is None and not c.kinks
    ends = {"tex": r"\end{document}", "html": "</html>"}
    for fmt in derive.FORMATS:
        doc = d.render(n, fmt, expand=derive.EXPAND_MAX, check=c)
        assert 0 < len(doc) < 5_000_000, fmt
        assert doc.rstrip().endswith(ends.get(fmt, "")), fmt  # whole: the LaTeX and the page are closed


# ------------------------------------------------------------------ one document, four renderers
def test_marks_do_not_reach_md_tex_text():
    d, n = derive.derive(SEED, [1.0, 0.0])
    doc = d.document(n)
    assert any("\ue000" in ln for b in doc.blocks if b.kind == "eq" for ln in b.data)  # marked for the page
    for fmt in ("md", "tex", "text"):
        assert not any(ch in d.render(n, fmt) for ch in "\ue000\ue001\ue002")


def _expected_edges(theta: str, i: int, k: int) -> set[str]:
    """Written independently of derive: the edges path k of dE_i/dθ runs along."""
    if theta == "w":
        return {f"h{i}-y{i}"}
    if theta == "b2":
        return {f"b2-y{i}"}
    chain = {f"h{j - 1}-h{j}" for j in range(k + 1, i + 1)} | {f"h{i}-y{i}"}
    entry = {"w_x": f"x{k}-h{k}", "w_h": f"h{k - 1}-h{k}", "b1": f"b1-h{k}"}[theta]
    return chain | {entry}


@pytest.mark.parametrize("T", [1, 2, 5])
def test_figure_paths_run_along_the_chain_rule(T):
    d, n = derive.derive(SEED, list(np.cos(np.arange(T))))
    fig = next(b.data for b in d.document(n, expand=T).blocks if b.kind == "figure")
    assert len(fig.nodes) == 3 * T + 1
    ids = {e.id for e in fig.edges}
    seen = set()
    for p in fig.paths:
        assert set(p.edges) == _expected_edges({"w_x": "w_x", "w_h": "w_h", "b_1": "b1", "b_2": "b2", "w": "w"}[p.theta],
                                               p.i, p.k)
        assert set(p.edges) <= ids
        seen.add(p.tag)
    assert len(seen) == 2 * T + 3 * T * (T + 1) // 2  # w, b_2: one path per term; w_x, w_h, b_1: i paths
    short = next(b.data for b in d.document(n, expand=T - 1).blocks if b.kind == "figure")
    assert short.paths == () and len(short.nodes) == 3 * T + 1  # beyond --expand: the states only


# ------------------------------------------------------------------ the loss, from the loss table
def _parse(text: str, p: str, y: str):
    """Plain text such as "(y'_1 - y_1)/(y'_1(1 - y'_1))" as a sympy expression in the symbols p (y') and y."""
    import sympy as sp
    from sympy.parsing.sympy_parser import (convert_xor, implicit_multiplication_application, parse_expr,
                                            standard_transformations)

    text = text.replace(p, " P ").replace(y, " Y ")
    tr = standard_transformations + (implicit_multiplication_application, convert_xor)
    return parse_expr(text, transformations=tr, local_dict={"P": sp.Symbol("P"), "Y": sp.Symbol("Y"), "log": sp.log})


@pytest.mark.parametrize("output, loss", PAIRS)
def test_what_the_document_writes_for_the_loss_is_its_sympy_form(output, loss):
    """The texts of E_i and dE_i/dy'_i, read back as formulas, equal the table's sym_value and its derivative."""
    import sympy as sp

    d = derive.Derivation(2, "sigmoid", output, "mean", loss)
    P, Y = sp.Symbol("P"), sp.Symbol("Y")
    E = losses.get(loss).sym_value(P, Y)
    assert sp.simplify(_parse(derive.tex_to_text(d.loss_tex("i")), "y'_i", "y_i") - E) == 0
    err = _parse(derive.tex_to_text(d.err_tex("y'_1", "y_1")), "y'_1", "y_1")
    assert sp.simplify(err - sp.diff(E, P)) == 0
    fac = d.factor("err", 1)  # the factor's expression is that derivative at y'_1 = g(u_1)
    assert sp.simplify(fac.expr - sp.diff(E, P).xreplace({P: d.y_pred[1], Y: d.y[1]})) == 0


@pytest.mark.parametrize("output, loss, cancels", [("sigmoid", "bce", True), ("sigmoid", "squared_error", False),
                                                   ("identity", "squared_error", False)])
def test_the_matching_pair_shows_the_cancellation(output, loss, cancels):
    d, n = derive.derive(SEED, [1.0, 0.0], output_activation=output, loss=loss)
    assert d.cancels == cancels
    doc = " ".join(d.render(n, "text").split())
    shown = "dE_i/du_i = dE_i/dy'_i · dy'_i/du_i = (y'_i - y_i)/(y'_i(1 - y'_i)) · y'_i(1 - y'_i) = (y'_i - y_i)"
    assert (shown in doc) == cancels
    assert ("matching pair (sigmoid output, bce)" in doc) == cancels


def test_bce_document_numbers_by_hand():
    """bce with the seed's network: dE_i/db_2 = (y'_i - y_i) exactly, so dLoss/db_2 = 1/2 sum_i (y'_i - y_i);
    dE_i/dw = (y'_i - y_i) h_i. Expected values from math alone."""
    doc = derive.explain(SEED, [1.0, 0.0], fmt="md", loss="bce")
    h1 = _sig(2.0)
    h2 = _sig(h1 + 1)
    y1, y2 = _sig(h1 + 1), _sig(h2 + 1)
    assert doc.startswith("# BPTT derivation: T = 2, hidden sigmoid, output sigmoid, reduction mean, loss bce")
    assert r"E_i &= -(y_i \log y'_i + (1 - y_i) \log(1 - y'_i))" in doc
    assert rf"\frac{{d\mathrm{{Loss}}}}{{db_2}} &= {0.5 * (y1 + y2):.6g} - 0.5\, y_{{1}} - 0.5\, y_{{2}}" in doc
    assert rf"\frac{{d\mathrm{{Loss}}}}{{dw}} &= {0.5 * (y1 * h1 + y2 * h2):.6g} - {0.5 * h1:.6g}\, y_{{1}}" in doc
    # the numbers-in line shows kappa's denominator y'(1 - y') beside g'(u) = the same number
    assert rf"\frac{{dE_{{1}}}}{{db_2}} &= \frac{{{y1:.6g} - y_{{1}}}}{{{y1 * (1 - y1):.6g}}} \cdot {y1 * (1 - y1):.6g} \cdot 1" in doc
    assert "Check: these numbers equal the numeric BPTT engine" in doc and "Check FAILED" not in doc
    assert r"\frac{1}{2} (y_i - y'_i)^2" in doc  # named as the seed's loss, not this document's


def test_bce_with_a_saturated_output_stays_finite_and_equals_the_engine():
    """u = 60: y' rounds to 1 in float64, so 1/(y'(1 - y')) overflows there; the derivation multiplies
    kappa by g'(u) at 30 digits and gets (y' - y) like the engine."""
    params = dict(SEED, w=30.0, b2=30.0)
    d, n = derive.derive(params, [1.0, 0.0], y=[0.0, 1.0], loss="bce")
    _, g = RNN.scalar(**params, loss="bce").loss_and_grad([1.0, 0.0], [0.0, 1.0], backend="numpy")
    for k in PARAM_NAMES:
        assert np.isfinite(n.grads()[k]) and abs(n.grads()[k] - g[k].ravel()[0]) <= 1e-12
    assert derive.check_against(d, n).engine_agrees


@pytest.mark.parametrize("call, words", [
    (lambda: derive.Derivation(2, loss="cross_entropy"), ["cross_entropy", "one output", "'squared_error' or 'bce'"]),
    (lambda: derive.Derivation(2, output_activation="identity", loss="bce"), ["bce", "sigmoid", "squared_error"]),
    (lambda: derive.Derivation(2, loss="mse"), ["mse", "squared_error"]),
    (lambda: derive.derive(SEED, [1.0, 0.0], y=[1.5, 0.0], loss="bce"), ["[0, 1]", "1.5"]),
])
def test_a_loss_the_derivation_cannot_write_is_refused_in_one_line(call, words):
    with pytest.raises(derive.BPTTError) as e:
        call()
    msg = str(e.value)
    assert "\n" not in msg and all(w in msg for w in words), msg


def test_a_loss_whose_derivative_is_not_affine_in_the_target_is_refused(monkeypatch):
    """A loss with dE/dy' = (y' - y)^3 cannot keep (y'_i - y_i) apart: refused, never written as another loss."""
    fake = dataclasses.replace(losses.LOSSES["squared_error"], name="quartic", sym_value=lambda p, y: (p - y) ** 4 / 4)
    monkeypatch.setitem(losses.LOSSES, "quartic", fake)
    with pytest.raises(derive.BPTTError, match="'quartic' has dE/dy' = .*not \\(y' - y\\) times a function of y'"):
        derive.Derivation(2, loss="quartic")


@pytest.mark.parametrize("fmt", ["md", "tex", "text", "html"])
def test_cli_explain_loss_in_every_format(fmt, capsys):
    assert main(["explain", "--loss", "bce", "--format", fmt, "--y", "1,0"]) == 0
    out = capsys.readouterr().out
    assert "loss bce" in out and "Check: these numbers equal" in out and "Check FAILED" not in out


@pytest.mark.parametrize("argv, words", [
    (["--loss", "mse"], ["--loss 'mse'", "squared_error, bce"]),
    (["--loss", "cross_entropy"], ["cross_entropy", "one output", "'squared_error' or 'bce'"]),
    (["--loss", "cross_entropy", "--output-activation", "softmax"], ["cross_entropy", "one output"]),
    (["--loss", "bce", "--output-activation", "identity"], ["bce", "sigmoid"]),
    (["--loss", "bce", "--y", "2,0"], ["[0, 1]", "--loss squared_error"]),
])
@pytest.mark.parametrize("command", ["grad", "explain"])
def test_cli_loss_refusals_are_one_line_exit_2(command, argv, words, capsys):
    extra = ["--x", "1,0", "--y", "1,0"] if command == "grad" and "--y" not in argv else ["--x", "1,0"]
    assert main([command, *extra, *argv]) == 2
    out, err = capsys.readouterr()
    err = err.strip()
    assert out == "" and err.startswith("error:") and "\n" not in err and "Traceback" not in err
    assert all(w in err for w in words), err


def test_the_library_writes_the_same_live_page_as_the_command(tmp_path):
    """derive.explain(fmt="html") is the live page up to html.LIVE_MAX_T steps, as `bptt explain --format html`."""
    from bptt import derive, html
    from bptt.cli import main

    params = {"w": 1.0, "w_x": 1.0, "w_h": 1.0, "b1": 1.0, "b2": 1.0}
    page = derive.explain(params, [1.0, 0.0], fmt="html")
    assert '<section id="live"' in page
    out = tmp_path / "page.html"
    assert main(["explain", "--format", "html", "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == page
    long_page = derive.explain(params, [0.1] * (html.LIVE_MAX_T + 1), fmt="html", expand=0)
    assert '<section id="live"' not in long_page
