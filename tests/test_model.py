"""The RNN's public contract and its one-line errors for bad input."""

import subprocess
import sys

import numpy as np
import pytest

import bptt
from bptt import BPTTError


def test_scalar_constructor_uses_the_seed_names():
    m = bptt.RNN.scalar(w=2, w_x=3, w_h=4, b1=5, b2=6)
    assert (m.input_size, m.hidden_size, m.output_size) == (1, 1, 1)
    assert [float(getattr(m, k).ravel()[0]) for k in ("w", "w_x", "w_h", "b1", "b2")] == [2, 3, 4, 5, 6]


def test_parameters_are_settable_and_shape_checked():
    m = bptt.RNN(3, 4, 2, seed=0)
    assert m.w_x.shape == (4, 3) and m.w_h.shape == (4, 4) and m.b1.shape == (4,)
    assert m.w.shape == (2, 4) and m.b2.shape == (2,)
    m.w_x = np.ones((4, 3))
    assert np.all(m.w_x == 1)
    with pytest.raises(BPTTError, match=r"w_x must have shape \(4, 3\), got \(3, 4\)"):
        m.w_x = np.ones((3, 4))
    with pytest.raises(BPTTError, match="b1 contains nan"):
        m.b1 = [0, np.nan, 0, 0]


def test_seeded_init_is_reproducible():
    a, b = bptt.RNN(2, 3, 1, seed=7), bptt.RNN(2, 3, 1, seed=7)
    for k in bptt.PARAM_NAMES:
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k))


def test_forward_returns_every_intermediate_in_both_layouts():
    m = bptt.RNN(2, 3, 1, seed=0)
    x = np.random.default_rng(0).standard_normal((5, 4, 2))
    f = m.forward(x)
    assert f.z.shape == (5, 4, 3) and f.h.shape == (6, 4, 3) and f.u.shape == (5, 4, 1) and f.y_pred.shape == (5, 4, 1)
    assert np.all(f.h[0] == 0)
    f1 = m.forward(x[:, 1])  # unbatched (T, D)
    np.testing.assert_allclose(f1.y_pred, f.y_pred[:, 1], rtol=1e-14)
    assert f1.h.shape == (6, 3)


def test_unbatched_and_batched_gradients_agree():
    rng = np.random.default_rng(2)
    m = bptt.RNN(2, 3, 2, seed=1)
    x, y = rng.standard_normal((4, 2)), rng.uniform(size=(4, 2))
    l1, g1 = m.loss_and_grad(x, y)
    l2, g2 = m.loss_and_grad(x[:, None], y[:, None])
    assert l1 == l2
    for k in g1:
        np.testing.assert_array_equal(g1[k], g2[k])


def test_batch_mean_is_the_mean_of_the_sequences():
    rng = np.random.default_rng(4)
    m = bptt.RNN(1, 2, 1, seed=2)
    x, y = rng.standard_normal((3, 5, 1)), rng.uniform(size=(3, 5, 1))
    loss, grads = m.loss_and_grad(x, y)
    per = [m.loss_and_grad(x[:, b], y[:, b]) for b in range(5)]
    assert loss == pytest.approx(np.mean([p[0] for p in per]), rel=1e-13)
    for k in grads:
        np.testing.assert_allclose(grads[k], np.mean([p[1][k] for p in per], axis=0), rtol=1e-12)


def test_sum_reduction_is_T_times_B_times_mean():
    rng = np.random.default_rng(5)
    m = bptt.RNN(2, 2, 1, seed=3)
    x, y = rng.standard_normal((6, 3, 2)), rng.uniform(size=(6, 3, 1))
    lm, gm = m.loss_and_grad(x, y, reduction="mean")
    ls, gs = m.loss_and_grad(x, y, reduction="sum")
    assert ls == pytest.approx(18 * lm, rel=1e-13)
    for k in gm:
        np.testing.assert_allclose(gs[k], 18 * gm[k], rtol=1e-12)


