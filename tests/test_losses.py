"""The loss table (bptt/losses.py): every record's derivative and curvature against torch autograd and
central finite differences, every (output activation, loss) pair through the whole network on random
shapes, the targets each loss refuses, and a test-only loss added to the table running end to end."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import bptt
from bptt import BPTTError, activations, hf, losses
from bptt.activations import ACTIVATIONS, OUTPUT_ACTIVATIONS
from bptt.engine import PARAM_NAMES
from bptt.losses import LOSSES
from helpers import finite_difference_grads, torch_loss_and_grads, outputs_for

PAIRS = [(g, name) for name, rec in LOSSES.items() for g in OUTPUT_ACTIVATIONS
         if rec.outputs is None or g in rec.outputs]


def _targets(rng, loss: str, shape):
    """Valid targets for ``loss``: reals, [0, 1] probabilities, or one-hot rows."""
    if loss == "cross_entropy":
        return np.eye(shape[-1])[rng.integers(0, shape[-1], shape[:-1])]
    if loss == "bce":
        return rng.uniform(0, 1, shape)
    return rng.standard_normal(shape)


def test_every_output_activation_has_a_loss_and_every_loss_an_output():
    assert {g for g, _ in PAIRS} == set(OUTPUT_ACTIVATIONS)
    assert {name for _, name in PAIRS} == set(LOSSES)
    assert losses.DEFAULT == "squared_error" and LOSSES[losses.DEFAULT].outputs is None  # the seed's, with any g


@pytest.mark.parametrize("g_name, loss", PAIRS)
@given(data=st.data())
@settings(max_examples=25, deadline=None)
def test_delta_is_de_du_by_torch_autograd_and_finite_differences(g_name, loss, data):
    """delta(u, y', y, g, c) = c dE(g(u), y)/du, on random (N, O) blocks, with u taken far into saturation."""
    rec, g = LOSSES[loss], ACTIVATIONS[g_name]
    N, O = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31 - 1)))
    u = data.draw(st.sampled_from([1.0, 4.0, 15.0])) * rng.standard_normal((N, O))  # (N, O)
    y = _targets(rng, loss, (N, O))
    c = rng.uniform(0.1, 2.0)
    got = rec.delta(u, g.value(u), y, g, c)  # (N, O)

    ut = torch.tensor(u, requires_grad=True)
    value = rec.torch_value(ut, g.torch_value(ut), torch.tensor(y))  # (N,)
    (c * value.sum()).backward()
    np.testing.assert_allclose(got, ut.grad.numpy(), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(rec.value(u, g.value(u), y), value.detach().numpy(), rtol=1e-12, atol=1e-13)

    eps = 1e-6
    fd = np.zeros_like(u)
    for idx in np.ndindex(u.shape):
        up, um = u.copy(), u.copy()
        up[idx] += eps
        um[idx] -= eps
        fd[idx] = c * (rec.value(up, g.value(up), y).sum() - rec.value(um, g.value(um), y).sum()) / (2 * eps)
    np.testing.assert_allclose(got, fd, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("g_name, loss", PAIRS)
@given(data=st.data())
@settings(max_examples=15, deadline=None)
def test_curvature_is_the_gauss_newton_matrix_in_u(g_name, loss, data):
    """curvature(y', v, g) = M v: J_g^T J_g v for the squared error of y', the Hessian of E in u for the matching pairs."""
    rec, g = LOSSES[loss], ACTIVATIONS[g_name]
    O = data.draw(st.integers(1, 4))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31 - 1)))
    u, v = 2 * rng.standard_normal(O), rng.standard_normal(O)
    y = _targets(rng, loss, (O,))
    got = rec.curvature(g.value(u), v, g)
    ut, vt, yt = torch.tensor(u), torch.tensor(v), torch.tensor(y)
    if rec.outputs is None:  # J^T (I) J v with J = dg/du
        _, jv = torch.autograd.functional.jvp(g.torch_value, (ut,), (vt,))
        _, vjp = torch.func.vjp(g.torch_value, ut)
        want = vjp(jv)[0]
    else:
        want = torch.autograd.functional.hessian(lambda t: rec.torch_value(t, g.torch_value(t), yt).sum(), ut) @ vt
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("loss", list(LOSSES))
def test_delta_vanishes_where_the_output_is_the_target(loss):
    """The training loop masks a step by giving it the target y = y' (backends.masked_loss_and_grad)."""
    rec = LOSSES[loss]
    rng = np.random.default_rng(0)
    for g_name in OUTPUT_ACTIVATIONS:
        if rec.outputs is not None and g_name not in rec.outputs:
            continue
        g = ACTIVATIONS[g_name]
        u = rng.standard_normal((6, 3))
        y_pred = g.value(u)
        np.testing.assert_allclose(rec.delta(u, y_pred, y_pred, g, 1.0), 0.0, atol=1e-15)


