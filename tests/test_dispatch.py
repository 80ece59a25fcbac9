"""Gradient checkpointing over time: the same gradient as full BPTT, with memory ~ sqrt(T)."""

import math
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bptt
from bptt import BPTTError, activations, engine
from bptt import dispatch
from bptt.losses import LOSSES
from helpers import outputs_for

SE = LOSSES["squared_error"]

HIDDEN = activations.HIDDEN_ACTIVATIONS
OUTPUT = activations.OUTPUT_ACTIVATIONS


@settings(max_examples=25, deadline=None)
@given(
    T=st.integers(1, 40),
    B=st.integers(1, 3),
    D=st.integers(1, 2),
    H=st.sampled_from([1, 2, 3, 20]),
    O=st.integers(1, 2),
    f=st.sampled_from(HIDDEN),
    g=st.sampled_from(OUTPUT),
    reduction=st.sampled_from(["mean", "sum"]),
    k=st.one_of(st.just("sqrt"), st.integers(1, 45)),
    backend=st.sampled_from(["numpy", "auto"]),
    seed=st.integers(0, 2**16),
)
def test_checkpointed_gradient_equals_full_bptt(T, B, D, H, O, f, g, reduction, k, backend, seed):
    # "auto" is the compiled kernels for activations that have them, numpy for the others
    rng = np.random.default_rng(seed)
    O = outputs_for(g, O)
    m = bptt.RNN(D, H, O, hidden_activation=f, output_activation=g, seed=seed)
    for name, shape in m.param_shapes().items():
        setattr(m, name, 0.7 * rng.standard_normal(shape))
    x = rng.standard_normal((T, B, D))
    y = rng.random((T, B, O))
    h0 = 0.3 * rng.standard_normal((B, H))
    l0, g0, d0 = m._gradient(x, y, h0, reduction, None, backend="numpy")
    l1, g1, d1 = m._gradient(x, y, h0, reduction, None, backend=backend, checkpoint=k)
    assert l1 == pytest.approx(l0, rel=1e-10, abs=1e-14)
    for name in engine.PARAM_NAMES:
        assert g1[name].shape == g0[name].shape
        np.testing.assert_allclose(g1[name], g0[name], rtol=1e-9, atol=1e-13, err_msg=name)
    np.testing.assert_allclose(d1, d0, rtol=1e-9, atol=1e-13)  # dLoss/dh_0 too


@pytest.mark.parametrize("kernel", ["scalar", "loop", "parallel"])
@pytest.mark.parametrize("k", [1, 3, 7])
def test_every_kernel_checkpointed_equals_reference(kernel, k):
    rng = np.random.default_rng(k)
    B, D, H, O = (1, 1, 1, 1) if kernel == "scalar" else (3, 2, 5, 2)
    p = engine.Params(*(0.8 * rng.standard_normal(s) for s in [(O, H), (H, D), (H, H), (H,), (O,)]))
    x, y, h0 = rng.standard_normal((20, B, D)), rng.random((20, B, O)), rng.standard_normal((B, H))
    f, g = activations.ACTIVATIONS["tanh"], activations.ACTIVATIONS["sigmoid"]
    l0, g0, d0 = dispatch.run_kernel(p, x, y, h0, f, g, SE, "mean", None, None, "numpy")
    l1, g1, d1 = dispatch.run_kernel(p, x, y, h0, f, g, SE, "mean", None, k, kernel)
    assert l1 == pytest.approx(l0, rel=1e-12)
    for name in engine.PARAM_NAMES:
        np.testing.assert_allclose(g1[name], g0[name], rtol=1e-10, atol=1e-14, err_msg=name)
    np.testing.assert_allclose(d1, d0, rtol=1e-10, atol=1e-14)


