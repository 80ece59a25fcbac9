"""bptt.torch.SigmoidRNN: gradients against gradcheck, a plain autograd loop and the numpy engine."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import bptt  # noqa: E402
import bptt.torch as bt  # noqa: E402
from bptt import engine  # noqa: E402
from bptt.activations import ACTIVATIONS, HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS  # noqa: E402
from bptt.losses import LOSSES  # noqa: E402
from helpers import outputs_for  # noqa: E402

F64 = torch.float64
NAMES = ("w_x", "w_h", "b1", "w", "b2")


# ---------------------------------------------------------------- references: autograd through the table's torch values
# The layer's backward uses the table's torch_deriv; the references differentiate torch_value by autograd
# (and test_torch_activations_match_the_numpy_table ties both to the numpy table).
TORCH_HIDDEN = tuple(n for n in HIDDEN_ACTIVATIONS if "torch" in ACTIVATIONS[n].backends)
TORCH_OUTPUT = tuple(n for n in OUTPUT_ACTIVATIONS if "torch" in ACTIVATIONS[n].backends)


def _act(name, z):
    return ACTIVATIONS[name].torch_value(z)


def loop_forward(x, h0, p, f, g, cut_at=None):
    """The hand-rolled loop a PyTorch user writes; autograd records every step.

    cut_at: detach h_s at this step (truncated BPTT reference).  Returns (y (T, B, O), h_T).
    """
    h = h0
    ys = []
    for s in range(x.shape[0]):
        if cut_at is not None and s == cut_at and s >= 1:
            h = h.detach()
        h = _act(f, x[s] @ p["w_x"].T + h @ p["w_h"].T + p["b1"])
        ys.append(_act(g, h @ p["w"].T + p["b2"]))
    return torch.stack(ys), h


def truncated_reference(x, h0, p, f, g, gy, ghT, k):
    """Truncated BPTT by autograd: the term entering at step t sees the graph cut at h_{t-k+1}."""
    T = x.shape[0]
    total = 0
    for t in range(T):
        y, hT = loop_forward(x[: t + 1], h0, p, f, g, cut_at=t - k + 1)
        total = total + (y[t] * gy[t]).sum()
        if t == T - 1:
            total = total + (hT * ghT).sum()
    return total


def make(T, B, D, H, O, seed, h0_given=True, scale=1.0):
    rng = np.random.default_rng(seed)
    p = {
        "w_x": rng.normal(0, scale, (H, D)), "w_h": rng.normal(0, scale, (H, H)), "b1": rng.normal(0, scale, (H,)),
        "w": rng.normal(0, scale, (O, H)), "b2": rng.normal(0, scale, (O,)),
    }
    p = {k: torch.tensor(v, dtype=F64, requires_grad=True) for k, v in p.items()}
    x = torch.tensor(rng.normal(0, 1, (T, B, D)), dtype=F64, requires_grad=True)
    h0 = torch.tensor(rng.normal(0, 1, (B, H)), dtype=F64, requires_grad=True) if h0_given else None
    gy = torch.tensor(rng.normal(0, 1, (T, B, O)), dtype=F64)
    ghT = torch.tensor(rng.normal(0, 1, (B, H)), dtype=F64)
    return x, h0, p, gy, ghT


def grads_of(scalar, inputs):
    gs = torch.autograd.grad(scalar, inputs, allow_unused=True)
    return [torch.zeros_like(i) if gr is None else gr for i, gr in zip(inputs, gs)]


def assert_close(a, b, tol=1e-10):
    for u, v in zip(a, b):
        np.testing.assert_allclose(u.detach().numpy(), v.detach().numpy(), rtol=tol, atol=tol)


shapes = st.tuples(
    st.integers(1, 6), st.integers(1, 3), st.integers(1, 3), st.integers(1, 4), st.integers(1, 3), st.integers(0, 2**31)
)


# ---------------------------------------------------------------- torch stays optional
def test_import_bptt_never_imports_torch():
    code = "import sys, bptt; bptt.RNN(1, 1, 1).loss_and_grad([1.0, 0.0], [0.5, 0.5]); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_bptt_torch_imports_the_real_torch():
    code = ("import sys, bptt.torch as bt; import torch; "
            "print(bt.torch is sys.modules['torch'], hasattr(bt.torch, 'autograd'), torch.__file__ != bt.__file__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True", "True"]


# ---------------------------------------------------------------- activations agree with the table
@pytest.mark.parametrize("name", [n for n, a in ACTIVATIONS.items() if "torch" in a.backends])
def test_torch_activations_match_the_numpy_table(name):
    act = ACTIVATIONS[name]
    z = np.concatenate([np.random.default_rng(1).normal(0, 5, 200), [0.0, -0.0, 40.0, -40.0, 750.0, -750.0]])
    a_np = act.value(z)
    a_t = bt.torch_value(name, torch.tensor(z, dtype=F64))
    np.testing.assert_allclose(a_t.numpy(), a_np, rtol=1e-15, atol=1e-300)
    if not act.elementwise:  # softmax: its jvp is checked against torch.autograd.functional.jvp in test_activations
        return
    d_np = act.deriv(a_np) * np.ones_like(a_np)
    d_t = bt.torch_deriv(name, torch.tensor(a_np, dtype=F64))
    np.testing.assert_allclose(d_t.numpy(), d_np, rtol=1e-15, atol=1e-15)  # derivatives are O(1): 1 ulp of 1 apart at most


@pytest.mark.parametrize("name", [n for n, a in ACTIVATIONS.items() if "torch" in a.backends])
def test_torch_value_writes_in_place(name):
    """The layer applies f in place (out = z); the table's torch_value must allow it."""
    z = torch.linspace(-3, 3, 13, dtype=F64)
    expect = bt.torch_value(name, z)
    buf = z.clone()
    ACTIVATIONS[name].torch_value(buf, buf)
    assert torch.equal(buf, expect)