def _draw_network(data, g_name: str, loss: str, max_T: int, min_O: int):
    """A random network of this output activation and loss (random weights), inputs x (T, B, D), valid
    targets y (T, B, O) and a reduction."""
    T, B = data.draw(st.integers(1, max_T)), data.draw(st.integers(1, 3))
    D, H, O = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 4)), data.draw(st.integers(min_O, 3))
    f = data.draw(st.sampled_from(activations.HIDDEN_ACTIVATIONS))
    reduction = data.draw(st.sampled_from(["mean", "sum"]))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31 - 1)))
    O = outputs_for(g_name, O)
    m = bptt.RNN(D, H, O, f, g_name, loss=loss)
    m.set_params(**{k: rng.standard_normal(s) for k, s in m.param_shapes().items()})
    x = rng.standard_normal((T, B, D))
    return m, x, _targets(rng, loss, (T, B, O)), reduction


@pytest.mark.parametrize("g_name, loss", PAIRS)
@given(data=st.data())
@settings(max_examples=12, deadline=None)
def test_network_gradients_match_torch_autograd_and_finite_differences(g_name, loss, data):
    """Every (output activation, loss) pair through RNN.loss_and_grad on every backend that runs it."""
    m, x, y, reduction = _draw_network(data, g_name, loss, max_T=5, min_O=1)
    ref_loss, ref = torch_loss_and_grads(m, x, y, reduction=reduction)
    fd = finite_difference_grads(m, x, y, reduction=reduction)
    for backend in ("numpy", "auto"):
        value, grads = m.loss_and_grad(x, y, reduction=reduction, backend=backend)
        assert value == pytest.approx(ref_loss, rel=1e-12, abs=1e-14)
        for k in PARAM_NAMES:
            np.testing.assert_allclose(grads[k], ref[k], rtol=1e-10, atol=1e-12, err_msg=f"{backend} {k}")
            np.testing.assert_allclose(grads[k], fd[k], rtol=1e-5, atol=1e-7, err_msg=f"{backend} {k} fd")
    value, grads = m.loss_and_grad(x, y, reduction=reduction, checkpoint=2)
    for k in PARAM_NAMES:
        np.testing.assert_allclose(grads[k], ref[k], rtol=1e-10, atol=1e-12, err_msg=f"checkpoint {k}")