def test_long_scalar_sequence_float32_matches_float64_full():
    """T = 20000 in float32, checkpointed, against the float64 numpy reference (full BPTT)."""
    rng = np.random.default_rng(0)
    T = 20000
    x = rng.uniform(-1, 1, T)
    y = rng.uniform(0, 1, T)
    m64 = bptt.RNN.scalar(w=0.8, w_x=1.1, w_h=0.9, b1=-0.2, b2=0.1)
    m32 = bptt.RNN.scalar(w=0.8, w_x=1.1, w_h=0.9, b1=-0.2, b2=0.1, dtype=np.float32)
    l0, g0 = m64.loss_and_grad(x, y, backend="numpy")
    l1, g1 = m32.loss_and_grad(x.astype(np.float32), y.astype(np.float32), checkpoint="sqrt")
    assert l1 == pytest.approx(l0, rel=1e-4)
    for name in g0:
        np.testing.assert_allclose(g1[name], g0[name], rtol=1e-3, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("T", [1, 2, 3, 4, 99, 100, 101, 10**7])
def test_sqrt_segment_length_and_stored_states(T):
    k = dispatch.segment_length(T, "sqrt")
    assert k == math.ceil(math.sqrt(T))
    if T > 4:
        assert dispatch.stored_states(T, k) <= 2 * math.sqrt(T) + 4
    assert dispatch.segment_length(T, None) == T
    assert dispatch.segment_length(T, 10**9) == T
    assert dispatch.stored_states(T, T) == T + 1


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_checkpointing_lowers_peak_memory(backend):
    """Peak of numpy allocations (tracemalloc) during one gradient, T = 4096, B = 4, H = 16."""
    rng = np.random.default_rng(1)
    m = bptt.RNN(1, 16, 1, seed=0)
    T, B = 4096, 4
    x = rng.standard_normal((T, B, 1))
    y = rng.random((T, B, 1))
    if backend == "numba":
        m.loss_and_grad(x[:8], y[:8], backend=backend, checkpoint="sqrt")  # compile before measuring

    def peak(checkpoint):
        tracemalloc.start()
        m.loss_and_grad(x, y, backend=backend, checkpoint=checkpoint)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    full, sq = peak(None), peak("sqrt")
    one_sequence_of_states = T * B * 16 * 8  # bytes of h_1..h_T
    assert full >= one_sequence_of_states
    assert sq < full / 8, (full, sq)


@pytest.mark.parametrize("bad", [0, -3, 1.5, "log", "SQRT", [4], 2**80])
def test_bad_checkpoint_is_one_line_error(bad):
    m = bptt.RNN(2, 3, 1, seed=0)
    with pytest.raises(BPTTError, match="checkpoint must be None") as e:
        m.loss_and_grad(np.zeros((5, 2)), np.zeros((5, 1)), checkpoint=bad)
    assert "\n" not in str(e.value)


def test_checkpoint_true_means_sqrt_as_in_the_torch_layer():
    m = bptt.RNN(2, 3, 1, seed=0)
    x, y = np.linspace(0, 1, 14).reshape(7, 2), np.full((7, 1), 0.3)
    a = m.loss_and_grad(x, y, checkpoint=True, backend="numpy")
    b = m.loss_and_grad(x, y, checkpoint="sqrt", backend="numpy")
    assert a[0] == b[0] and all(np.array_equal(a[1][k], b[1][k]) for k in a[1])


def test_checkpoint_with_truncate_is_refused():
    with pytest.raises(BPTTError, match="cannot be combined with truncate"):
        bptt.RNN.scalar().loss_and_grad([1.0, 0.0, 1.0], [0.5, 0.5, 0.5], truncate=1, checkpoint="sqrt")


@pytest.mark.parametrize("backend", ["numpy", "auto"])
@pytest.mark.parametrize("k", [None, 3])
def test_no_h0_is_a_zero_state_on_every_path(backend, k):
    """The model passes h0 None down when it is not given; dispatch reads it as zeros (every path, dLoss/dh_0 too)."""
    rng = np.random.default_rng(7)
    for m, B in ((bptt.RNN.scalar(0.5, -1.2, 0.8, 0.3, -0.4), 1), (bptt.RNN(2, 3, 2, seed=1), 4)):
        D, H, O = m.input_size, m.hidden_size, m.output_size
        x, y = rng.standard_normal((9, B, D)), rng.random((9, B, O))
        l0, g0, d0 = m._gradient(x, y, None, "mean", None, backend=backend, checkpoint=k)
        l1, g1, d1 = m._gradient(x, y, np.zeros((B, H)), "mean", None, backend=backend, checkpoint=k)
        assert l0 == l1 and d0.shape == (B, H) and np.array_equal(d0, d1)
        for name in engine.PARAM_NAMES:
            assert np.array_equal(g0[name], g1[name]), name


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_seeds_call_takes_the_parameters_from_their_storage_or_from_p(dtype):
    """A Network made without theta (the flat storage) gives the seed's whole-sequence call the same bits as the model's."""
    m = bptt.RNN.scalar(0.7, -0.3, 1.4, 0.2, -0.9, dtype=dtype)
    x = np.array([1.0, 0.0, -0.5], dtype).reshape(3, 1, 1)
    y = np.array([0.5, 0.25, 0.75], dtype).reshape(3, 1, 1)
    net = dispatch.network(m.engine_params(), m.hidden_act, m.output_act, m.criterion)
    assert net.theta is None and net.scalar and net.codes is not None
    l0, g0, _ = dispatch.loss_and_grad(net, x, y, None, backend="auto", need_dh0=False)
    l1, g1 = m.loss_and_grad(x, y)
    assert l0 == l1
    for name in engine.PARAM_NAMES:
        assert g0[name].dtype == dtype and g0[name].shape == m.param_shapes()[name]
        assert np.array_equal(g0[name], g1[name]), name


def test_step_kernel_names_the_compiled_training_steps_kernel_or_none():
    """dispatch.step_kernel: the lanes kernel from LANES_MIN_B sequences (float64 too), the loop kernel below and up
    to FAST_MAX_MACS; None for checkpointing, an empty chunk, larger sizes or a loss without a compiled branch."""
    def net_of(m):
        return dispatch.network(m.engine_params(), m.hidden_act, m.output_act, m.criterion)

    small = net_of(bptt.RNN(2, 4, 1, seed=0))
    assert dispatch.step_kernel(small, 10, dispatch.LANES_MIN_B) == "lanes"
    assert dispatch.fast_kernel(dispatch.LANES_MIN_B, 4, lanes=False) == "loop"  # the public float64 call's choice
    assert dispatch.step_kernel(small, 10, 1) == "loop"
    assert dispatch.step_kernel(small, 10, 1, checkpoint="sqrt") is None
    assert dispatch.step_kernel(small, 0, 1) is None
    assert dispatch.step_kernel(net_of(bptt.RNN(2, 64, 1, seed=0)), 10, 64) is None  # B H^2 > FAST_MAX_MACS
    ce = net_of(bptt.RNN(2, 4, 3, output_activation="softmax", loss="cross_entropy", seed=0))
    assert ce.codes is None and dispatch.step_kernel(ce, 10, 1) is None


@settings(max_examples=30, deadline=None)
@given(
    T=st.integers(1, 30),
    B=st.integers(1, 5),
    D=st.integers(1, 3),
    H=st.sampled_from([1, 2, 5, 17]),
    f=st.sampled_from(HIDDEN),
    g=st.sampled_from(OUTPUT),
    dtype=st.sampled_from(["float32", "float64"]),
    scale=st.sampled_from([0.5, 30.0]),
    seed=st.integers(0, 2**16),
)
def test_the_public_forward_is_the_engines_bits_on_either_path(T, B, D, H, f, g, dtype, scale, seed):
    """dispatch.forward picks the compiled loop or the engine's by speed alone: RNN.forward, predict and loss
    give engine.forward's bits either way (saturating weights included)."""
    rng = np.random.default_rng(seed)
    O = outputs_for(g, 1)
    m = bptt.RNN(D, H, O, hidden_activation=f, output_activation=g, dtype=dtype, seed=seed)
    m.set_params(**{k: scale * v for k, v in m.params().items()})
    x = rng.standard_normal((T, B, D)).astype(dtype)  # (T, B, D)
    y = rng.random((T, B, O)).astype(dtype)  # (T, B, O)
    if g == "softmax":
        y /= y.sum(axis=-1, keepdims=True)  # distributions, as cross-entropy wants
    p = engine.Params(**m.params())
    f_rec, g_rec = bptt.ACTIVATIONS[f], bptt.ACTIVATIONS[g]
    with np.errstate(over="ignore"):
        ref = engine.forward(p, x, np.zeros((B, H), dtype), f_rec, g_rec)
    want_loss = engine.loss(ref, y, LOSSES[m.loss_name], "mean")
    for compiled in (True, False):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(dispatch, "recurrence_loaded", lambda: compiled)
            mp.setattr(dispatch, "COMPILED_FORWARD_MIN_WORK", 1 << 62)
            fwd = m.forward(x)
            for name in ("z", "h", "u", "y_pred"):
                assert np.array_equal(getattr(fwd, name), getattr(ref, name)), (compiled, name)
            assert np.array_equal(m.predict(x), ref.y_pred)
            assert m.loss(x, y) == want_loss