def test_h0_broadcasts_and_changes_the_result():
    m = bptt.RNN.scalar()
    a = m.forward([1.0, 0.0], h0=0.5).h[:, 0]
    assert a[0] == 0.5
    assert m.forward([[[1.0]], [[0.0]]], h0=[0.5]).h[0, 0, 0] == 0.5
    assert m.loss([1, 0], [0, 0], h0=0.5) != m.loss([1, 0], [0, 0])


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m: m.loss_and_grad(np.zeros((0, 2)), np.zeros((0, 1))), "empty sequence"),
        (lambda m: m.loss_and_grad(np.zeros((3, 3)), np.zeros((3, 1))), "x has 3 features per step but the model's input_size is 2"),
        (lambda m: m.loss_and_grad(np.zeros((3, 2)), np.zeros((4, 1))), r"y must have shape \(3, 1\) to match x, got \(4, 1\)"),
        (lambda m: m.loss_and_grad(np.zeros((3, 2, 2)), np.zeros((3, 3, 1))), r"y must have shape \(3, 2, 1\)"),
        (lambda m: m.loss_and_grad(np.zeros((3, 2)), [[0], [np.inf], [0]]), "y contains inf at index"),
        (lambda m: m.loss_and_grad([[0, np.nan]], [[0]]), "x contains nan"),
        (lambda m: m.loss_and_grad([["a", "b"]], [[0]]), "x must be numeric"),
        (lambda m: m.loss_and_grad(np.zeros((2, 2)), np.zeros((2, 1)), reduction="avg"), "reduction must be 'mean' or 'sum', got 'avg'"),
        (lambda m: m.loss_and_grad(np.zeros((2, 2)), np.zeros((2, 1)), truncate=0), "truncate must be a positive number"),
        (lambda m: m.loss_and_grad(np.zeros((2, 2)), np.zeros((2, 1)), h0=np.zeros(5)), r"h0 must be a number, shape \(3,\)"),
        (lambda m: m.forward(np.zeros((2, 2, 2, 2))), r"x must be \(T, D\) or \(T, B, D\)"),
        (lambda m: m.forward(np.zeros((2, 0, 2))), "empty batch"),
    ],
)
def test_bad_input_gives_one_clear_line(call, message):
    m = bptt.RNN(2, 3, 1, seed=0)
    with pytest.raises(BPTTError, match=message) as info:
        call(m)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(hidden_activation="softmax"), "hidden_activation 'softmax' is not supported"),
        (dict(output_activation="tanh"), "output_activation 'tanh' is not supported; choose one of sigmoid, identity"),
        (dict(dtype=np.int32), "dtype must be float32 or float64"),
    ],
)
def test_bad_construction(kwargs, message):
    with pytest.raises(BPTTError, match=message):
        bptt.RNN(1, 1, 1, **kwargs)


def test_bad_sizes():
    with pytest.raises(BPTTError, match="hidden_size must be a positive integer <= 4194304, got 0"):
        bptt.RNN(1, 0, 1)
    with pytest.raises(BPTTError, match="hidden_size must be a positive integer <= 4194304, got 1000000000000"):
        bptt.RNN(1, 10**12, 1)
    for seed in (-1, "abc", 1.5):
        with pytest.raises(BPTTError, match="seed must be a non-negative integer or None"):
            bptt.RNN(1, 2, 1, seed=seed)
    with pytest.raises(BPTTError, match="dtype must be float32 or float64, got 'foo'"):
        bptt.RNN(1, 2, 1, dtype="foo")
    with pytest.raises(BPTTError, match="set_params got unknown parameter"):
        bptt.RNN(1, 2, 1).set_params(nope=1)
    with pytest.raises(BPTTError, match="b1 is complex"):
        bptt.RNN(1, 2, 1).set_params(b1=np.array([1 + 1j, 0]))
    with pytest.raises(BPTTError, match="w must be a number"):
        bptt.RNN.scalar(w="x")


def test_relu_overflow_is_an_error_not_a_silent_inf():
    m = bptt.RNN.scalar(w=1e200, w_x=1e200, w_h=1e200, b1=0, b2=0, hidden_activation="relu", output_activation="identity")
    with pytest.raises(BPTTError, match="overflowed"):
        m.loss_and_grad([1.0, 1.0, 1.0], [0.0, 0.0, 0.0])


