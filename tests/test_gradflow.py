"""Gradient-flow maps: the normalised map against a direct computation, sub-sampled maps against the
full one, the bound on long sequences, and `bptt gradflow`'s formats, --raw and steps."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bptt import RNN, BPTTError, tasks
from bptt.activations import HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS
from helpers import outputs_for
from bptt import gradflow as gf
from bptt.cli import main


def _model(act: str = "tanh", H: int = 3, seed: int = 1, scale: float = 1.5) -> RNN:
    m = RNN(2, H, 1, act, "sigmoid", seed=seed)
    m.set_params(**{k: scale * v for k, v in m.params().items()})
    return m


def _direct_norms(m: RNN, x: np.ndarray, y: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """G[t, k] = ||dE_t/dh_k|| by central differences: nudge h_k, rerun the network from it to step t."""
    T, H = len(x), m.hidden_size
    h = m.forward(x).h  # (T+1, H): h[k + 1] is the 0-based step k's state
    p = m.params()

    def E(t: int, k: int, hk: np.ndarray) -> float:
        if k == t:
            y_pred = 1 / (1 + np.exp(-(hk @ p["w"].T + p["b2"])))  # (O,): the sigmoid read-out of h_t
        else:
            y_pred = m.forward(x[k + 1: t + 1], h0=hk).y_pred[-1]  # (O,)
        return 0.5 * float(np.sum((y[t] - y_pred) ** 2))

    G = np.full((T, T), np.nan)
    for t in range(T):
        for k in range(t + 1):
            grad = [(E(t, k, h[k + 1] + eps * e) - E(t, k, h[k + 1] - eps * e)) / (2 * eps) for e in np.eye(H)]
            G[t, k] = np.linalg.norm(grad)
    return G


@pytest.mark.parametrize("act", ["sigmoid", "tanh"])
def test_normalised_map_equals_direct_computation(act):
    rng = np.random.default_rng(3)
    x, y = rng.uniform(size=(6, 2)), rng.uniform(size=(6, 1))  # (T, D), (T, O)
    m = _model(act)
    G = _direct_norms(m, x, y)  # (T, T)
    R = G / np.diagonal(G)[:, None]  # (T, T): the definition, R[t, k] = ||dE_t/dh_k|| / ||dE_t/dh_t||
    tol = dict(rtol=1e-6, atol=1e-8)  # central differences: ~1e-10 of rounding in each gradient
    np.testing.assert_allclose(gf.normalise_flow(gf.gradient_flow(m, x, y)), R, **tol)
    fm = gf.flow_map(m, x, y)
    assert fm.normalised and np.array_equal(fm.steps, np.arange(6)) and fm.length == 6
    np.testing.assert_allclose(fm.values, R, **tol)
    np.testing.assert_allclose(gf.flow_map(m, x, y, normalise=False).values, G, **tol)
    np.testing.assert_array_equal(np.diagonal(fm.values), 1.0)


def test_normalise_flow_blanks_rows_without_signal():
    G = np.array([[2.0, np.nan, np.nan], [1.0, 0.0, np.nan], [np.nan, np.nan, np.nan]])
    R = gf.normalise_flow(G)
    assert R[0, 0] == 1.0 and np.isnan(R[1]).all() and np.isnan(R[2]).all()
    assert np.isnan(G[0, 1])  # G is not changed


def test_flow_map_equals_the_full_map_unscored_rows_and_decay():
    rng = np.random.default_rng(0)
    x, y = rng.uniform(size=(45, 2)), rng.uniform(size=(45, 1))
    y[[3, 10]] = np.nan  # unscored steps
    m = _model("sigmoid", H=4, scale=1.0)
    G = gf.gradient_flow(m, x, np.nan_to_num(y))  # (T, T)
    G[[3, 10]] = np.nan
    raw = gf.flow_map(m, x, y, normalise=False)
    np.testing.assert_allclose(raw.values, G, rtol=1e-12)
    assert np.array_equal(np.isnan(raw.values), np.isnan(G))
    fm = gf.flow_map(m, x, y)
    np.testing.assert_allclose(fm.values, gf.normalise_flow(G), rtol=1e-12)
    want = gf.decay_summary(G)
    assert fm.decay.keys() == want.keys() == {"1", "2", "5", "10", "20", "40"}
    assert all(fm.decay[k] == pytest.approx(want[k], rel=1e-10) for k in want)


@pytest.mark.parametrize("sampling", ["last", "even"])
def test_sub_sampled_map_is_the_full_map_at_the_chosen_steps(sampling):
    rng = np.random.default_rng(1)
    x, y = rng.uniform(size=(60, 2)), rng.uniform(size=(60, 1))
    m = _model("tanh", H=3, scale=1.0)
    s = gf.choose_steps(60, 8, sampling)
    full = gf.normalise_flow(gf.gradient_flow(m, x, y))  # (T, T)
    fm = gf.flow_map(m, x, y, steps=s)
    np.testing.assert_allclose(fm.values, full[np.ix_(s, s)], rtol=1e-10)
    assert len(fm.steps) <= 8 and fm.steps[-1] == 59 and fm.length == 60


def test_choose_steps():
    assert gf.choose_steps(10, 500).tolist() == list(range(10))
    assert gf.choose_steps(10, 500, "even").tolist() == list(range(10))
    assert gf.choose_steps(100000, 500).tolist() == list(range(99500, 100000))
    even = gf.choose_steps(100000, 500, "even")
    assert len(even) == 500 and even[-1] == 99999 and set(np.diff(even)) == {200}
    assert len(gf.choose_steps(1001, 500, "even")) <= 500
    for bad in (dict(max_steps=0), dict(sampling="first")):
        with pytest.raises(BPTTError) as e:
            gf.choose_steps(10, **bad)
        assert "\n" not in str(e.value)


def test_describe_and_steps_of_a_sub_sampled_map():
    m = _model("tanh", H=2)
    x = np.random.default_rng(2).uniform(size=(1000, 2))
    fm = gf.flow_map(m, x, x[:, :1], steps=gf.choose_steps(1000, 50))
    assert fm.describe() == "last 50 of 1000 steps (t = 951..1000)" and fm.stride == 1
    fe = gf.flow_map(m, x, x[:, :1], steps=gf.choose_steps(1000, 50, "even"))
    assert fe.describe() == "50 of 1000 steps, 20 apart (t = 20..1000)" and fe.stride == 20
    with pytest.raises(BPTTError, match="steps must be increasing integers"):
        gf.flow_map(m, x, x[:, :1], steps=[5, 3])


@pytest.mark.slow
@pytest.mark.parametrize("sampling", ["last", "even"])
def test_long_sequence_map_is_bounded(sampling):
    """T = 100000: a full T x T map would be 75 GiB; the drawn map is at most 500 x 500, in O(T H + n^2) memory."""
    T = 100_000
    m = RNN(1, 2, 1, seed=0)
    x = np.random.default_rng(0).uniform(size=(T, 1))  # (T, 1)
    tracemalloc.start()
    fm = gf.flow_map(m, x, x, steps=gf.choose_steps(T, sampling=sampling))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert fm.values.shape == (gf.MAX_MAP_STEPS, gf.MAX_MAP_STEPS) and fm.length == T
    assert peak < 64 * 2**20, f"{peak / 2**20:.0f} MiB"  # O(T H) for the forward pass + O(n^2): ~16 MiB
    assert 0 < fm.decay["40"] < 1e-10  # far below float64's range after the whole sequence, still no underflow
    assert np.all(np.isfinite(np.tril(fm.values)))


def test_describe_sequence_names_operands_years_and_steps(tmp_path):
    d = tasks.load("binary-addition", bits=8, n_train=5, n_val=5, n_test=5)
    a, b = (int(v) for v in tasks.bits_to_int(d.test.x[:, 2]))
    assert gf.describe_sequence(d, 2) == f"a = {a}, b = {b}"
    sun = tasks.load("sunspots")
    assert gf.describe_sequence(sun, 0) == "inputs 1959–1978, targets 1960–1979"
    assert gf.describe_sequence(sun, 29) == "inputs 1988–2007, targets 1989–2008"
    add = tasks.load("adding", length=12, n_train=5, n_val=5, n_test=5)
    assert gf.describe_sequence(add, 0) == "12 steps, scored at t = 12"
    f = tmp_path / "s.csv"
    f.write_text("v\n" + "".join(f"{i % 7}\n" for i in range(40)))
    c = tasks.load("csv", path=str(f), column="v", window=5, n_val=4, n_test=6)
    assert gf.describe_sequence(c, 0) == "inputs t = 30..34, targets t = 31..35"


def test_gradflow_command_formats_raw_and_steps(tmp_path, capsys):
    magic = {"png": b"\x89PNG\r\n\x1a\n", "svg": b"<?xml", "pdf": b"%PDF-"}
    for fmt, head in magic.items():
        out = tmp_path / f"flow.{fmt}"
        assert main(["gradflow", "--out", str(out), "--length", "12", "--hidden", "3"]) == 0
        assert out.read_bytes().startswith(head)
    assert b"<svg" in (tmp_path / "flow.svg").read_bytes()
    capsys.readouterr()
    assert main(["gradflow", "--out", str(tmp_path / "r.png"), "--length", "12", "--hidden", "3", "--raw", "--json"]) == 0
    raw = json.loads(capsys.readouterr().out)
    assert raw["normalised"] is False and raw["steps"] == {"length": 12, "shown": 12, "first": 1, "last": 12, "stride": 1}
    assert main(["gradflow", "--out", str(tmp_path / "l.png"), "--length", "3000", "--hidden", "3", "--max-steps", "40",
                 "--sample", "even", "--json"]) == 0
    long = json.loads(capsys.readouterr().out)
    assert long["normalised"] is True and long["steps"] == {"length": 3000, "shown": 40, "first": 75, "last": 3000, "stride": 75}


@pytest.mark.parametrize("name", ["flow.gif", "flow", "flow.PNG.txt"])
def test_gradflow_refuses_other_endings(tmp_path, capsys, name):
    assert main(["gradflow", "--out", str(tmp_path / name), "--length", "5"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "choose one of png, svg, pdf" in err
    assert list(tmp_path.iterdir()) == []


def _torch_flow(m: RNN, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The same map by torch autograd on a plain loop: an independent reference."""
    torch = pytest.importorskip("torch")
    p = {k: torch.tensor(v, requires_grad=True) for k, v in m.params().items()}
    f, g = m.hidden_act.torch_value, m.output_act.torch_value
    Tn = x.shape[0]
    hs = []
    h = torch.zeros(m.hidden_size, dtype=torch.float64)
    for t in range(Tn):
        h = f(p["w_x"] @ torch.tensor(x[t]) + p["w_h"] @ h + p["b1"])
        h.retain_grad()
        hs.append(h)
    G = np.full((Tn, Tn), np.nan)
    for t in range(Tn):
        e = 0.5 * torch.sum((torch.tensor(y[t]) - g(p["w"] @ hs[t] + p["b2"])) ** 2)
        grads = torch.autograd.grad(e, hs[: t + 1], retain_graph=True)
        for k in range(t + 1):
            G[t, k] = float(torch.linalg.vector_norm(grads[k]))
    return G