# ---------------------------------------------------------------- gradcheck
@settings(max_examples=12, deadline=None)
@given(shapes, st.sampled_from(TORCH_HIDDEN), st.sampled_from(TORCH_OUTPUT),
       st.booleans(), st.sampled_from([None, 1, 2, True]))
def test_gradcheck(shape, f, g, h0_given, checkpoint):
    T, B, D, H, O, seed = shape
    x, h0, p, _, _ = make(T, B, D, H, O, seed, h0_given)
    if f == "relu":  # keep pre-activations away from the kink, where finite differences are meaningless
        with torch.no_grad():
            p["b1"] += 0.5 * torch.sign(p["b1"])

    def fn(x, *rest):
        if h0_given:
            h0_, *ps = rest
        else:
            h0_, ps = None, rest
        return bt.sigmoid_rnn(x, h0_, *ps, f, g, checkpoint=checkpoint)

    inputs = (x, h0, *[p[n] for n in NAMES]) if h0_given else (x, *[p[n] for n in NAMES])
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-7, rtol=1e-5)


# ---------------------------------------------------------------- equal to a plain autograd loop
@settings(max_examples=15, deadline=None)
@given(shapes, st.sampled_from(TORCH_HIDDEN), st.sampled_from(TORCH_OUTPUT),
       st.booleans(), st.sampled_from([None, 1, 2, 3, True]), st.booleans())
def test_equals_plain_autograd_loop(shape, f, g, h0_given, checkpoint, use_hT):
    T, B, D, H, O, seed = shape
    x, h0, p, gy, ghT = make(T, B, D, H, O, seed, h0_given)
    h0_loop = h0 if h0_given else torch.zeros(B, H, dtype=F64)
    inputs = [x, *[p[n] for n in NAMES]] + ([h0] if h0_given else [])

    y, hT = bt.sigmoid_rnn(x, h0, *[p[n] for n in NAMES], f, g, checkpoint=checkpoint)
    y_ref, hT_ref = loop_forward(x, h0_loop, p, f, g)
    assert_close([y, hT], [y_ref, hT_ref])
    ours = (y * gy).sum() + ((hT * ghT).sum() if use_hT else 0)  # a random upstream gradient, not a summed loss
    ref = (y_ref * gy).sum() + ((hT_ref * ghT).sum() if use_hT else 0)
    assert_close(grads_of(ours, inputs), grads_of(ref, inputs))


