import dataclasses

import numpy as np
import pytest
import sympy as sp
from hypothesis import given
from hypothesis import strategies as st

import bptt
from bptt import BPTTError, activations, dispatch, engine
from bptt.activations import ACTIVATIONS, BACKENDS, HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS, Activation, get
from bptt.losses import LOSSES

from helpers import finite_difference_grads


@pytest.mark.parametrize("name", [n for n, a in ACTIVATIONS.items() if a.elementwise])
@given(z=st.floats(-30, 30).filter(lambda v: abs(v) > 1e-3))
def test_derivative_from_output_matches_finite_difference(name, z):
    a = ACTIVATIONS[name]
    eps = 1e-6
    numeric = (a.value(np.array(z + eps)) - a.value(np.array(z - eps))) / (2 * eps)
    assert a.deriv(a.value(np.array(z))) == pytest.approx(float(numeric), rel=1e-5, abs=1e-9)


@pytest.mark.parametrize("name", list(ACTIVATIONS))
@given(data=st.data())
def test_jvp_from_output_matches_finite_differences_and_torch(name, data):
    """Activation.jvp (J v from the output a = f(z)) for vectors, every activation, elementwise or not."""
    import torch

    a = ACTIVATIONS[name]
    n = data.draw(st.integers(1, 5))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    z, v = 3 * rng.standard_normal((2, n)), rng.standard_normal(n)
    z = z + (z[0] == 0) * 0.5  # relu's kink
    eps = 1e-6
    numeric = (a.value(z[0] + eps * v) - a.value(z[0] - eps * v)) / (2 * eps)
    got = a.jvp(a.value(z[0]), v)
    np.testing.assert_allclose(got, numeric, rtol=1e-6, atol=1e-8)
    if "torch" in a.backends:
        zt = torch.tensor(z[0])
        want = torch.autograd.functional.jvp(a.torch_value, (zt,), (torch.tensor(v),))[1].numpy()
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(a.torch_jvp(a.torch_value(zt), torch.tensor(v)).numpy(), want, rtol=1e-12,
                                   atol=1e-14)


@pytest.mark.parametrize("name", [n for n, a in ACTIVATIONS.items() if "sympy" in a.backends])
def test_symbolic_and_numeric_agree(name):
    a = ACTIVATIONS[name]
    u = sp.Symbol("u", real=True)
    for z in (-2.5, -0.3, 0.7, 3.0):
        sym_val = float(a.sym_value(u).subs(u, z))
        assert sym_val == pytest.approx(float(a.value(np.array(z))), rel=1e-14)
        sym_d = float(a.sym_deriv(sp.Float(sym_val)))
        assert sym_d == pytest.approx(float(a.deriv(np.array(a.value(np.array(z))))), rel=1e-14)
        # and the symbolic derivative of the symbolic value is the table's derivative
        dz = float(sp.diff(a.sym_value(u), u).subs(u, z))
        assert dz == pytest.approx(sym_d, rel=1e-12)


def test_sigmoid_is_stable_for_huge_inputs():
    z = np.array([-1e4, -800.0, -50.0, 0.0, 50.0, 800.0, 1e4])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        s = ACTIVATIONS["sigmoid"].value(z)
    assert np.all(np.isfinite(s))
    assert s[0] == 0.0 and s[-1] == 1.0 and s[3] == 0.5
    assert np.all(np.diff(s) >= 0)


def test_sigmoid_keeps_float32():
    z = np.linspace(-5, 5, 7, dtype=np.float32)
    assert ACTIVATIONS["sigmoid"].value(z).dtype == np.float32


def test_sigmoid_is_the_plus_sign_logistic():
    # The seed prints 1/(1 - e^-x); its own sgm(2) = 0.88 needs 1/(1 + e^-x).
    assert float(ACTIVATIONS["sigmoid"].value(np.array(2.0))) == pytest.approx(1 / (1 + np.exp(-2.0)))
    assert round(float(ACTIVATIONS["sigmoid"].value(np.array(2.0))), 2) == 0.88


def test_unknown_activation_is_one_clear_line():
    with pytest.raises(BPTTError, match="'softsign' is not supported; choose one of sigmoid, tanh"):
        get("softsign", ("sigmoid", "tanh"), "hidden_activation")


# ---------------------------------------------------------------- the table is the one source
def test_the_seed_activations_run_on_every_backend():
    for name in ("sigmoid", "tanh"):  # the seed's network and its usual variant, in every door
        assert ACTIVATIONS[name].backends == BACKENDS


def test_role_lists_come_from_the_table():
    assert HIDDEN_ACTIVATIONS == tuple(n for n, a in ACTIVATIONS.items() if "hidden" in a.roles)
    assert OUTPUT_ACTIVATIONS == tuple(n for n, a in ACTIVATIONS.items() if "output" in a.roles)
    assert all(set(a.roles) <= {"hidden", "output"} and a.roles for a in ACTIVATIONS.values())


# ---------------------------------------------------------------- a new activation with numpy parts only
def _softsign(z):
    return z / (1 + np.abs(z))


def _d_softsign(a):
    return (1 - np.abs(a)) ** 2  # f'(z) = 1/(1+|z|)^2 = (1-|f(z)|)^2