def test_import_bptt_imports_no_heavy_dependency():
    code = (
        "import sys, bptt; heavy = [m for m in ('torch', 'jax', 'sympy', 'numba', 'matplotlib', 'scipy') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_activation_records_are_public():
    """hidden_act / output_act: the table's records, for modules that need f and g (gradflow, kernels)."""
    m = bptt.RNN(2, 3, 1, "tanh", "identity", seed=0)
    assert m.hidden_act is bptt.ACTIVATIONS["tanh"] and m.output_act is bptt.ACTIVATIONS["identity"]
    assert (m.hidden_activation, m.output_activation) == (m.hidden_act.name, m.output_act.name)


def test_a_copy_owns_its_parameters():
    """copy.copy, like copy.deepcopy, gives a network whose parameters are its own (in place or replaced)."""
    import copy

    m = bptt.RNN(2, 3, 1, seed=0)
    before = m.params()
    for c in (copy.copy(m), copy.deepcopy(m)):
        c.w_h[0, 0] = 9.0
        c.b1 = np.zeros(3)
        assert c.engine_params().w_h[0, 0] == 9.0 and not c.b1.any()
        for k, v in m.params().items():
            np.testing.assert_array_equal(v, before[k])


def test_complex_numbers_in_a_list_are_refused_not_cast():
    """A list of numpy complex numbers would lose its imaginary part in a cast to float: refused instead."""
    m = bptt.RNN.scalar()
    with pytest.raises(BPTTError, match="complex"):
        m.loss_and_grad([np.complex128(1 + 2j), 0.0], [0.5, 0.5])


@pytest.mark.parametrize("method", ["forward", "loss", "loss_and_grad", "decompose"])
def test_an_inf_input_is_named_even_where_the_result_would_be_finite(method):
    """sigmoid(inf) = 1: the forward values stay finite, yet inf is not a valid input; every method names it."""
    m = bptt.RNN.scalar()
    x, y = [np.inf, 0.0], [0.5, 0.5]
    call = {"forward": lambda: m.forward(x), "loss": lambda: m.loss(x, y),
            "loss_and_grad": lambda: m.loss_and_grad(x, y), "decompose": lambda: m.decompose(x, y)}[method]
    with pytest.raises(BPTTError, match=r"x contains inf at index \(0,\)"):
        call()


def test_a_network_beyond_memory_is_refused_before_it_is_allocated():
    """RNN(1, 2**22, 1) would ask for 128 TiB of w_h: one line naming the largest hidden size that fits."""
    with pytest.raises(BPTTError, match="give a hidden size of at most") as e:
        bptt.RNN(1, 2**22, 1)
    assert "\n" not in str(e.value)


def test_a_decomposition_beyond_memory_is_refused_before_it_is_computed():
    """decompose keeps a (T, T) block per parameter entry: T = 200 000 is one line naming the longest T that fits."""
    m = bptt.RNN.scalar()
    with pytest.raises(BPTTError, match="decompose at most") as e:
        m.decompose(np.zeros(200_000), np.zeros(200_000))
    assert "\n" not in str(e.value)


def test_parameters_live_in_the_models_own_storage():
    """Setting a parameter writes into the model's storage: engine_params() sees it, and so does the compiled call;
    a pickled or deep-copied model gets storage of its own with the same behaviour."""
    import copy
    import pickle

    x, y = np.array([1.0, 0.0, 0.5]), np.array([0.5, 0.5, 0.2])
    want = bptt.RNN.scalar(w=2.0, b1=-1.0).loss_and_grad(x, y)
    m = bptt.RNN.scalar()
    p = m.engine_params()
    m.w = 2.0
    m.set_params(b1=[-1.0])
    assert p.w[0, 0] == 2.0 and p.b1[0] == -1.0
    got = m.loss_and_grad(x, y)
    assert got[0] == want[0] and all(np.array_equal(got[1][k], want[1][k]) for k in want[1])
    for twin in (pickle.loads(pickle.dumps(bptt.RNN.scalar())), copy.deepcopy(bptt.RNN.scalar())):
        twin.w = 2.0
        twin.b1 = -1.0
        got = twin.loss_and_grad(x, y)
        assert got[0] == want[0] and all(np.array_equal(got[1][k], want[1][k]) for k in want[1])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_list_inputs_are_the_arrays_numbers(dtype):
    """Lists of Python floats (and ints) give the bits of the same numbers as arrays; lists that hold anything else
    (numpy scalars, complex numbers, strings, nested rows) follow the general rule, which reads or refuses them."""
    m = bptt.RNN.scalar(0.3, -1.1, 0.9, 0.2, 0.4, dtype=dtype)
    x = [0.1, 1 / 3, -2.5e-8, 7, True]
    y = [0.25, 0.5, 0.75, 1.0, 0.0]
    got = m.loss_and_grad(x, y)
    want = m.loss_and_grad(np.array(x, np.float64).astype(dtype), np.array(y).astype(dtype))
    assert got[0] == want[0] and all(np.array_equal(got[1][k], want[1][k]) for k in want[1])
    mixed = m.loss_and_grad([np.float32(0.1), 0.2], [0.5, np.float64(0.5)])
    plain = m.loss_and_grad(np.array([np.float64(np.float32(0.1)), 0.2]).astype(dtype), np.array([0.5, 0.5], dtype))
    assert mixed[0] == plain[0]
    for bad, said in (([np.complex128(1 + 2j), 0.0], "complex"), ([1 + 2j, 0.0], "complex"),
                      (["a", 0.0], "must be numeric")):
        with pytest.raises(BPTTError, match=said):
            m.loss_and_grad(bad, [0.5, 0.5])