@pytest.mark.parametrize("block", [1, 4, 7])
def test_blocked_backward_equals_plain_autograd_loop(monkeypatch, block):
    # without checkpointing the backward walks the stored states in blocks of _BLOCK_ELEMENTS (B, H) elements
    monkeypatch.setattr(bt, "_BLOCK_ELEMENTS", block)
    x, h0, p, gy, ghT = make(9, 2, 2, 3, 2, 11)
    inputs = [x, h0, *[p[n] for n in NAMES]]
    y, hT = bt.sigmoid_rnn(x, h0, *[p[n] for n in NAMES], "sigmoid", "sigmoid")
    y_ref, hT_ref = loop_forward(x, h0, p, "sigmoid", "sigmoid")
    got = grads_of((y * gy).sum() + (hT * ghT).sum(), inputs)
    assert_close(got, grads_of((y_ref * gy).sum() + (hT_ref * ghT).sum(), inputs))


def test_only_hT_used():
    x, h0, p, _, ghT = make(5, 2, 2, 3, 2, 7)
    inputs = [x, h0, *[p[n] for n in NAMES]]
    _, hT = bt.sigmoid_rnn(x, h0, *[p[n] for n in NAMES], "tanh", "identity")
    _, hT_ref = loop_forward(x, h0, p, "tanh", "identity")
    got = grads_of((hT * ghT).sum(), inputs)
    assert_close(got, grads_of((hT_ref * ghT).sum(), inputs))
    assert float(got[-1].abs().sum()) == 0.0 and float(got[-2].abs().sum()) == 0.0  # w, b2 do not reach h_T


# ---------------------------------------------------------------- truncated BPTT
@settings(max_examples=12, deadline=None)
@given(shapes, st.sampled_from(TORCH_HIDDEN), st.sampled_from(TORCH_OUTPUT), st.integers(1, 7))
def test_truncated_equals_autograd_with_the_graph_cut(shape, f, g, k):
    T, B, D, H, O, seed = shape
    x, h0, p, gy, ghT = make(T, B, D, H, O, seed)
    inputs = [x, h0, *[p[n] for n in NAMES]]
    y, hT = bt.sigmoid_rnn(x, h0, *[p[n] for n in NAMES], f, g, truncate=k)
    got = grads_of((y * gy).sum() + (hT * ghT).sum(), inputs)
    assert_close(got, grads_of(truncated_reference(x, h0, p, f, g, gy, ghT, k), inputs))


def test_truncation_changes_the_gradient():
    x, h0, p, gy, _ = make(6, 2, 2, 3, 2, 3)
    inputs = [p[n] for n in NAMES]
    full = grads_of((bt.sigmoid_rnn(x, h0, *inputs)[0] * gy).sum(), inputs)
    cut = grads_of((bt.sigmoid_rnn(x, h0, *inputs, truncate=1)[0] * gy).sum(), inputs)
    same = grads_of((bt.sigmoid_rnn(x, h0, *inputs, truncate=6)[0] * gy).sum(), inputs)
    assert float((full[1] - cut[1]).abs().max()) > 1e-3  # w_h
    assert_close(full, same)


# ---------------------------------------------------------------- equal to the numpy engine
@settings(max_examples=15, deadline=None)
@given(shapes, st.sampled_from(TORCH_HIDDEN), st.sampled_from(TORCH_OUTPUT), st.booleans(),
       st.sampled_from(["mean", "sum"]), st.sampled_from([None, 1, 2, 4]), st.sampled_from([None, 2, True]))