@pytest.mark.parametrize("g_name, loss", PAIRS)
def test_decomposition_sums_to_the_gradient_for_every_loss(g_name, loss):
    rng = np.random.default_rng(3)
    m = bptt.RNN(2, 3, 3, "tanh", g_name, loss=loss, seed=1)
    x, y = rng.standard_normal((4, 2, 2)), _targets(rng, loss, (4, 2, 3))
    d = m.decompose(x, y)
    _, grads = m.loss_and_grad(x, y, backend="numpy")
    for k in PARAM_NAMES:
        np.testing.assert_allclose(d.weight * d.terms[k].sum(0), grads[k], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("g_name, loss", PAIRS)
def test_hf_gauss_newton_product_matches_torch(g_name, loss):
    """hf.Curvature.gn = J_u^T (1/n) mask M J_u v, M the loss record's curvature, by torch.autograd.functional.jvp and torch.func.vjp."""
    rng = np.random.default_rng(5)
    T, B, D, H, O = 4, 3, 2, 3, 3
    m = bptt.RNN(D, H, O, "tanh", g_name, loss=loss, seed=2)
    x, y = rng.standard_normal((T, B, D)), _targets(rng, loss, (T, B, O))
    mask = rng.uniform(size=(T, B)) < 0.7
    mask[0, 0] = True
    net, p = hf.Net(m.hidden_act, m.output_act, m.criterion), m.engine_params()
    batch = hf.Batch(x, y, mask)
    v = rng.standard_normal(hf.flatten(p).size)
    got = hf.Curvature.at(net, p, batch).gn(v)

    f, g, xt = net.f.torch_value, net.g.torch_value, torch.tensor(x)

    def outputs(w, w_x, w_h, b1, b2):  # u (T, B, O)
        h = torch.zeros(B, H, dtype=torch.float64)
        us = []
        for t in range(T):
            h = f(xt[t] @ w_x.T + h @ w_h.T + b1)
            us.append(h @ w.T + b2)
        return torch.stack(us)

    theta = tuple(torch.tensor(a) for a in p)
    dp = hf.unflatten(v, hf.shapes_of(p))
    u, ju = torch.autograd.functional.jvp(outputs, theta, tuple(torch.tensor(a) for a in dp))
    yt = torch.tensor(y)
    weights = torch.tensor(mask, dtype=torch.float64)[..., None] / mask.sum()
    if net.criterion.outputs is None:  # J_g^T J_g
        _, jg = torch.autograd.functional.jvp(g, (u,), (ju,))
        m_ju = torch.func.vjp(g, u)[1](jg)[0]
    else:  # the Hessian of E in u, one (t, b) block at a time
        m_ju = torch.zeros_like(ju)
        for t in range(T):
            for b in range(B):
                hess = torch.autograd.functional.hessian(
                    lambda z: net.criterion.torch_value(z, g(z), yt[t, b]).sum(), u[t, b])
                m_ju[t, b] = hess @ ju[t, b]
    want = torch.cat([a.reshape(-1) for a in torch.func.vjp(outputs, *theta)[1](weights * m_ju)]).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13)


# ---------------------------------------------------------------- targets and pairs
def test_class_labels_are_one_hot_targets():
    rng = np.random.default_rng(0)
    m = bptt.RNN(2, 4, 5, "tanh", "softmax", loss="cross_entropy", seed=0)
    x = rng.standard_normal((6, 3, 2))
    labels = rng.integers(0, 5, (6, 3))
    one_hot = np.eye(5)[labels]
    assert m.loss(x, labels) == m.loss(x, one_hot)
    a, b = m.loss_and_grad(x, labels)[1], m.loss_and_grad(x, one_hot)[1]
    assert all(np.array_equal(a[k], b[k]) for k in PARAM_NAMES)
    assert m.loss(x[:, 0], labels[:, 0]) == m.loss(x[:, 0], one_hot[:, 0])  # unbatched: (T,) labels
    assert m.loss(x[:, 0], labels[:, 0].tolist()) == m.loss(x[:, 0], one_hot[:, 0])


@pytest.mark.parametrize("loss, g, y, match", [
    ("bce", "sigmoid", [[1.5]], r"binary cross-entropy needs targets in \[0, 1\], got 1.5"),
    ("cross_entropy", "softmax", [[0.5, 0.2]], "rows of probabilities summing to 1"),
    ("cross_entropy", "softmax", [[-1.0, 2.0]], "rows of probabilities summing to 1"),
])
def test_targets_a_loss_is_not_defined_for_are_one_line(loss, g, y, match):
    m = bptt.RNN(1, 2, len(y[0]), "sigmoid", g, loss=loss, seed=0)
    with pytest.raises(BPTTError, match=match):
        m.loss_and_grad([[0.3]], y)


def test_class_label_out_of_range_is_one_line():
    m = bptt.RNN(1, 2, 3, "sigmoid", "softmax", loss="cross_entropy", seed=0)
    with pytest.raises(BPTTError, match=r"class label 3 is outside 0..2 \(the model has 3 outputs\)"):
        m.loss_and_grad([[0.3], [0.1]], np.array([0, 3]))