@pytest.fixture
def softsign(monkeypatch):
    """softsign registered in the table with its numpy value and derivative only (no sympy, torch or code)."""
    act = Activation("softsign", ("hidden", "output"), _softsign, _d_softsign, "ssgn", "(1 - |{a}|)^2")
    monkeypatch.setitem(ACTIVATIONS, "softsign", act)
    return act


def _problem(rng, T=6, B=2, D=2, O=1):
    return rng.standard_normal((T, B, D)), rng.random((T, B, O))


def test_new_activation_runs_on_numpy(softsign):
    assert softsign.backends == ("numpy",)
    rng = np.random.default_rng(0)
    m = bptt.RNN(2, 3, 1, "softsign", "softsign", seed=1)
    x, y = _problem(rng)
    # the forward pass is the formula, written out here
    h = np.zeros((2, 3))
    for t in range(6):
        h = _softsign(x[t] @ m.w_x.T + h @ m.w_h.T + m.b1)
        np.testing.assert_allclose(m.predict(x)[t], _softsign(h @ m.w.T + m.b2), rtol=1e-14)
    _, grads = m.loss_and_grad(x, y, backend="numpy")
    fd = finite_difference_grads(m, x, y)
    for k in engine.PARAM_NAMES:
        np.testing.assert_allclose(grads[k], fd[k], rtol=1e-6, atol=1e-9, err_msg=k)


@pytest.mark.parametrize("sizes", [(1, 1, 1), (2, 3, 1)])  # the scalar fast path and a batched kernel
def test_new_activation_auto_falls_back_to_numpy(softsign, sizes):
    """backend="auto" runs an activation without a compiled version on numpy: the same numbers."""
    D, H, O = sizes
    rng = np.random.default_rng(2)
    m = bptt.RNN(D, H, O, "softsign", "sigmoid", seed=3)
    x, y = (a[:, 0, 0] for a in _problem(rng, D=D, O=O)) if H == 1 else _problem(rng, D=D, O=O)
    auto = m.loss_and_grad(x, y)
    ref = m.loss_and_grad(x, y, backend="numpy")
    assert auto[0] == ref[0]
    for k in engine.PARAM_NAMES:
        np.testing.assert_array_equal(auto[1][k], ref[1][k])


@pytest.mark.parametrize("hidden, output, role", [("softsign", "sigmoid", "hidden"), ("tanh", "softsign", "output")])
def test_new_activation_is_refused_by_the_compiled_kernels(softsign, hidden, output, role):
    m = bptt.RNN(2, 3, 1, hidden, output, seed=0)
    x, y = _problem(np.random.default_rng(0))
    msg = f"{role}_activation 'softsign' has no numba implementation; it runs on numpy"
    with pytest.raises(BPTTError, match=msg) as e:
        m.loss_and_grad(x, y, backend="numba")
    assert "\n" not in str(e.value)
    with pytest.raises(BPTTError, match=msg):  # the scalar model too (its fast path steps aside)
        bptt.RNN.scalar(hidden_activation=hidden, output_activation=output).loss_and_grad(
            np.zeros(3), np.zeros(3), backend="numba")
    f, g = m.hidden_act, m.output_act
    p = engine.Params(**m.params())
    for kernel in ("loop", "parallel"):  # every runner refuses before any kernel runs
        with pytest.raises(BPTTError, match=msg):
            dispatch.run_kernel(p, x, y, np.zeros((2, 3)), f, g, LOSSES["squared_error"], "mean", None, None, kernel)


def test_new_activation_is_refused_by_the_torch_layer(softsign):
    torch = pytest.importorskip("torch")
    import bptt.torch as bt

    with pytest.raises(BPTTError, match="hidden_activation 'softsign' has no torch implementation; it runs on numpy") as e:
        bt.SigmoidRNN(2, 3, 1, hidden_activation="softsign")
    assert "\n" not in str(e.value)
    with pytest.raises(BPTTError, match="output_activation 'softsign' has no torch implementation"):
        bt.SigmoidRNN.from_numpy(bptt.RNN(2, 3, 1, "tanh", "softsign"))
    with pytest.raises(BPTTError, match="has no torch implementation"):
        bt.torch_value("softsign", torch.zeros(3))


def test_a_code_the_kernels_lack_is_an_error_not_the_identity(softsign, monkeypatch):
    """A record claiming a compiled code with no branch in kernels._f/_df: the kernel raises."""
    monkeypatch.setitem(ACTIVATIONS, "softsign", dataclasses.replace(softsign, code=99))
    for m, x, y in ((bptt.RNN.scalar(hidden_activation="softsign"), np.ones(3), np.zeros(3)),
                    (bptt.RNN(2, 3, 1, "softsign", seed=0), *_problem(np.random.default_rng(0)))):
        with pytest.raises(ValueError, match="no compiled branch for this activation code"):
            m.loss_and_grad(x, y, backend="numba")


def test_require_and_supports():
    tanh = ACTIVATIONS["tanh"]
    assert activations.require(tanh, "torch") is tanh and activations.supports(tanh, "numba")
    bare = dataclasses.replace(tanh, torch_value=None)
    assert not activations.supports(bare, "torch") and bare.backends == ("numpy", "numba", "sympy")
    with pytest.raises(BPTTError, match="'tanh' has no torch implementation; it runs on numpy, numba, sympy"):
        activations.require(bare, "torch")