def test_equals_numpy_engine(shape, f, g, h0_given, reduction, truncate, checkpoint):
    T, B, D, H, O, seed = shape
    O = outputs_for(g, O)
    rnn = bptt.RNN(D, H, O, f, g, seed=seed)
    rng = np.random.default_rng(seed + 1)
    x = rng.normal(0, 1, (T, B, D))
    y = rng.uniform(0, 1, (T, B, O))
    h0 = rng.normal(0, 1, (B, H)) if h0_given else None
    layer = bt.SigmoidRNN.from_numpy(rnn, checkpoint=None if truncate else checkpoint, truncate=truncate)
    xt = torch.tensor(x, requires_grad=True)
    h0t = torch.tensor(h0, requires_grad=True) if h0_given else None
    y_pred = layer(xt, h0t)
    c = 1.0 / (T * B) if reduction == "mean" else 1.0
    loss = 0.5 * c * ((y_pred - torch.tensor(y)) ** 2).sum()
    loss.backward()
    ref_loss, ref = rnn.loss_and_grad(x, y, h0=h0, reduction=reduction, truncate=truncate)
    assert abs(loss.item() - ref_loss) <= 1e-10 * max(1.0, abs(ref_loss))
    for n, prm in layer.named_parameters():
        np.testing.assert_allclose(prm.grad.numpy(), ref[n], rtol=1e-10, atol=1e-12)
    if h0_given:  # dLoss/dh_0 from the engine itself
        hb = np.asarray(h0)
        p = engine.Params(**rnn.params())
        fwd = engine.forward(p, x, hb, ACTIVATIONS[f], ACTIVATIONS[g])
        _, dh0 = engine.backward(p, x, fwd, y, ACTIVATIONS[f], ACTIVATIONS[g], LOSSES["squared_error"], reduction,
                                 truncate)
        np.testing.assert_allclose(h0t.grad.numpy(), dh0, rtol=1e-10, atol=1e-12)


def test_unbatched_and_shared_h0():
    rnn = bptt.RNN(2, 3, 1, seed=4)
    layer = bt.SigmoidRNN.from_numpy(rnn)
    x = np.random.default_rng(0).normal(size=(5, 2))
    h0 = np.array([0.1, -0.2, 0.3])
    y = layer(torch.tensor(x), torch.tensor(h0))
    assert y.shape == (5, 1)
    np.testing.assert_allclose(y.detach().numpy(), rnn.predict(x, h0), rtol=1e-12)
    xb = np.stack([x, x[::-1]], axis=1)  # (5, 2, 2)
    h0t = torch.tensor(h0, requires_grad=True)  # (H,): one initial state for both sequences
    yb, hT = layer(torch.tensor(xb), h0t, return_hidden=True)
    assert yb.shape == (5, 2, 1) and hT.shape == (2, 3)
    np.testing.assert_allclose(yb.detach().numpy(), rnn.predict(xb, h0), rtol=1e-12)
    yb.sum().backward()
    h0s = torch.tensor(np.stack([h0, h0]), requires_grad=True)
    layer(torch.tensor(xb), h0s).sum().backward()
    np.testing.assert_allclose(h0t.grad.numpy(), h0s.grad.sum(0).numpy(), rtol=1e-12)


def test_seed_example_gradients():
    # the seed's network: w = w_x = w_h = b1 = b2 = 1, x = (1, 0), h0 = 0; compared with the numpy engine
    rnn = bptt.RNN.scalar()
    layer = bt.SigmoidRNN.from_numpy(rnn)
    x, y = np.array([1.0, 0.0]), np.array([0.5, 0.5])
    loss = 0.5 * 0.5 * ((layer(torch.tensor(x)[:, None])[:, 0] - torch.tensor(y)) ** 2).sum()
    loss.backward()
    ref_loss, ref = rnn.loss_and_grad(x, y)
    assert abs(loss.item() - ref_loss) < 1e-15
    for n, prm in layer.named_parameters():
        np.testing.assert_allclose(prm.grad.numpy(), ref[n], rtol=1e-13)