@pytest.mark.parametrize("g, loss", [("identity", "bce"), ("sigmoid", "cross_entropy"), ("softmax", "bce")])
def test_a_loss_without_its_output_is_refused_with_the_fix(g, loss):
    with pytest.raises(BPTTError, match=rf"loss '{loss}' needs a \w+ output, got output_activation '{g}'; use"):
        bptt.RNN(1, 2, 2, output_activation=g, loss=loss)


def test_unknown_loss_is_one_line():
    with pytest.raises(BPTTError, match="loss .hinge. is not supported; choose one of squared_error, bce"):
        bptt.RNN(1, 2, 1, loss="hinge")


def test_bce_is_exact_far_in_saturation():
    """E from u (softplus), not from a rounded y': finite and exact where y' rounds to 1."""
    m = bptt.RNN.scalar(w=50.0, b2=0.0, w_x=0.0, b1=40.0, loss="bce")  # u = 50 sgm(40) ~ 50: y' = 1.0 in float64
    value = m.loss([0.0], [0.0])
    assert value == pytest.approx(50.0, rel=1e-12)  # -log(1 - sgm(50)) = softplus(50) ~ 50
    _, grads = m.loss_and_grad([0.0], [0.0])
    assert grads["b2"][0] == pytest.approx(1.0, rel=1e-12)


# ---------------------------------------------------------------- adding a loss touches one file
@pytest.fixture
def log_cosh(monkeypatch):
    """A test-only loss: E = sum_o log cosh(y' - y), numpy parts only, any output activation."""
    def value(u, y_pred, y):
        return np.log(np.cosh(y_pred - y)).sum(-1)

    def delta(u, y_pred, y, g, c):
        return g.jvp(y_pred, c * np.tanh(y_pred - y))

    def curvature(y_pred, v, g):
        return g.jvp(y_pred, g.jvp(y_pred, v))

    rec = losses.Loss("log_cosh", None, "log cosh(y - y')", value, delta, curvature, lambda y: None)
    monkeypatch.setitem(LOSSES, "log_cosh", rec)
    return rec


def test_a_new_loss_runs_on_numpy_and_is_refused_where_its_parts_are_missing(log_cosh):
    rng = np.random.default_rng(1)
    m = bptt.RNN(2, 3, 2, "tanh", "identity", loss="log_cosh", seed=0)
    x, y = rng.standard_normal((5, 2, 2)), rng.standard_normal((5, 2, 2))
    _, grads = m.loss_and_grad(x, y)  # auto: no compiled version, so numpy
    fd = finite_difference_grads(m, x, y)
    for k in PARAM_NAMES:
        np.testing.assert_allclose(grads[k], fd[k], rtol=1e-6, atol=1e-8)
    with pytest.raises(BPTTError, match="loss 'log_cosh' has no numba implementation; it runs on numpy"):
        m.loss_and_grad(x, y, backend="numba")
    assert losses.require(log_cosh, "numpy") is log_cosh
    with pytest.raises(BPTTError, match="has no torch implementation"):
        losses.require(log_cosh, "torch")


def test_a_new_loss_trains_through_the_training_loop(log_cosh):
    from bptt.train import config_for, train

    cfg = config_for("sine", {}, loss="log_cosh", output_activation="identity", epochs=3, hidden_size=4)
    result = train(cfg)
    assert result.config.loss == "log_cosh" and np.isfinite(result.metrics["best_val_loss"])


def test_table_records_are_complete():
    for rec in LOSSES.values():
        assert rec.backends[0] == "numpy"
        assert dataclasses.replace(rec).name == rec.name


