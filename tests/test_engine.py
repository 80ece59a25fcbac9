"""Every gradient path against finite differences and torch autograd, on random shapes."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import bptt
from bptt.activations import HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS
from bptt.engine import PARAM_NAMES

from helpers import finite_difference_grads, random_model, rel_err, torch_loss_and_grads, torch_truncated_grads, outputs_for

torch = pytest.importorskip("torch")


@st.composite
def problems(draw, max_T=6):
    T = draw(st.integers(1, max_T))
    B = draw(st.integers(1, 3))
    D = draw(st.integers(1, 3))
    H = draw(st.integers(1, 4))
    O = draw(st.integers(1, 2))
    f = draw(st.sampled_from(HIDDEN_ACTIVATIONS))
    g = draw(st.sampled_from(OUTPUT_ACTIVATIONS))
    O = outputs_for(g, O)
    reduction = draw(st.sampled_from(["mean", "sum"]))
    batched = draw(st.booleans()) or B > 1
    with_h0 = draw(st.booleans())
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    m = random_model(rng, D, H, O, f, g)
    x = rng.standard_normal((T, B, D) if batched else (T, D))
    y = rng.uniform(0, 1, (T, B, O) if batched else (T, O))
    h0 = rng.standard_normal((B, H) if batched else (H,)) if with_h0 else None
    return m, x, y, h0, reduction


@given(problems())
def test_gradients_match_central_finite_differences(problem):
    m, x, y, h0, reduction = problem
    _, grads = m.loss_and_grad(x, y, h0=h0, reduction=reduction)
    fd = finite_difference_grads(m, x, y, h0=h0, reduction=reduction)
    for k in PARAM_NAMES:
        assert grads[k].shape == m.param_shapes()[k]
        # FD error ~ eps^2 f''' + rounding/eps; compare per parameter, with an absolute floor
        assert np.allclose(grads[k], fd[k], rtol=1e-7, atol=1e-9 * max(1.0, np.abs(fd[k]).max())), k


@given(problems())
def test_gradients_match_torch_autograd(problem):
    m, x, y, h0, reduction = problem
    loss, grads = m.loss_and_grad(x, y, h0=h0, reduction=reduction)
    t_loss, t_grads = torch_loss_and_grads(m, x, y, h0=h0, reduction=reduction)
    assert loss == pytest.approx(t_loss, rel=1e-12)
    for k in PARAM_NAMES:
        assert rel_err(grads[k], t_grads[k]) < 1e-10, k


@given(problems())
def test_decomposition_sums_to_total(problem):
    m, x, y, h0, reduction = problem
    _, grads = m.loss_and_grad(x, y, h0=h0, reduction=reduction)
    dec = m.decompose(x, y, h0=h0, reduction=reduction)
    T = np.asarray(x).shape[0]
    for k in PARAM_NAMES:
        paths, terms = dec.paths[k], dec.terms[k]
        assert paths.shape == (T, T, *m.param_shapes()[k])
        # no path from a later state into an earlier error term
        for i in range(T):
            assert np.all(paths[i, i + 1 :] == 0)
        np.testing.assert_allclose(paths.sum(axis=1), terms, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(dec.weight * terms.sum(axis=0), grads[k], rtol=1e-10, atol=1e-14)


def test_each_error_term_is_its_own_gradient():
    """dE_i/dθ from decompose equals the gradient of E_i alone (torch, target only at step i)."""
    rng = np.random.default_rng(3)
    m = random_model(rng, 2, 3, 1, "sigmoid", "sigmoid")
    x, y = rng.standard_normal((4, 2)), rng.uniform(size=(4, 1))
    dec = m.decompose(x, y, reduction="sum")
    for i in range(4):
        # E_i alone: weight the other steps' residuals to zero by setting their targets to the predictions
        y_only_i = m.predict(x).copy()
        y_only_i[i] = y[i]
        _, g_i = torch_loss_and_grads(m, x, y_only_i, reduction="sum")
        for k in PARAM_NAMES:
            np.testing.assert_allclose(dec.terms[k][i], g_i[k], rtol=1e-10, atol=1e-14)


@given(problems(), st.integers(1, 7))
def test_truncated_bptt_matches_detached_torch_and_the_path_sum(problem, k):
    m, x, y, _, reduction = problem
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim == 2:
        x, y = x[:, None], y[:, None]
    T = x.shape[0]
    _, grads = m.loss_and_grad(x, y, reduction=reduction, truncate=k)
    ref = torch_truncated_grads(m, x, y, k, reduction=reduction)
    dec = m.decompose(x, y, reduction=reduction)
    keep = np.array([[0 <= i - j < k for j in range(T)] for i in range(T)])  # path j reaches error i
    for name in PARAM_NAMES:
        assert rel_err(grads[name], ref[name]) < 1e-10, name
        masked = dec.paths[name] * keep.reshape(T, T, *([1] * (dec.paths[name].ndim - 2)))
        if name in ("w", "b2"):  # these never pass through a hidden state: untouched by truncation
            masked = dec.paths[name]
        np.testing.assert_allclose(dec.weight * masked.sum(axis=(0, 1)), grads[name], rtol=1e-10, atol=1e-14)


@given(problems())
def test_truncation_at_or_beyond_T_is_full_bptt(problem):
    m, x, y, h0, reduction = problem
    T = np.asarray(x).shape[0]
    _, full = m.loss_and_grad(x, y, h0=h0, reduction=reduction)
    for k in (T, T + 3):
        _, trunc = m.loss_and_grad(x, y, h0=h0, reduction=reduction, truncate=k)
        for name in PARAM_NAMES:
            np.testing.assert_array_equal(trunc[name], full[name])


def sgm(z):
    return 1 / (1 + np.exp(-z))


def test_truncate_1_on_the_seed_network_by_hand():
    """k = 1: each E_t sees only the immediate ∂h_t/∂θ (the seed's k = t term)."""
    w = w_x = w_h = b1 = b2 = 1.0
    x1, x2, y1, y2 = 1.0, 0.0, 0.3, 0.9
    h1 = sgm(w_x * x1 + w_h * 0 + b1)
    h2 = sgm(w_x * x2 + w_h * h1 + b1)
    p1, p2 = sgm(w * h1 + b2), sgm(w * h2 + b2)
    d1 = (p1 - y1) * p1 * (1 - p1) * w * h1 * (1 - h1)  # dE_1/dz_1
    d2 = (p2 - y2) * p2 * (1 - p2) * w * h2 * (1 - h2)  # dE_2/dz_2, not carried back to z_1
    expected = {
        "w_x": 0.5 * (d1 * x1 + d2 * x2),
        "w_h": 0.5 * (d1 * 0.0 + d2 * h1),
        "b1": 0.5 * (d1 + d2),
        "w": 0.5 * ((p1 - y1) * p1 * (1 - p1) * h1 + (p2 - y2) * p2 * (1 - p2) * h2),
        "b2": 0.5 * ((p1 - y1) * p1 * (1 - p1) + (p2 - y2) * p2 * (1 - p2)),
    }
    m = bptt.RNN.scalar(w=w, w_x=w_x, w_h=w_h, b1=b1, b2=b2)
    _, grads = m.loss_and_grad([x1, x2], [y1, y2], truncate=1)
    for k, v in expected.items():
        assert float(grads[k].ravel()[0]) == pytest.approx(v, rel=1e-14), k
    # and it differs from full BPTT exactly by E_2's path through h_1
    _, full = m.loss_and_grad([x1, x2], [y1, y2])
    assert float(full["b1"][0]) - float(grads["b1"][0]) == pytest.approx(0.5 * d2 * w_h * h1 * (1 - h1), rel=1e-12)


def test_float32_runs_in_float32_and_agrees_with_float64():
    rng = np.random.default_rng(1)
    m64 = random_model(rng, 3, 5, 2, "tanh", "sigmoid")
    m32 = bptt.RNN(3, 5, 2, "tanh", "sigmoid", dtype=np.float32)
    m32.set_params(**m64.params())
    x, y = rng.standard_normal((20, 4, 3)), rng.uniform(size=(20, 4, 2))
    l64, g64 = m64.loss_and_grad(x, y)
    l32, g32 = m32.loss_and_grad(x, y)
    assert l32 == pytest.approx(l64, rel=1e-5)
    for k in PARAM_NAMES:
        assert g32[k].dtype == np.float32
        np.testing.assert_allclose(g32[k], g64[k], rtol=1e-3, atol=1e-5)


def test_extreme_preactivations_give_finite_gradients():
    m = bptt.RNN.scalar(w=1e3, w_x=1e4, w_h=1e4, b1=0, b2=0)
    loss, grads = m.loss_and_grad([1.0, -1.0, 1.0], [1.0, 0.0, 1.0])
    assert np.isfinite(loss)
    assert all(np.all(np.isfinite(g)) for g in grads.values())


@given(problems())
def test_output_tangent_matches_finite_differences_and_torch_jvp(problem):
    """Forward mode dy'/dθ·v (engine.output_tangent) against central differences and torch.autograd.functional.jvp."""
    from bptt import engine

    m, x, _, h0, _ = problem
    rng = np.random.default_rng(0)
    xb = np.asarray(x, dtype=np.float64).reshape(x.shape[0], -1, m.input_size)  # (T, B, D)
    B = xb.shape[1]
    h0b = np.zeros((B, m.hidden_size)) if h0 is None else np.broadcast_to(h0, (B, m.hidden_size)).copy()
    p = m.engine_params()
    dp = engine.Params(*(rng.standard_normal(v.shape) for v in p))
    fwd = engine.forward(p, xb, h0b, m.hidden_act, m.output_act)
    got = engine.output_tangent(p, xb, fwd, m.hidden_act, m.output_act, dp)  # (T, B, O)

    def outputs(params):
        return engine.forward(params, xb, h0b, m.hidden_act, m.output_act).y_pred

    eps = 1e-6
    plus = outputs(engine.Params(*(a + eps * d for a, d in zip(p, dp))))
    minus = outputs(engine.Params(*(a - eps * d for a, d in zip(p, dp))))
    fd = (plus - minus) / (2 * eps)
    assert rel_err(got, fd) < 1e-6 or np.max(np.abs(got - fd)) < 1e-8

    f, g = m.hidden_act.torch_value, m.output_act.torch_value
    xt, h0t = torch.tensor(xb), torch.tensor(h0b)

    def torch_outputs(w, w_x, w_h, b1, b2):
        h, ys = h0t, []
        for t in range(xt.shape[0]):
            h = f(xt[t] @ w_x.T + h @ w_h.T + b1)
            ys.append(g(h @ w.T + b2))
        return torch.stack(ys)

    _, jvp = torch.autograd.functional.jvp(torch_outputs, tuple(torch.tensor(a) for a in p), tuple(torch.tensor(d) for d in dp))
    assert rel_err(got, jvp.numpy()) < 1e-10 or np.max(np.abs(got - jvp.numpy())) < 1e-13


@given(problems(), st.data())
def test_output_tangent_from_state_matches_finite_differences_and_torch_jvp(problem, data):
    """Forward mode from a perturbation of h_k (engine.output_tangent_from_state) against central differences and torch.autograd.functional.jvp."""
    from bptt import engine

    m, x, _, h0, _ = problem
    xb = np.asarray(x, dtype=np.float64).reshape(x.shape[0], -1, m.input_size)  # (T, B, D)
    T, B, _ = xb.shape
    k = data.draw(st.integers(0, T))
    h0b = np.zeros((B, m.hidden_size)) if h0 is None else np.broadcast_to(h0, (B, m.hidden_size)).copy()
    p = m.engine_params()
    dh = np.random.default_rng(k).standard_normal((B, m.hidden_size))
    fwd = engine.forward(p, xb, h0b, m.hidden_act, m.output_act)
    got = engine.output_tangent_from_state(p, fwd, m.hidden_act, m.output_act, k, dh)  # (T, B, O)
    f, g = m.hidden_act.value, m.output_act.value

    def outputs(shift):  # y' with h_k moved by shift (the recurrence restarted from there)
        h, ys = h0b + (shift if k == 0 else 0), []
        for t in range(T):
            h = f(xb[t] @ p.w_x.T + h @ p.w_h.T + p.b1) + (shift if t + 1 == k else 0)
            ys.append(g(h @ p.w.T + p.b2))
        return np.stack(ys)

    eps = 1e-6
    fd = (outputs(eps * dh) - outputs(-eps * dh)) / (2 * eps)
    assert rel_err(got, fd) < 1e-6 or np.max(np.abs(got - fd)) < 1e-8
    assert not np.any(got[: max(k - 1, 0)])  # nothing before step k

    tf, tg = m.hidden_act.torch_value, m.output_act.torch_value
    P = {n: torch.tensor(v) for n, v in p._asdict().items()}

    def torch_outputs(shift):
        h, ys = torch.tensor(h0b) + (shift if k == 0 else 0), []
        for t in range(T):
            h = tf(torch.tensor(xb[t]) @ P["w_x"].T + h @ P["w_h"].T + P["b1"]) + (shift if t + 1 == k else 0)
            ys.append(tg(h @ P["w"].T + P["b2"]))
        return torch.stack(ys)

    _, jvp = torch.autograd.functional.jvp(torch_outputs, (torch.zeros(B, m.hidden_size, dtype=torch.float64),), (torch.tensor(dh),))
    assert rel_err(got, jvp.numpy()) < 1e-10 or np.max(np.abs(got - jvp.numpy())) < 1e-13