# ---------------------------------------------------------------- checkpointing stores less
def _saved_numel(layer, x):
    total = []

    def pack(t):
        total.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = layer(x)
    return y, sum(total)


def test_checkpoint_stores_sqrt_T_states():
    T, B, D, H, O = 120, 2, 1, 16, 1
    base = bt.SigmoidRNN(D, H, O, dtype=F64)
    ck = bt.SigmoidRNN(D, H, O, checkpoint=True, dtype=F64)
    ck.load_state_dict(base.state_dict())
    x = torch.randn(T, B, D, dtype=F64)
    y0, n_full = _saved_numel(base, x)
    y1, n_ck = _saved_numel(ck, x)
    params = sum(p.numel() for p in base.parameters())
    fixed = x.numel() + params - O + T * B * O  # x, the weights used in backward (not b2), y
    assert n_full - fixed == (T + 1) * B * H
    assert n_ck - fixed == 11 * B * H  # segments of ceil(sqrt(120)) = 11 steps: 11 checkpoints
    gy = torch.randn(T, B, O, dtype=F64)
    (y0 * gy).sum().backward()
    (y1 * gy).sum().backward()
    for (n, a), b in zip(base.named_parameters(), ck.parameters()):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-12, atol=1e-14, err_msg=n)


# ---------------------------------------------------------------- converters, options, errors
def test_numpy_roundtrip_and_float32():
    rnn = bptt.RNN(3, 4, 2, "tanh", "identity", dtype=np.float32, seed=1)
    layer = bt.SigmoidRNN.from_numpy(rnn)
    assert layer.w_h.dtype == torch.float32 and layer.hidden_activation == "tanh"
    assert [n for n, _ in layer.named_parameters()] == ["w_x", "w_h", "b1", "w", "b2"]
    back = layer.to_numpy()
    assert back.dtype == np.float32 and back.output_activation == "identity"
    for n in NAMES:
        np.testing.assert_array_equal(back.params()[n], rnn.params()[n])
    x = np.random.default_rng(2).normal(size=(6, 2, 3)).astype(np.float32)
    np.testing.assert_allclose(layer(torch.tensor(x)).detach().numpy(), rnn.predict(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"hidden_activation": "no_such_activation"}, "hidden_activation 'no_such_activation' is not supported"),
        ({"output_activation": "tanh"}, "output_activation"),
        ({"checkpoint": 0}, "checkpoint"),
        ({"truncate": 0}, "truncate"),
        ({"checkpoint": 2, "truncate": 2}, "cannot be combined"),
    ],
)
def test_bad_options(kwargs, match):
    with pytest.raises(bptt.BPTTError, match=match):
        bt.SigmoidRNN(1, 2, 1, **kwargs)


def test_bad_inputs():
    layer = bt.SigmoidRNN(2, 3, 1)
    with pytest.raises(bptt.BPTTError, match="shape"):
        layer(torch.zeros(4, 2, 5))
    with pytest.raises(bptt.BPTTError, match="dtype"):
        layer(torch.zeros(4, 2, 2, dtype=F64))
    with pytest.raises(bptt.BPTTError, match="h0"):
        layer(torch.zeros(4, 2, 2), torch.zeros(3, 3))
    with pytest.raises(bptt.BPTTError, match="torch.Tensor"):
        layer(np.zeros((4, 2, 2)))
    with pytest.raises(bptt.BPTTError, match="bptt.RNN"):
        bt.SigmoidRNN.from_numpy(layer)


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64, torch.bool, torch.complex64, "float32", np.float64])
def test_non_float_dtype_is_refused(dtype):
    with pytest.raises(bptt.BPTTError, match="dtype must be a floating torch dtype") as e:
        bt.SigmoidRNN(3, 4, 2, dtype=dtype)
    assert "\n" not in str(e.value)