def test_docs_losses_example_runs_and_labels_equal_one_hot():
    """The docs' Losses page block, executed; its claim that labels and one-hot targets give the same result."""
    import re
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "docs" / "howto" / "losses.md").read_text(encoding="utf-8")
    section = page[page.index("# Losses"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    scope: dict = {}
    exec(code, scope)
    clf, x, labels = scope["clf"], scope["x"], scope["labels"]
    loss, grads = clf.loss_and_grad(x, np.eye(4)[labels])
    assert loss == scope["loss"] and all(np.array_equal(grads[k], scope["grads"][k]) for k in PARAM_NAMES)
    table = section[: section.index("```python")]
    for name, rec in LOSSES.items():
        assert f"`{name}`" in table


# ---------------------------------------------------------------- JAX, an independent second reference
def _jax_loss_and_grads(m, x, y, reduction):
    """The network, its activations and its loss written in JAX from their textbook forms (not from the
    tables), float64; jax.grad differentiates it."""
    import jax
    import jax.numpy as jnp

    hidden = {"sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh, "relu": jax.nn.relu}[m.hidden_activation]

    def loss_of(p):
        T, B, _ = x.shape
        h = jnp.zeros((B, m.hidden_size))
        total = 0.0
        for t in range(T):
            h = hidden(x[t] @ p["w_x"].T + h @ p["w_h"].T + p["b1"])
            u = h @ p["w"].T + p["b2"]
            if m.loss_name == "bce":
                e = -(y[t] * jax.nn.log_sigmoid(u) + (1 - y[t]) * jax.nn.log_sigmoid(-u)).sum()
            elif m.loss_name == "cross_entropy":
                e = -(y[t] * jax.nn.log_softmax(u, axis=-1)).sum()
            else:
                y_pred = {"sigmoid": jax.nn.sigmoid, "identity": lambda v: v,
                          "softmax": lambda v: jax.nn.softmax(v, axis=-1)}[m.output_activation](u)
                e = 0.5 * ((y[t] - y_pred) ** 2).sum()
            total = total + e
        return total / (T * B) if reduction == "mean" else total

    params = {k: jnp.asarray(v) for k, v in m.params().items()}
    value, grads = jax.value_and_grad(loss_of)(params)
    return float(value), {k: np.asarray(v) for k, v in grads.items()}


@pytest.mark.parametrize("g_name, loss", PAIRS)
@given(data=st.data())
@settings(max_examples=6, deadline=None)
def test_network_gradients_match_jax(g_name, loss, data):
    """Every (output activation, loss) pair, every backend that runs it, against jax.grad to 1e-10."""
    import jax

    m, x, y, reduction = _draw_network(data, g_name, loss, max_T=4, min_O=2)
    with jax.enable_x64(True):
        ref_loss, ref = _jax_loss_and_grads(m, x, y, reduction)
    for backend in ("numpy", "auto"):
        value, grads = m.loss_and_grad(x, y, reduction=reduction, backend=backend)
        assert value == pytest.approx(ref_loss, rel=1e-10, abs=1e-13)
        for k in PARAM_NAMES:
            np.testing.assert_allclose(grads[k], ref[k], rtol=1e-10, atol=1e-12, err_msg=f"{backend} {k}")


def test_cross_entropy_training_on_the_torch_backend_equals_the_engine():
    """The torch backend's loss (the table's torch form on the layer's outputs) trains the chars task as the
    numpy engine does: the same parameters to rounding after a few updates."""
    from bptt.train import config_for, train

    common = dict(epochs=1, hidden_size=4, batch_size=1024, seed=0, lr=0.05)
    ref = train(config_for("chars", {}, **common))
    got = train(config_for("chars", {}, backend="torch", **common))
    assert ref.config.loss == got.config.loss == "cross_entropy"
    for k in PARAM_NAMES:
        np.testing.assert_allclose(got.model.params()[k], ref.model.params()[k], rtol=1e-10, atol=1e-12)
    assert got.history["train_loss"] == pytest.approx(ref.history["train_loss"], rel=1e-10)


def test_softmax_with_one_output_is_refused():
    with pytest.raises(BPTTError, match="needs at least 2 .*got output_size 1; give output_size >= 2"):
        bptt.RNN(2, 3, 1, output_activation="softmax", loss="cross_entropy")
    with pytest.raises(BPTTError, match="got output_size 1"):
        bptt.RNN.scalar(output_activation="softmax")