@settings(max_examples=12, deadline=None)
@given(T_=st.integers(1, 7), H=st.integers(1, 4), D=st.integers(1, 3), O=st.integers(1, 2),
       act=st.sampled_from(HIDDEN_ACTIVATIONS), out=st.sampled_from(OUTPUT_ACTIVATIONS), seed=st.integers(0, 999))
def test_gradient_flow_matches_torch_autograd(T_, H, D, O, act, out, seed):
    rng = np.random.default_rng(seed)
    O = outputs_for(out, O)
    m = RNN(D, H, O, act, out, seed=seed)
    m.set_params(w_h=rng.normal(0, 1.5, (H, H)))
    x = rng.normal(0, 1, (T_, D))
    y = rng.uniform(0, 1, (T_, O))
    G = gf.gradient_flow(m, x, y)
    want = _torch_flow(m, x, y)
    assert np.array_equal(np.isnan(G), np.isnan(want))
    np.testing.assert_allclose(G[~np.isnan(G)], want[~np.isnan(want)], rtol=1e-10, atol=1e-300)


def test_gradflow_pair_uses_same_weights_and_blanks_unscored_rows():
    m = RNN(2, 4, 1, seed=1)
    x = np.random.default_rng(0).uniform(0, 1, (5, 2))
    y = np.array([[np.nan], [np.nan], [np.nan], [np.nan], [0.7]])
    maps = gf.gradflow_pair(m, x, y)
    (s_label, S), (t_label, Tm) = maps.items()
    assert s_label.startswith("sigmoid") and t_label.startswith("tanh")
    assert np.all(np.isnan(S[:4])) and np.all(np.isfinite(S[4]))
    twin = RNN(2, 4, 1, "tanh", seed=99)
    twin.set_params(**m.params())
    np.testing.assert_array_equal(Tm[4], gf.gradient_flow(twin, x, np.full((5, 1), 0.7))[4])