def test_float_dtypes_are_accepted():
    for dt in (torch.float32, torch.float64, None):
        assert bt.SigmoidRNN(3, 4, 2, dtype=dt).w_h.dtype == (dt or torch.get_default_dtype())


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_x_or_h0_is_refused_like_the_numpy_rnn(bad):
    rnn = bptt.RNN(2, 3, 1, seed=0)
    layer = bt.SigmoidRNN.from_numpy(rnn)
    x = np.zeros((4, 2))
    x[2, 1] = bad
    with pytest.raises(bptt.BPTTError) as ours:
        layer(torch.tensor(x))
    with pytest.raises(bptt.BPTTError) as numpy_rnn:
        rnn.predict(x)
    assert str(ours.value) == str(numpy_rnn.value)  # "x contains nan at index (2, 1); every value must be finite ..."
    h0 = np.zeros(3)
    h0[1] = bad
    with pytest.raises(bptt.BPTTError, match="h0 contains .* every value must be finite"):
        layer(torch.zeros(4, 2, dtype=F64), torch.tensor(h0))
    with pytest.raises(bptt.BPTTError, match="x contains"):
        bt.sigmoid_rnn(torch.tensor(x)[:, None], None, *[p.detach() for p in layer.parameters()])


@pytest.mark.parametrize("checkpoint, truncate", [(None, None), (True, None), (None, 2)])
def test_double_backward_is_refused(checkpoint, truncate):
    """create_graph=True would give first derivatives whose own gradient silently lacks this layer's terms."""
    layer = bt.SigmoidRNN(2, 3, 1, checkpoint=checkpoint, truncate=truncate, dtype=F64)
    x = torch.randn(5, 2, 2, dtype=F64, requires_grad=True)
    with pytest.raises(bptt.BPTTError, match="not differentiable .*create_graph=True") as e:
        gx, = torch.autograd.grad(layer(x).sum(), x, create_graph=True)
        (gx ** 2).sum().backward()  # a gradient penalty: never reached
    assert "\n" not in str(e.value)
    gx, = torch.autograd.grad(layer(x).sum(), x)  # first order still works
    assert gx.shape == x.shape and not gx.requires_grad


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_cuda_matches_cpu():
    x, h0, p, gy, ghT = make(20, 4, 3, 8, 2, 0)
    args = [p[n] for n in NAMES]
    cpu = grads_of((bt.sigmoid_rnn(x, h0, *args, checkpoint=True)[0] * gy).sum(), [x, h0, *args])
    xc, h0c = x.detach().cuda().requires_grad_(), h0.detach().cuda().requires_grad_()
    argc = [a.detach().cuda().requires_grad_() for a in args]
    yc, _ = bt.sigmoid_rnn(xc, h0c, *argc, checkpoint=True)
    assert yc.is_cuda
    gpu = grads_of((yc * gy.cuda()).sum(), [xc, h0c, *argc])
    assert_close(cpu, [t.cpu() for t in gpu], tol=1e-10)


@pytest.mark.parametrize("case", ["nan_parameter", "relu_overflow"])
def test_a_non_finite_output_is_one_line_not_a_silent_nan(case):
    """A NaN parameter is named (which entry); an overflowing relu network says so, like the numpy RNN."""
    torch = pytest.importorskip("torch")
    from bptt.torch import SigmoidRNN

    if case == "nan_parameter":
        m = SigmoidRNN(1, 2, 1)
        with torch.no_grad():
            m.w_h[0, 1] = float("nan")
        said = r"w_h contains nan at index \(0, 1\)"
    else:
        m = SigmoidRNN(1, 2, 1, hidden_activation="relu", output_activation="identity")
        with torch.no_grad():
            m.w_h.fill_(1e30)
            m.w_x.fill_(1e30)
        said = "overflowed to a non-finite value"
    with pytest.raises(bptt.BPTTError, match=said) as e:
        m(torch.ones(5, 1, 1))
    assert "\n" not in str(e.value)
